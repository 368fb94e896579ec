//! Event subscriptions: replay from the log, then follow live events, with no gap and no
//! duplicate at the seam.
//!
//! Each subscription is one producer task feeding a bounded channel. The task subscribes to the
//! log's broadcast *before* reading the head, replays stored events after the start cursor, then
//! forwards live events whose sequence is past what it already sent. A subscriber that falls
//! behind the broadcast ring (`Lagged`) goes back to reading the log from its cursor, so a slow
//! subscriber costs a bounded amount of memory and never slows ingestion or other subscribers.
//! One that stops reading altogether for `slow_subscriber_timeout` is ended with a resume cursor.
//!
//! Events travel as their stored encoding ([`EncodedEvent`]): live ones share the bytes the writer
//! made, catch-up reads pass on the stored body, so a subscriber never decodes or re-encodes.
//! A subscriber's buffer is bounded by count (`buffer`) and by bytes (`buffer_bytes`): what it
//! holds costs at most one catch-up batch plus `buffer_bytes`, whatever the event sizes.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, watch};
use tokio::time::Instant;

use crate::log::{CommittedEvent, EncodedEvent, EventFilter, EventLog, LogError};

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
    /// one batch of its own, so this bounds memory when many fall behind at once (`hooknorm
    /// bench --scenario fanout`: 512 peaked at ~2.5 GiB with 1,000 subscribers, 64 at ~1.3 GiB,
    /// with no measurable change in single-subscriber replay speed).
    pub catch_up_batch: usize,
    /// A heartbeat is sent after this long without any other message.
    pub heartbeat: Duration,
    /// A subscriber whose buffer stays full this long is ended with its resume cursor.
    pub slow_subscriber_timeout: Duration,
}

/// 256 KiB: about 170 events of 1.5 KiB, a quarter second of a busy source.
pub const DEFAULT_BUFFER_BYTES: usize = 256 * 1024;

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

/// One buffered message; while it exists it holds its share of the subscriber's byte budget,
/// so drop it once it is written out.
#[derive(Debug)]
pub struct Queued {
    pub item: StreamItem,
    _budget: Option<OwnedSemaphorePermit>,
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
    tokio::spawn(async move {
        let mut producer = Producer {
            log,
            filter,
            settings,
            tx,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            shutdown,
            cursor: 0,
            last_sent_at: Instant::now(),
        };
        if let Err(Stop::End(end)) = producer.run(start).await {
            tracing::info!(reason = %end, "event stream ended");
            let _ = producer.tx.send(Err(end)).await;
        }
    });
    rx
}

/// Why the producer loop stopped early.
enum Stop {
    /// The client went away; nothing more to send.
    ClientGone,
    /// End the stream with this status.
    End(StreamEnd),
}

struct Producer {
    log: Arc<dyn EventLog>,
    filter: EventFilter,
    settings: StreamSettings,
    tx: mpsc::Sender<Result<Queued, StreamEnd>>,
    /// Bytes of encoded events the subscriber's buffer may hold (permits are bytes).
    budget: Arc<Semaphore>,
    /// The budget's size; an event asks for at most this much.
    budget_bytes: usize,
    shutdown: watch::Receiver<bool>,
    /// Highest sequence already examined (sent, or skipped by the filter).
    cursor: u64,
    last_sent_at: Instant,
}

impl Producer {
    async fn run(&mut self, start: Start) -> Result<(), Stop> {
        // Subscribe before reading the head: every event committed after this point is either
        // in the replay or arrives on `live`, so the seam has no gap.
        let mut live = self.log.subscribe();
        self.cursor = match start {
            Start::Earliest => 0,
            Start::Latest => self.log.head(),
            Start::After(sequence) => sequence,
            Start::Since(time) => self
                .log
                .cursor_at(time)
                .await
                .map_err(|e| self.log_end(e))?,
        };
        loop {
            self.catch_up().await?;
            self.follow(&mut live).await?;
            // `follow` returns only after lagging: re-subscribe and replay from the cursor.
            live = self.log.subscribe();
        }
    }

    /// Replays stored events after the cursor until the log has nothing newer.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            self.check_shutdown()?;
            let head = self.log.head();
            if head <= self.cursor {
                return Ok(());
            }
            let batch = self
                .log
                .read_encoded_after(self.cursor, &self.filter, self.settings.catch_up_batch)
                .await
                .map_err(|error| self.log_end(error))?;
            let complete = batch.len() < self.settings.catch_up_batch;
            for event in batch {
                let sequence = event.sequence;
                self.send(StreamItem::Event(event)).await?;
                self.cursor = self.cursor.max(sequence);
            }
            if complete {
                // Everything matching up to `head` was in this read; non-matching events up to
                // it need not be looked at again.
                self.cursor = self.cursor.max(head);
            }
        }
    }

    /// Forwards live events until the broadcast reports this subscriber lagged.
    async fn follow(
        &mut self,
        live: &mut broadcast::Receiver<Arc<CommittedEvent>>,
    ) -> Result<(), Stop> {
        loop {
            let heartbeat_at = self.last_sent_at + self.settings.heartbeat;
            tokio::select! {
                received = live.recv() => match received {
                    Ok(committed) => {
                        let sequence = committed.encoded.sequence;
                        if sequence <= self.cursor {
                            continue;
                        }
                        if sequence > self.cursor + 1 {
                            // Something was committed that this receiver did not see: read it.
                            return Ok(());
                        }
                        if self.filter.matches(&committed.event) {
                            self.send(StreamItem::Event(committed.encoded.clone())).await?;
                        }
                        // Only after the send: a subscriber ended mid-send resumes before it.
                        self.cursor = sequence;
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, cursor = self.cursor, "subscriber lagged, reading from the log");
                        return Ok(());
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(Stop::End(StreamEnd::ShuttingDown { resume_after: self.cursor }));
                    }
                },
                () = tokio::time::sleep_until(heartbeat_at) => {
                    let item = StreamItem::Heartbeat { head: self.log.head(), at: Utc::now() };
                    self.send(item).await?;
                }
                changed = self.shutdown.changed() => self.on_shutdown_change(changed.is_err())?,
                () = self.tx.closed() => return Err(Stop::ClientGone),
            }
        }
    }

    /// Sends one item, waiting at most the slow-subscriber timeout for buffer space (a free
    /// slot and, for an event, its bytes within the budget).
    async fn send(&mut self, item: StreamItem) -> Result<(), Stop> {
        let cost = match &item {
            StreamItem::Event(event) => Some(event.bytes.len().clamp(1, self.budget_bytes)),
            StreamItem::Heartbeat { .. } => None,
        };
        let deadline = tokio::time::sleep(self.settings.slow_subscriber_timeout);
        tokio::pin!(deadline);
        let budget = Arc::clone(&self.budget);
        let tx = self.tx.clone();
        let space = async move {
            let held = match cost {
                // The semaphore is never closed; `MAX_PERMITS` and u32 bound `cost`.
                Some(cost) => Some(
                    budget
                        .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
                        .await
                        .map_err(|_| Stop::ClientGone)?,
                ),
                None => None,
            };
            let permit = tx.reserve_owned().await.map_err(|_| Stop::ClientGone)?;
            Ok::<_, Stop>((held, permit))
        };
        tokio::pin!(space);
        let (held, permit) = loop {
            tokio::select! {
                ready = &mut space => break ready?,
                () = &mut deadline => {
                    return Err(Stop::End(StreamEnd::TooSlow { resume_after: self.cursor }));
                }
                changed = self.shutdown.changed() => self.on_shutdown_change(changed.is_err())?,
            }
        };
        permit.send(Ok(Queued {
            item,
            _budget: held,
        }));
        self.last_sent_at = Instant::now();
        Ok(())
    }

    fn check_shutdown(&self) -> Result<(), Stop> {
        if *self.shutdown.borrow() {
            return Err(Stop::End(StreamEnd::ShuttingDown {
                resume_after: self.cursor,
            }));
        }
        Ok(())
    }

    /// A dropped shutdown sender means the server is gone: stop as if told to.
    fn on_shutdown_change(&self, sender_dropped: bool) -> Result<(), Stop> {
        if sender_dropped {
            return Err(Stop::End(StreamEnd::ShuttingDown {
                resume_after: self.cursor,
            }));
        }
        self.check_shutdown()
    }

    fn log_end(&self, error: LogError) -> Stop {
        Stop::End(StreamEnd::Log {
            resume_after: self.cursor,
            error,
        })
    }
}
