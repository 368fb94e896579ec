//! `/readyz` over real sockets when many ask at once: once the cached store check has expired,
//! concurrent callers share one new check (single flight) instead of each running a write probe.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::http::*;
use common::*;
use hooknorm::log::{
    AppendRequest, Appended, EncodedBatch, EventFilter, EventLog, LiveSubscription, LogError,
    RetentionReport,
};
use hooknorm::proto::v1::Event;
use tokio::sync::watch;

/// Counts store checks running at once; each waits until the gate is open.
struct GatedLog {
    inner: Arc<dyn EventLog>,
    open: watch::Receiver<bool>,
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
}

#[async_trait]
impl EventLog for GatedLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        self.inner.append(request).await
    }
    async fn read_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.inner.read_after(after, filter, limit).await
    }
    async fn list(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.inner.list(filter, before, limit).await
    }
    async fn get(&self, id: &str, view: hooknorm::log::View) -> Result<Option<Event>, LogError> {
        self.inner.get(id, view).await
    }
    async fn cursor_at(&self, time: DateTime<Utc>) -> Result<u64, LogError> {
        self.inner.cursor_at(time).await
    }
    async fn read_encoded_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EncodedBatch, LogError> {
        self.inner.read_encoded_after(after, filter, limit).await
    }
    async fn head(&self) -> Result<u64, LogError> {
        self.inner.head().await
    }
    async fn subscribe(&self) -> Result<LiveSubscription, LogError> {
        self.inner.subscribe().await
    }
    fn live_pressure(&self) -> Option<watch::Receiver<bool>> {
        self.inner.live_pressure()
    }
    async fn enforce_retention(&self) -> Result<RetentionReport, LogError> {
        self.inner.enforce_retention().await
    }
    async fn check_writable(&self) -> Result<(), LogError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.inner.check_writable().await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}

#[tokio::test]
async fn concurrent_readyz_share_one_store_check() {
    let (gate, open) = watch::channel(true);
    let running = Arc::new(AtomicUsize::new(0));
    let most_at_once = Arc::new(AtomicUsize::new(0));
    let (running_seen, most_seen) = (running.clone(), most_at_once.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_wrapping_log(&test_config_toml(MIB), dir.path(), move |inner| {
        Arc::new(GatedLog {
            inner,
            open,
            running: running_seen,
            most_at_once: most_seen,
        })
    })
    .await;
    let addr = server.ops_addr;
    readyz_becomes(addr, 200).await;

    // Hold the next check, and let the cached answer (1 s) expire.
    gate.send_replace(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    most_at_once.store(0, Ordering::SeqCst);
    let callers: Vec<_> = (0..8)
        .map(|_| tokio::spawn(async move { get(addr, "/readyz").await }))
        .collect();
    // Give every caller the chance to start a check of its own (without single flight they
    // would; with it they wait for the one running).
    let deadline = Instant::now() + Duration::from_millis(1500);
    while running.load(Ordering::SeqCst) < callers.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gate.send_replace(true);
    for caller in callers {
        let answer = caller.await.expect("caller joins");
        assert_eq!(answer.status, 200, "{:?}", answer.json);
    }
    let most = most_at_once.load(Ordering::SeqCst);
    assert!(most <= 1, "{most} store checks ran at once");
    server.shutdown().await;
}
