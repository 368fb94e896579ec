//! The embedded event log: one SQLite file, `events.sqlite3` in WAL mode, under `store.path`.
//!
//! Writes go through one writer thread that owns the only write connection and commits appends
//! in groups: it blocks for the first queued append, drains whatever else is waiting (up to
//! `store.group_commit_max`; while the batch is smaller than the previous one, it also waits up
//! to 300 µs for the appends of the callers it has just answered), stores them all in one
//! transaction and pays one fsync for the lot
//! (`synchronous=FULL`), then broadcasts the new events in sequence order and answers each
//! caller. A failed commit fails every append of its batch and stores none of it; the writer
//! carries on, so appends succeed again once the disk recovers. Reads run on blocking threads
//! over a small pool of read-only connections, so neither side ever blocks the async runtime;
//! catch-up reads near the head are answered from the newest events, kept in memory
//! ([`crate::log::recent`]), since subscribers that fall behind together read the same ones.
//!
//! Sequences are assigned by the writer, one after another with no holes, and never reused:
//! the `AUTOINCREMENT` high-water mark survives deletes and restarts. Only retention removes
//! events, always the oldest, so everything below the oldest stored event (or, in an empty
//! log, everything up to the high-water mark) is what retention removed: catch-up reads report
//! that ([`crate::log::EncodedBatch::removed_through`]) from the same read transaction as their
//! events.
//!
//! Dedup keys live in their own table, so they outlive the events they point to (`dedup`).
//!
//! The webhook as received (`AppendRequest::delivery`) is kept with its event, in the same row,
//! and removed with it (events stored plain, before the store's dictionary exists, keep it in a
//! `deliveries` row of their own, keyed by sequence).
//!
//! Time: `received_at` is what [`EventLog::cursor_at`] goes by; an event without one is indexed
//! at its append time (the stored event is left as given). Retention by age goes by the append
//! time (the writer's clock), never by `received_at`, which callers supply. Dedup keys are
//! stamped with the append time.
//!
//! Retention runs on the writer thread in small transactions between group commits, so appends
//! wait for at most one small chunk. By age it removes the oldest events up to the first one
//! young enough, so that even a wall clock that stepped back leaves no hole in what is kept.
//! [`crate::log::spawn_retention`] schedules it; callers may also call
//! [`EventLog::enforce_retention`] themselves.
//!
//! An event and its delivery are compressed together, as one record in the event's row, with a
//! zstd dictionary trained on the store's own first events (`codec`, `frame`, `train`): JSON
//! webhooks of a few providers share most of their bytes, and a delivery repeats its event's.
//!
//! Files: `schema` (connections, pragmas, tables), `lock` (one process per store), `writer`
//! (the thread and its commands), `batch` (one group commit: dedup and inserts), `dedup` (its
//! keys), `codec` (how bodies are kept), `frame` (what a compressed body holds), `train` (the
//! dictionaries), `read` (filter -> SQL, rows -> events), `read_pool` (the read connections),
//! `probe` (the writer's readiness write), `retention` (chunked deletes), `index` (the store as
//! a replica's index of a replicated stream, for the NATS backend).

mod batch;
mod codec;
mod dedup;
mod frame;
mod index;
mod lock;
mod options;
mod probe;
mod read;
mod read_pool;
mod retention;
mod schema;
mod train;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::StoreConfig;
use crate::log::live::{LiveFeed, Subscriptions};
use crate::log::recent::RecentEvents;
use crate::log::{
    AppendRequest, Appended, EncodedBatch, EventFilter, EventLog, LiveSubscription, LogError,
    RetentionReport, View, seconds_to_ms,
};
use crate::proto::v1::Event;

pub use index::{
    IndexEntry, IndexEntryKind, IndexOutcome, IndexPosition, IndexReply, RetentionView,
};
pub use lock::LOCK_FILE_NAME;
use lock::lock_store;
pub use options::{
    Clock, DEFAULT_COMPRESS_AFTER, DEFAULT_LOCK_WAIT, DEFAULT_READ_CONNECTIONS, SqliteOptions,
};
use read::Range;
use read_pool::ReadPool;
use retention::RetentionPlan;
use writer::{Command, Control, Progress, Writer};

/// The database file's name inside `store.path`.
pub const DB_FILE_NAME: &str = "events.sqlite3";

/// The SQLite [`EventLog`].
pub struct SqliteEventLog {
    path: PathBuf,
    /// `None` once closed; appends clone it so none holds the lock across `.await`.
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    /// Taken by the first `close`; an async mutex so a second `close` waits for the first.
    writer: tokio::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    head: Arc<AtomicU64>,
    /// Transactions the writer committed for batches of appends.
    #[cfg(test)]
    commits: Arc<AtomicU64>,
    /// Subscribes to the writer's live feed while the writer runs.
    events: Subscriptions,
    /// The live feed's pressure flag (see [`EventLog::live_pressure`]).
    pressure: watch::Receiver<bool>,
    /// The newest events, which answer catch-up reads near the head (a log of its own only).
    recent: Option<Arc<RecentEvents>>,
    reads: Arc<ReadPool>,
    /// Compresses appends' bodies on the caller's thread.
    codec: codec::Codec,
    clock: Clock,
    dedup_window_ms: i64,
    retention_max_age_ms: Option<i64>,
    retention_max_count: Option<u64>,
    /// The position of an index of a replicated stream (`None` for a log of its own).
    index: Option<watch::Receiver<IndexPosition>>,
}

impl std::fmt::Debug for SqliteEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteEventLog")
            .field("path", &self.path)
            .field("head", &self.committed_head())
            .finish_non_exhaustive()
    }
}

impl SqliteEventLog {
    /// Opens (creating if needed) `events.sqlite3` under `config.path` and starts the writer
    /// thread. Blocking; call once at start-up.
    pub fn open(config: &StoreConfig) -> Result<SqliteEventLog, LogError> {
        let options = SqliteOptions {
            broadcast_capacity: config.live_events,
            live_bytes: config.live_bytes,
            ..SqliteOptions::default()
        };
        SqliteEventLog::open_with(config, options)
    }

    /// [`SqliteEventLog::open`] with non-default tuning or clock.
    pub fn open_with(
        config: &StoreConfig,
        options: SqliteOptions,
    ) -> Result<SqliteEventLog, LogError> {
        SqliteEventLog::open_mode(config, options, false)
    }

    /// Opens a log of its own, or (`index`) a replica's index of a stream (see [`index`]).
    fn open_mode(
        config: &StoreConfig,
        options: SqliteOptions,
        index: bool,
    ) -> Result<SqliteEventLog, LogError> {
        std::fs::create_dir_all(&config.path).map_err(|error| LogError::Unavailable {
            reason: format!(
                "cannot create store directory {}: {error}",
                config.path.display()
            ),
        })?;
        let store_lock = lock_store(&config.path, options.lock_wait)?;
        let path = config.path.join(DB_FILE_NAME);
        let cannot_open = |error: &dyn std::fmt::Display| LogError::Unavailable {
            reason: format!("cannot open {}: {error}", path.display()),
        };
        let conn = schema::open_writer(&path, index).map_err(|error| cannot_open(&error))?;
        let last_sequence = schema::last_sequence(&conn).map_err(|error| cannot_open(&error))?;
        let index = match index {
            true => Some(index::read_position(&conn).map_err(|error| cannot_open(&error))?),
            false => None,
        };
        let codec = codec::Codec::new(options.compress_after.is_some());
        codec.load(&conn).map_err(|error| cannot_open(&error))?;
        let reads = Arc::new(ReadPool::new(
            path.clone(),
            options.read_connections,
            codec.clone(),
        ));
        // Fail at start-up, not on the first read, when readers cannot open the file.
        reads.warm().map_err(|error| cannot_open(&error))?;

        let head = Arc::new(AtomicU64::new(last_sequence));
        let removed_through = read::removed_through(&conn)?;
        let recent = index.is_none().then(|| {
            let (events, bytes) = (options.broadcast_capacity, options.live_bytes);
            Arc::new(RecentEvents::new(events, bytes, removed_through))
        });
        #[cfg(test)]
        let commits = Arc::new(AtomicU64::new(0));
        let live = LiveFeed::new(options.broadcast_capacity, options.live_bytes);
        let events = live.subscriptions();
        let pressure = live.pressure();
        let group_commit_max = config.group_commit_max.max(1);
        // Room for a few full batches: beyond that, `append` waits (backpressure) instead of
        // queueing without bound.
        let (commands, receiver) = mpsc::channel(group_commit_max.saturating_mul(4).max(64));
        let dedup_window_ms = seconds_to_ms(config.dedup_window_seconds);
        let writer = Writer::new(
            conn,
            last_sequence,
            Progress {
                head: Arc::clone(&head),
                recent: recent.clone(),
                #[cfg(test)]
                commits: Arc::clone(&commits),
            },
            live,
            Arc::clone(&options.clock),
            dedup_window_ms,
            group_commit_max,
        )
        .with_codec(
            codec.clone(),
            train::Trainer::new(
                path.clone(),
                options.compress_after,
                last_sequence,
                commands.downgrade(),
            ),
        );
        let (writer, index) = match index {
            Some(position) => {
                let (published, positions) = watch::channel(position);
                let state = index::IndexState {
                    position,
                    published,
                };
                (writer.with_index(state), Some(positions))
            }
            None => (writer, None),
        };
        let handle = std::thread::Builder::new()
            .name("hooknorm-sqlite-writer".to_owned())
            .spawn(move || {
                writer.run(receiver);
                // Released only once the write connection is closed.
                drop(store_lock);
            })
            .map_err(|error| LogError::Unavailable {
                reason: format!("cannot start the writer thread: {error}"),
            })?;
        tracing::info!(path = %path.display(), head = last_sequence, "event log opened");

        Ok(SqliteEventLog {
            path,
            commands: Mutex::new(Some(commands)),
            writer: tokio::sync::Mutex::new(Some(handle)),
            head,
            #[cfg(test)]
            commits,
            events,
            pressure,
            recent,
            reads,
            codec,
            clock: options.clock,
            dedup_window_ms,
            retention_max_age_ms: config.retention_max_age_seconds.map(seconds_to_ms),
            retention_max_count: config.retention_max_count,
            index,
        })
    }

    /// The newest committed sequence, as the writer last published it.
    fn committed_head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// How many group commits (one transaction and one fsync each) have stored batches of
    /// appends since the log was opened: appends divided by this is the average group.
    #[cfg(test)]
    fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn sender(&self) -> Result<mpsc::Sender<Command>, LogError> {
        // The guarded data is an `Option` that is always valid, so a poisoned lock is harmless.
        let commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        commands.clone().ok_or(LogError::Closed)
    }

    /// Sends one command to the writer and waits for its answer.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, LogError>>) -> Command,
    ) -> Result<T, LogError> {
        let sender = self.sender()?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(command(reply))
            .await
            .map_err(|_| writer_stopped())?;
        drop(sender);
        answer.await.map_err(|_| writer_stopped())?
    }

    /// Runs SQL on the writer connection (tests simulate a full disk with it).
    #[cfg(test)]
    async fn execute_on_writer(&self, sql: &str) -> Result<(), LogError> {
        let sql = sql.to_owned();
        self.ask(|reply| Command::Control(Control::Execute { sql, reply }))
            .await
    }

    /// Holds the writer until the returned sender sends (or is dropped): appends made
    /// meanwhile queue up and then share one batch.
    #[cfg(test)]
    async fn pause_writer(&self) -> std::sync::mpsc::Sender<()> {
        let (resume_tx, resume) = std::sync::mpsc::channel();
        let paused = self
            .ask(|paused| Command::Control(Control::Pause { paused, resume }))
            .await;
        assert!(paused.is_ok(), "{paused:?}");
        resume_tx
    }

    /// Commands waiting for the writer.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.sender()
            .map_or(0, |sender| sender.max_capacity() - sender.capacity())
    }
}

#[async_trait]
impl EventLog for SqliteEventLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        // Encoded here, on the caller's thread: the writer thread is the serial part.
        let request = batch::Prepared::new(request, &self.codec);
        let traced = writer::Traced::current();
        let outcome = self
            .ask(|reply| Command::Append {
                request,
                reply,
                traced,
            })
            .await?;
        // Also here: the copy (when a subscriber still holds the event) and the drop.
        Ok(outcome.into_appended())
    }

    async fn read_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        let Some(query) = read::EventQuery::build(filter, Range::After(after), limit) else {
            return Ok(Vec::new());
        };
        self.reads
            .run(move |conn, codec| query.run(conn, codec))
            .await
    }

    async fn read_encoded_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EncodedBatch, LogError> {
        let recent = self.recent.as_ref();
        if let Some(batch) = recent.and_then(|recent| recent.read_after(after, filter, limit)) {
            return Ok(batch);
        }
        let query = read::EventQuery::build(filter, Range::After(after), limit);
        // A plain body is the encoding subscribers send, passed on as read; a compressed one is
        // decompressed into exactly that encoding.
        self.reads
            .run(move |conn, codec| read::encoded_batch(conn, codec, query.as_ref()))
            .await
    }

    async fn list(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        let Some(query) = read::EventQuery::build(filter, Range::Before(before), limit) else {
            return Ok(Vec::new());
        };
        self.reads
            .run(move |conn, codec| query.run(conn, codec))
            .await
    }

    async fn get(&self, id: &str, view: View) -> Result<Option<Event>, LogError> {
        let id = id.to_owned();
        self.reads
            .run(move |conn, codec| read::event_by_id(conn, codec, &id, view))
            .await
    }

    async fn duplicate_counts(
        &self,
        sequences: &[u64],
    ) -> Result<Option<HashMap<u64, u64>>, LogError> {
        let sequences = sequences.to_vec();
        self.reads
            .run(move |conn, _| read::duplicate_counts(conn, &sequences))
            .await
            .map(Some)
    }

    async fn cursor_at(&self, time: DateTime<Utc>) -> Result<u64, LogError> {
        // Read head first: anything committed after it has a greater sequence, so falling back
        // to it can never skip a matching event.
        let head = self.committed_head();
        let since_ms = time.timestamp_millis();
        let first = self
            .reads
            .run(move |conn, _| read::first_sequence_received_since(conn, since_ms))
            .await?;
        Ok(first.map_or(head, |sequence| sequence.saturating_sub(1)))
    }

    async fn head(&self) -> Result<u64, LogError> {
        // The writer publishes it after each commit and before the commit's events go live,
        // which is all the contract asks of it.
        Ok(self.committed_head())
    }

    async fn subscribe(&self) -> Result<LiveSubscription, LogError> {
        self.events.subscribe().ok_or(LogError::Closed)
    }

    fn live_pressure(&self) -> Option<watch::Receiver<bool>> {
        Some(self.pressure.clone())
    }

    async fn enforce_retention(&self) -> Result<RetentionReport, LogError> {
        // Refuse early when closed, before doing the threshold read.
        drop(self.sender()?);
        let now_ms = (self.clock)().timestamp_millis();
        let below_sequence = match self.retention_max_count {
            None => None,
            // Found on a read connection so the writer is not held up by the scan; events
            // committed meanwhile are newer and only make the kept set larger. (Configuration
            // refuses a count of 0, so the newest event is always kept.)
            Some(keep) => {
                self.reads
                    .run(move |conn, _| read::sequence_ranked(conn, keep))
                    .await?
            }
        };
        let plan = RetentionPlan {
            below_sequence,
            appended_before_ms: self
                .retention_max_age_ms
                .map(|age| now_ms.saturating_sub(age)),
            dedup_before_ms: now_ms.saturating_sub(self.dedup_window_ms),
        };
        self.ask(|reply| Command::Control(Control::Retention { plan, reply }))
            .await
    }

    async fn check_writable(&self) -> Result<(), LogError> {
        self.ask(|reply| Command::Control(Control::Probe { reply }))
            .await
    }

    async fn close(&self) {
        if let Some(recent) = &self.recent {
            recent.clear(true);
        }
        let mut writer = self.writer.lock().await;
        // Dropping the last sender lets the writer drain what is queued, then stop.
        drop(
            self.commands
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let Some(handle) = writer.take() else { return };
        match tokio::task::spawn_blocking(move || handle.join()).await {
            Ok(Ok(())) => tracing::info!(path = %self.path.display(), "event log closed"),
            Ok(Err(_)) => tracing::error!("event log writer thread panicked"),
            Err(error) => tracing::error!(%error, "cannot join the event log writer thread"),
        }
    }
}

fn writer_stopped() -> LogError {
    LogError::Unavailable {
        reason: "event log writer stopped".to_owned(),
    }
}
