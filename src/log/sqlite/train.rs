//! Training the store's dictionaries (see `codec`) from its own bodies, off the writer thread.
//!
//! Once enough events are stored plain, the writer starts a thread that reads the newest plain
//! bodies over a read-only connection and trains one dictionary per table; the result comes
//! back as a writer command, and the writer stores the dictionaries before any row may name
//! them. A failed attempt (too few or too uniform bodies) is tried again after as many events.

use std::path::PathBuf;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::codec::{Codec, Kind, PLAIN};
use super::schema;
use super::writer::{Command, Control};

/// The most bodies a dictionary is trained on: zstd advises about a hundred times the
/// dictionary's size in samples, and reading more only makes training slower.
const SAMPLES: i64 = 4_000;

/// The largest dictionary: enough for several providers' field names and fixed values.
const DICTIONARY_BYTES: usize = 32 * 1024;

/// What a training thread found, per kind: the dictionary, or why there is none.
pub(super) type Trained = Vec<(Kind, Result<Vec<u8>, String>)>;

/// The writer's side: when to train, and whether a training thread is out.
pub(super) struct Trainer {
    path: PathBuf,
    /// Events stored plain before a dictionary is trained (`None`: bodies stay plain).
    after: Option<u64>,
    /// Events stored since the last attempt (or in the store, before the first).
    since: u64,
    running: bool,
    /// Weak, so a training thread never keeps the writer's queue open.
    commands: mpsc::WeakSender<Command>,
}

impl Trainer {
    /// `stored` is how many events the store already holds: a store written without a
    /// dictionary (by an older version, say) trains at its first commit.
    pub(super) fn new(
        path: PathBuf,
        after: Option<u64>,
        stored: u64,
        commands: mpsc::WeakSender<Command>,
    ) -> Trainer {
        Trainer {
            path,
            after,
            since: stored,
            running: false,
            commands,
        }
    }

    /// Counts `stored` more events and starts a training thread when enough were stored plain.
    pub(super) fn committed(&mut self, codec: &Codec, stored: usize) {
        let Some(after) = self.after else { return };
        let wanted: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|kind| codec.wants_dictionary(*kind))
            .collect();
        if wanted.is_empty() {
            return;
        }
        self.since = self.since.saturating_add(stored as u64);
        if self.running || self.since < after {
            return;
        }
        self.since = 0;
        let path = self.path.clone();
        let commands = self.commands.clone();
        let spawned = std::thread::Builder::new()
            .name("hooknorm-sqlite-train".to_owned())
            .spawn(move || {
                let trained = train(&path, &wanted);
                // Gone when the log was closed meanwhile: nothing is left to install into.
                if let Some(commands) = commands.upgrade() {
                    let _ =
                        commands.blocking_send(Command::Control(Control::Dictionaries { trained }));
                }
            });
        match spawned {
            Ok(_) => self.running = true,
            Err(error) => tracing::warn!(%error, "cannot start dictionary training"),
        }
    }

    /// Stores what a training thread trained and starts compressing with it.
    pub(super) fn install(
        &mut self,
        conn: &mut Connection,
        codec: &Codec,
        trained: Trained,
        now_ms: i64,
    ) {
        self.running = false;
        let mut dictionaries = Vec::new();
        for (kind, outcome) in trained {
            match outcome {
                Ok(content) => dictionaries.push((kind, content)),
                Err(reason) => {
                    tracing::info!(kind = kind.as_str(), %reason, "no dictionary trained yet");
                }
            }
        }
        if dictionaries.is_empty() {
            return;
        }
        match store(conn, &dictionaries, now_ms) {
            Ok(ids) => {
                for ((kind, content), id) in dictionaries.iter().zip(ids) {
                    codec.install(id, *kind, content);
                    tracing::info!(
                        kind = kind.as_str(),
                        id,
                        bytes = content.len(),
                        "bodies are compressed with a trained dictionary from now on"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "cannot store trained dictionaries"),
        }
    }
}

/// Inserts the dictionaries in one transaction; their ids, in order.
fn store(
    conn: &mut Connection,
    dictionaries: &[(Kind, Vec<u8>)],
    now_ms: i64,
) -> rusqlite::Result<Vec<i64>> {
    let tx = conn.transaction()?;
    let mut ids = Vec::with_capacity(dictionaries.len());
    for (kind, content) in dictionaries {
        tx.execute(
            "INSERT INTO dictionaries (kind, content, created_at) VALUES (?1, ?2, ?3)",
            (kind.as_str(), content, now_ms),
        )?;
        ids.push(tx.last_insert_rowid());
    }
    tx.commit()?;
    Ok(ids)
}

/// Trains one dictionary per kind from the newest plain bodies of its table.
fn train(path: &std::path::Path, kinds: &[Kind]) -> Trained {
    let conn = match schema::open_reader(path) {
        Ok(conn) => conn,
        Err(error) => {
            let reason = format!("cannot read samples: {error}");
            return kinds
                .iter()
                .map(|kind| (*kind, Err(reason.clone())))
                .collect();
        }
    };
    kinds
        .iter()
        .map(|kind| {
            let started = Instant::now();
            let outcome = samples(&conn, *kind)
                .map_err(|error| format!("cannot read samples: {error}"))
                .and_then(|samples| {
                    zstd::dict::from_samples(&samples, DICTIONARY_BYTES).map_err(|error| {
                        format!("training on {} samples failed: {error}", samples.len())
                    })
                });
            tracing::debug!(
                kind = kind.as_str(),
                ok = outcome.is_ok(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "dictionary training"
            );
            (*kind, outcome)
        })
        .collect()
}

fn samples(conn: &Connection, kind: Kind) -> rusqlite::Result<Vec<Vec<u8>>> {
    let table = match kind {
        Kind::Event => "events",
        Kind::Delivery => "deliveries",
    };
    conn.prepare(&format!(
        "SELECT body FROM {table} WHERE codec = {PLAIN} ORDER BY sequence DESC LIMIT ?1"
    ))?
    .query_map([SAMPLES], |row| row.get(0))?
    .collect()
}
