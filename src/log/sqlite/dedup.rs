//! Dedup keys as the `dedup` table keeps them: the one home of what an append's key is, how it
//! is stored, and when a known key means the same event.
//!
//! A key names either an event id (`id:<event id>`, for provider ids and fingerprints) or an
//! entity whose latest state counts (`latest:<entity>`); the table keeps a 16-byte SHA-256
//! prefix of that text, not the text: ids and entity keys run to 40-60 bytes and every key is
//! stored twice (the table and its `created_at` index), while a digest is all a lookup needs.
//! For a latest-state key, `state` is the digest of the latest state's id (its fingerprint),
//! which a new state is compared with; an id key needs none, since its id is the key.
//!
//! What a key recognizes (keys live in their own table so they outlive their events):
//! - [`ProviderId`](crate::event::Identity::ProviderId) and
//!   [`Fingerprint`](crate::event::Identity::Fingerprint) key on `id:<event id>`. A redelivery
//!   is a duplicate while the first event is retained (the unique `id` index finds it, whatever
//!   its age), and within the dedup window even after retention removed it.
//! - [`LatestState`](crate::event::Identity::LatestState) keys on `latest:<entity>` and
//!   remembers the id (state fingerprint) of the entity's latest event; only the same
//!   fingerprint again, within the window, is a duplicate. A state recurring after a different
//!   one is a new event; when its fingerprint names an older event it is stored as
//!   `<fingerprint>-<sequence>` (the event's id from then on; see `Event.id`).
//! - When the original was since removed by retention, a duplicate is answered with a minimal
//!   event carrying only the remembered id and sequence.

use rusqlite::{CachedStatement, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::schema::sequence_column;
use crate::event::Identity;

/// Bytes kept of a SHA-256: collisions among 2^64 keys stay below one in 10^19.
const DIGEST_BYTES: usize = 16;

/// The dedup key of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key {
    digest: [u8; DIGEST_BYTES],
    /// A latest-state key (an entity's), rather than an event id's.
    pub latest: bool,
}

impl Key {
    /// The key an event with `id` and this identity is recognized by.
    pub(super) fn of(identity: &Identity, id: &str) -> Key {
        match identity {
            Identity::ProviderId | Identity::Fingerprint => Key {
                digest: digest(&["id:", id]),
                latest: false,
            },
            Identity::LatestState(entity) => Key {
                digest: digest(&["latest:", entity.as_str()]),
                latest: true,
            },
        }
    }
}

/// A row of the dedup table.
#[derive(Debug)]
pub(super) struct Entry {
    /// The event stored under the key (possibly removed by retention since).
    pub sequence: u64,
    state: Option<Vec<u8>>,
    pub created_at: i64,
}

impl Entry {
    /// Whether an append with `id` under `key` repeats the event this entry remembers: for an
    /// id key always, for a latest-state key when the state (its id) is the same.
    pub(super) fn same_event(&self, key: &Key, id: &str) -> bool {
        !key.latest || self.state.as_deref() == Some(&digest(&[id])[..])
    }
}

pub(super) const SELECT: &str = "SELECT sequence, state, created_at FROM dedup WHERE key = ?1";

pub(super) const UPSERT: &str = "INSERT INTO dedup (key, sequence, state, created_at) \
    VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO UPDATE SET sequence = excluded.sequence, \
    state = excluded.state, created_at = excluded.created_at";

/// The entry under `key`, with `select` prepared from [`SELECT`].
pub(super) fn entry(
    select: &mut CachedStatement<'_>,
    key: &Key,
) -> rusqlite::Result<Option<Entry>> {
    select
        .query_row([&key.digest[..]], |row| {
            Ok(Entry {
                sequence: sequence_column(row, 0)?,
                state: row.get(1)?,
                created_at: row.get(2)?,
            })
        })
        .optional()
}

/// Remembers that the event `sequence`, whose id (state fingerprint) is `id`, was stored under
/// `key` at `now_ms`, with `upsert` prepared from [`UPSERT`].
pub(super) fn remember(
    upsert: &mut CachedStatement<'_>,
    key: &Key,
    sequence: i64,
    id: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let state = key.latest.then(|| digest(&[id]));
    upsert.execute((
        &key.digest[..],
        sequence,
        state.as_ref().map(|state| &state[..]),
        now_ms,
    ))?;
    Ok(())
}

fn digest(parts: &[&str]) -> [u8; DIGEST_BYTES] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    let mut digest = [0; DIGEST_BYTES];
    digest.copy_from_slice(&hasher.finalize()[..DIGEST_BYTES]);
    digest
}

/// Rewrites a dedup table of text keys (versions 1 to 5: `key`, `sequence`, `id`,
/// `created_at`) into digests, in the caller's transaction: every key stays recognized.
pub(super) fn rewrite_text_keys(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE dedup_digests (
            key BLOB PRIMARY KEY,
            sequence INTEGER NOT NULL,
            state BLOB,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID;",
    )?;
    {
        let mut insert = conn.prepare(
            "INSERT OR REPLACE INTO dedup_digests (key, sequence, state, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut rows = conn.prepare("SELECT key, sequence, id, created_at FROM dedup")?;
        let mut rows = rows.query([])?;
        while let Some(row) = rows.next()? {
            let text: String = row.get(0)?;
            let id: String = row.get(2)?;
            let latest = text.starts_with("latest:");
            let state = latest.then(|| digest(&[&id]));
            insert.execute((
                &digest(&[&text])[..],
                row.get::<_, i64>(1)?,
                state.as_ref().map(|state| &state[..]),
                row.get::<_, i64>(3)?,
            ))?;
        }
    }
    conn.execute_batch(
        "DROP TABLE dedup;
         ALTER TABLE dedup_digests RENAME TO dedup;
         CREATE INDEX dedup_created_at ON dedup (created_at);",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EntityKey;

    #[test]
    fn keys_keep_ids_and_entities_apart_and_states_compare_by_id() {
        let entity = Identity::LatestState(EntityKey::new("sim").part("s1"));
        let by_id = Key::of(&Identity::ProviderId, "gigs:evt_1");
        assert_eq!(by_id, Key::of(&Identity::Fingerprint, "gigs:evt_1"));
        assert_ne!(by_id, Key::of(&Identity::ProviderId, "gigs:evt_2"));
        let latest = Key::of(&entity, "gigs:state_a");
        assert_eq!(
            latest,
            Key::of(&entity, "gigs:state_b"),
            "one key per entity"
        );
        assert!(latest.latest && !by_id.latest);
        let remembered = Entry {
            sequence: 1,
            state: Some(digest(&["gigs:state_a"]).to_vec()),
            created_at: 0,
        };
        assert!(remembered.same_event(&latest, "gigs:state_a"));
        assert!(!remembered.same_event(&latest, "gigs:state_b"));
        assert!(remembered.same_event(&by_id, "gigs:evt_1"));
        // The text an old store keyed by digests to what a new append looks up.
        assert_eq!(digest(&["id:gigs:evt_1"]), by_id.digest);
    }
}
