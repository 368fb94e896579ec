//! Event subscriptions: replay from the log, then follow live events, with no gap and no
//! duplicate at the seam.
//!
//! Each subscription is one producer task feeding a bounded channel. The task subscribes to the
//! log's broadcast *before* reading the head, replays stored events after the start cursor, then
//! forwards live events whose sequence is past what it already sent. A subscriber that falls
//! behind the broadcast ring (`Lagged`) goes back to reading the log from its cursor, so a slow
//! subscriber costs a bounded amount of memory and never slows ingestion or other subscribers.
//! One that stops reading altogether for `slow_subscriber_timeout` is ended with a resume cursor.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use crate::log::{EventFilter, EventLog, LogError};
use crate::proto::v1::Event;

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

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            buffer: 256,
            catch_up_batch: 64,
            heartbeat: Duration::from_secs(15),
            slow_subscriber_timeout: Duration::from_secs(60),
        }
    }
}

/// One message to a subscriber.
#[derive(Debug, Clone)]
pub enum StreamItem {
    /// Shared with the log's broadcast: a live event is not copied per subscriber while it
    /// waits in their buffers (and the channel's slots stay small for heartbeats).
    Event(Arc<Event>),
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

/// Why a subscription cannot start where it asks to.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    #[error(
        "after_sequence {after} is past the newest stored event ({head}): the store was reset or \
         restored; resume from EARLIEST, LATEST or a time instead"
    )]
    CursorAhead { after: u64, head: u64 },
}

impl StartError {
    /// The newest stored sequence when the start was refused.
    pub fn head(&self) -> u64 {
        match self {
            StartError::CursorAhead { head, .. } => *head,
        }
    }
}

/// Refuses a resume cursor past the log's head: every sequence a client was ever sent is at or
/// below the head, so a larger one means the store is not the one the cursor came from, and
/// waiting there would silently skip the next events.
pub fn check_start(log: &dyn EventLog, start: Start) -> Result<(), StartError> {
    match start {
        Start::After(after) if after > log.head() => Err(StartError::CursorAhead {
            after,
            head: log.head(),
        }),
        _ => Ok(()),
    }
}

/// What the client side of a subscription receives.
pub type Subscription = mpsc::Receiver<Result<StreamItem, StreamEnd>>;

/// Starts a subscription task and returns its receiving end. Dropping the receiver ends the task.
pub fn subscribe(
    log: Arc<dyn EventLog>,
    filter: EventFilter,
    start: Start,
    settings: StreamSettings,
    shutdown: watch::Receiver<bool>,
) -> Subscription {
    let (tx, rx) = mpsc::channel(settings.buffer.max(1));
    tokio::spawn(async move {
        let mut producer = Producer {
            log,
            filter,
            settings,
            tx,
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
    tx: mpsc::Sender<Result<StreamItem, StreamEnd>>,
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
                .read_after(self.cursor, &self.filter, self.settings.catch_up_batch)
                .await
                .map_err(|error| self.log_end(error))?;
            let complete = batch.len() < self.settings.catch_up_batch;
            for event in batch {
                let sequence = event.sequence;
                self.send(StreamItem::Event(Arc::new(event))).await?;
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
    async fn follow(&mut self, live: &mut broadcast::Receiver<Arc<Event>>) -> Result<(), Stop> {
        loop {
            let heartbeat_at = self.last_sent_at + self.settings.heartbeat;
            tokio::select! {
                received = live.recv() => match received {
                    Ok(event) => {
                        if event.sequence <= self.cursor {
                            continue;
                        }
                        if event.sequence > self.cursor + 1 {
                            // Something was committed that this receiver did not see: read it.
                            return Ok(());
                        }
                        if self.filter.matches(&event) {
                            self.send(StreamItem::Event(event.clone())).await?;
                        }
                        // Only after the send: a subscriber ended mid-send resumes before it.
                        self.cursor = event.sequence;
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

    /// Sends one item, waiting at most the slow-subscriber timeout for buffer space.
    async fn send(&mut self, item: StreamItem) -> Result<(), Stop> {
        let permit = tokio::select! {
            permit = self.tx.reserve() => permit.map_err(|_| Stop::ClientGone)?,
            () = tokio::time::sleep(self.settings.slow_subscriber_timeout) => {
                return Err(Stop::End(StreamEnd::TooSlow { resume_after: self.cursor }));
            }
            changed = self.shutdown.changed() => {
                self.on_shutdown_change(changed.is_err())?;
                self.tx.reserve().await.map_err(|_| Stop::ClientGone)?
            }
        };
        permit.send(Ok(item));
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
