//! The applier: one task per replica that reads the whole stream in order (an ordered pull
//! consumer, from just after the index's position) and applies it to the local index in
//! batches. When the consumer fails (a server went away, the applying failed), it starts over
//! from what the index committed, so nothing is applied twice or skipped.
//!
//! Callers waiting for their own appends register by append id before publishing
//! ([`Waiters`]); the applier hands each waiter to the entry carrying its id, and the index
//! answers it once the entry is committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream::Stream as JetStream;
use futures_util::StreamExt;
use tokio::sync::{Notify, oneshot, watch};

use super::record::Subjects;
use crate::log::LogError;
use crate::log::sqlite::{IndexEntryKind, IndexOutcome, IndexReply, SqliteEventLog};

/// After a failure, the applier waits this long before starting over.
const RETRY_DELAY: Duration = Duration::from_millis(250);

pub(super) type WaiterReply = IndexReply;

/// Appends of this replica waiting for their entries to be applied, by append id.
#[derive(Default)]
pub(super) struct Waiters(Mutex<HashMap<String, WaiterReply>>);

impl Waiters {
    /// Registers `id`; the guard unregisters it when dropped (the caller gave up).
    pub fn register(
        self: &Arc<Self>,
        id: String,
    ) -> (
        WaiterGuard,
        oneshot::Receiver<Result<IndexOutcome, LogError>>,
    ) {
        let (reply, answer) = oneshot::channel();
        self.lock().insert(id.clone(), reply);
        let guard = WaiterGuard {
            waiters: Arc::clone(self),
            id,
        };
        (guard, answer)
    }

    fn take(&self, id: &str) -> Option<WaiterReply> {
        self.lock().remove(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, WaiterReply>> {
        // The map stays valid whatever a panicking holder did.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Unregisters a waiter when the append is over, answered or not.
pub(super) struct WaiterGuard {
    waiters: Arc<Waiters>,
    id: String,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        self.waiters.lock().remove(&self.id);
    }
}

/// Everything the applier task needs.
pub(super) struct Applier {
    pub stream: JetStream,
    pub index: Arc<SqliteEventLog>,
    pub subjects: Subjects,
    pub waiters: Arc<Waiters>,
    pub batch_max: usize,
    pub stop: watch::Receiver<bool>,
    /// Woken when the client reconnected, or when a caller has waited suspiciously long for an
    /// acknowledged message: either way the consumer may be gone with its server, and starting
    /// over from the index's position costs one request.
    pub restart: Arc<Notify>,
}

impl Applier {
    /// Applies the stream until `stop` turns true.
    pub async fn run(mut self) {
        loop {
            if *self.stop.borrow() {
                return;
            }
            let from = self.index.index_position().applied + 1;
            match self.follow(from).await {
                Ok(()) => return,
                Err(reason) => {
                    tracing::warn!(%reason, from, "stream applier restarts");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_DELAY) => {}
                        _ = self.stop.changed() => return,
                    }
                }
            }
        }
    }

    /// Follows the stream from sequence `from` until stopped (`Ok`) or until something fails.
    async fn follow(&mut self, from: u64) -> Result<(), String> {
        let config = pull::OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..pull::OrderedConfig::default()
        };
        let consumer = tokio::select! {
            consumer = self.stream.create_consumer(config) => consumer.map_err(|e| e.to_string())?,
            _ = self.stop.changed() => return Ok(()),
        };
        tracing::debug!(from, "stream applier follows");
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        loop {
            let first = tokio::select! {
                message = messages.next() => message,
                _ = self.stop.changed() => return Ok(()),
                () = self.restart.notified() => return Err("restart asked for".to_owned()),
            };
            let Some(first) = first else {
                return Err("the consumer ended".to_owned());
            };
            let mut batch = vec![first.map_err(|e| e.to_string())?];
            // Whatever else has arrived joins the batch: one transaction for all of it.
            while batch.len() < self.batch_max {
                match futures_util::FutureExt::now_or_never(messages.next()) {
                    Some(Some(Ok(message))) => batch.push(message),
                    Some(Some(Err(error))) => return Err(error.to_string()),
                    Some(None) | None => break,
                }
            }
            let mut entries = Vec::with_capacity(batch.len());
            for message in batch {
                let sequence = message.info().map_err(|e| e.to_string())?.stream_sequence;
                let message = message.message;
                let (mut entry, append_id) =
                    self.subjects
                        .entry(sequence, message.subject.as_str(), message.payload);
                if let (IndexEntryKind::Append { reply, .. }, Some(append_id)) =
                    (&mut entry.kind, append_id)
                {
                    *reply = self.waiters.take(&append_id);
                }
                entries.push(entry);
            }
            self.index.apply(entries).await.map_err(|e| e.to_string())?;
        }
    }
}
