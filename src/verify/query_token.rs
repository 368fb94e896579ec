//! PLACEHOLDER: replaced by the verification work.
use crate::config::Secret;
use crate::verify::VerifyError;
use crate::webhook::RawWebhook;
#[derive(Debug)]
pub struct QueryTokenVerifier;
impl QueryTokenVerifier {
    pub fn new(_param: String, _tokens: Vec<Secret>) -> Self { Self }
    pub fn check(&self, _webhook: &RawWebhook) -> Result<(), VerifyError> { Err(VerifyError::TokenMismatch) }
}
