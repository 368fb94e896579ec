//! A secret token in a header, optionally after a prefix such as `Bearer `.

use crate::config::Secret;
use crate::verify::VerifyError;
use crate::verify::query_token::matches_any;
use crate::webhook::RawWebhook;

/// Accepts a webhook when any value of the header, after the prefix, equals any configured token.
pub struct HeaderTokenVerifier {
    header: String,
    /// Matched case-insensitively (`Bearer ` and `bearer ` are the same HTTP auth scheme); empty
    /// when the whole value is the token.
    prefix: String,
    /// Several during a rotation.
    tokens: Vec<Secret>,
}

// Tokens are `Secret`s and redact themselves; only their count is worth showing.
impl std::fmt::Debug for HeaderTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderTokenVerifier")
            .field("header", &self.header)
            .field("prefix", &self.prefix)
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl HeaderTokenVerifier {
    /// The accepted tokens, for redacting them wherever else they turn up.
    pub(crate) fn tokens(&self) -> &[Secret] {
        &self.tokens
    }

    pub fn new(header: String, prefix: String, tokens: Vec<Secret>) -> Self {
        HeaderTokenVerifier {
            header,
            prefix,
            tokens,
        }
    }

    /// A value without the prefix counts as a wrong token, not a missing one: the header was sent.
    pub fn check(&self, webhook: &RawWebhook) -> Result<(), VerifyError> {
        let mut present = false;
        let mut matched = false;
        for value in webhook.headers_named(&self.header) {
            present = true;
            if let Some(token) = self.strip_prefix(value) {
                matched |= matches_any(token.as_bytes(), &self.tokens);
            }
        }
        if !present {
            return Err(VerifyError::MissingToken {
                location: format!("header `{}`", self.header),
            });
        }
        if matched {
            Ok(())
        } else {
            Err(VerifyError::TokenMismatch)
        }
    }

    fn strip_prefix<'v>(&self, value: &'v str) -> Option<&'v str> {
        let len = self.prefix.len();
        // `get` rather than slicing: the value may have a multi-byte character at `len`.
        match value.get(..len) {
            Some(head) if head.eq_ignore_ascii_case(&self.prefix) => value.get(len..),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(headers: &[(&str, &str)]) -> RawWebhook {
        RawWebhook::for_test("/w", headers)
    }

    fn verifier(prefix: &str, tokens: &[&str]) -> HeaderTokenVerifier {
        HeaderTokenVerifier::new(
            "x-webhook-token".into(),
            prefix.into(),
            tokens.iter().map(|t| Secret::new(*t)).collect(),
        )
    }

    #[test]
    fn missing_header_names_it() {
        let error = verifier("", &["t"]).check(&webhook(&[])).unwrap_err();
        assert_eq!(
            error,
            VerifyError::MissingToken {
                location: "header `x-webhook-token`".into()
            }
        );
    }

    #[test]
    fn right_wrong_and_rotated_tokens() {
        let v = verifier("", &["old", "new"]);
        assert_eq!(v.check(&webhook(&[("X-Webhook-Token", "new")])), Ok(()));
        assert_eq!(v.check(&webhook(&[("x-webhook-token", "old")])), Ok(()));
        assert_eq!(
            v.check(&webhook(&[("x-webhook-token", "older")])),
            Err(VerifyError::TokenMismatch)
        );
        assert_eq!(
            v.check(&webhook(&[
                ("x-webhook-token", "nope"),
                ("x-webhook-token", "new")
            ])),
            Ok(())
        );
    }

    #[test]
    fn prefix_is_required_and_stripped() {
        let v = verifier("Bearer ", &["abc"]);
        assert_eq!(
            v.check(&webhook(&[("x-webhook-token", "Bearer abc")])),
            Ok(())
        );
        assert_eq!(
            v.check(&webhook(&[("x-webhook-token", "bearer abc")])),
            Ok(())
        );
        for value in [
            "abc",
            "Bearer",
            "Bearer  abc",
            "Basic abc",
            "Béarer abc",
            // Another prefix of the same length before the right token.
            "Bearer:abc",
            "",
        ] {
            assert_eq!(
                v.check(&webhook(&[("x-webhook-token", value)])),
                Err(VerifyError::TokenMismatch),
                "{value}"
            );
        }
    }

    #[test]
    fn debug_and_errors_never_show_tokens() {
        let v = verifier("Bearer ", &["hunter2-token"]);
        let shown = format!("{v:?}");
        // What it does show: where the token goes, and how many are accepted.
        assert!(shown.contains("header: \"x-webhook-token\""), "{shown}");
        assert!(shown.contains("prefix: \"Bearer \""), "{shown}");
        assert!(shown.contains("tokens: 1"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let error = v
            .check(&webhook(&[("x-webhook-token", "Bearer hunter2-tokex")]))
            .unwrap_err();
        assert!(!error.to_string().contains("hunter2"));
    }
}
