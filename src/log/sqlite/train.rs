//! Training the store's record dictionary (see `codec`) from its own events, off the writer
//! thread.
//!
//! Once enough events are stored without one, the writer starts a thread that reads the newest
//! events and their deliveries over a read-only connection and trains a dictionary on them as
//! records; the result comes back as a writer command, and the writer stores the dictionary
//! before any row may name it. Rows of any codec are samples (a store that schema version 6
//! compressed apart trains on those), read through the codec. A failed attempt (too few or too
//! uniform events) is tried again after as many events.

use std::path::PathBuf;
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::codec::{Codec, Kind};
use super::frame;
use super::schema;
use super::writer::{Command, Control};

/// The most events a dictionary is trained on: zstd advises about a hundred times the
/// dictionary's size in samples, and reading more only makes training slower.
const SAMPLES: i64 = 4_000;

/// The most sample bytes a dictionary is trained on, whatever the events' size: zstd wants about
/// a hundred times the dictionary's size, and the samples are held twice while training (read,
/// then copied into one buffer), so large webhooks must not make training a memory spike.
const SAMPLE_BYTES: usize = 8 * 1024 * 1024;

/// The largest dictionary: enough for several providers' field names and fixed values.
const DICTIONARY_BYTES: usize = 32 * 1024;

/// What a training thread found: the dictionary, or why there is none.
pub(super) type Trained = Result<Vec<u8>, String>;

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

    /// Counts `stored` more events and starts a training thread when enough were stored
    /// without a dictionary.
    pub(super) fn committed(&mut self, codec: &Codec, stored: usize) {
        let Some(after) = self.after else { return };
        if !codec.wants_dictionary() {
            return;
        }
        self.since = self.since.saturating_add(stored as u64);
        if self.running || self.since < after {
            return;
        }
        self.since = 0;
        let path = self.path.clone();
        let commands = self.commands.clone();
        let codec = codec.clone();
        let spawned = std::thread::Builder::new()
            .name("hooknorm-sqlite-train".to_owned())
            .spawn(move || {
                let trained = train(&path, &codec);
                // Gone when the log was closed meanwhile: nothing is left to install into.
                if let Some(commands) = commands.upgrade() {
                    let _ =
                        commands.blocking_send(Command::Control(Control::Dictionary { trained }));
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
        let content = match trained {
            Ok(content) => content,
            Err(reason) => {
                tracing::info!(%reason, "no dictionary trained yet");
                return;
            }
        };
        match store(conn, Kind::Record, &content, now_ms) {
            Ok(id) => {
                codec.install(id, Kind::Record, &content);
                tracing::info!(
                    id,
                    bytes = content.len(),
                    "events are compressed with a trained dictionary from now on"
                );
            }
            Err(error) => tracing::warn!(%error, "cannot store a trained dictionary"),
        }
    }
}

/// Inserts a dictionary; its id.
fn store(conn: &Connection, kind: Kind, content: &[u8], now_ms: i64) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO dictionaries (kind, content, created_at) VALUES (?1, ?2, ?3)",
        (kind.as_str(), content, now_ms),
    )?;
    Ok(conn.last_insert_rowid())
}

/// Trains a record dictionary on the newest events.
fn train(path: &std::path::Path, codec: &Codec) -> Trained {
    let started = Instant::now();
    let conn =
        schema::open_reader(path).map_err(|error| format!("cannot read samples: {error}"))?;
    let samples = samples(&conn, codec)?;
    let trained = zstd::dict::from_samples(&samples, DICTIONARY_BYTES)
        .map_err(|error| format!("training on {} samples failed: {error}", samples.len()));
    tracing::debug!(
        ok = trained.is_ok(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "dictionary training"
    );
    trained
}

/// The newest events with their deliveries, each as the record a row would hold (the event
/// with its sequence, which makes no difference to training), up to [`SAMPLES`] of them and
/// [`SAMPLE_BYTES`] in all.
fn samples(conn: &Connection, codec: &Codec) -> Result<Vec<Vec<u8>>, String> {
    let read = |error: rusqlite::Error| format!("cannot read samples: {error}");
    let mut statement = conn
        .prepare(
            "SELECT e.sequence, e.body, e.codec, d.body, d.codec FROM events e \
             LEFT JOIN deliveries d ON d.sequence = e.sequence \
             ORDER BY e.sequence DESC LIMIT ?1",
        )
        .map_err(read)?;
    let mut rows = statement.query([SAMPLES]).map_err(read)?;
    let (mut samples, mut bytes) = (Vec::new(), 0);
    while let Some(row) = rows.next().map_err(read)? {
        let sequence: i64 = row.get(0).map_err(read)?;
        let body: Vec<u8> = row.get(1).map_err(read)?;
        let event = codec.event_encoding(row.get(2).map_err(read)?, sequence as u64, &body);
        let delivery = match row.get::<_, Option<Vec<u8>>>(3).map_err(read)? {
            Some(apart) => Some(
                codec
                    .delivery_encoding(row.get(4).map_err(read)?, &apart)
                    .map(|encoding| encoding.into_owned()),
            ),
            None => None,
        };
        // A damaged row is no sample, and reads report it where it matters.
        if let (Ok(event), Ok(delivery)) = (event, delivery.transpose()) {
            let sample = frame::record(0, &event, delivery.as_deref());
            bytes += sample.len();
            samples.push(sample);
            if bytes >= SAMPLE_BYTES {
                break;
            }
        }
    }
    Ok(samples)
}
