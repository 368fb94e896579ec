//! The event log contract (`tests/log_contract/`) against the embedded SQLite backend, on real
//! files in a temporary directory with a manual clock.

mod log_contract;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hooknorm::config::StoreConfig;
use hooknorm::log::EventLog;
use hooknorm::log::sqlite::{Clock, SqliteEventLog, SqliteOptions};
use log_contract::{Harness, Settings};

/// A store directory and the clock its log reads.
struct SqliteHarness {
    dir: tempfile::TempDir,
    now_ms: Arc<AtomicI64>,
    settings: Settings,
}

impl SqliteHarness {
    fn new() -> SqliteHarness {
        SqliteHarness {
            dir: tempfile::tempdir().expect("tempdir"),
            now_ms: Arc::new(AtomicI64::new(Utc::now().timestamp_millis())),
            settings: Settings::default(),
        }
    }

    /// Opens the store with the current settings, off the async runtime (opening blocks).
    async fn open_log(&self) -> Arc<dyn EventLog> {
        let settings = &self.settings;
        let config = StoreConfig {
            path: self.dir.path().join("store"),
            retention_max_count: settings.retention_max_count,
            retention_max_age_seconds: settings.retention_max_age.map(|age| age.as_secs()),
            dedup_window_seconds: settings.dedup_window.as_secs(),
            live_events: settings.live_capacity,
            ..StoreConfig::default()
        };
        let now_ms = Arc::clone(&self.now_ms);
        let clock: Clock = Arc::new(move || {
            chrono::DateTime::from_timestamp_millis(now_ms.load(Ordering::SeqCst))
                .expect("a valid time")
        });
        let options = SqliteOptions {
            broadcast_capacity: config.live_events,
            live_bytes: config.live_bytes,
            clock,
            ..SqliteOptions::default()
        };
        let log = tokio::task::spawn_blocking(move || SqliteEventLog::open_with(&config, options))
            .await
            .expect("the open task joins")
            .expect("the log opens");
        Arc::new(log)
    }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn open(&mut self, settings: Settings) -> Arc<dyn EventLog> {
        self.settings = settings;
        self.open_log().await
    }

    async fn reopen(&mut self) -> Arc<dyn EventLog> {
        self.open_log().await
    }

    async fn advance(&mut self, by: Duration) {
        let by_ms = i64::try_from(by.as_millis()).expect("a test-sized step");
        self.now_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

log_contract::log_contract_tests!(SqliteHarness::new());

/// Retention by count always keeps the newest event: configuration refuses a count of 0, so
/// the backend never has to handle one.
#[test]
fn a_retention_count_of_zero_is_refused() {
    let error = hooknorm::config::Config::from_toml("[store]\nretention_max_count = 0\n")
        .expect_err("refused")
        .to_string();
    assert!(error.contains("store.retention_max_count"), "{error}");
}
