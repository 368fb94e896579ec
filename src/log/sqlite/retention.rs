//! Retention passes, run by the writer thread one small transaction at a time between group
//! commits, so an append never waits for more than one chunk of deletes. Every chunk removes
//! the oldest events left, so what is kept never has a hole: the log's contract (and the
//! `removed_through` that catch-up reads report) depends on it.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::codec::Codec;
use crate::log::{LogError, RetentionReport};

/// Rows removed per transaction: small enough to keep appends waiting only milliseconds.
const CHUNK: usize = 512;

/// What one pass removes; cut-offs are computed by the caller when the pass is asked for.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetentionPlan {
    /// Events with a smaller sequence go (retention by count).
    pub below_sequence: Option<u64>,
    /// Events appended before this time go (retention by age), unix ms, oldest first up to
    /// the first one that is not: one appended later while the wall clock was behind keeps
    /// everything after it until it ages out too.
    pub appended_before_ms: Option<i64>,
    /// Dedup keys created before this time go (the dedup window), unix ms.
    pub dedup_before_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    ByCount,
    ByAge,
    DedupKeys,
}

/// A pass in progress and everyone waiting for it.
pub(super) struct RetentionJob {
    plan: RetentionPlan,
    phase: Phase,
    report: RetentionReport,
    replies: Vec<oneshot::Sender<Result<RetentionReport, LogError>>>,
}

impl RetentionJob {
    pub(super) fn new(
        plan: RetentionPlan,
        reply: oneshot::Sender<Result<RetentionReport, LogError>>,
    ) -> RetentionJob {
        RetentionJob {
            plan,
            phase: Phase::ByCount,
            report: RetentionReport::default(),
            replies: vec![reply],
        }
    }

    /// Another request while a pass runs joins it rather than queueing a second pass.
    pub(super) fn join(&mut self, reply: oneshot::Sender<Result<RetentionReport, LogError>>) {
        self.replies.push(reply);
    }

    /// Runs one chunk in its own transaction; `true` when the pass is complete.
    pub(super) fn step(&mut self, conn: &mut Connection, codec: &Codec) -> rusqlite::Result<bool> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (events_removed, dedup_keys_removed, phase_done) = match self.phase {
            Phase::ByCount => match self.plan.below_sequence {
                Some(below) => {
                    let removed = delete_events(
                        &tx,
                        codec,
                        "SELECT sequence FROM events WHERE sequence < ?1 \
                         ORDER BY sequence LIMIT ?2",
                        below_to_sql(below),
                    )?;
                    (removed, 0, removed < CHUNK)
                }
                None => (0, 0, true),
            },
            Phase::ByAge => match self.plan.appended_before_ms {
                Some(before) => {
                    let (removed, reached_young) =
                        delete_oldest_appended_before(&tx, codec, before)?;
                    (removed, 0, reached_young || removed < CHUNK)
                }
                None => (0, 0, true),
            },
            Phase::DedupKeys => {
                let removed = tx
                    .prepare_cached(
                        "DELETE FROM dedup WHERE key IN \
                         (SELECT key FROM dedup WHERE created_at < ?1 LIMIT ?2)",
                    )?
                    .execute((self.plan.dedup_before_ms, CHUNK as i64))?;
                (0, removed, removed < CHUNK)
            }
        };
        tx.commit()?;
        // Counted only once committed.
        self.report.events_removed += events_removed as u64;
        self.report.dedup_keys_removed += dedup_keys_removed as u64;
        if !phase_done {
            return Ok(false);
        }
        self.phase = match self.phase {
            Phase::ByCount => Phase::ByAge,
            Phase::ByAge => Phase::DedupKeys,
            Phase::DedupKeys => return Ok(true),
        };
        Ok(false)
    }

    /// Answers everyone waiting: the report so far, or why the pass stopped.
    pub(super) fn finish(self, outcome: Result<(), LogError>) {
        let answer = outcome.map(|()| self.report);
        for reply in self.replies {
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(answer.clone());
        }
    }
}

/// Sequences are stored as i64; a bound beyond that removes everything.
fn below_to_sql(below: u64) -> i64 {
    i64::try_from(below).unwrap_or(i64::MAX)
}

/// Deletes up to [`CHUNK`] events chosen by `select` (`?1` = `bound`, `?2` = limit) together
/// with their refs; returns how many.
fn delete_events(
    conn: &Connection,
    codec: &Codec,
    select: &str,
    bound: i64,
) -> rusqlite::Result<usize> {
    let sequences = conn
        .prepare_cached(select)?
        .query_map((bound, CHUNK as i64), |row| row.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    delete_sequences(conn, codec, &sequences)?;
    Ok(sequences.len())
}

/// Deletes, oldest first, up to [`CHUNK`] events appended before `before_ms`, stopping at the
/// first one that is not (walking the primary key, so the pass reads only what it deletes);
/// returns how many, and whether it stopped at such an event.
fn delete_oldest_appended_before(
    conn: &Connection,
    codec: &Codec,
    before_ms: i64,
) -> rusqlite::Result<(usize, bool)> {
    let oldest = conn
        .prepare_cached("SELECT sequence, appended_at FROM events ORDER BY sequence LIMIT ?1")?
        .query_map([CHUNK as i64], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<(i64, i64)>>>()?;
    let old = oldest
        .iter()
        .take_while(|(_, appended_at)| *appended_at < before_ms)
        .count();
    let sequences: Vec<i64> = oldest[..old]
        .iter()
        .map(|(sequence, _)| *sequence)
        .collect();
    delete_sequences(conn, codec, &sequences)?;
    Ok((old, old < oldest.len()))
}

/// Deletes these events, their deliveries and their refs. Refs are found by the resources each
/// event names (read from its body), by their primary key: an index of refs by sequence would
/// cost every append a B-tree insert per resource, and more disk than the refs themselves.
pub(super) fn delete_sequences(
    conn: &Connection,
    codec: &Codec,
    sequences: &[i64],
) -> rusqlite::Result<()> {
    let mut body = conn.prepare_cached("SELECT body, codec FROM events WHERE sequence = ?1")?;
    let mut delete_ref =
        conn.prepare_cached("DELETE FROM refs WHERE kind = ?1 AND id = ?2 AND sequence = ?3")?;
    let mut delete_delivery = conn.prepare_cached("DELETE FROM deliveries WHERE sequence = ?1")?;
    let mut delete_event = conn.prepare_cached("DELETE FROM events WHERE sequence = ?1")?;
    for sequence in sequences {
        let stored = body
            .query_row([sequence], |row| {
                Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
            })
            .optional()?;
        if let Some((stored, body_codec)) = stored {
            let unsigned = u64::try_from(*sequence).unwrap_or(0);
            match codec.event_refs(body_codec, unsigned, &stored) {
                Ok(refs) => {
                    for resource in refs {
                        delete_ref.execute((&resource.kind, &resource.id, sequence))?;
                    }
                }
                // Its refs stay behind, unreachable: resource reads join them to events.
                Err(reason) => tracing::warn!(
                    sequence,
                    %reason,
                    "cannot read a removed event's resources, its refs stay"
                ),
            }
        }
        delete_delivery.execute([sequence])?;
        delete_event.execute([sequence])?;
    }
    Ok(())
}
