//! The contract suite's [`Harness`] for the NATS backend: a stream and local index of its own
//! per test on a shared server, and a manual clock stamped on appends (what the dedup window
//! and retention by age go by). Included by `tests/log_contract_nats*.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hooknorm::config::StoreConfig;
use hooknorm::log::EventLog;
use hooknorm::log::nats::{NatsEventLog, NatsOptions};
use hooknorm::log::sqlite::Clock;

use crate::log_contract::{Harness, Settings};
use crate::nats_support::{self, NatsServer};

pub struct NatsHarness {
    server: &'static NatsServer,
    dir: tempfile::TempDir,
    stream: String,
    now_ms: Arc<AtomicI64>,
    settings: Settings,
}

impl NatsHarness {
    pub fn new(server: &'static NatsServer) -> NatsHarness {
        NatsHarness {
            server,
            dir: tempfile::tempdir().expect("tempdir"),
            stream: nats_support::unique("CONTRACT"),
            now_ms: Arc::new(AtomicI64::new(Utc::now().timestamp_millis())),
            settings: Settings::default(),
        }
    }

    async fn open_log(&self) -> Arc<dyn EventLog> {
        let settings = &self.settings;
        let config = StoreConfig {
            retention_max_count: settings.retention_max_count,
            retention_max_age_seconds: settings.retention_max_age.map(|age| age.as_secs()),
            dedup_window_seconds: settings.dedup_window.as_secs(),
            live_events: settings.live_capacity,
            ..nats_support::store_config(&[self.server.url()], &self.stream, self.dir.path())
        };
        let now_ms = Arc::clone(&self.now_ms);
        let clock: Clock = Arc::new(move || {
            chrono::DateTime::from_timestamp_millis(now_ms.load(Ordering::SeqCst))
                .expect("a valid time")
        });
        let log = NatsEventLog::open_with(&config, NatsOptions { clock })
            .await
            .expect("the log opens");
        Arc::new(log)
    }
}

#[async_trait]
impl Harness for NatsHarness {
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
