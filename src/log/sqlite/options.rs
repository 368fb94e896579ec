//! The embedded store's tuning that is not part of the configuration file.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::StoreConfig;

/// Read connections by default (see [`SqliteOptions::read_connections`]).
pub const DEFAULT_READ_CONNECTIONS: usize = 4;

/// Long enough for a previous process on the same volume to finish its graceful shutdown.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Events stored before the first dictionaries are trained (see [`SqliteOptions::compress_after`]):
/// enough bodies to train on, few enough that a store soon stops growing at the plain rate.
pub const DEFAULT_COMPRESS_AFTER: u64 = 1_000;

/// The wall clock, injectable so tests can move time (dedup window, retention by age).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Tuning that is not part of the configuration file.
#[derive(Clone)]
pub struct SqliteOptions {
    /// Capacity of the live-event broadcast channel.
    pub broadcast_capacity: usize,
    /// Bytes of unread events the live feed may hold (see [`crate::log::LiveEvent`]).
    pub live_bytes: usize,
    /// Read connections: at most this many reads run at once, each on its own connection,
    /// opened when first needed and then kept open; further reads wait for one.
    pub read_connections: usize,
    /// Source of "now" for dedup keys, the dedup window and retention by age.
    pub clock: Clock,
    /// How long `open` waits for the store's lock before refusing.
    pub lock_wait: Duration,
    /// Bodies are stored compressed once this many events were stored plain and dictionaries
    /// were trained on them; `None` keeps new bodies plain (stored ones are read either way).
    pub compress_after: Option<u64>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        // The live feed's sizes are configuration (`store.live_events`, `store.live_bytes`):
        // their defaults live there alone.
        let store = StoreConfig::default();
        SqliteOptions {
            broadcast_capacity: store.live_events,
            live_bytes: store.live_bytes,
            read_connections: DEFAULT_READ_CONNECTIONS,
            clock: Arc::new(Utc::now),
            lock_wait: DEFAULT_LOCK_WAIT,
            compress_after: Some(DEFAULT_COMPRESS_AFTER),
        }
    }
}

impl std::fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("broadcast_capacity", &self.broadcast_capacity)
            .field("live_bytes", &self.live_bytes)
            .field("read_connections", &self.read_connections)
            .field("lock_wait", &self.lock_wait)
            .field("compress_after", &self.compress_after)
            .finish_non_exhaustive()
    }
}
