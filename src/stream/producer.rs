//! The producer task behind each subscription: catch-up reads (and the events retention removed
//! before they were sent), the seam, live forwarding and sends bounded by the subscriber's
//! buffer, its byte budget and the slow-subscriber timeout.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::{Queued, Start, StreamEnd, StreamItem, StreamSettings};
use crate::log::{EventFilter, EventLog, Live, LiveEvent, LiveSubscription, LogError};

/// Why the producer loop stopped early.
pub(super) enum Stop {
    /// The client went away; nothing more to send.
    ClientGone,
    /// End the stream with this status.
    End(StreamEnd),
}

/// An item that found no room in the subscriber's buffer, with whatever share of the byte
/// budget it already holds.
struct Pending {
    item: StreamItem,
    /// Budget bytes it needs (`None` for a message that is not an event, which costs none).
    cost: Option<usize>,
    held: Option<OwnedSemaphorePermit>,
}

/// What became of one live event.
enum Forwarded {
    /// Sent, or not needed (already sent, filtered out).
    Done,
    /// Read the log instead: the receiver missed an event, or got it by sequence only.
    FromLog,
    /// Matches but the buffer is full: send it once there is room, then read the log.
    Blocked { pending: Pending, sequence: u64 },
}

pub(super) struct Producer {
    pub(super) log: Arc<dyn EventLog>,
    pub(super) filter: EventFilter,
    pub(super) settings: StreamSettings,
    pub(super) tx: mpsc::Sender<Result<Queued, StreamEnd>>,
    /// Bytes of encoded events the subscriber's buffer may hold (permits are bytes).
    pub(super) budget: Arc<Semaphore>,
    /// The budget's size; an event asks for at most this much.
    pub(super) budget_bytes: usize,
    pub(super) shutdown: watch::Receiver<bool>,
    /// The live feed's pressure flag: while it is up, a subscriber blocked on its own full
    /// buffer leaves the feed ([`EventLog::live_pressure`]).
    pub(super) pressure: Option<watch::Receiver<bool>>,
    /// Highest sequence already examined (sent, left out by the filter, or reported removed).
    pub(super) cursor: u64,
    /// Whether events retention removed past the cursor are reported: not before the first
    /// catch-up read of an `EARLIEST` subscription, which asked for the oldest kept event.
    pub(super) skips_reported: bool,
    pub(super) last_sent_at: Instant,
}

impl Producer {
    pub(super) async fn run(&mut self, start: Start) -> Result<(), Stop> {
        self.cursor = match start {
            Start::Earliest => 0,
            Start::Latest => self.log.head().await.map_err(|e| self.log_end(e))?,
            Start::After(sequence) => sequence,
            Start::Since(time) => self
                .log
                .cursor_at(time)
                .await
                .map_err(|e| self.log_end(e))?,
        };
        // A feed held in memory keeps every event until its slowest subscriber has read it, and
        // past its byte budget sends events by sequence only, to everyone. So a subscription
        // is never held through a long replay, and one blocked behind a full buffer is dropped
        // once the feed is under pressure: a paused subscriber cannot push the others onto log
        // reads, while a briefly full buffer (the common case under load) stays on the feed
        // rather than paying for log reads.
        loop {
            // The bulk of any replay, with no subscription.
            self.catch_up(&mut None).await?;
            // Subscribe, then read the log up to its head: by the log's seam guarantee every
            // event past that head arrives on the subscription, so the seam has no gap, and
            // `forward` skips what the read already sent, so it has no duplicate.
            let subscription = self.log.subscribe().await;
            let mut live = Some(subscription.map_err(|e| self.log_end(e))?);
            self.catch_up(&mut live).await?;
            if let Some(live) = live {
                self.follow(live).await?;
            }
            // Lagged, elided or left under pressure: back to the log from the cursor.
        }
    }

    /// Replays stored events after the cursor until the log has nothing newer, first telling
    /// the subscriber of any events retention removed past the cursor. `live`, if held, is
    /// dropped if the feed comes under pressure while a send waits for room.
    async fn catch_up(&mut self, live: &mut Option<LiveSubscription>) -> Result<(), Stop> {
        loop {
            self.check_shutdown()?;
            let head = self.log.head().await.map_err(|e| self.log_end(e))?;
            if let Some(metrics) = crate::metrics::get() {
                metrics.subscriber_lag(head.saturating_sub(self.cursor));
            }
            if head <= self.cursor {
                // Past the first read: any gap from here on is one the subscriber never asked for.
                self.skips_reported = true;
                return Ok(());
            }
            let batch = self
                .log
                .read_encoded_after(self.cursor, &self.filter, self.settings.catch_up_batch)
                .await
                .map_err(|error| self.log_end(error))?;
            if batch.removed_through > self.cursor {
                self.skip_removed(batch.removed_through, live).await?;
            }
            // Past the first read (see above).
            self.skips_reported = true;
            let complete = batch.events.len() < self.settings.catch_up_batch;
            for event in batch.events {
                let sequence = event.sequence;
                if let Some(pending) = self.try_send(StreamItem::Event(event))? {
                    self.wait_send(pending, live).await?;
                }
                self.cursor = self.cursor.max(sequence);
            }
            if complete {
                // Everything matching up to `head` was in this read; non-matching events up to
                // it need not be looked at again.
                self.cursor = self.cursor.max(head);
            }
        }
    }

    /// Moves the cursor past events retention removed (through `removed_through`), telling
    /// the subscriber unless it asked for the oldest kept event and this is its first read.
    async fn skip_removed(
        &mut self,
        removed_through: u64,
        live: &mut Option<LiveSubscription>,
    ) -> Result<(), Stop> {
        if self.skips_reported {
            tracing::debug!(
                after = self.cursor,
                through = removed_through,
                "events removed by retention before they were sent"
            );
            let item = StreamItem::Skipped {
                after: self.cursor,
                through: removed_through,
            };
            if let Some(pending) = self.try_send(item)? {
                self.wait_send(pending, live).await?;
            }
        }
        // Only once told: a subscriber ended before that resumes before the gap and hears of it.
        self.cursor = removed_through;
        Ok(())
    }

    /// Forwards live events until the subscription lags, meets an event sent by sequence only,
    /// or is given up under pressure while waiting for room.
    async fn follow(&mut self, mut live: LiveSubscription) -> Result<(), Stop> {
        loop {
            let heartbeat_at = self.last_sent_at + self.settings.heartbeat;
            tokio::select! {
                received = live.next() => {
                    let mut received = received;
                    // Everything that has already arrived goes now, without a trip through
                    // `select!` (and its timers) per event: that would cost every subscriber
                    // a timer and a wake-up per event, which with many subscribers is most of
                    // the work of a fan-out.
                    loop {
                        match received {
                            Live::Event(committed) => match self.forward(&committed)? {
                                Forwarded::Done => {}
                                Forwarded::FromLog => return Ok(()),
                                Forwarded::Blocked { pending, sequence } => {
                                    let mut kept = Some(live);
                                    self.wait_send(pending, &mut kept).await?;
                                    // Only after the send: a subscriber ended mid-send resumes
                                    // before it.
                                    self.cursor = sequence;
                                    match kept {
                                        Some(back) => live = back,
                                        None => return Ok(()),
                                    }
                                }
                            },
                            Live::Lagged { missed } => {
                                tracing::debug!(missed, cursor = self.cursor, "subscriber lagged, reading from the log");
                                return Ok(());
                            }
                            Live::Closed => {
                                return Err(Stop::End(StreamEnd::ShuttingDown { resume_after: self.cursor }));
                            }
                        }
                        received = match live.try_next() {
                            Some(next) => next,
                            None => break,
                        };
                    }
                }
                () = tokio::time::sleep_until(heartbeat_at) => {
                    let head = self.log.head().await.map_err(|e| self.log_end(e))?;
                    let item = StreamItem::Heartbeat { head, at: Utc::now() };
                    if let Some(pending) = self.try_send(item)? {
                        let mut kept = Some(live);
                        self.wait_send(pending, &mut kept).await?;
                        match kept {
                            Some(back) => live = back,
                            None => return Ok(()),
                        }
                    }
                }
                changed = self.shutdown.changed() => self.on_shutdown_change(changed.is_err())?,
                () = self.tx.closed() => return Err(Stop::ClientGone),
            }
        }
    }

    /// Sends one live event if it is next and matches, without waiting for room.
    fn forward(&mut self, live: &LiveEvent) -> Result<Forwarded, Stop> {
        let sequence = live.sequence();
        if sequence <= self.cursor {
            return Ok(Forwarded::Done);
        }
        // Past the seam the feed brings every event, but a jump is cheap to settle: the log
        // says whether something was missed or the sequence simply has a hole there.
        if sequence > self.cursor + 1 {
            return Ok(Forwarded::FromLog);
        }
        let LiveEvent::Full(committed) = live else {
            tracing::debug!(
                sequence,
                "live feed over its byte budget, reading from the log"
            );
            return Ok(Forwarded::FromLog);
        };
        if self.filter.matches(&committed.event)
            && let Some(pending) = self.try_send(StreamItem::Event(committed.encoded.clone()))?
        {
            return Ok(Forwarded::Blocked { pending, sequence });
        }
        self.cursor = sequence;
        Ok(Forwarded::Done)
    }

    /// Sends one item if there is room right now (a free slot and, for an event, its bytes
    /// within the budget); otherwise hands it back to wait with [`Producer::wait_send`].
    fn try_send(&mut self, item: StreamItem) -> Result<Option<Pending>, Stop> {
        let cost = match &item {
            StreamItem::Event(event) => Some(event.bytes.len().clamp(1, self.budget_bytes)),
            StreamItem::Heartbeat { .. } | StreamItem::Skipped { .. } => None,
        };
        let held = match cost {
            Some(cost) => Arc::clone(&self.budget)
                .try_acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
                .ok(),
            None => None,
        };
        if held.is_some() || cost.is_none() {
            match self.tx.try_reserve() {
                Ok(permit) => {
                    count_delivery(&item);
                    permit.send(Ok(Queued {
                        item,
                        _budget: held,
                    }));
                    self.last_sent_at = Instant::now();
                    return Ok(None);
                }
                Err(mpsc::error::TrySendError::Closed(())) => return Err(Stop::ClientGone),
                Err(mpsc::error::TrySendError::Full(())) => {}
            }
        }
        Ok(Some(Pending { item, cost, held }))
    }

    /// Waits at most the slow-subscriber timeout for room for `pending`, then sends it. A
    /// live subscription in `live` is dropped if the feed comes under pressure meanwhile.
    async fn wait_send(
        &mut self,
        pending: Pending,
        live: &mut Option<LiveSubscription>,
    ) -> Result<(), Stop> {
        let Pending { item, cost, held } = pending;
        // A clone, so waiting on it borrows nothing of `self` (cheap: the slow path only).
        let mut pressure = self.pressure.clone();
        let deadline = tokio::time::sleep(self.settings.slow_subscriber_timeout);
        tokio::pin!(deadline);
        let budget = Arc::clone(&self.budget);
        let tx = self.tx.clone();
        let space = async move {
            let held = match (held, cost) {
                (Some(held), _) => Some(held),
                // The semaphore is never closed; `MAX_PERMITS` and u32 bound `cost`.
                (None, Some(cost)) => Some(
                    budget
                        .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
                        .await
                        .map_err(|_| Stop::ClientGone)?,
                ),
                (None, None) => None,
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
                () = under_pressure(&mut pressure), if live.is_some() => {
                    *live = None;
                    tracing::debug!(
                        cursor = self.cursor,
                        "live feed under pressure, a blocked subscriber leaves it"
                    );
                }
                changed = self.shutdown.changed() => self.on_shutdown_change(changed.is_err())?,
            }
        };
        count_delivery(&item);
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

/// Resolves once the feed is under pressure (at once if it already is); never for a backend
/// without a pressure flag, or once the feed is gone (the stream then ends by other means).
async fn under_pressure(pressure: &mut Option<watch::Receiver<bool>>) {
    if let Some(flag) = pressure
        && flag.wait_for(|over| *over).await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// Counts an event (not a heartbeat or a skip notice) handed to the subscriber's buffer.
fn count_delivery(item: &StreamItem) {
    if let StreamItem::Event(_) = item
        && let Some(metrics) = crate::metrics::get()
    {
        metrics.delivered();
    }
}
