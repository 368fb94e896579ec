//! The one path every entry point uses: find the source, enforce the size limit, verify,
//! normalize, then store (deduplicating) in the event log. Transports build a [`RawWebhook`] and
//! call [`Pipeline::process`]; nothing here knows which transport a webhook came from.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use tracing::Instrument;

use crate::config::Config;
use crate::error::Reason;
use crate::event::Identity;
use crate::log::{AppendRequest, EventLog, LogError};
use crate::metrics::WebhookOutcome;
use crate::proto::v1::{Event, WebhookDelivery};
use crate::providers::{NormalizeError, Normalized, ProviderKind};
use crate::verify::{Verifier, VerifyError};
use crate::webhook::RawWebhook;

/// Bodies above this size are verified and normalized on the blocking pool: hashing and parsing
/// them takes long enough to stall other requests sharing an async worker.
const INLINE_BODY_LIMIT: usize = 64 * 1024;

/// Why the pipeline refused a webhook.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("unknown source `{source_name}`")]
    UnknownSource { source_name: String },
    #[error("body is {size} bytes, over the limit of {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("normalized event is {size} bytes, over the limit of {limit} bytes")]
    EventTooLarge { size: usize, limit: usize },
    #[error("verification failed: {0}")]
    Verify(#[from] VerifyError),
    #[error("malformed payload: {0}")]
    Normalize(#[from] NormalizeError),
    #[error(transparent)]
    Store(#[from] LogError),
    #[error("processing task failed: {0}")]
    Task(String),
}

impl PipelineError {
    pub fn reason(&self) -> Reason {
        match self {
            PipelineError::UnknownSource { .. } => Reason::UnknownSource,
            PipelineError::PayloadTooLarge { .. } | PipelineError::EventTooLarge { .. } => {
                Reason::PayloadTooLarge
            }
            PipelineError::Verify(error) => error.reason(),
            PipelineError::Normalize(error) => error.reason(),
            PipelineError::Store(error) => error.reason(),
            PipelineError::Task(_) => Reason::Internal,
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
    /// The stored event (sequence set), or for a dry run the normalized event (sequence 0).
    pub event: Event,
    /// The webhook was already stored; `event` is the event as first stored.
    pub duplicate: bool,
}

/// Sources by name, limits and the event log; cheap to clone and share between transports.
#[derive(Clone)]
pub struct Pipeline {
    sources: Arc<HashMap<String, Source>>,
    max_body_bytes: usize,
    max_event_bytes: usize,
    log: Arc<dyn EventLog>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("sources", &self.sources.len())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// Builds every source's verifier from the validated config.
pub fn build_sources(config: &Config) -> HashMap<String, Source> {
    let mut sources = HashMap::with_capacity(config.sources.len());
    for source in &config.sources {
        let verifier = Verifier::from_config(&source.verification, source.allowed_cidrs.as_ref());
        sources.insert(
            source.name.clone(),
            Source {
                name: source.name.clone(),
                provider: source.provider,
                verifier,
            },
        );
    }
    sources
}

impl Pipeline {
    pub fn new(config: &Config, log: Arc<dyn EventLog>) -> Pipeline {
        Pipeline {
            sources: Arc::new(build_sources(config)),
            max_body_bytes: config.limits.max_body_bytes,
            max_event_bytes: config.limits.max_event_bytes,
            log,
        }
    }

    /// The configured sources.
    pub fn sources(&self) -> impl Iterator<Item = &Source> {
        self.sources.values()
    }

    /// The largest accepted body, so transports can refuse while reading.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The largest event stored, so transports can size their messages to carry any of them.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// The event log behind the pipeline.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Verifies and normalizes one webhook and, unless `dry_run`, stores it durably; returns
    /// only once the event is committed. Acceptances are logged and counted here (debug);
    /// refusals are logged and counted by the transport that answers them
    /// ([`crate::error::log_refusal`]), since only it sees the webhooks it refuses before they
    /// get here. Records what it learns on the transport's `webhook` span (see
    /// [`crate::telemetry::context::webhook_span`]), the current one.
    pub async fn process(
        &self,
        webhook: RawWebhook,
        dry_run: bool,
    ) -> Result<Outcome, PipelineError> {
        let span = tracing::Span::current();
        record_webhook(&span, &webhook, dry_run);
        let result = self.process_unlogged(webhook, dry_run).await;
        match &result {
            Ok(outcome) => {
                let event = &outcome.event;
                span.record("type", event.r#type.as_str());
                // Signed: OpenTelemetry has no unsigned integers (a u64 becomes a string).
                span.record(
                    "sequence",
                    i64::try_from(event.sequence).unwrap_or(i64::MAX),
                );
                span.record("duplicate", outcome.duplicate);
                span.record("reason", "OK");
                let _entered = span.enter();
                tracing::debug!(
                    source = %event.source,
                    id = %event.id,
                    sequence = event.sequence,
                    duplicate = outcome.duplicate,
                    dry_run,
                    "webhook accepted"
                );
                if let Some(metrics) = crate::metrics::get() {
                    let outcome = match (dry_run, outcome.duplicate) {
                        (true, _) => WebhookOutcome::DryRun,
                        (false, true) => WebhookOutcome::Duplicate,
                        (false, false) => WebhookOutcome::Accepted,
                    };
                    metrics.webhook(&event.source, outcome);
                }
            }
            Err(error) => {
                span.record("reason", error.reason().as_str());
            }
        }
        result
    }

    async fn process_unlogged(
        &self,
        webhook: RawWebhook,
        dry_run: bool,
    ) -> Result<Outcome, PipelineError> {
        let accepted = if webhook.body.len() > INLINE_BODY_LIMIT {
            let pipeline = self.clone();
            // The span goes along, so the verify and normalize spans stay its children.
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || span.in_scope(|| pipeline.normalize(webhook)))
                .await
                .map_err(|error| PipelineError::Task(error.to_string()))??
        } else {
            self.normalize(webhook)?
        };
        if dry_run {
            return Ok(Outcome {
                event: accepted.event,
                duplicate: false,
            });
        }
        let rule = accepted.identity.rule();
        let started = Instant::now();
        let appended = self
            .log
            .append(AppendRequest {
                event: accepted.event,
                identity: accepted.identity,
                delivery: Some(accepted.delivery),
            })
            .instrument(tracing::info_span!(
                "append",
                batch_size = tracing::field::Empty,
                queued_us = tracing::field::Empty,
            ))
            .await?;
        if let Some(metrics) = crate::metrics::get() {
            metrics.append(started.elapsed());
            if appended.duplicate {
                metrics.duplicate(&appended.event.source, rule);
            }
        }
        Ok(Outcome {
            event: appended.event,
            duplicate: appended.duplicate,
        })
    }

    /// Looks up the source, checks the size, verifies and normalizes (CPU only).
    pub fn normalize(&self, webhook: RawWebhook) -> Result<Accepted, PipelineError> {
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
        // On the webhook's span (the current one, here or on the blocking pool).
        tracing::Span::current().record("provider", source.provider.name());
        let verified = tracing::info_span!("verify", scheme = source.verifier.scheme_name())
            .in_scope(|| webhook.verify(&source.verifier))?;
        let Normalized { event, identity } = tracing::info_span!("normalize")
            .in_scope(|| source.provider.normalize(&source.name, &verified))?;
        // Refused before it is stored: a stored event too large to send would stall every
        // stream and page that reaches it.
        let size = event.encoded_len();
        if size > self.max_event_bytes {
            return Err(PipelineError::EventTooLarge {
                size,
                limit: self.max_event_bytes,
            });
        }
        let delivery = source.verifier.delivery(verified.into_raw());
        Ok(Accepted {
            event,
            identity,
            delivery,
        })
    }
}

/// Records on `span` what a webhook says before it is verified: `source` and `dry_run`, and a
/// link to the trace the webhook's own `traceparent` names. The source is the name the sender
/// asked for, bounded; an unknown one is refused with that reason.
fn record_webhook(span: &tracing::Span, webhook: &RawWebhook, dry_run: bool) {
    // Nothing to do, and the traceparent not even parsed, when nothing records the span.
    if span.is_disabled() {
        return;
    }
    let source = match webhook.source.char_indices().nth(64) {
        Some((end, _)) => &webhook.source[..end],
        None => webhook.source.as_str(),
    };
    span.record("source", source);
    span.record("dry_run", dry_run);
    if let Some(traceparent) = webhook.traceparent() {
        crate::telemetry::context::link_traceparent(span, traceparent);
    }
}

/// A verified webhook, normalized and ready to store.
#[derive(Debug)]
pub struct Accepted {
    pub event: Event,
    /// How its provider recognizes it when delivered again.
    pub identity: Identity,
    /// The webhook as received, to keep beside the event.
    pub delivery: WebhookDelivery,
}
