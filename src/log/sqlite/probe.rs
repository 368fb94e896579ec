//! The writer's readiness probe: a write that fails whenever an append would.

use rusqlite::{Connection, TransactionBehavior};

/// Commits a heartbeat row: it fails the way an append would (full disk, I/O error, a lock
/// held by another process), so readiness tracks whether appends can succeed. After a group
/// commit failed, the heartbeat carries `room` bytes as well (the largest event that failed),
/// removed again once committed: on a full disk a tiny write still fits in WAL frames already
/// allocated while every real append fails, and readiness would say ready.
pub(super) fn probe(
    conn: &mut Connection,
    now_ms: i64,
    room: Option<usize>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('probe', ?1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([now_ms])?;
    if let Some(bytes) = room {
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('probe_room', zeroblob(?1)) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?
        .execute([i64::try_from(bytes).unwrap_or(i64::MAX)])?;
    }
    tx.commit()?;
    if room.is_some() {
        conn.prepare_cached("DELETE FROM meta WHERE key = 'probe_room'")?
            .execute([])?;
    }
    Ok(())
}
