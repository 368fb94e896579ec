//! The writer thread: owns the only write connection and turns queued appends into group
//! commits, then publishes what they stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::Clock;
use super::batch::{Batch, Outcome, Prepared, write_batch};
use super::codec::Codec;
use super::index::{ApplyReply, IndexEntry, IndexState, apply_entries};
use super::probe::probe;
use super::retention::{RetentionJob, RetentionPlan};
use super::train::{Trained, Trainer};
use crate::log::live::LiveFeed;
use crate::log::recent::RecentEvents;
use crate::log::{LogError, RetentionReport};

/// Work for the writer thread.
#[allow(
    clippy::large_enum_variant,
    reason = "appends are nearly every message; boxing them would cost an allocation each"
)]
pub(super) enum Command {
    Append {
        request: Prepared,
        reply: oneshot::Sender<Result<Outcome, LogError>>,
        traced: Traced,
    },
    /// Anything else; runs after the batch being collected commits.
    Control(Control),
}

pub(super) enum Control {
    Retention {
        plan: RetentionPlan,
        reply: oneshot::Sender<Result<RetentionReport, LogError>>,
    },
    /// Commits a tiny write, proving the file takes writes right now.
    Probe {
        reply: oneshot::Sender<Result<(), LogError>>,
    },
    /// Applies entries of a replicated stream (an index only).
    Apply {
        entries: Vec<IndexEntry>,
        reply: ApplyReply,
    },
    /// What a training thread trained, to store and compress with.
    Dictionary { trained: Trained },
    /// Sets a `meta` value.
    SetMeta {
        key: &'static str,
        value: String,
        reply: oneshot::Sender<Result<(), LogError>>,
    },
    #[cfg(test)]
    Execute {
        sql: String,
        reply: oneshot::Sender<Result<(), LogError>>,
    },
    /// Blocks the writer until `resume` yields (or is dropped), so tests can queue a batch.
    #[cfg(test)]
    Pause {
        paused: oneshot::Sender<Result<(), LogError>>,
        resume: std::sync::mpsc::Receiver<()>,
    },
}

type AppendReply = oneshot::Sender<Result<Outcome, LogError>>;

/// The caller's side of an append, for its trace: its span (linked to the commit that stores
/// it) and when it was queued.
pub(super) struct Traced {
    span: tracing::Span,
    queued_at: Instant,
}

impl Traced {
    /// The current span (disabled, and free to carry, when nothing records spans).
    pub(super) fn current() -> Traced {
        Traced {
            span: tracing::Span::current(),
            queued_at: Instant::now(),
        }
    }
}

/// The longest an append waits for others to share its commit (only while the batch is smaller
/// than the one before): a fraction of what the commit itself costs.
const LINGER: Duration = Duration::from_micros(300);

/// How often the queue is looked at while lingering.
const LINGER_POLL: Duration = Duration::from_micros(50);

/// What the writer publishes to the log's handle after each commit.
pub(super) struct Progress {
    /// The newest committed sequence; read by `head()` and by `cursor_at`.
    pub head: Arc<AtomicU64>,
    /// The newest events, for catch-up reads (`None` for an index, whose sequences come from
    /// the stream).
    pub recent: Option<Arc<RecentEvents>>,
    /// Successful group commits, for tests that check appends share them.
    #[cfg(test)]
    pub commits: Arc<AtomicU64>,
}

pub(super) struct Writer {
    conn: Connection,
    /// The sequence the next stored event gets.
    next_sequence: u64,
    progress: Progress,
    live: LiveFeed,
    clock: Clock,
    dedup_window_ms: i64,
    group_commit_max: usize,
    /// Set when the store is a replica's index of a stream.
    index: Option<IndexState>,
    /// The size of the largest event of the last group commit, while that commit failed and
    /// none has succeeded since: the probe must find room for one that size before the store
    /// counts as writable again (see [`probe`]).
    failed_event_bytes: Option<usize>,
    /// How bodies are compressed, and when to train the dictionaries that do it.
    codec: Codec,
    trainer: Option<Trainer>,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        last_sequence: u64,
        progress: Progress,
        live: LiveFeed,
        clock: Clock,
        dedup_window_ms: i64,
        group_commit_max: usize,
    ) -> Writer {
        Writer {
            conn,
            next_sequence: last_sequence.saturating_add(1),
            progress,
            live,
            clock,
            dedup_window_ms,
            group_commit_max,
            index: None,
            failed_event_bytes: None,
            codec: Codec::new(false),
            trainer: None,
        }
    }

    /// Compresses bodies with `codec`'s dictionaries, trained when `trainer` says.
    pub(super) fn with_codec(mut self, codec: Codec, trainer: Trainer) -> Writer {
        self.codec = codec;
        self.trainer = Some(trainer);
        self
    }

    /// Makes this writer an index's: it applies stream entries from `state.position` on.
    pub(super) fn with_index(mut self, state: IndexState) -> Writer {
        self.index = Some(state);
        self
    }

    /// Serves commands until every sender is gone (the log was closed or dropped), then
    /// checkpoints the WAL.
    pub(super) fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut requests = Vec::with_capacity(self.group_commit_max);
        let mut replies = Vec::with_capacity(self.group_commit_max);
        let mut controls = Vec::new();
        let mut retention: Option<RetentionJob> = None;
        let mut last_batch = 1;
        loop {
            // Wait for work only when no retention pass needs to make progress.
            let first = if retention.is_none() {
                match commands.blocking_recv() {
                    Some(command) => Some(command),
                    None => break,
                }
            } else {
                match commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => break,
                }
            };
            let mut closing = false;
            if let Some(command) = first {
                route(command, &mut requests, &mut replies, &mut controls);
                // Everything already queued joins this commit, and while it is smaller than the
                // last one, whatever arrives within a moment: the callers just answered are
                // still sending their next appends, and each commit costs a WAL write and an
                // fsync whatever its size. Under light load the last batch was small, so no
                // append waits.
                let expected = last_batch.min(self.group_commit_max);
                let mut linger_until = None;
                while requests.len() < self.group_commit_max {
                    match commands.try_recv() {
                        Ok(command) => route(command, &mut requests, &mut replies, &mut controls),
                        Err(TryRecvError::Empty) => {
                            if requests.len() >= expected || !controls.is_empty() {
                                break;
                            }
                            let until =
                                *linger_until.get_or_insert_with(|| Instant::now() + LINGER);
                            if Instant::now() >= until {
                                break;
                            }
                            std::thread::sleep(LINGER_POLL);
                        }
                        Err(TryRecvError::Disconnected) => {
                            closing = true;
                            break;
                        }
                    }
                }
            }
            if !requests.is_empty() {
                last_batch = requests.len();
                self.commit_batch(&mut requests, &mut replies);
            }
            for control in controls.drain(..) {
                self.serve(control, &mut retention);
            }
            if let Some(mut job) = retention.take() {
                let stepped = job.step(&mut self.conn, &self.codec);
                self.forget_removed();
                match stepped {
                    Ok(false) => retention = Some(job),
                    Ok(true) => job.finish(Ok(())),
                    Err(error) => {
                        tracing::warn!(%error, "retention chunk failed");
                        job.finish(Err(unavailable(&error)));
                    }
                }
            }
            if closing {
                break;
            }
        }
        if let Some(job) = retention {
            // Closing: report what was removed so far rather than hold shutdown up.
            job.finish(Ok(()));
        }
        self.shutdown();
    }

    fn serve(&mut self, control: Control, retention: &mut Option<RetentionJob>) {
        match control {
            Control::Retention { plan, reply } => match retention {
                Some(job) => job.join(reply),
                None => *retention = Some(RetentionJob::new(plan, reply)),
            },
            Control::Probe { reply } => {
                let now_ms = (self.clock)().timestamp_millis();
                let outcome =
                    probe(&mut self.conn, now_ms, self.failed_event_bytes).map_err(|error| {
                        tracing::warn!(%error, "event log is not writable");
                        unavailable(&error)
                    });
                if outcome.is_ok() {
                    self.failed_event_bytes = None;
                }
                let _ = reply.send(outcome);
            }
            Control::Apply { entries, reply } => {
                let _ = reply.send(self.apply(entries));
            }
            Control::Dictionary { trained } => {
                if let Some(trainer) = &mut self.trainer {
                    let now_ms = (self.clock)().timestamp_millis();
                    trainer.install(&mut self.conn, &self.codec, trained, now_ms);
                }
            }
            Control::SetMeta { key, value, reply } => {
                let outcome = self
                    .conn
                    .execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )
                    .map(|_| ())
                    .map_err(|error| unavailable(&error));
                let _ = reply.send(outcome);
            }
            #[cfg(test)]
            Control::Execute { sql, reply } => {
                // A test's statement may remove events behind the window's back.
                if let Some(recent) = &self.progress.recent {
                    recent.clear(false);
                }
                let outcome = self
                    .conn
                    .execute_batch(&sql)
                    .map_err(|error| unavailable(&error));
                let _ = reply.send(outcome);
            }
            #[cfg(test)]
            Control::Pause { paused, resume } => {
                let _ = paused.send(Ok(()));
                let _ = resume.recv();
            }
        }
    }

    /// Trims what retention has removed from the recent events' window.
    fn forget_removed(&self) {
        let Some(recent) = &self.progress.recent else {
            return;
        };
        match super::read::removed_through(&self.conn) {
            Ok(through) => recent.removed_through(through),
            // Not knowing, the window cannot say: reads go to the file.
            Err(_) => recent.clear(false),
        }
    }

    /// Stores the batch in one transaction, then answers and publishes. On failure nothing of
    /// the batch is stored, every append in it gets `Unavailable`, and its sequences are
    /// handed out again (no one ever saw them).
    fn commit_batch(
        &mut self,
        requests: &mut Vec<Prepared>,
        replies: &mut Vec<(AppendReply, Traced)>,
    ) {
        let count = requests.len();
        let started = Instant::now();
        // Signed: OpenTelemetry has no unsigned integers (a u64 becomes a string).
        let batch_size = i64::try_from(count).unwrap_or(i64::MAX);
        // Its own trace (it serves many), linked from each append it stores.
        let span = tracing::info_span!(parent: None, "commit", batch_size);
        let _entered = span.enter();
        for (_, traced) in replies.iter() {
            if !traced.span.is_disabled() {
                traced.span.record("batch_size", batch_size);
                let queued = started.saturating_duration_since(traced.queued_at);
                let queued_us = i64::try_from(queued.as_micros()).unwrap_or(i64::MAX);
                traced.span.record("queued_us", queued_us);
                traced.span.follows_from(&span);
            }
        }
        let now_ms = (self.clock)().timestamp_millis();
        let first_sequence = self.next_sequence;
        let largest = requests.iter().map(Prepared::stored_bytes).max();
        let mut stored = Vec::new();
        let result = write_batch(
            &mut self.conn,
            &self.codec,
            requests.drain(..),
            &mut Batch {
                now_ms,
                fresh_since_ms: now_ms.saturating_sub(self.dedup_window_ms),
                next_sequence: &mut self.next_sequence,
                stored: &mut stored,
                stored_index: HashMap::new(),
            },
        );
        match result {
            Ok(outcomes) => {
                self.failed_event_bytes = None;
                #[cfg(test)]
                self.progress.commits.fetch_add(1, Ordering::Relaxed);
                if !stored.is_empty() {
                    // The window before the head: a reader that saw the head finds its events.
                    if let Some(recent) = &self.progress.recent {
                        recent.push(&stored);
                    }
                    // Before publishing: a head asked after subscribing must cover every event
                    // the subscription will not carry (the log's seam guarantee).
                    self.progress
                        .head
                        .store(self.next_sequence - 1, Ordering::Release);
                }
                if let Some(trainer) = &mut self.trainer {
                    trainer.committed(&self.codec, stored.len());
                }
                if let Some(metrics) = crate::metrics::get() {
                    metrics.commit(count, started.elapsed(), self.next_sequence - 1);
                }
                // Callers first: each waits on its answer, while the subscribers' tasks woken by
                // publishing (one per subscriber per event) would otherwise be queued ahead of
                // them on the runtime.
                for ((reply, _), outcome) in replies.drain(..).zip(outcomes) {
                    // The caller may have given up waiting; the event is stored all the same.
                    let _ = reply.send(outcome);
                }
                for committed in stored {
                    self.live.publish(committed);
                }
            }
            Err(error) => {
                self.next_sequence = first_sequence;
                self.failed_event_bytes = largest;
                tracing::warn!(%error, batch = count, "group commit failed");
                let error = unavailable(&error);
                for (reply, _) in replies.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Applies stream entries in one transaction, then answers their callers and publishes what
    /// they stored, as a group commit does.
    fn apply(&mut self, entries: Vec<IndexEntry>) -> Result<(), LogError> {
        let Some(index) = self.index.as_mut() else {
            return Err(LogError::Unavailable {
                reason: "this store is no index of a stream".to_owned(),
            });
        };
        let applied = apply_entries(
            &mut self.conn,
            &self.codec,
            entries,
            &mut index.position,
            self.dedup_window_ms,
        )
        .map_err(|error| {
            tracing::warn!(%error, "applying stream entries failed");
            unavailable(&error)
        })?;
        if let Some(newest) = applied.stored.last() {
            // As in a group commit: the head before the events go live.
            let newest = newest.encoded.sequence;
            self.progress.head.fetch_max(newest, Ordering::AcqRel);
        }
        if let Some(trainer) = &mut self.trainer {
            trainer.committed(&self.codec, applied.stored.len());
        }
        index.published.send_replace(index.position);
        // As in a group commit: callers before subscribers.
        for (reply, outcome) in applied.replies {
            let _ = reply.send(outcome.map(super::index::outcome));
        }
        for committed in applied.stored {
            self.live.publish(committed);
        }
        Ok(())
    }

    fn shutdown(self) {
        // Leave a compact file behind: fold the WAL into the database and truncate it.
        if let Err(error) = self.conn.execute_batch("PRAGMA optimize") {
            tracing::debug!(%error, "optimize on close failed");
        }
        let checkpoint = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            });
        match checkpoint {
            Ok(0) => {}
            Ok(_) => tracing::debug!("wal checkpoint on close was blocked by a reader"),
            Err(error) => tracing::warn!(%error, "wal checkpoint on close failed"),
        }
        if let Err((_, error)) = self.conn.close() {
            tracing::warn!(%error, "closing the write connection failed");
        }
    }
}

/// Appends go into the batch; anything else runs after the batch commits.
fn route(
    command: Command,
    requests: &mut Vec<Prepared>,
    replies: &mut Vec<(AppendReply, Traced)>,
    controls: &mut Vec<Control>,
) {
    match command {
        Command::Append {
            request,
            reply,
            traced,
        } => {
            requests.push(request);
            replies.push((reply, traced));
        }
        Command::Control(control) => controls.push(control),
    }
}

pub(super) fn unavailable(error: &rusqlite::Error) -> LogError {
    LogError::Unavailable {
        reason: error.to_string(),
    }
}
