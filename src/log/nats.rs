//! The replicated event log on NATS JetStream (`store.backend = "nats"`): any number of
//! replicas share one stream, and each keeps a local index of it.
//!
//! **The stream is the log of accepted deliveries.** An append publishes one record
//! ([`record`]) to `<prefix>.events.<source>.<type>` and waits for JetStream's acknowledgement,
//! which comes only once the stream's replicas have the message: acknowledged means
//! replicated. JetStream gives the message its stream sequence; the stream's order is the one
//! order every replica sees.
//!
//! **Every replica applies the same rules in the same order.** An applier task ([`applier`])
//! reads the whole stream with an ordered consumer and feeds it to the local index: the
//! embedded SQLite store, with the sequence and time of each entry taken from the stream
//! instead of assigned locally ([`crate::log::sqlite::IndexEntry`]). Whether a delivery is a new
//! event or a duplicate of an earlier one, and the id a recurring state is stored under, is
//! decided by the same code over the same input, so replicas agree without talking to each
//! other, and a replica whose index was lost rebuilds it by reading the stream from the start.
//! The append answers once its own replica has applied its message, with what the index
//! decided: a replica reads its own writes at once; other replicas follow within the time it
//! takes them to read the message (milliseconds), and [`EventLog::head`] waits for that.
//!
//! **Sequences** are JetStream's stream sequences: increasing, never reused, and not
//! contiguous (a duplicate delivery or a retention record takes a sequence but stores no
//! event).
//!
//! **Dedup.** A provider id or content fingerprint is published with `Nats-Msg-Id` = its dedup
//! key, so JetStream drops fast retries and identical deliveries racing on several replicas
//! (within its duplicate window, two minutes by default) before they reach the stream; such a
//! publish is answered from the index. A state is published without one: the same state
//! legitimately recurs (on, off, on), and only the ordered rules can tell. Dedup windows are
//! measured against the accepting replicas' clocks stamped into the records, never a local
//! clock at apply time (see [`crate::log::sqlite`]'s index).
//!
//! **Retention** is a record in the stream too (`<prefix>.retention`): a replica that finds
//! events past `store.retention_*`, or events the stream itself no longer holds (its own
//! `max_age`/`max_bytes`), publishes "remove below n", and every replica removes the same
//! events at the same point of the stream.
//!
//! **Unavailability.** While NATS cannot be reached, appends fail at once (or after
//! `store.nats.append_timeout_seconds`) with [`LogError::Unavailable`], `check_writable` fails
//! and `head` fails, so webhooks get 503 and streams end with their resume cursor; the client
//! reconnects by itself and the applier resumes from its index's position.
//!
//! Files: `connect` (client options, the stream and its compatibility check), `open` (the
//! local index, kept or rebuilt), `record` (subjects and records), `applier` (the consumer task
//! and the callers waiting on it).

mod applier;
mod connect;
mod open;
mod record;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, RwLock, watch};

use crate::config::StoreConfig;
use crate::log::sqlite::{Clock, IndexPosition, SqliteEventLog};
use crate::log::{
    AppendRequest, Appended, EncodedBatch, EventFilter, EventLog, LiveSubscription, LogError,
    RetentionReport, View, seconds_to_ms,
};
use crate::proto::v1::Event;

use applier::{Applier, Waiters};
pub use open::NatsOpenError;
use open::open_index;
use record::Subjects;

/// Tuning that is not part of the configuration file.
#[derive(Clone)]
pub struct NatsOptions {
    /// Source of "now" stamped on appends (the dedup window) and for retention by age.
    pub clock: Clock,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            clock: Arc::new(Utc::now),
        }
    }
}

/// How long readiness and retention wait for a stream info answer.
const INFO_TIMEOUT: Duration = Duration::from_secs(2);

/// An acknowledged message normally reaches the index within milliseconds; a caller that waited
/// this long has the applier start its consumer over (its server may have gone).
const APPLY_STALL: Duration = Duration::from_millis(750);

/// The NATS JetStream [`EventLog`].
pub struct NatsEventLog {
    client: async_nats::Client,
    context: jetstream::Context,
    stream: jetstream::stream::Stream,
    subjects: Subjects,
    index: Arc<SqliteEventLog>,
    positions: watch::Receiver<IndexPosition>,
    waiters: Arc<Waiters>,
    clock: Clock,
    append_timeout: Duration,
    /// Prefix of this process's append ids, and their counter.
    replica: String,
    appends: AtomicU64,
    /// `true` once closed; appends hold it for reading so `close` waits for them.
    closed: RwLock<bool>,
    stop: watch::Sender<bool>,
    /// Asks the applier to start its consumer over (see [`Applier`]).
    restart: Arc<Notify>,
    applier: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The stream's last sequence at start-up: the replica is not ready before it applied it.
    start_target: u64,
    caught_up: AtomicBool,
    dedup_window_ms: i64,
    retention_max_age_ms: Option<i64>,
    retention_max_count: Option<u64>,
}

impl std::fmt::Debug for NatsEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsEventLog")
            .field("stream", &self.stream.cached_info().config.name)
            .field("position", &*self.positions.borrow())
            .finish_non_exhaustive()
    }
}

impl NatsEventLog {
    /// Connects, finds or creates the stream, opens the local index and starts applying.
    pub async fn open(config: &StoreConfig) -> Result<NatsEventLog, NatsOpenError> {
        NatsEventLog::open_with(config, NatsOptions::default()).await
    }

    /// [`NatsEventLog::open`] with another clock.
    pub async fn open_with(
        config: &StoreConfig,
        options: NatsOptions,
    ) -> Result<NatsEventLog, NatsOpenError> {
        let nats = &config.nats;
        let subjects = Subjects::new(&nats.subject_prefix);
        let restart = Arc::new(Notify::new());
        let client = connect::connect(nats, Arc::clone(&restart)).await?;
        let append_timeout = Duration::from_secs(nats.append_timeout_seconds);
        let context = jetstream::ContextBuilder::new()
            .timeout(append_timeout)
            .build(client.clone());
        let mut stream = connect::ensure_stream(&context, nats, &subjects).await?;
        let info = stream.info().await.map_err(|error| NatsOpenError::Stream {
            stream: nats.stream.clone(),
            reason: error.to_string(),
        })?;
        let binding = format!("{}@{}", nats.stream, info.created.unix_timestamp_nanos());
        let last_sequence = info.state.last_sequence;
        let dir = nats
            .index_path
            .clone()
            .unwrap_or_else(|| config.path.clone());
        let index = open_index(&dir, config, &binding, last_sequence).await?;
        let positions =
            index
                .index_positions()
                .ok_or(NatsOpenError::Index(LogError::Unavailable {
                    reason: "the index has no position".to_owned(),
                }))?;
        let waiters = Arc::new(Waiters::default());
        let (stop, stopped) = watch::channel(false);
        let applier = Applier {
            stream: stream.clone(),
            index: Arc::clone(&index),
            subjects: subjects.clone(),
            waiters: Arc::clone(&waiters),
            batch_max: config.group_commit_max.max(1),
            stop: stopped,
            restart: Arc::clone(&restart),
        };
        let applier = tokio::spawn(applier.run());
        let position = *positions.borrow();
        tracing::info!(
            stream = %nats.stream,
            index = %dir.display(),
            applied = position.applied,
            stream_last = last_sequence,
            "event log opened on nats"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(NatsEventLog {
            client,
            context,
            stream,
            subjects,
            index,
            positions,
            waiters,
            clock: options.clock,
            append_timeout,
            replica: format!("{:x}.{:x}", std::process::id(), now.as_nanos()),
            appends: AtomicU64::new(0),
            closed: RwLock::new(false),
            stop,
            restart,
            applier: tokio::sync::Mutex::new(Some(applier)),
            start_target: last_sequence,
            caught_up: AtomicBool::new(position.applied >= last_sequence),
            dedup_window_ms: seconds_to_ms(config.dedup_window_seconds),
            retention_max_age_ms: config.retention_max_age_seconds.map(seconds_to_ms),
            retention_max_count: config.retention_max_count,
        })
    }

    /// Fails at once while the client has no connection, rather than waiting out a timeout.
    fn connected(&self) -> Result<(), LogError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(LogError::Unavailable {
                reason: format!("nats is not connected ({state})"),
            }),
        }
    }

    /// Waits until the index has applied `sequence`, for at most the append timeout.
    async fn wait_applied(&self, sequence: u64) -> Result<IndexPosition, LogError> {
        let mut positions = self.positions.clone();
        let reached = self.unstalled(async {
            let position = positions.wait_for(|position| position.applied >= sequence);
            position.await.map(|position| *position)
        });
        match tokio::time::timeout(self.append_timeout, reached).await {
            Ok(Ok(position)) => Ok(position),
            Ok(Err(_)) => Err(LogError::Closed),
            Err(_) => Err(LogError::Unavailable {
                reason: format!(
                    "the local index has not applied stream sequence {sequence} in time (at {})",
                    self.positions.borrow().applied
                ),
            }),
        }
    }

    /// Awaits `wait`, asking the applier to start over if it takes longer than [`APPLY_STALL`].
    async fn unstalled<T>(&self, wait: impl std::future::Future<Output = T>) -> T {
        tokio::pin!(wait);
        if let Ok(done) = tokio::time::timeout(APPLY_STALL, &mut wait).await {
            return done;
        }
        tracing::debug!("an acknowledged message waits for the applier, restarting it");
        self.restart.notify_one();
        wait.await
    }

    /// The stream's state, asked of JetStream.
    async fn stream_state(&self) -> Result<jetstream::stream::State, LogError> {
        self.connected()?;
        match tokio::time::timeout(INFO_TIMEOUT, self.stream.get_info()).await {
            Ok(Ok(info)) => Ok(info.state),
            Ok(Err(error)) => Err(LogError::Unavailable {
                reason: format!("stream info failed: {error}"),
            }),
            Err(_) => Err(LogError::Unavailable {
                reason: "stream info timed out".to_owned(),
            }),
        }
    }

    /// Publishes and waits for JetStream's acknowledgement.
    async fn publish(
        &self,
        subject: String,
        message: PublishMessage,
    ) -> Result<jetstream::publish::PublishAck, LogError> {
        let unavailable = |error: &dyn std::fmt::Display| LogError::Unavailable {
            reason: format!("publish failed: {error}"),
        };
        let ack: PublishAckFuture = self
            .context
            .send_publish(subject, message)
            .await
            .map_err(|error| unavailable(&error))?;
        ack.await.map_err(|error| unavailable(&error))
    }

    fn next_append_id(&self) -> String {
        let count = self.appends.fetch_add(1, Ordering::Relaxed);
        format!("{}.{count:x}", self.replica)
    }

    /// One append: publish, then the index's decision for it.
    async fn append_once(&self, request: AppendRequest) -> Result<Appended, LogError> {
        let accepted_at_ms = (self.clock)().timestamp_millis();
        let subject = self
            .subjects
            .event(&request.event.source, &request.event.r#type);
        let mut message_id = record::message_id(&request);
        loop {
            let append_id = self.next_append_id();
            let (_registered, answer) = self.waiters.register(append_id.clone());
            let payload = record::encode_append(&request, accepted_at_ms, &append_id);
            let mut message = PublishMessage::build().payload(payload);
            if let Some(id) = &message_id {
                message = message.message_id(id);
            }
            let ack = self.publish(subject.clone(), message).await?;
            if !ack.duplicate {
                let outcome =
                    self.unstalled(answer)
                        .await
                        .map_err(|_| LogError::Unavailable {
                            reason: "the local index did not apply the append".to_owned(),
                        })??;
                return Ok(outcome.into_appended());
            }
            // JetStream already has a delivery with this key: once applied, the index says
            // what it was. Past the dedup window (the broker's memory can be longer), the
            // delivery is published again as a new one, for the rules to decide.
            self.wait_applied(ack.sequence).await?;
            if let Some(answer) = self.index.recognize(&request, accepted_at_ms).await? {
                return Ok(answer);
            }
            message_id = None;
        }
    }
}

#[async_trait]
impl EventLog for NatsEventLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        let closed = self.closed.read().await;
        if *closed {
            return Err(LogError::Closed);
        }
        self.connected()?;
        // The index's answer follows the acknowledgement within milliseconds; one bound for
        // the whole append keeps a caller from waiting on a stream that cannot answer.
        match tokio::time::timeout(self.append_timeout, self.append_once(request)).await {
            Ok(answer) => answer,
            Err(_) => Err(LogError::Unavailable {
                reason: format!(
                    "no answer from the stream within {} s",
                    self.append_timeout.as_secs()
                ),
            }),
        }
    }

    async fn read_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.index.read_after(after, filter, limit).await
    }

    async fn read_encoded_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EncodedBatch, LogError> {
        self.index.read_encoded_after(after, filter, limit).await
    }

    async fn list(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.index.list(filter, before, limit).await
    }

    async fn get(&self, id: &str, view: View) -> Result<Option<Event>, LogError> {
        self.index.get(id, view).await
    }

    async fn cursor_at(&self, time: DateTime<Utc>) -> Result<u64, LogError> {
        // The head first, so the index has everything the stream had then.
        self.head().await?;
        self.index.cursor_at(time).await
    }

    /// The stream's view, not this replica's: the newest event the index holds once it has
    /// applied everything the stream held when asked (one JetStream request, then a wait of
    /// milliseconds), so a head is never behind what another replica acknowledged.
    async fn head(&self) -> Result<u64, LogError> {
        let state = self.stream_state().await?;
        if state.messages > 0 {
            self.wait_applied(state.last_sequence).await?;
        }
        self.index.head().await
    }

    async fn subscribe(&self) -> Result<LiveSubscription, LogError> {
        if *self.closed.read().await {
            return Err(LogError::Closed);
        }
        self.index.subscribe().await
    }

    fn live_pressure(&self) -> Option<watch::Receiver<bool>> {
        self.index.live_pressure()
    }

    async fn enforce_retention(&self) -> Result<RetentionReport, LogError> {
        if *self.closed.read().await {
            return Err(LogError::Closed);
        }
        let now_ms = (self.clock)().timestamp_millis();
        let view = self
            .index
            .retention_view(
                self.retention_max_count,
                self.retention_max_age_ms
                    .map(|age| now_ms.saturating_sub(age)),
            )
            .await?;
        let state = self.stream_state().await?;
        // What the stream itself no longer holds goes from every index too.
        let stream_first = match state.messages {
            0 => state.last_sequence.saturating_add(1),
            _ => state.first_sequence,
        };
        let below = [view.keep_from, view.young_from, Some(stream_first)]
            .into_iter()
            .flatten()
            .max();
        let mut report = RetentionReport::default();
        if let (Some(below), Some(oldest)) = (below, view.oldest)
            && oldest < below
        {
            report.events_removed = self.index.count_below(below).await?;
            let message = PublishMessage::build()
                .payload(record::encode_retention(below))
                .message_id(record::retention_message_id(below));
            let ack = self.publish(self.subjects.retention(), message).await?;
            self.wait_applied(ack.sequence).await?;
        }
        let time_ms = self.positions.borrow().time_ms;
        report.dedup_keys_removed = self
            .index
            .expire_dedup(time_ms.saturating_sub(self.dedup_window_ms))
            .await?;
        Ok(report)
    }

    async fn check_writable(&self) -> Result<(), LogError> {
        if *self.closed.read().await {
            return Err(LogError::Closed);
        }
        let state = self.stream_state().await?;
        if !self.caught_up.load(Ordering::Acquire) {
            let applied = self.positions.borrow().applied;
            if applied < self.start_target.min(state.last_sequence) {
                return Err(LogError::Unavailable {
                    reason: format!(
                        "catching up with the stream: applied {applied} of {}",
                        self.start_target
                    ),
                });
            }
            self.caught_up.store(true, Ordering::Release);
        }
        self.index.check_writable().await
    }

    async fn close(&self) {
        let mut closed = self.closed.write().await;
        if *closed {
            return;
        }
        *closed = true;
        let _ = self.stop.send(true);
        if let Some(applier) = self.applier.lock().await.take()
            && let Err(error) = applier.await
        {
            tracing::error!(%error, "stream applier failed");
        }
        self.index.close().await;
        tracing::info!(stream = %self.stream.cached_info().config.name, "event log closed");
    }
}
