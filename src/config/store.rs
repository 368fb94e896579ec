//! `[store]`: the durable event log: its backend, where it keeps its files, deduplication,
//! retention, group commit and the in-memory live feed.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use super::nats::NatsConfig;

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Which backend keeps the log.
    #[serde(default)]
    pub backend: StoreBackend,
    /// Directory the embedded store keeps its files in (created if missing).
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// How long a redelivered webhook is still recognized as a duplicate, in seconds. Svix
    /// retries Gigs webhooks for about 1.2 days, so the default (7 days) leaves ample margin.
    #[serde(default = "default_dedup_window")]
    pub dedup_window_seconds: u64,
    /// Events stored longer ago than this are removed (seconds, by the server's clock at append,
    /// not the caller's `received_at`; unset keeps them by age).
    #[serde(default)]
    pub retention_max_age_seconds: Option<u64>,
    /// At most this many events are kept (unset keeps them by count).
    #[serde(default)]
    pub retention_max_count: Option<u64>,
    /// How often retention runs, in seconds.
    #[serde(default = "default_retention_interval")]
    pub retention_interval_seconds: u64,
    /// Most appends one group commit may hold.
    #[serde(default = "default_group_commit_max")]
    pub group_commit_max: usize,
    /// Committed events kept in memory for live subscribers (shared by all of them); one that
    /// falls further behind continues by reading the log. The embedded store also keeps this
    /// many of the newest events (within `live_bytes`) for catch-up reads near the head.
    #[serde(default = "default_live_events")]
    pub live_events: usize,
    /// Bytes of events the live feed holds for subscribers that have not read them yet; past
    /// this, events are announced by sequence only and read from the log by whoever needs them.
    #[serde(default = "default_live_bytes")]
    pub live_bytes: usize,
    /// `[store.nats]`, read when `backend = "nats"`.
    #[serde(default)]
    pub nats: NatsConfig,
}

/// The event log backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// One SQLite file (WAL mode) under `store.path`.
    #[default]
    Sqlite,
    /// A NATS JetStream stream shared by every replica, with a local index per replica
    /// (`[store.nats]`).
    Nats,
}

fn default_store_path() -> PathBuf {
    PathBuf::from("hooknorm-data")
}

/// 7 days.
pub const DEFAULT_DEDUP_WINDOW_SECONDS: u64 = 7 * 24 * 3600;

fn default_dedup_window() -> u64 {
    DEFAULT_DEDUP_WINDOW_SECONDS
}

fn default_retention_interval() -> u64 {
    60
}

fn default_group_commit_max() -> usize {
    1024
}

/// About four seconds at 1,000 events/s, so a subscriber that stalls briefly (a GC pause, a
/// burst of other work) catches up from memory rather than with reads of its own.
fn default_live_events() -> usize {
    4096
}

/// Room for the default `live_events` of 2 KiB events; large events make the count moot.
fn default_live_bytes() -> usize {
    16 * 1024 * 1024
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::default(),
            path: default_store_path(),
            dedup_window_seconds: DEFAULT_DEDUP_WINDOW_SECONDS,
            retention_max_age_seconds: None,
            retention_max_count: None,
            retention_interval_seconds: default_retention_interval(),
            group_commit_max: default_group_commit_max(),
            live_events: default_live_events(),
            live_bytes: default_live_bytes(),
            nats: NatsConfig::default(),
        }
    }
}

impl StoreConfig {
    /// Checks what serde cannot (and resolves the NATS credentials); every error names its key.
    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
        if self.dedup_window_seconds == 0 {
            return Err(ConfigError::invalid(
                "store.dedup_window_seconds",
                "must be greater than 0",
            ));
        }
        if self.retention_max_count == Some(0) {
            return Err(ConfigError::invalid(
                "store.retention_max_count",
                "must be greater than 0 (leave it unset to keep every event)",
            ));
        }
        for (key, value) in [
            (
                "store.retention_interval_seconds",
                self.retention_interval_seconds,
            ),
            ("store.group_commit_max", self.group_commit_max as u64),
            ("store.live_events", self.live_events as u64),
            ("store.live_bytes", self.live_bytes as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.backend == StoreBackend::Nats {
            self.nats.validate(self.dedup_window_seconds)?;
        }
        Ok(())
    }
}
