//! The one path every entry point uses: find the source, enforce the size limit, verify, then
//! normalize. Transports build a [`RawWebhook`] and call [`Pipeline::process`]; nothing here knows
//! which transport a webhook came from.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::error::Reason;
use crate::proto::v1::Event;
use crate::providers::{NormalizeError, ProviderKind};
use crate::verify::{Verifier, VerifyError};
use crate::webhook::RawWebhook;

/// Why the pipeline refused a webhook.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("unknown source `{source_name}`")]
    UnknownSource { source_name: String },
    #[error("body is {size} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("verification failed: {0}")]
    Verify(#[from] VerifyError),
    #[error("malformed payload: {0}")]
    Normalize(#[from] NormalizeError),
}

impl PipelineError {
    pub fn reason(&self) -> Reason {
        match self {
            PipelineError::UnknownSource { .. } => Reason::UnknownSource,
            PipelineError::PayloadTooLarge { .. } => Reason::PayloadTooLarge,
            PipelineError::Verify(error) => error.reason(),
            PipelineError::Normalize(error) => error.reason(),
        }
    }
}

/// A configured source, ready to use.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    pub provider: ProviderKind,
    pub verifier: Verifier,
}

/// What processing a webhook produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub event: Event,
    pub duplicate: bool,
}

/// Sources by name plus limits; cheap to clone and share between transports.
#[derive(Debug, Clone)]
pub struct Pipeline {
    sources: Arc<HashMap<String, Source>>,
    max_body_bytes: usize,
}

impl Pipeline {
    /// Builds every source's verifier; any bad scheme parameter fails here, naming its key.
    pub fn from_config(config: &Config) -> Result<Pipeline, ConfigError> {
        let mut sources = HashMap::with_capacity(config.sources.len());
        for (index, source) in config.sources.iter().enumerate() {
            let key = format!("sources[{index}]");
            let verification = source.verification(&key)?;
            let verifier = Verifier::from_config(&key, &verification, &source.allowed_cidrs)?;
            sources.insert(
                source.name.clone(),
                Source {
                    name: source.name.clone(),
                    provider: source.provider,
                    verifier,
                },
            );
        }
        Ok(Pipeline {
            sources: Arc::new(sources),
            max_body_bytes: config.limits.max_body_bytes,
        })
    }

    /// The configured sources.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.sources.values()
    }

    /// The largest accepted body, so transports can refuse while reading.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Verifies and normalizes one webhook.
    pub fn process(&self, webhook: RawWebhook) -> Result<Outcome, PipelineError> {
        let source =
            self.sources
                .get(&webhook.source)
                .ok_or_else(|| PipelineError::UnknownSource {
                    source_name: webhook.source.clone(),
                })?;
        if webhook.body.len() > self.max_body_bytes {
            return Err(PipelineError::PayloadTooLarge {
                size: webhook.body.len(),
                limit: self.max_body_bytes,
            });
        }
        let verified = webhook.verify(&source.verifier)?;
        let event = source.provider.normalize(&source.name, &verified)?;
        Ok(Outcome {
            event,
            duplicate: false,
        })
    }
}
