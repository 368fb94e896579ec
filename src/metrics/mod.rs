//! The Prometheus metrics: one registry for the process, filled where things happen and read by
//! `GET /metrics` on the ops listener ([`render`]).
//!
//! The registry is process-wide, like `tracing`'s dispatcher: what it counts happens in every
//! layer (transports, the pipeline, the log's writer thread, stream producers, retention), and
//! a handle threaded through each constructor would touch them all for no gain. It is installed
//! once at start-up ([`install`]) when `telemetry.metrics` is on; until then every recording
//! call is one atomic load and nothing else, so turning metrics off costs nothing.
//!
//! Labels never carry provider-controlled text: sources are the configured names (anything
//! else is recorded as `unknown`), reasons come from [`Reason::ALL`], rules and stream ends are
//! closed sets, and canonical types (open-ended) are left out.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::error::{GrpcCode, Reason};

#[cfg(test)]
mod tests;

/// The content type of [`render`]'s output (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The source label of a webhook for a source that is not configured: its name came from the
/// sender and is never a label value.
const UNKNOWN_SOURCE: &str = "unknown";

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Installs the process's metrics, labelled with these configured source names; the store's
/// size is read from the files in `store_dir` at each scrape (`None` for a remote store). A
/// second call keeps the first registry (tests start several servers in one process).
pub fn install(sources: impl IntoIterator<Item = String>, store_dir: Option<PathBuf>) {
    let _ = METRICS.get_or_init(|| Metrics::new(sources.into_iter().collect(), store_dir));
}

/// The installed metrics, if metrics are on.
pub fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// The text exposition of every metric, or `None` when metrics are off. Reads the store's
/// file sizes, so call it off the async workers.
pub fn render() -> Option<String> {
    get().map(Metrics::encode)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    source: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DuplicateLabels {
    source: String,
    rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    source: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    reason: &'static str,
}

/// How a webhook that reached hooknorm ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Accepted,
    Duplicate,
    /// Verified and normalized but, as asked, not stored.
    DryRun,
    Refused(Reason),
}

impl WebhookOutcome {
    fn label(self) -> &'static str {
        match self {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::DryRun => "dry_run",
            WebhookOutcome::Refused(reason) => reason.as_str(),
        }
    }
}

/// Why a subscriber's stream ended, as the `reason` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEndReason {
    ClientLeft,
    TooSlow,
    ShuttingDown,
    LogFailed,
}

impl StreamEndReason {
    fn label(self) -> &'static str {
        match self {
            StreamEndReason::ClientLeft => "client_left",
            StreamEndReason::TooSlow => "too_slow",
            StreamEndReason::ShuttingDown => "shutting_down",
            StreamEndReason::LogFailed => "log_failed",
        }
    }
}

/// Every metric hooknorm exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sources: HashSet<String>,
    store_dir: Option<PathBuf>,
    webhooks: Family<OutcomeLabels, Counter>,
    stored: Family<SourceLabels, Counter>,
    duplicates: Family<DuplicateLabels, Counter>,
    verification_failures: Family<ReasonLabels, Counter>,
    http_responses: Family<StatusLabels, Counter>,
    append_seconds: Histogram,
    commit_batch_size: Histogram,
    commit_seconds: Histogram,
    head_sequence: Gauge,
    store_bytes: Gauge,
    subscribers: Gauge,
    delivered: Counter,
    subscriber_lag: Histogram,
    stream_ends: Family<EndLabels, Counter>,
    retention_removed: Counter,
}

impl Metrics {
    fn new(sources: HashSet<String>, store_dir: Option<PathBuf>) -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("hooknorm"),
            sources,
            store_dir,
            webhooks: Family::default(),
            stored: Family::default(),
            duplicates: Family::default(),
            verification_failures: Family::default(),
            http_responses: Family::default(),
            // 100 µs to ~6.5 s: a commit's fsync to a request timeout.
            append_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 17)),
            // 1 to 512: group commits cap at a few hundred appends.
            commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 17)),
            head_sequence: Gauge::default(),
            store_bytes: Gauge::default(),
            subscribers: Gauge::default(),
            delivered: Counter::default(),
            // 0 to ~65k events behind.
            subscriber_lag: Histogram::new(
                std::iter::once(0.0).chain(exponential_buckets(1.0, 4.0, 9)),
            ),
            stream_ends: Family::default(),
            retention_removed: Counter::default(),
        };
        metrics.register();
        metrics
    }

    /// Names and describes every metric in the registry (the families are shared handles).
    fn register(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "webhooks_received",
            "Webhooks received, by source and outcome (accepted, duplicate, dry_run or the refusal reason)",
            self.webhooks.clone(),
        );
        registry.register(
            "events_stored",
            "Events newly stored, by source",
            self.stored.clone(),
        );
        registry.register(
            "duplicates",
            "Webhooks recognized as already stored, by source and dedup rule",
            self.duplicates.clone(),
        );
        registry.register(
            "verification_failures",
            "Webhooks that failed verification, by source and reason",
            self.verification_failures.clone(),
        );
        registry.register(
            "http_responses",
            "Answers of the HTTP ingress, by status code",
            self.http_responses.clone(),
        );
        registry.register_with_unit(
            "append_duration",
            "Time from asking the event log to store an event until it is committed",
            Unit::Seconds,
            self.append_seconds.clone(),
        );
        registry.register(
            "commit_batch_size",
            "Appends per group commit",
            self.commit_batch_size.clone(),
        );
        registry.register_with_unit(
            "commit_duration",
            "Time one group commit took (write and fsync)",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        registry.register(
            "log_head_sequence",
            "Sequence of the newest committed event",
            self.head_sequence.clone(),
        );
        registry.register_with_unit(
            "store_size",
            "Size of the embedded store's files",
            Unit::Bytes,
            self.store_bytes.clone(),
        );
        registry.register(
            "subscribers",
            "Event streams open now",
            self.subscribers.clone(),
        );
        registry.register(
            "events_delivered",
            "Events sent to subscribers",
            self.delivered.clone(),
        );
        registry.register(
            "subscriber_lag_events",
            "Events a subscriber is behind the head (head minus delivered), at each catch-up read",
            self.subscriber_lag.clone(),
        );
        registry.register(
            "stream_ends",
            "Event streams ended, by reason",
            self.stream_ends.clone(),
        );
        registry.register(
            "retention_events_removed",
            "Events removed by retention",
            self.retention_removed.clone(),
        );
    }

    /// The text exposition, the store's size read now.
    fn encode(&self) -> String {
        self.refresh_store_size();
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The label for a source name: itself when configured, [`UNKNOWN_SOURCE`] otherwise.
    fn source(&self, name: &str) -> String {
        if self.sources.contains(name) {
            name.to_owned()
        } else {
            UNKNOWN_SOURCE.to_owned()
        }
    }

    /// One webhook ended this way.
    pub fn webhook(&self, source: &str, outcome: WebhookOutcome) {
        let source = self.source(source);
        match outcome {
            WebhookOutcome::Accepted => {
                self.stored
                    .get_or_create(&SourceLabels {
                        source: source.clone(),
                    })
                    .inc();
            }
            WebhookOutcome::Refused(reason) if is_verification(reason) => {
                self.verification_failures
                    .get_or_create(&ReasonLabels {
                        source: source.clone(),
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            _ => {}
        }
        self.webhooks
            .get_or_create(&OutcomeLabels {
                source,
                outcome: outcome.label(),
            })
            .inc();
    }

    /// A webhook was a redelivery, recognized by this rule.
    pub fn duplicate(&self, source: &str, rule: &'static str) {
        self.duplicates
            .get_or_create(&DuplicateLabels {
                source: self.source(source),
                rule,
            })
            .inc();
    }

    /// The HTTP ingress answered with this status.
    pub fn http_response(&self, status: u16) {
        self.http_responses
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    /// One append took this long, waiting for its commit included.
    pub fn append(&self, took: Duration) {
        self.append_seconds.observe(took.as_secs_f64());
    }

    /// One group commit stored `appends` appends in `took`; the newest sequence is now `head`.
    pub fn commit(&self, appends: usize, took: Duration, head: u64) {
        self.commit_batch_size.observe(appends as f64);
        self.commit_seconds.observe(took.as_secs_f64());
        self.head_sequence
            .set(i64::try_from(head).unwrap_or(i64::MAX));
    }

    /// A subscriber connected; the guard counts it until dropped.
    pub fn subscriber(&'static self) -> SubscriberGuard {
        self.subscribers.inc();
        SubscriberGuard(self)
    }

    /// An event was sent to a subscriber.
    pub fn delivered(&self) {
        self.delivered.inc();
    }

    /// A subscriber was `lag` events behind the head.
    pub fn subscriber_lag(&self, lag: u64) {
        self.subscriber_lag.observe(lag as f64);
    }

    /// A subscriber's stream ended.
    pub fn stream_end(&self, reason: StreamEndReason) {
        self.stream_ends
            .get_or_create(&EndLabels {
                reason: reason.label(),
            })
            .inc();
    }

    /// Retention removed this many events.
    pub fn retention_removed(&self, events: u64) {
        self.retention_removed.inc_by(events);
    }

    fn refresh_store_size(&self) {
        let Some(dir) = &self.store_dir else { return };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let bytes: u64 = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.metadata().ok())
            .filter(std::fs::Metadata::is_file)
            .map(|metadata| metadata.len())
            .sum();
        self.store_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// Counts one open stream until dropped.
#[derive(Debug)]
pub struct SubscriberGuard(&'static Metrics);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.subscribers.dec();
    }
}

/// Whether a refusal is a failed verification of the webhook (signature, token, address), as
/// opposed to a refusal of the request's shape or the server's state: the reason table's
/// `UNAUTHENTICATED` rows, but for the API key ones, which are about the gRPC caller's
/// credentials, not the provider's.
fn is_verification(reason: Reason) -> bool {
    reason.spec().grpc == GrpcCode::Unauthenticated
        && !matches!(reason, Reason::MissingApiKey | Reason::UnknownApiKey)
}
