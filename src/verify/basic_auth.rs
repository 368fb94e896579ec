//! HTTP Basic authentication (RFC 7617): `Authorization: Basic base64(username:password)`.
//!
//! No `Authorization` header, or none using the Basic scheme, is a missing credential
//! (`MissingToken`): the sender is not configured for Basic at all, which an operator wants to
//! tell apart from a wrong password. Undecodable Basic credentials count as wrong
//! (`TokenMismatch`), like any other credential that does not match. `Basic` with nothing after it
//! carries no credentials, so it is missing too.

use base64::Engine as _;

use crate::config::Secret;
use crate::verify::{VerifyError, constant_time_eq};
use crate::webhook::RawWebhook;

const SCHEME: &str = "Basic";

/// Accepts a webhook whose Basic credentials equal the configured username and password.
pub struct BasicAuthVerifier {
    username: String,
    password: Secret,
}

// Hand-written so the password is not even shown as redacted noise.
impl std::fmt::Debug for BasicAuthVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuthVerifier")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl BasicAuthVerifier {
    pub fn new(username: String, password: Secret) -> Self {
        BasicAuthVerifier { username, password }
    }

    /// Any `Authorization` header with matching Basic credentials passes.
    pub fn check(&self, webhook: &RawWebhook) -> Result<(), VerifyError> {
        let mut present = false;
        let mut basic = false;
        let mut matched = false;
        for value in webhook.headers_named("authorization") {
            present = true;
            if let Some(encoded) = basic_credentials(value) {
                basic = true;
                matched |= self.matches(encoded);
            }
        }
        match (present, basic, matched) {
            (false, _, _) => Err(VerifyError::MissingToken {
                location: "authorization header".to_owned(),
            }),
            (true, false, _) => Err(VerifyError::MissingToken {
                location: "authorization header (no basic credentials)".to_owned(),
            }),
            (true, true, false) => Err(VerifyError::TokenMismatch),
            (true, true, true) => Ok(()),
        }
    }

    fn matches(&self, encoded: &str) -> bool {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        // The username cannot contain a colon (RFC 7617), the password can.
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return false;
        };
        let (username, password) = (&decoded[..colon], &decoded[colon + 1..]);
        // `&`, not `&&`: both are always compared, so timing does not tell which one was wrong.
        constant_time_eq(username, self.username.as_bytes())
            & constant_time_eq(password, self.password.expose().as_bytes())
    }
}

/// The base64 part of a `Basic` authorization value (the scheme name is case-insensitive).
fn basic_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case(SCHEME)
        .then(|| rest.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(headers: &[(&str, &str)]) -> RawWebhook {
        RawWebhook::for_test("/w", headers)
    }

    fn authorization(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    fn verifier() -> BasicAuthVerifier {
        BasicAuthVerifier::new("gigs".into(), Secret::new("pa:ss word"))
    }

    #[test]
    fn right_credentials_pass() {
        let value = authorization("gigs:pa:ss word");
        assert_eq!(
            verifier().check(&webhook(&[("Authorization", &value)])),
            Ok(())
        );
        let lower = value.replacen("Basic", "basic", 1);
        assert_eq!(
            verifier().check(&webhook(&[("authorization", &lower)])),
            Ok(())
        );
    }

    #[test]
    fn rfc_7617_example_decodes() {
        let v = BasicAuthVerifier::new("Aladdin".into(), Secret::new("open sesame"));
        let request = webhook(&[("authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")]);
        assert_eq!(v.check(&request), Ok(()));
    }

    #[test]
    fn wrong_username_or_password_is_a_mismatch() {
        for user_pass in [
            "gigs:pa:ss wore",
            "gig:pa:ss word",
            "Gigs:pa:ss word",
            "gigs:",
            ":",
        ] {
            let value = authorization(user_pass);
            assert_eq!(
                verifier().check(&webhook(&[("authorization", &value)])),
                Err(VerifyError::TokenMismatch),
                "{user_pass}"
            );
        }
    }

    #[test]
    fn malformed_basic_credentials_are_a_mismatch() {
        let no_colon = authorization("gigspa");
        for value in ["Basic !!!not-base64", "Basic Z2lncw=x", no_colon.as_str()] {
            assert_eq!(
                verifier().check(&webhook(&[("authorization", value)])),
                Err(VerifyError::TokenMismatch),
                "{value}"
            );
        }
    }

    #[test]
    fn missing_or_other_scheme_is_missing() {
        assert_eq!(
            verifier().check(&webhook(&[])),
            Err(VerifyError::MissingToken {
                location: "authorization header".into()
            })
        );
        // Another scheme, or the Basic scheme with nothing after it.
        for value in ["Bearer abc", "Basic", "Basic  ", "Basicx"] {
            assert_eq!(
                verifier().check(&webhook(&[("authorization", value)])),
                Err(VerifyError::MissingToken {
                    location: "authorization header (no basic credentials)".into()
                }),
                "{value:?}"
            );
        }
    }

    #[test]
    fn debug_and_errors_never_show_the_password() {
        let v = verifier();
        let shown = format!("{v:?}");
        // What it does show: whose credentials these are.
        assert!(shown.contains("username: \"gigs\""), "{shown}");
        assert!(!shown.contains("pa:ss"), "{shown}");
        let value = authorization("gigs:pa:ss wore");
        let error = v.check(&webhook(&[("authorization", &value)])).unwrap_err();
        assert!(!error.to_string().contains("pa:ss"));
    }
}
