//! Connections and the versioned schema (`PRAGMA user_version`), created idempotently.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

/// The schema this build writes; a file with a newer version is refused rather than misread.
pub(super) const SCHEMA_VERSION: i64 = 7;

/// How long a connection waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer's page cache (negative = KiB): the id, dedup and refs indexes are written at
/// random places, and pages found in the cache need no `read(2)`.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// Bounds the WAL file after checkpoints so one burst does not keep gigabytes on disk.
const JOURNAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// Version 1.
///
/// - `events`: the prost-encoded `Event` (with its sequence) plus the columns reads filter on.
///   `AUTOINCREMENT` keeps the sequence high-water mark in `sqlite_sequence`, so sequences are
///   never reused, even after retention deletes the newest rows. The index on `type` ends in
///   the rowid, so it also orders by sequence.
/// - `refs`: one row per distinct subject or related resource of an event; its primary key
///   `(kind, id, sequence)` is the index resource filters walk in sequence order. (Versions 1
///   to 5 also indexed it by sequence: see version 6.)
/// - `dedup`: keys recognizing redeliveries; `id` is the event id (fingerprint) as received.
///   (Version 6 keeps digests instead: see `dedup`.)
/// - `meta`: small key-value state (the writability probe's heartbeat).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS events (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    provider INTEGER NOT NULL,
    source TEXT NOT NULL,
    type TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at);
CREATE INDEX IF NOT EXISTS events_type ON events (type);
CREATE TABLE IF NOT EXISTS refs (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    PRIMARY KEY (kind, id, sequence)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup (
    key TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,
    id TEXT NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_created_at ON dedup (created_at);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
";

/// What versions 1 to 5 also created: refs by sequence, for retention (see version 6).
#[cfg(test)]
const REFS_SEQUENCE: &str = "CREATE INDEX IF NOT EXISTS refs_sequence ON refs (sequence);";

/// The version 1 schema, for tests that make a file as an older build left it.
#[cfg(test)]
pub(super) const SCHEMA_V1_FOR_TESTS: [&str; 2] = [SCHEMA_V1, REFS_SEQUENCE];

/// Version 2: `events.appended_at`, the writer's clock when the event was committed (unix ms),
/// which retention by age goes by. `received_at` is what the caller says, and a caller may say
/// anything: aging by it would let a far-past `received_at` make an acknowledged event
/// removable at once. Rows from version 1 take their `received_at`, the best record there is.
const SCHEMA_V2: &str = "
ALTER TABLE events ADD COLUMN appended_at INTEGER NOT NULL DEFAULT 0;
UPDATE events SET appended_at = received_at;
CREATE INDEX IF NOT EXISTS events_appended_at ON events (appended_at);
";

/// Version 3: `deliveries`, the webhook as received (a prost-encoded `WebhookDelivery`) by its
/// event's sequence. Apart from `events` so that scans and stream reads of `events` never page
/// through raw bodies, which only `GetEvent` with the full view reads. Events stored by older
/// versions have none.
const SCHEMA_V3: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    sequence INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);
";

/// Version 4: no index on `appended_at`. Retention by age walks `events` in sequence order and
/// stops at the first young event, so no query needs it, and it was one more B-tree insert per
/// appended event on the writer thread. Dropped in place; the column stays.
const SCHEMA_V4: &str = "
DROP INDEX IF EXISTS events_appended_at;
";

/// Version 5: `events.duplicates`, how many deliveries were recognized as redeliveries of the
/// event since it was stored (the events console shows it). Counted from this version on: an
/// event stored before counts only the redeliveries after the upgrade.
const SCHEMA_V5: &str = "
ALTER TABLE events ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0;
";

/// Version 6: bodies may be compressed (see `codec`). `codec` on `events` and `deliveries` names
/// the dictionary a row's body was compressed with (0: kept as its prost encoding, as every row
/// before this version is); `dictionaries` holds them, trained on the store's own events.
/// Adding the columns rewrites no row. No `refs_sequence` index: it cost every append an insert
/// per resource and more disk than the refs themselves, for retention alone, which now finds an
/// event's refs by the resources its body names. And dedup keys become digests (see `dedup`):
/// the table is rewritten, every key kept.
const SCHEMA_V6: &str = "
ALTER TABLE events ADD COLUMN codec INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN codec INTEGER NOT NULL DEFAULT 0;
DROP INDEX IF EXISTS refs_sequence;
";

/// Version 7: sources and types as small integers naming a row of `names`, and new rows are
/// records, an event and its delivery compressed together in the `events` row with a
/// dictionary of kind `record` (see `codec`, which version 6 builds cannot read).
///
/// An event's source and type were text in its row and again in the `type` index, some 40 B an
/// event for a few dozen distinct values; filters now match names and look their ids up. The
/// columns are added, filled and the old ones dropped in place (each `DROP COLUMN` rewrites
/// the table once), so sequences and `sqlite_sequence` stay as they were.
const SCHEMA_V7: &str = "
CREATE TABLE IF NOT EXISTS names (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT OR IGNORE INTO names (name) SELECT DISTINCT source FROM events;
INSERT OR IGNORE INTO names (name) SELECT DISTINCT type FROM events;
ALTER TABLE events ADD COLUMN source_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN type_id INTEGER NOT NULL DEFAULT 0;
UPDATE events SET
    source_id = (SELECT id FROM names WHERE name = events.source),
    type_id = (SELECT id FROM names WHERE name = events.type);
DROP INDEX IF EXISTS events_type;
ALTER TABLE events DROP COLUMN source;
ALTER TABLE events DROP COLUMN type;
CREATE INDEX IF NOT EXISTS events_type_id ON events (type_id);
";

/// Created by every version from 6 on (and harmless on older files).
const DICTIONARIES: &str = "
CREATE TABLE IF NOT EXISTS dictionaries (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    content BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
";

/// The statements that made a version 5 file, for tests that make one as that build left it.
#[cfg(test)]
pub(super) const SCHEMA_V5_FOR_TESTS: [&str; 6] = [
    SCHEMA_V1,
    REFS_SEQUENCE,
    SCHEMA_V2,
    SCHEMA_V3,
    SCHEMA_V4,
    SCHEMA_V5,
];

/// Makes a file as version 6 left it, for tests.
#[cfg(test)]
pub(super) fn create_version_6_for_tests(conn: &Connection) -> rusqlite::Result<()> {
    for ddl in SCHEMA_V5_FOR_TESTS
        .into_iter()
        .chain([SCHEMA_V6, DICTIONARIES])
    {
        conn.execute_batch(ddl)?;
    }
    super::dedup::rewrite_text_keys(conn)?;
    conn.pragma_update(None, "user_version", 6)
}

/// The statements that made a version 3 file, for tests that make one as that build left it.
#[cfg(test)]
pub(super) const SCHEMA_V3_FOR_TESTS: [&str; 4] = [SCHEMA_V1, REFS_SEQUENCE, SCHEMA_V2, SCHEMA_V3];

/// Why the file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum SchemaError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("journal mode is {0}, wal is required")]
    NotWal(String),
    #[error("schema version {0} is newer than this build supports ({SCHEMA_VERSION})")]
    TooNew(i64),
}

/// Opens the write connection: WAL, `synchronous=FULL` (a commit returns only once fsync'd),
/// busy timeout, and the schema brought to [`SCHEMA_VERSION`]. An index of a replicated stream
/// (`index`) uses `synchronous=NORMAL`: the stream holds what was acknowledged, and a commit the
/// OS lost in a power cut is applied again from it, since the position moves in the same
/// transaction.
pub(super) fn open_writer(path: &Path, index: bool) -> Result<Connection, SchemaError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SchemaError::NotWal(mode));
    }
    conn.pragma_update(None, "synchronous", if index { "NORMAL" } else { "FULL" })?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // The writer runs a dozen distinct statements per batch; keep them all prepared.
    conn.set_prepared_statement_cache_capacity(64);
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a read-only connection (readers never take the write lock).
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), SchemaError> {
    // Checked inside the write transaction so two processes opening at once agree.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(SchemaError::TooNew(version));
    }
    // Version 1's statements are idempotent, but its `type` index names a column version 7
    // drops: they run on a new file only, and every older one already has what they make.
    if version < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    // A fresh file goes through the same steps as an old one. The column check, not only the
    // version, guards the `ALTER`, which SQLite cannot make conditional.
    if !has_column(&tx, "events", "appended_at")? {
        tx.execute_batch(SCHEMA_V2)?;
    }
    tx.execute_batch(SCHEMA_V3)?;
    if version < 4 {
        tx.execute_batch(SCHEMA_V4)?;
    }
    if !has_column(&tx, "events", "duplicates")? {
        tx.execute_batch(SCHEMA_V5)?;
    }
    if !has_column(&tx, "events", "codec")? {
        tx.execute_batch(SCHEMA_V6)?;
        super::dedup::rewrite_text_keys(&tx)?;
    }
    tx.execute_batch(DICTIONARIES)?;
    if !has_column(&tx, "events", "type_id")? {
        tx.execute_batch(SCHEMA_V7)?;
    }
    if version != SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

/// Whether `table` has this column yet.
fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |row| row.get(0),
    )
}

/// The highest sequence ever assigned (0 for a new log), deleted events included.
pub(super) fn last_sequence(conn: &Connection) -> rusqlite::Result<u64> {
    let high_water = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |row| sequence_column(row, 0),
        )
        .optional()?;
    let newest = conn.query_row("SELECT MAX(sequence) FROM events", [], |row| {
        optional_sequence_column(row, 0)
    })?;
    Ok(high_water.unwrap_or(0).max(newest.unwrap_or(0)))
}

/// A sequence as SQLite stores it (INTEGER is i64; sequences never get near `i64::MAX`).
pub(super) fn sequence_to_sql(sequence: u64) -> rusqlite::Result<i64> {
    i64::try_from(sequence)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
}

/// Reads a sequence column, refusing negative values.
pub(super) fn sequence_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

/// Reads a nullable sequence column (`MAX`, `MIN`), refusing negative values.
pub(super) fn optional_sequence_column(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<u64>> {
    let value: Option<i64> = row.get(index)?;
    value
        .map(|value| {
            u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
        })
        .transpose()
}
