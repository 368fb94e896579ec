//! PLACEHOLDER: replaced by the verification work.
use crate::config::Secret;
use crate::verify::VerifyError;
use crate::webhook::RawWebhook;
#[derive(Debug)]
pub struct BasicAuthVerifier;
impl BasicAuthVerifier {
    pub fn new(_username: String, _password: Secret) -> Self { Self }
    pub fn check(&self, _webhook: &RawWebhook) -> Result<(), VerifyError> { Err(VerifyError::TokenMismatch) }
}
