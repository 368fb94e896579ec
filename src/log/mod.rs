//! The durable event log: where every accepted event is stored before it is acknowledged, and
//! where subscribers read from.
//!
//! [`EventLog`] is chosen once at start-up (SQLite embedded by default; a NATS JetStream backend
//! fits the same shape). Sequences are monotonically increasing `u64`s, usable as cursors; appends
//! carry a dedup rule; reads go from a sequence; live events are broadcast after commit.

pub mod filter;
pub mod live;
pub mod page;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use prost::Message;
use tokio::sync::{broadcast, watch};

use crate::event::Identity;
use crate::proto::v1::{Event, WebhookDelivery};

pub use filter::{EventFilter, TypePattern};

/// One event to store.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// The normalized event; `sequence` is ignored and assigned by the log.
    pub event: Event,
    /// How a redelivery of it is recognized, as its provider declared.
    pub identity: Identity,
    /// The webhook as received, kept beside the event (never in its stream encoding) and
    /// returned only by [`EventLog::get`] with [`View::Full`].
    pub delivery: Option<WebhookDelivery>,
}

/// How much of a stored event [`EventLog::get`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum View {
    /// The event as streams and lists carry it.
    #[default]
    Basic,
    /// With `delivery`, the webhook as received.
    Full,
}

/// What an append did.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The stored event with its sequence; for a duplicate, the event as first stored.
    pub event: Event,
    pub duplicate: bool,
}

/// A stored event as subscribers receive it: its prost encoding (sequence included), made once
/// when it is stored and shared, never copied, by every subscriber it is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent {
    pub sequence: u64,
    /// The encoded `hooknorm.v1.Event`; cloning it bumps a reference count.
    pub bytes: Bytes,
}

impl EncodedEvent {
    /// Encodes `event` (whose sequence must already be assigned).
    pub fn encode(event: &Event) -> EncodedEvent {
        EncodedEvent {
            sequence: event.sequence,
            bytes: Bytes::from(event.encode_to_vec()),
        }
    }
}

/// A just-committed event as the live broadcast carries it: the event, for filters to look at,
/// and its encoding, for subscribers to send.
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    pub event: Event,
    pub encoded: EncodedEvent,
}

/// One committed event on the live feed. The feed is shared by every subscriber and bounded in
/// bytes as well as in count: past its byte budget an event travels as its sequence alone, and a
/// subscriber that needs it reads it from the log, so a slow subscriber never makes the server
/// hold more than the budget of events for it.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    Full(Arc<CommittedEvent>),
    Elided { sequence: u64 },
}

impl LiveEvent {
    pub fn sequence(&self) -> u64 {
        match self {
            LiveEvent::Full(committed) => committed.encoded.sequence,
            LiveEvent::Elided { sequence } => *sequence,
        }
    }
}

/// Why the log could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// The store cannot take writes now (disk full, I/O error, locked); retrying later may work.
    #[error("event log unavailable: {reason}")]
    Unavailable { reason: String },
    /// The log is shutting down and takes no more work.
    #[error("event log is closed")]
    Closed,
    /// Stored data could not be decoded.
    #[error("stored event at sequence {sequence} is unreadable: {reason}")]
    Corrupt { sequence: u64, reason: String },
}

impl LogError {
    /// The refusal reason of a request that met this error, whichever request it was.
    pub fn reason(&self) -> crate::error::Reason {
        use crate::error::Reason;
        match self {
            LogError::Unavailable { .. } => Reason::StoreUnavailable,
            LogError::Closed => Reason::ShuttingDown,
            LogError::Corrupt { .. } => Reason::Internal,
        }
    }
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub events_removed: u64,
    pub dedup_keys_removed: u64,
}

/// A durable, ordered, deduplicating event log.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Stores the event unless it is a duplicate, and returns only once it is durable (committed
    /// and fsync'd). Concurrent appends may share one commit.
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError>;

    /// Up to `limit` events with sequence greater than `after` that match `filter`, ascending.
    async fn read_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>, LogError>;

    /// [`EventLog::read_after`] as encoded events, the form subscribers send. Backends that
    /// store the encoding return it as stored, without decoding; this default encodes.
    async fn read_encoded_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<EncodedEvent>, LogError> {
        let events = self.read_after(after, filter, limit).await?;
        Ok(events.iter().map(EncodedEvent::encode).collect())
    }

    /// Up to `limit` matching events with sequence less than `before` (all when `None`), newest
    /// first.
    async fn list(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, LogError>;

    /// The event with this id, if stored; with `View::Full` also its `delivery`, when one was
    /// kept.
    async fn get(&self, id: &str, view: View) -> Result<Option<Event>, LogError>;

    /// The cursor to read from to get every event received at or after `time` (that is, the
    /// sequence just before the first such event).
    async fn cursor_at(&self, time: DateTime<Utc>) -> Result<u64, LogError>;

    /// The newest committed sequence (0 when empty).
    fn head(&self) -> u64;

    /// Events as they are committed, in sequence order. A receiver that falls more than the
    /// channel's capacity behind gets `Lagged`, and one that meets an [`LiveEvent::Elided`]
    /// event must continue from the log (`read_encoded_after`).
    fn subscribe(&self) -> broadcast::Receiver<LiveEvent>;

    /// True while the live feed holds over half of its byte budget in events some receiver has
    /// not read: a subscriber that cannot send right now should then drop its receiver and
    /// read the log once it can, before the feed starts sending events by sequence only to
    /// everyone. `None` for a backend whose feed has no byte budget.
    fn live_pressure(&self) -> Option<watch::Receiver<bool>> {
        None
    }

    /// Removes events past the configured retention and dedup keys past the dedup window.
    async fn enforce_retention(&self) -> Result<RetentionReport, LogError>;

    /// Whether the log can take writes (for readiness).
    async fn check_writable(&self) -> Result<(), LogError>;

    /// Finishes in-flight appends and refuses new ones.
    async fn close(&self);
}

/// Runs [`EventLog::enforce_retention`] every `interval` (the first pass right away) until the
/// log is closed or dropped, in the background so appends never wait for a whole pass; failures
/// are logged and retried on the next tick.
pub fn spawn_retention(
    log: &Arc<dyn EventLog>,
    interval: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    // Weak, so the task never keeps a dropped log (and its writer thread) alive.
    let log = Arc::downgrade(log);
    tokio::spawn(async move {
        // `interval` panics on zero; a tiny floor keeps a misconfiguration from spinning.
        let mut ticker = tokio::time::interval(interval.max(std::time::Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(log) = log.upgrade() else { break };
            match log.enforce_retention().await {
                Ok(report) if report != RetentionReport::default() => tracing::info!(
                    events_removed = report.events_removed,
                    dedup_keys_removed = report.dedup_keys_removed,
                    "retention applied"
                ),
                Ok(_) => {}
                Err(LogError::Closed) => break,
                Err(error) => tracing::warn!(%error, "retention failed"),
            }
        }
    })
}
