//! Event subscriptions: replay from the log, then follow live events, with no gap and no
//! duplicate at the seam.
//!
//! Each subscription is one producer task feeding a bounded channel. The task replays stored
//! events after the start cursor, then subscribes to the log's live feed, reads the log once
//! more up to its head (what was committed around the subscription), and forwards live events
//! whose sequence is past what it already sent: the log's seam guarantee
//! ([`EventLog`]'s contract) makes that gap-free. It holds a live subscription only while it
//! drains it: a feed kept in memory holds an event until its slowest subscriber has read it, so
//! a subscription parked in a replay or behind a full buffer would make the feed send events
//! by sequence only to everyone. When its buffer is full, when it lags the feed or meets an
//! event sent by sequence only, it drops the subscription and goes back to reading the log
//! from its cursor, so a slow subscriber costs a bounded amount of memory and slows neither
//! ingestion nor other subscribers. One that stops reading altogether for
//! `slow_subscriber_timeout` is ended with a resume cursor.
//!
//! Retention may remove events before a subscriber has them: a resume cursor older than the
//! oldest kept event, or a subscriber catching up more slowly than retention removes. Every
//! catch-up read says how far retention has gone, and when that is past the cursor the
//! subscriber is told ([`StreamItem::Skipped`]) before the stream goes on from the oldest kept
//! event. Only what retention removed counts: events a filter leaves out are never reported.
//!
//! Events travel as their stored encoding ([`EncodedEvent`]): live ones share the bytes the writer
//! made, catch-up reads pass on the stored body, so a subscriber never decodes or re-encodes.
//! A subscriber's buffer is bounded by count (`buffer`) and by bytes (`buffer_bytes`): what it
//! holds costs at most one catch-up batch plus `buffer_bytes`, whatever the event sizes.

mod open;
mod producer;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::log::{EncodedEvent, EventFilter, EventLog, LogError};
use crate::metrics::StreamEndReason;
pub use open::{OpenError, open};
use producer::{Producer, Stop};

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    /// After this sequence (the last one the subscriber processed).
    After(u64),
    /// From the first event received at or after this time.
    Since(DateTime<Utc>),
}

/// Per-subscription limits.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// Items buffered between the producer and the client connection.
    pub buffer: usize,
    /// Encoded event bytes buffered between the producer and the client connection; an event
    /// larger than this still goes, alone. Live events' bytes are shared with other
    /// subscribers, so this is a bound, not what each subscriber costs.
    pub buffer_bytes: usize,
    /// Events read from the log per catch-up query. Each subscriber that is catching up holds
    /// one batch of its own, so this bounds memory when many fall behind at once; small
    /// batches cost a replay little, as one query per batch is cheap next to sending its events.
    pub catch_up_batch: usize,
    /// A heartbeat is sent after this long without any other message.
    pub heartbeat: Duration,
    /// A subscriber whose buffer stays full this long is ended with its resume cursor.
    pub slow_subscriber_timeout: Duration,
}

/// 64 KiB: about 40 events of 1.5 KiB. Small on purpose: a subscriber that is behind waits in
/// the shared live feed (or reads the log), not in bytes of its own, and this is what each of
/// many subscribers catching up at once holds.
pub const DEFAULT_BUFFER_BYTES: usize = 64 * 1024;

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            buffer: 256,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            catch_up_batch: 64,
            heartbeat: Duration::from_secs(15),
            slow_subscriber_timeout: Duration::from_secs(60),
        }
    }
}

/// One message to a subscriber.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// The event as stored; its bytes are shared with the log's broadcast and other
    /// subscribers, not copied per subscriber.
    Event(EncodedEvent),
    Heartbeat {
        head: u64,
        at: DateTime<Utc>,
    },
    /// Retention removed the events after sequence `after` up to and including `through`
    /// before they could be sent; the stream goes on after `through`.
    Skipped {
        after: u64,
        through: u64,
    },
}

/// Why a subscription ended; every variant says where to resume.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamEnd {
    #[error("subscriber fell behind; resume after sequence {resume_after}")]
    TooSlow { resume_after: u64 },
    #[error("server is shutting down; resume after sequence {resume_after}")]
    ShuttingDown { resume_after: u64 },
    #[error("event log failed; resume after sequence {resume_after}: {error}")]
    Log { resume_after: u64, error: LogError },
}

impl StreamEnd {
    pub fn resume_after(&self) -> u64 {
        match self {
            StreamEnd::TooSlow { resume_after }
            | StreamEnd::ShuttingDown { resume_after }
            | StreamEnd::Log { resume_after, .. } => *resume_after,
        }
    }
}

/// Why a subscription cannot start where it asks to.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    #[error(
        "after_sequence {after} is past the newest stored event ({head}): the store was reset or \
         restored; resume from EARLIEST, LATEST or a time instead"
    )]
    CursorAhead { after: u64, head: u64 },
    /// The log could not say where its head is.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Refuses a resume cursor past the log's head: every sequence a client was ever sent is at or
/// below the head, so a larger one means the store is not the one the cursor came from, and
/// waiting there would silently skip the next events.
pub async fn check_start(log: &dyn EventLog, start: Start) -> Result<(), StartError> {
    let Start::After(after) = start else {
        return Ok(());
    };
    let head = log.head().await?;
    if after > head {
        return Err(StartError::CursorAhead { after, head });
    }
    Ok(())
}

/// One buffered message; while it exists it holds its share of the subscriber's byte budget,
/// so drop it once it is written out.
#[derive(Debug)]
pub struct Queued {
    pub item: StreamItem,
    _budget: Option<OwnedSemaphorePermit>,
}

#[cfg(test)]
impl Queued {
    /// An item holding no budget, for tests that feed a subscription by hand.
    pub fn unbudgeted(item: StreamItem) -> Queued {
        Queued {
            item,
            _budget: None,
        }
    }
}

/// What the client side of a subscription receives.
pub type Subscription = mpsc::Receiver<Result<Queued, StreamEnd>>;

/// Starts a subscription task and returns its receiving end. Dropping the receiver ends the task.
pub fn subscribe(
    log: Arc<dyn EventLog>,
    filter: EventFilter,
    start: Start,
    settings: StreamSettings,
    shutdown: watch::Receiver<bool>,
) -> Subscription {
    let (tx, rx) = mpsc::channel(settings.buffer.max(1));
    let budget_bytes = settings
        .buffer_bytes
        .clamp(1, Semaphore::MAX_PERMITS)
        .min(u32::MAX as usize);
    let pressure = log.live_pressure();
    // The producer's logs and spans stay under the subscriber's call.
    let span = tracing::Span::current();
    tokio::spawn(
        async move {
            let _counted = crate::metrics::get().map(crate::metrics::Metrics::subscriber);
            let mut producer = Producer {
                log,
                filter,
                settings,
                tx,
                budget: Arc::new(Semaphore::new(budget_bytes)),
                budget_bytes,
                shutdown,
                pressure,
                cursor: 0,
                skips_reported: !matches!(start, Start::Earliest),
                last_sent_at: Instant::now(),
            };
            let stopped = producer.run(start).await;
            if let Some(metrics) = crate::metrics::get() {
                metrics.stream_end(match &stopped {
                    Ok(()) | Err(Stop::ClientGone) => StreamEndReason::ClientLeft,
                    Err(Stop::End(StreamEnd::TooSlow { .. })) => StreamEndReason::TooSlow,
                    Err(Stop::End(StreamEnd::ShuttingDown { .. })) => StreamEndReason::ShuttingDown,
                    Err(Stop::End(StreamEnd::Log { .. })) => StreamEndReason::LogFailed,
                });
            }
            if let Err(Stop::End(end)) = stopped {
                tracing::info!(reason = %end, "event stream ended");
                // The buffer may be full and its reader gone quiet (that is what `TooSlow` means):
                // wait for room no longer than a subscriber is given anyway, then end the task so
                // it stops holding the log and the sender.
                let bound = producer.settings.slow_subscriber_timeout;
                if tokio::time::timeout(bound, producer.tx.send(Err(end)))
                    .await
                    .is_err()
                {
                    tracing::debug!("no room for the final status, ending the stream without it");
                }
            }
        }
        .instrument(span),
    );
    rx
}

#[cfg(test)]
mod tests;
