//! The SQLite store as a replica's local index of a replicated log (the NATS backend): the same
//! schema, reads, live feed and dedup rules, but fed from an ordered stream instead of taking
//! appends. Each [`IndexEntry`] comes with the sequence the stream gave it and the time its
//! accepting replica stamped on it, and the writer applies entries in stream order, one
//! transaction per batch, recording how far it got (`meta`: `stream_applied`,
//! `stream_time_ms`) in the same transaction. So every replica that applies the same stream
//! from the same point makes the same decisions (event or duplicate, and the event's id), and a
//! restarted replica resumes right after the last entry it committed.
//!
//! The dedup window is measured against the entries' own time, never a local clock: an entry's
//! time is the greatest stamp applied so far (stamps from replicas with slightly different
//! clocks cannot move it back), and dedup keys are expired only against that time, so expiring
//! them never changes a later decision.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{oneshot, watch};

use super::batch::{Batch, Outcome, Prepared, Statements, append_one};
use super::codec::Codec;
use super::dedup;
use super::read::{self, unavailable};
use super::schema::{optional_sequence_column, sequence_column, sequence_to_sql};
use super::{SqliteEventLog, SqliteOptions};
use crate::config::StoreConfig;
use crate::log::{AppendRequest, Appended, CommittedEvent, LogError};
use crate::proto::v1::Event;

/// One entry of the stream, at its stream sequence.
pub struct IndexEntry {
    pub sequence: u64,
    pub kind: IndexEntryKind,
}

/// What an entry asks of the index.
#[allow(
    clippy::large_enum_variant,
    reason = "appends are nearly every entry; boxing them would cost an allocation each"
)]
pub enum IndexEntryKind {
    /// A delivery: stored as an event unless the dedup rules make it a duplicate.
    Append {
        request: AppendRequest,
        /// When the accepting replica took it (unix ms).
        accepted_at_ms: i64,
        /// The caller waiting for the decision, when it waits on this replica.
        reply: Option<IndexReply>,
    },
    /// Retention: removes every event below `sequence`.
    RemoveBelow { sequence: u64 },
    /// Not for the index (another subject, an unreadable record); only advances the position.
    Skip,
}

/// Where the decision on an append goes.
pub type IndexReply = oneshot::Sender<Result<IndexOutcome, LogError>>;

/// What applying an append decided.
pub struct IndexOutcome(Outcome);

impl IndexOutcome {
    pub fn into_appended(self) -> Appended {
        self.0.into_appended()
    }
}

/// Where an index stands in its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexPosition {
    /// The last stream sequence applied (0: none).
    pub applied: u64,
    /// The index's time: the greatest accepted-at stamp applied (unix ms).
    pub time_ms: i64,
}

/// The writer's side of an index: its position, and who is told when it moves.
pub(super) struct IndexState {
    pub position: IndexPosition,
    pub published: watch::Sender<IndexPosition>,
}

/// The commands' answer channel for [`SqliteEventLog::apply`].
pub(super) type ApplyReply = oneshot::Sender<Result<(), LogError>>;

const APPLIED_KEY: &str = "stream_applied";
const TIME_KEY: &str = "stream_time_ms";
const BINDING_KEY: &str = "stream_binding";

impl SqliteEventLog {
    /// Opens (creating if needed) an index under `dir`. Blocking; call once at start-up.
    pub fn open_index(
        dir: &Path,
        config: &StoreConfig,
        options: SqliteOptions,
    ) -> Result<SqliteEventLog, LogError> {
        let config = StoreConfig {
            path: dir.to_owned(),
            ..config.clone()
        };
        SqliteEventLog::open_mode(&config, options, true)
    }

    /// Where the index stands, as last committed.
    pub fn index_position(&self) -> IndexPosition {
        self.index
            .as_ref()
            .map(|position| *position.borrow())
            .unwrap_or_default()
    }

    /// Follows the index's position as batches commit (`None` for a log that is no index).
    pub fn index_positions(&self) -> Option<watch::Receiver<IndexPosition>> {
        self.index.clone()
    }

    /// Applies stream entries in order, in one transaction; answers each append's caller once
    /// committed. On an error nothing of the batch is applied (callers' replies are dropped).
    pub async fn apply(&self, entries: Vec<IndexEntry>) -> Result<(), LogError> {
        self.ask(|reply| {
            super::writer::Command::Control(super::writer::Control::Apply { entries, reply })
        })
        .await
    }

    /// What the index says the stream it was built from is (empty for a new index).
    pub async fn binding(&self) -> Result<String, LogError> {
        self.reads
            .run(|conn, _| meta_text(conn, BINDING_KEY).map_err(unavailable))
            .await
    }

    /// Records which stream the index is built from.
    pub async fn bind(&self, binding: String) -> Result<(), LogError> {
        self.ask(|reply| {
            super::writer::Command::Control(super::writer::Control::SetMeta {
                key: BINDING_KEY,
                value: binding,
                reply,
            })
        })
        .await
    }

    /// Whether `request`, arriving at `now_ms`, repeats what the index stores; the answer it
    /// would get, if so. Read-only: for a delivery the broker refused as a repeat, to tell
    /// whether the index still considers it one.
    pub async fn recognize(
        &self,
        request: &AppendRequest,
        now_ms: i64,
    ) -> Result<Option<Appended>, LogError> {
        let fresh_since_ms = now_ms.saturating_sub(self.dedup_window_ms);
        let key = dedup::Key::of(&request.identity, &request.event.id);
        let id = request.event.id.clone();
        self.reads
            .run(move |conn, codec| recognize(conn, codec, &key, &id, fresh_since_ms))
            .await
    }

    /// For a retention pass over the index: the oldest stored sequence, the sequence of the
    /// `keep`-th newest event, the first event appended at or after `since_ms` (the newest
    /// sequence ever stored plus one when none was), and how many events lie below `below`.
    pub async fn retention_view(
        &self,
        keep: Option<u64>,
        since_ms: Option<i64>,
    ) -> Result<RetentionView, LogError> {
        self.reads
            .run(move |conn, _| retention_view(conn, keep, since_ms))
            .await
    }

    /// Removes dedup keys created before `before_ms` (by the index's own time: see the module
    /// documentation); returns how many.
    pub async fn expire_dedup(&self, before_ms: i64) -> Result<u64, LogError> {
        let plan = super::retention::RetentionPlan {
            below_sequence: None,
            appended_before_ms: None,
            dedup_before_ms: before_ms,
        };
        let report = self
            .ask(|reply| {
                super::writer::Command::Control(super::writer::Control::Retention { plan, reply })
            })
            .await?;
        Ok(report.dedup_keys_removed)
    }

    /// How many events have a sequence below `below`.
    pub async fn count_below(&self, below: u64) -> Result<u64, LogError> {
        self.reads
            .run(move |conn, _| {
                let below = i64::try_from(below).unwrap_or(i64::MAX);
                conn.query_row(
                    "SELECT COUNT(*) FROM events WHERE sequence < ?1",
                    [below],
                    |row| sequence_column(row, 0),
                )
                .map_err(unavailable)
            })
            .await
    }
}

/// See [`SqliteEventLog::retention_view`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RetentionView {
    pub oldest: Option<u64>,
    pub keep_from: Option<u64>,
    pub young_from: Option<u64>,
}

fn retention_view(
    conn: &Connection,
    keep: Option<u64>,
    since_ms: Option<i64>,
) -> Result<RetentionView, LogError> {
    let oldest = conn
        .query_row("SELECT MIN(sequence) FROM events", [], |row| {
            optional_sequence_column(row, 0)
        })
        .map_err(unavailable)?;
    let keep_from = match keep {
        Some(keep) => read::sequence_ranked(conn, keep)?,
        None => None,
    };
    let young_from = match since_ms {
        Some(since_ms) => {
            let first = conn
                .query_row(
                    // The first young event in sequence order is the least young sequence;
                    // the walk reads only the old events, which retention removes next.
                    "SELECT sequence FROM events WHERE appended_at >= ?1 \
                     ORDER BY sequence LIMIT 1",
                    [since_ms],
                    |row| sequence_column(row, 0),
                )
                .optional()
                .map_err(unavailable)?;
            match first {
                Some(first) => Some(first),
                None => Some(
                    super::schema::last_sequence(conn)
                        .map_err(unavailable)?
                        .saturating_add(1),
                ),
            }
        }
        None => None,
    };
    Ok(RetentionView {
        oldest,
        keep_from,
        young_from,
    })
}

fn recognize(
    conn: &Connection,
    codec: &Codec,
    key: &dedup::Key,
    id: &str,
    fresh_since_ms: i64,
) -> Result<Option<Appended>, LogError> {
    let duplicate = |event: Event| {
        Some(Appended {
            event,
            duplicate: true,
        })
    };
    if !key.latest {
        // A retained event with this id is the same event, whatever its age.
        if let Some(event) = read::event_by_id(conn, codec, id, crate::log::View::Basic)? {
            return Ok(duplicate(event));
        }
    }
    let mut select = conn.prepare_cached(dedup::SELECT).map_err(unavailable)?;
    let Some(known) = dedup::entry(&mut select, key).map_err(unavailable)? else {
        return Ok(None);
    };
    if known.created_at < fresh_since_ms || !known.same_event(key, id) {
        return Ok(None);
    }
    let event = read::event_by_sequence(conn, codec, known.sequence)?.unwrap_or(Event {
        id: id.to_owned(),
        sequence: known.sequence,
        ..Event::default()
    });
    Ok(duplicate(event))
}

fn meta_text(conn: &Connection, key: &str) -> rusqlite::Result<String> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten()
        .unwrap_or_default())
}

/// Reads the position an index file records (zero for a new one).
pub(super) fn read_position(conn: &Connection) -> rusqlite::Result<IndexPosition> {
    let number = |key: &str| -> rusqlite::Result<i64> {
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .optional()?
            .flatten()
            .unwrap_or(0))
    };
    Ok(IndexPosition {
        applied: u64::try_from(number(APPLIED_KEY)?).unwrap_or(0),
        time_ms: number(TIME_KEY)?,
    })
}

/// One applied batch: the events it stored (in sequence order) and each waiting caller's answer.
pub(super) struct Applied {
    pub stored: Vec<Arc<CommittedEvent>>,
    pub replies: Vec<(IndexReply, Result<Outcome, LogError>)>,
}

/// Applies `entries` in one transaction, moving `position` (only once committed).
pub(super) fn apply_entries(
    conn: &mut Connection,
    codec: &Codec,
    entries: Vec<IndexEntry>,
    position: &mut IndexPosition,
    dedup_window_ms: i64,
) -> rusqlite::Result<Applied> {
    let mut next = *position;
    let mut stored = Vec::new();
    let mut replies = Vec::new();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut statements = Statements::prepare(&tx, codec)?;
        let mut sequence_slot = 0;
        let mut batch = Batch {
            now_ms: next.time_ms,
            fresh_since_ms: 0,
            next_sequence: &mut sequence_slot,
            stored: &mut stored,
            stored_index: HashMap::new(),
        };
        for entry in entries {
            // Entries at or below the position were applied before (a consumer that started
            // over); applying them again would be wrong, skipping them is exact.
            if entry.sequence <= next.applied {
                continue;
            }
            next.applied = entry.sequence;
            match entry.kind {
                IndexEntryKind::Append {
                    request,
                    accepted_at_ms,
                    reply,
                } => {
                    next.time_ms = next.time_ms.max(accepted_at_ms);
                    batch.now_ms = next.time_ms;
                    batch.fresh_since_ms = next.time_ms.saturating_sub(dedup_window_ms);
                    *batch.next_sequence = entry.sequence;
                    let outcome =
                        append_one(&mut statements, Prepared::new(request, codec), &mut batch)?;
                    if let Some(reply) = reply {
                        replies.push((reply, outcome));
                    }
                }
                IndexEntryKind::RemoveBelow { sequence } => {
                    remove_below(&tx, codec, sequence)?;
                    // Drop what was removed from the in-batch lookup too.
                    batch.stored_index.retain(|stored, _| *stored >= sequence);
                    tx.prepare_cached("DELETE FROM dedup WHERE created_at < ?1")?
                        .execute([next.time_ms.saturating_sub(dedup_window_ms)])?;
                }
                IndexEntryKind::Skip => {}
            }
        }
    }
    let mut upsert = tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?;
    upsert.execute((APPLIED_KEY, sequence_to_sql(next.applied)?))?;
    upsert.execute((TIME_KEY, next.time_ms))?;
    drop(upsert);
    tx.commit()?;
    *position = next;
    Ok(Applied { stored, replies })
}

/// Deletes the events below `below`, with their refs and deliveries.
fn remove_below(conn: &Connection, codec: &Codec, below: u64) -> rusqlite::Result<()> {
    let below = i64::try_from(below).unwrap_or(i64::MAX);
    let sequences = conn
        .prepare_cached("SELECT sequence FROM events WHERE sequence < ?1")?
        .query_map([below], |row| row.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    super::retention::delete_sequences(conn, codec, &sequences)
}

/// Wraps the writer's outcome for a caller of [`SqliteEventLog::apply`].
pub(super) fn outcome(outcome: Outcome) -> IndexOutcome {
    IndexOutcome(outcome)
}
