//! Verification schemes: how a source proves a webhook is really from its provider.
//!
//! A source's config picks one scheme independently of the provider; each scheme lives in its own
//! file and exposes a verifier with a `check(&RawWebhook)` method. [`Verifier`] is the closed set
//! of them plus an optional peer-address allowlist that combines with any scheme.

pub mod basic_auth;
mod delivery;
pub mod header_token;
pub mod ip_allowlist;
pub mod query_token;
pub mod standard_webhooks;

use crate::config::VerificationConfig;
use crate::error::Reason;
use crate::webhook::RawWebhook;

pub use basic_auth::BasicAuthVerifier;
pub use header_token::HeaderTokenVerifier;
pub use ip_allowlist::IpAllowlist;
pub use query_token::QueryTokenVerifier;
pub use standard_webhooks::StandardWebhooksVerifier;

/// Why a webhook failed verification. Messages never contain secrets or signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing {what}")]
    MissingSignature { what: String },
    #[error("malformed signature: {why}")]
    MalformedSignature { why: String },
    #[error("no signature matches any configured secret")]
    SignatureMismatch,
    #[error(
        "webhook timestamp {timestamp} is {skew_seconds}s from the receive time (tolerance {tolerance_seconds}s)"
    )]
    TimestampOutOfTolerance {
        timestamp: i64,
        skew_seconds: i64,
        tolerance_seconds: u64,
    },
    #[error("missing token in {location}")]
    MissingToken { location: String },
    #[error("token does not match any configured token")]
    TokenMismatch,
    /// Fixed text: behind a misconfigured proxy the address seen is an internal one, which the
    /// sender has no business learning. The pipeline logs the address as a field instead.
    #[error("peer address is not allowed for this source")]
    AddressNotAllowed,
}

impl VerifyError {
    pub fn reason(&self) -> Reason {
        match self {
            VerifyError::MissingSignature { .. } => Reason::MissingSignature,
            VerifyError::MalformedSignature { .. } => Reason::MalformedSignature,
            VerifyError::SignatureMismatch => Reason::SignatureMismatch,
            VerifyError::TimestampOutOfTolerance { .. } => Reason::TimestampOutOfTolerance,
            VerifyError::MissingToken { .. } => Reason::MissingToken,
            VerifyError::TokenMismatch => Reason::TokenMismatch,
            VerifyError::AddressNotAllowed => Reason::AddressNotAllowed,
        }
    }
}

/// The closed set of schemes.
#[derive(Debug)]
pub enum Scheme {
    StandardWebhooks(StandardWebhooksVerifier),
    QueryToken(QueryTokenVerifier),
    HeaderToken(HeaderTokenVerifier),
    BasicAuth(BasicAuthVerifier),
    /// Only the allowlist is checked (it is then mandatory).
    IpAllowlist,
    /// Explicitly unauthenticated.
    None,
}

/// A source's complete verification: its scheme and, optionally, a peer-address allowlist.
#[derive(Debug)]
pub struct Verifier {
    scheme: Scheme,
    /// Every list must contain the peer (a source-wide list and the `ip_allowlist` scheme's own).
    allowlists: Vec<IpAllowlist>,
}

impl Verifier {
    /// Builds a source's verifier from its validated config; nothing is left to check here.
    pub fn from_config(
        config: &VerificationConfig,
        allowed_cidrs: Option<&IpAllowlist>,
    ) -> Verifier {
        let mut allowlists: Vec<IpAllowlist> = allowed_cidrs.into_iter().cloned().collect();
        let scheme = match config {
            VerificationConfig::StandardWebhooks { keys, tolerance } => Scheme::StandardWebhooks(
                StandardWebhooksVerifier::from_keys(keys.clone(), *tolerance),
            ),
            VerificationConfig::QueryToken { param, tokens } => {
                Scheme::QueryToken(QueryTokenVerifier::new(param.clone(), tokens.clone()))
            }
            VerificationConfig::HeaderToken {
                header,
                prefix,
                tokens,
            } => Scheme::HeaderToken(HeaderTokenVerifier::new(
                header.as_str().to_owned(),
                prefix.clone(),
                tokens.clone(),
            )),
            VerificationConfig::BasicAuth { username, password } => {
                Scheme::BasicAuth(BasicAuthVerifier::new(username.clone(), password.clone()))
            }
            VerificationConfig::IpAllowlist { cidrs } => {
                allowlists.push(cidrs.clone());
                Scheme::IpAllowlist
            }
            VerificationConfig::None => Scheme::None,
        };
        Verifier { scheme, allowlists }
    }

    /// True when the scheme is `none`: nothing about the request itself is checked, at most the
    /// peer address (see [`Verifier::is_unauthenticated`]).
    pub fn is_scheme_none(&self) -> bool {
        matches!(self.scheme, Scheme::None)
    }

    /// True when the source accepts unauthenticated webhooks (no scheme and no allowlist).
    pub fn is_unauthenticated(&self) -> bool {
        self.is_scheme_none() && self.allowlists.is_empty()
    }

    /// The scheme's config name, for logs.
    pub fn scheme_name(&self) -> &'static str {
        match self.scheme {
            Scheme::StandardWebhooks(_) => "standard_webhooks",
            Scheme::QueryToken(_) => "query_token",
            Scheme::HeaderToken(_) => "header_token",
            Scheme::BasicAuth(_) => "basic_auth",
            Scheme::IpAllowlist => "ip_allowlist",
            Scheme::None => "none",
        }
    }

    /// Checks the allowlist first (cheap, and an unlisted peer learns nothing about secrets),
    /// then the scheme.
    pub fn check(&self, webhook: &RawWebhook) -> Result<(), VerifyError> {
        for allowlist in &self.allowlists {
            allowlist.check(webhook)?;
        }
        match &self.scheme {
            Scheme::StandardWebhooks(verifier) => verifier.check(webhook),
            Scheme::QueryToken(verifier) => verifier.check(webhook),
            Scheme::HeaderToken(verifier) => verifier.check(webhook),
            Scheme::BasicAuth(verifier) => verifier.check(webhook),
            Scheme::IpAllowlist | Scheme::None => Ok(()),
        }
    }
}

/// Compares two byte strings in constant time (for equal lengths; length is not secret).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Secret;
    use crate::verify::standard_webhooks::StandardWebhooksKeys;

    fn allowlist(cidrs: &[&str]) -> IpAllowlist {
        let cidrs: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
        IpAllowlist::parse("allowed_cidrs", &cidrs).unwrap()
    }

    fn every_scheme() -> Vec<(VerificationConfig, &'static str)> {
        let keys = StandardWebhooksKeys::decode(
            &[Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
            &[],
        )
        .unwrap();
        vec![
            (
                VerificationConfig::StandardWebhooks {
                    keys,
                    tolerance: Duration::from_secs(300),
                },
                "standard_webhooks",
            ),
            (
                VerificationConfig::QueryToken {
                    param: "token".into(),
                    tokens: vec![Secret::new("t")],
                },
                "query_token",
            ),
            (
                VerificationConfig::HeaderToken {
                    header: ::http::HeaderName::from_static("x-token"),
                    prefix: String::new(),
                    tokens: vec![Secret::new("t")],
                },
                "header_token",
            ),
            (
                VerificationConfig::BasicAuth {
                    username: "u".into(),
                    password: Secret::new("p"),
                },
                "basic_auth",
            ),
            (
                VerificationConfig::IpAllowlist {
                    cidrs: allowlist(&["10.0.0.0/8"]),
                },
                "ip_allowlist",
            ),
            (VerificationConfig::None, "none"),
        ]
    }

    // The start-up warnings go by these: only `none` is unauthenticated, and only without an
    // allowlist from any address.
    #[test]
    fn scheme_names_and_which_sources_are_unauthenticated() {
        let sources = allowlist(&["192.0.2.0/24"]);
        for (config, name) in every_scheme() {
            let open = Verifier::from_config(&config, None);
            let listed = Verifier::from_config(&config, Some(&sources));
            assert_eq!(open.scheme_name(), name);
            assert_eq!(listed.scheme_name(), name);
            assert_eq!(open.is_scheme_none(), name == "none", "{name}");
            assert_eq!(listed.is_scheme_none(), name == "none", "{name}");
            assert_eq!(open.is_unauthenticated(), name == "none", "{name}");
            assert!(!listed.is_unauthenticated(), "{name} with an allowlist");
        }
    }

    #[test]
    fn every_allowlist_must_contain_the_peer() {
        let from = |address: &str| RawWebhook {
            remote_addr: Some(address.parse().unwrap()),
            ..RawWebhook::for_test("/w", &[])
        };
        let config = VerificationConfig::IpAllowlist {
            cidrs: allowlist(&["10.0.0.0/8"]),
        };
        let verifier = Verifier::from_config(&config, Some(&allowlist(&["10.1.0.0/16"])));
        assert_eq!(verifier.check(&from("10.1.2.3")), Ok(()));
        for outside_one in ["10.2.0.1", "192.0.2.1"] {
            assert_eq!(
                verifier.check(&from(outside_one)),
                Err(VerifyError::AddressNotAllowed),
                "{outside_one}"
            );
        }
        // The source-wide list applies before any scheme.
        let config = VerificationConfig::None;
        let verifier = Verifier::from_config(&config, Some(&allowlist(&["10.0.0.0/8"])));
        assert_eq!(verifier.check(&from("10.0.0.1")), Ok(()));
        assert_eq!(
            verifier.check(&from("192.0.2.1")),
            Err(VerifyError::AddressNotAllowed)
        );
    }
}
