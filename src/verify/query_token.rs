//! A secret token in a query parameter (`/webhooks/abowire?token=…`), for providers that cannot
//! sign (Abowire, Mobile Manager). The URL is the credential: it is never logged.

use crate::config::Secret;
use crate::verify::{VerifyError, constant_time_eq};
use crate::webhook::RawWebhook;

/// Accepts a webhook when any value of the parameter equals any configured token.
pub struct QueryTokenVerifier {
    param: String,
    /// Several during a rotation.
    tokens: Vec<Secret>,
}

// Tokens are `Secret`s and redact themselves; only their count is worth showing.
impl std::fmt::Debug for QueryTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryTokenVerifier")
            .field("param", &self.param)
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl QueryTokenVerifier {
    /// The accepted tokens, for redacting them wherever else they turn up.
    pub(crate) fn tokens(&self) -> &[Secret] {
        &self.tokens
    }

    pub fn new(param: String, tokens: Vec<Secret>) -> Self {
        QueryTokenVerifier { param, tokens }
    }

    /// Values are percent-decoded before comparison; see [`matches_any`] for the timing rules.
    pub fn check(&self, webhook: &RawWebhook) -> Result<(), VerifyError> {
        let mut present = false;
        let mut matched = false;
        for value in webhook.query_values(&self.param) {
            present = true;
            matched |= matches_any(value.as_bytes(), &self.tokens);
        }
        if !present {
            return Err(VerifyError::MissingToken {
                location: format!("query parameter `{}`", self.param),
            });
        }
        if matched {
            Ok(())
        } else {
            Err(VerifyError::TokenMismatch)
        }
    }
}

/// Whether `presented` equals any token. Every token is compared, with no early exit, so timing
/// does not reveal which one matched; each comparison is constant-time for equal lengths.
pub(crate) fn matches_any(presented: &[u8], tokens: &[Secret]) -> bool {
    tokens.iter().fold(false, |acc, token| {
        acc | constant_time_eq(presented, token.expose().as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(uri: &str) -> RawWebhook {
        RawWebhook::for_test(uri, &[])
    }

    fn verifier(tokens: &[&str]) -> QueryTokenVerifier {
        QueryTokenVerifier::new(
            "token".into(),
            tokens.iter().map(|t| Secret::new(*t)).collect(),
        )
    }

    #[test]
    fn missing_parameter_names_it() {
        let error = verifier(&["s3cret"])
            .check(&webhook("/w?other=s3cret"))
            .unwrap_err();
        assert_eq!(
            error,
            VerifyError::MissingToken {
                location: "query parameter `token`".into()
            }
        );
        assert!(verifier(&["s3cret"]).check(&webhook("/w")).is_err());
    }

    #[test]
    fn right_token_passes_and_wrong_one_does_not() {
        let v = verifier(&["s3cret"]);
        assert_eq!(v.check(&webhook("/w?token=s3cret")), Ok(()));
        assert_eq!(
            v.check(&webhook("/w?token=s3cre")),
            Err(VerifyError::TokenMismatch)
        );
        assert_eq!(
            v.check(&webhook("/w?token=")),
            Err(VerifyError::TokenMismatch)
        );
        assert_eq!(
            v.check(&webhook("/w?token=S3CRET")),
            Err(VerifyError::TokenMismatch)
        );
    }

    #[test]
    fn any_configured_token_and_any_value_passes() {
        let v = verifier(&["old-token", "new-token"]);
        assert_eq!(v.check(&webhook("/w?token=old-token")), Ok(()));
        assert_eq!(v.check(&webhook("/w?token=new-token")), Ok(()));
        assert_eq!(v.check(&webhook("/w?token=wrong&token=new-token")), Ok(()));
        assert_eq!(
            v.check(&webhook("/w?token=wrong&token=also-wrong")),
            Err(VerifyError::TokenMismatch)
        );
        // A token listed twice (a rotation half done) matches both entries: still a match.
        let twice = verifier(&["same-token", "same-token"]);
        assert_eq!(twice.check(&webhook("/w?token=same-token")), Ok(()));
    }

    #[test]
    fn percent_encoded_token_is_decoded() {
        let v = verifier(&["a/b c+d=="]);
        assert_eq!(v.check(&webhook("/w?token=a%2Fb+c%2Bd%3D%3D")), Ok(()));
        assert_eq!(v.check(&webhook("/w?token=a%2Fb%20c%2Bd%3D%3D")), Ok(()));
    }

    #[test]
    fn custom_parameter_name() {
        let v = QueryTokenVerifier::new("key".into(), vec![Secret::new("k1")]);
        assert_eq!(v.check(&webhook("/w?key=k1")), Ok(()));
        let error = v.check(&webhook("/w?token=k1")).unwrap_err();
        assert!(
            error.to_string().contains("query parameter `key`"),
            "{error}"
        );
    }

    #[test]
    fn debug_and_errors_never_show_tokens() {
        let v = verifier(&["hunter2-token"]);
        let shown = format!("{v:?}");
        // What it does show: where the token goes, and how many are accepted.
        assert!(shown.contains("param: \"token\""), "{shown}");
        assert!(shown.contains("tokens: 1"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let error = v.check(&webhook("/w?token=hunter2-tokex")).unwrap_err();
        assert!(!error.to_string().contains("hunter2"));
    }
}
