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

use std::time::Duration;

use crate::config::{ConfigError, SecretRef, VerificationConfig};
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
    /// Builds a verifier; `key` is the config key prefix of the source (`sources[2]`) for errors.
    pub fn from_config(
        key: &str,
        config: &VerificationConfig,
        allowed_cidrs: &[String],
    ) -> Result<Verifier, ConfigError> {
        let vkey = format!("{key}.verification");
        let mut allowlists = Vec::new();
        if !allowed_cidrs.is_empty() {
            allowlists.push(IpAllowlist::parse(
                &format!("{key}.allowed_cidrs"),
                allowed_cidrs,
            )?);
        }
        let scheme = match config {
            VerificationConfig::StandardWebhooks {
                secrets,
                public_keys,
                tolerance_seconds,
            } => Scheme::StandardWebhooks(
                StandardWebhooksVerifier::new(
                    &resolve_all(&format!("{vkey}.secrets"), secrets)?,
                    &resolve_all(&format!("{vkey}.public_keys"), public_keys)?,
                    Duration::from_secs(*tolerance_seconds),
                )
                .map_err(|error| ConfigError::invalid(vkey.clone(), error))?,
            ),
            VerificationConfig::QueryToken { param, tokens } => {
                if param.is_empty() {
                    return Err(ConfigError::invalid(format!("{vkey}.param"), "is empty"));
                }
                Scheme::QueryToken(QueryTokenVerifier::new(
                    param.clone(),
                    require_some(&format!("{vkey}.tokens"), tokens)?,
                ))
            }
            VerificationConfig::HeaderToken {
                header,
                prefix,
                tokens,
            } => {
                if header.is_empty() {
                    return Err(ConfigError::invalid(format!("{vkey}.header"), "is empty"));
                }
                // A name no request can carry would refuse every webhook, silently.
                if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return Err(ConfigError::invalid(
                        format!("{vkey}.header"),
                        "is not a valid http header name",
                    ));
                }
                Scheme::HeaderToken(HeaderTokenVerifier::new(
                    header.clone(),
                    prefix.clone(),
                    require_some(&format!("{vkey}.tokens"), tokens)?,
                ))
            }
            VerificationConfig::BasicAuth { username, password } => {
                Scheme::BasicAuth(BasicAuthVerifier::new(
                    username.clone(),
                    password.resolve(&format!("{vkey}.password"))?,
                ))
            }
            VerificationConfig::IpAllowlist { cidrs } => {
                if cidrs.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{vkey}.cidrs"),
                        "needs at least one cidr",
                    ));
                }
                allowlists.push(IpAllowlist::parse(&format!("{vkey}.cidrs"), cidrs)?);
                Scheme::IpAllowlist
            }
            VerificationConfig::None {} => Scheme::None,
        };
        Ok(Verifier { scheme, allowlists })
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

fn resolve_all(key: &str, refs: &[SecretRef]) -> Result<Vec<crate::config::Secret>, ConfigError> {
    refs.iter()
        .enumerate()
        .map(|(index, secret)| secret.resolve(&format!("{key}[{index}]")))
        .collect()
}

fn require_some(key: &str, refs: &[SecretRef]) -> Result<Vec<crate::config::Secret>, ConfigError> {
    if refs.is_empty() {
        return Err(ConfigError::invalid(key, "needs at least one token"));
    }
    resolve_all(key, refs)
}

/// Compares two byte strings in constant time (for equal lengths; length is not secret).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
