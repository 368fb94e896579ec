//! The durable event log: where every accepted event is stored before it is acknowledged, and
//! where subscribers read from.
//!
//! [`EventLog`] is chosen once at start-up: the embedded SQLite backend ([`sqlite`]) by default,
//! or NATS JetStream ([`nats`]) for several replicas sharing one log.
//! The trait is shaped for a replicated backend too (NATS JetStream), whose sequence is assigned
//! by the broker, whose head is not in local memory and whose live feed is not a tokio
//! broadcast: so `head` and `subscribe` are async and fallible, and the live feed is handed out
//! as a backend-neutral [`LiveSubscription`]. The trait's documentation is the contract every
//! backend keeps and every caller may rely on; `tests/log_contract/` checks it, one test per
//! invariant, against each backend.

mod encoded;
pub mod filter;
pub mod live;
pub mod nats;
pub mod page;
pub mod recent;
pub mod sqlite;
pub mod subscription;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::event::Identity;
use crate::proto::v1::{Event, WebhookDelivery};

pub use encoded::{EncodedEvent, MESSAGE_HEADER_BYTES, write_message_header};
pub use filter::{EventFilter, TypePattern};
pub use subscription::{CommittedEvent, Live, LiveEvent, LiveSubscription};

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

/// Why the log could not do what was asked. Callers decide by the variant alone.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// The store cannot do it now (disk full, I/O error, locked, broker unreachable); retrying
    /// later, on this log, may work (see the trait's "Errors" for what a failed append left).
    #[error("event log unavailable: {reason}")]
    Unavailable { reason: String },
    /// The log is closing or closed and takes no more work; retrying on this log never helps.
    #[error("event log is closed")]
    Closed,
    /// Stored data could not be decoded: retrying does not help, and the event is not lost to
    /// the log (its sequence stays taken), only unreadable.
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

/// A catch-up read ([`EventLog::read_encoded_after`]): the events after a cursor and how far
/// retention had removed events, both from one view of the log, so a reader can tell events it
/// will never see from events that were filtered out or never existed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedBatch {
    /// Every event with a sequence at or below this had been removed by retention when the
    /// events were read (0 when retention had removed none). A cursor below it has lost the
    /// events in between.
    pub removed_through: u64,
    /// The matching events after the cursor, ascending.
    pub events: Vec<EncodedEvent>,
}

/// A durable, ordered, deduplicating event log. This documentation is the contract: what the
/// pipeline, subscriptions ([`crate::stream`]) and the gRPC service rely on, and what
/// `tests/log_contract/` checks against every backend.
///
/// # Sequences
///
/// The log gives every stored event a sequence when it commits. Sequences strictly increase in
/// commit order and are never reused: not after retention removed events (the newest
/// included), not after a restart. They may have holes (a backend need not use every number),
/// so nobody may read a missing event into a jump in sequences; the log says when events are
/// gone ([`Live::Lagged`], [`EncodedBatch::removed_through`]). A sequence is a cursor: "after
/// `n`" is every event committed after event `n`.
///
/// # Head and visibility
///
/// [`EventLog::head`] is the newest committed sequence (0 for a log that never stored one). It
/// is asked of the store, not cached, because every caller needs the current answer: a stale
/// head would refuse resume cursors that are valid, replay old events to a `LATEST` subscriber
/// and open a gap at the catch-up/live seam. (A backend whose head costs a round trip pays one
/// per catch-up batch and per heartbeat.) Once [`EventLog::append`] has returned a newly
/// stored event, `head()` answers at least its sequence and `read_after`, `read_encoded_after`,
/// `list` and `get` find it (until retention removes it), for every caller, not only the one
/// that appended it. Nothing is visible before it is durable.
///
/// # Live feed
///
/// [`EventLog::subscribe`] opens a [`LiveSubscription`] to events as they commit: exactly the
/// committed events (not a duplicate answer, not a failed append), each once it is durable,
/// in sequence order. **The seam:** if `head()`, asked after `subscribe` returned, answers `h`,
/// every event above `h` arrives on that subscription and every event at or below `h` is
/// readable; so a subscriber that subscribes, reads the log up to the head and then follows the
/// subscription, skipping what it already read, sees no gap and no duplicate. The subscription
/// may also carry some events at or below `h`. It never drops an event silently: one that falls
/// too far behind gets [`Live::Lagged`] and reads the missed events from the log, and a feed
/// bounded in bytes may send an event by sequence only ([`LiveEvent::Elided`]), which the
/// subscriber reads from the log as well. [`EventLog::live_pressure`] is an optional hint for
/// backends whose feed holds events in memory.
///
/// # Dedup
///
/// An append the log recognizes as a redelivery of an event it stores stores nothing: it
/// answers the event as first stored (same id, same sequence) with `duplicate = true`,
/// publishes nothing and leaves the head alone. Recognition holds across restarts and among
/// concurrent appends (of identical appends racing, exactly one stores the event). Which
/// appends are redeliveries is the request's [`Identity`] to say, as its provider declared it:
///
/// - [`Identity::ProviderId`] and [`Identity::Fingerprint`]: an append whose event id a
///   retained event holds is a redelivery, whatever its age; once retention removed that
///   event, still for `store.dedup_window_seconds` after it was stored (the answer may then
///   carry only the id and sequence), and after that it is stored again under the same id.
/// - [`Identity::LatestState`]: an append is a redelivery only when its id (the state's
///   fingerprint) is that of the latest event stored for its entity, within the window. Any
///   other is a new event; when its fingerprint is already an event's id (the entity returned
///   to an earlier state, or another entity is in the same state) it is stored as
///   `<fingerprint>-<sequence>`, free by construction, and answered and read by that id.
///
/// Each redelivery recognized while its event is stored is counted for it
/// ([`EventLog::duplicate_counts`]).
///
/// No stored event's id ever changes. The request's `delivery` is kept beside the event and
/// returned only by [`EventLog::get`] with [`View::Full`]: never by an append's answer, a
/// read, a list or the live feed.
///
/// # Retention and cursors
///
/// [`EventLog::enforce_retention`] removes the oldest events (by count, by append time) and
/// nothing else: the events removed are always all those at or below some sequence, and
/// sequences go on from where they were. [`EventLog::read_encoded_after`] says how far
/// retention has gone ([`EncodedBatch::removed_through`]) from the same view of the log as the
/// events it returns. A reader whose cursor is below that has lost the events in between and
/// resumes at the oldest kept event; subscriptions tell their subscriber so (`EventsSkipped`)
/// rather than skip in silence. Retention may remove events a slow subscriber has not read yet;
/// that is the same case, met later.
///
/// # Closing
///
/// [`EventLog::close`] lets appends already in flight finish (each gets its own answer), then
/// refuses `append`, `check_writable`, `enforce_retention` and `subscribe` with
/// [`LogError::Closed`]. Open subscriptions deliver every event committed before the close,
/// then [`Live::Closed`]. Reads may go on answering or answer `Closed`. Closing twice is
/// harmless: the second call returns once the first is done.
///
/// # Errors
///
/// [`LogError::Unavailable`] is worth retrying later: a failed append stored nothing or, where a
/// backend cannot tell (the broker's acknowledgement was lost), stored the event so that the
/// retry is answered as its duplicate. [`LogError::Closed`] is final for this log.
/// [`LogError::Corrupt`] is a stored event that cannot be decoded; retrying does not help.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Stores the event unless it is a duplicate, and returns only once it is durable.
    /// Concurrent appends may share one commit.
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError>;

    /// Up to `limit` events with sequence greater than `after` that match `filter`, ascending.
    async fn read_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>, LogError>;

    /// [`EventLog::read_after`] as encoded events, the form subscribers send, together with
    /// how far retention had gone when they were read. Backends that store the encoding return
    /// it as stored, without decoding.
    async fn read_encoded_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EncodedBatch, LogError>;

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

    /// How many appends the log answered as redeliveries of each of these stored events (by
    /// sequence) since it stored them: only events with at least one are in the map, and the
    /// count survives a reopen. `None` for a backend that does not count, where the number is
    /// unknown rather than zero: NATS JetStream drops repeats of a provider id within its own
    /// duplicate window before any replica sees them, so its replicas cannot count them all.
    async fn duplicate_counts(
        &self,
        sequences: &[u64],
    ) -> Result<Option<HashMap<u64, u64>>, LogError> {
        let _ = sequences;
        Ok(None)
    }

    /// The cursor to read from to get every event received at or after `time` (that is, the
    /// sequence just before the first such event; the head when there is none yet).
    async fn cursor_at(&self, time: DateTime<Utc>) -> Result<u64, LogError>;

    /// The newest committed sequence, 0 when none was ever committed (see "Head and
    /// visibility" above).
    async fn head(&self) -> Result<u64, LogError>;

    /// Opens a subscription to events as they commit (see "Live feed" above).
    async fn subscribe(&self) -> Result<LiveSubscription, LogError>;

    /// True while the live feed holds over half of its byte budget in events some subscriber
    /// has not read: a subscriber that cannot send right now should then drop its subscription
    /// and read the log once it can, before the feed starts sending events by sequence only to
    /// everyone. `None` for a backend whose feed holds nothing in this process's memory.
    fn live_pressure(&self) -> Option<watch::Receiver<bool>> {
        None
    }

    /// Removes events past the configured retention (oldest first) and dedup keys past the
    /// dedup window.
    async fn enforce_retention(&self) -> Result<RetentionReport, LogError>;

    /// Whether the log can take writes (for readiness).
    async fn check_writable(&self) -> Result<(), LogError>;

    /// Finishes in-flight appends and refuses new ones (see "Closing" above).
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
                Ok(report) if report != RetentionReport::default() => {
                    tracing::info!(
                        events_removed = report.events_removed,
                        dedup_keys_removed = report.dedup_keys_removed,
                        "retention applied"
                    );
                    if let Some(metrics) = crate::metrics::get() {
                        metrics.retention_removed(report.events_removed);
                    }
                }
                Ok(_) => {}
                Err(LogError::Closed) => break,
                Err(error) => tracing::warn!(%error, "retention failed"),
            }
        }
    })
}

/// A configured number of seconds as the milliseconds backends compare times in, saturating.
fn seconds_to_ms(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
}
