//! `/readyz` over real sockets when many ask at once: once the cached store check has expired,
//! concurrent callers share one new check (single flight) instead of each running a write probe.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::hooked_log::{LogHooks, hooked};
use common::http::*;
use common::*;
use hooknorm::log::{EventLog, LogError};
use tokio::sync::watch;

/// Counts store checks running at once; each waits until the gate is open.
struct GatedLog {
    open: watch::Receiver<bool>,
    running: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
}

#[async_trait]
impl LogHooks for GatedLog {
    async fn check_writable(&self, log: &dyn EventLog) -> Result<(), LogError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        log.check_writable().await
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
        let gate = GatedLog {
            open,
            running: running_seen,
            most_at_once: most_seen,
        };
        hooked(inner, gate)
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
