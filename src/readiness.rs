//! Readiness: whether this instance should be sent webhooks now. One answer for every probe:
//! HTTP `/readyz` asks it directly, and every change is published on a watch channel that the
//! gRPC side forwards to its health service ([`crate::grpc::health`]), so a Kubernetes HTTP
//! probe and a gRPC health check never disagree. No transport is known here.
//!
//! Ready means the listeners are serving, the server is not shutting down, and the event log
//! takes a write right now (a full disk makes the instance unready rather than answering 503 to
//! every webhook while still receiving traffic). That last check is a tiny fsync'd write (after
//! a failed append, one as large as the event that failed: a full disk can still take a tiny
//! one), so its answer is reused for [`STORE_CHECK_TTL`], and callers arriving while it runs share its answer
//! (single flight): a flood of `/readyz` requests cannot turn into a flood of fsyncs competing
//! with appends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, watch};

use crate::log::{EventLog, LogError};

/// How often the gRPC health status is refreshed when nothing asks `/readyz`.
pub const HEALTH_REFRESH: Duration = Duration::from_secs(5);

/// How long a store check's answer is reused.
pub const STORE_CHECK_TTL: Duration = Duration::from_secs(1);

/// Why the instance is not ready.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotReady {
    #[error("listeners are not serving yet")]
    Starting,
    #[error("server is shutting down")]
    ShuttingDown,
    #[error("event log is not writable: {0}")]
    Store(LogError),
}

impl NotReady {
    /// A stable, detail-free word for probe bodies (which may be reachable from the internet).
    pub fn code(&self) -> &'static str {
        match self {
            NotReady::Starting => "starting",
            NotReady::ShuttingDown => "shutting_down",
            NotReady::Store(_) => "store_unavailable",
        }
    }
}

/// The shared readiness of one server; cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<dyn EventLog>,
    stopping: watch::Receiver<bool>,
    listening: AtomicBool,
    /// The last store check and when it finished (a std lock: never held across an await).
    store_checked: std::sync::Mutex<Option<(Instant, Result<(), LogError>)>>,
    /// Held while a store check runs, so callers arriving meanwhile wait for its answer instead
    /// of running checks of their own (single flight).
    probing: Mutex<()>,
    /// What was last published (`None` before the first check); watchers and logs hear only
    /// changes.
    published: watch::Sender<Option<bool>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("listening", &self.inner.listening.load(Ordering::Relaxed))
            .field("stopping", &*self.inner.stopping.borrow())
            .finish()
    }
}

impl Readiness {
    /// `stopping` turning true makes the instance unready.
    pub fn new(log: Arc<dyn EventLog>, stopping: watch::Receiver<bool>) -> Self {
        Readiness {
            inner: Arc::new(Inner {
                log,
                stopping,
                listening: AtomicBool::new(false),
                store_checked: std::sync::Mutex::new(None),
                probing: Mutex::new(()),
                published: watch::Sender::new(None),
            }),
        }
    }

    /// Every published readiness: `Some(ready)` after each check that changed it, `None` until
    /// the first check.
    pub fn subscribe(&self) -> watch::Receiver<Option<bool>> {
        self.inner.published.subscribe()
    }

    /// Records that every listener is serving.
    pub fn mark_listening(&self) {
        self.inner.listening.store(true, Ordering::Release);
    }

    /// Checks readiness now (probing the log with a tiny write) and publishes the answer to
    /// subscribers.
    pub async fn check(&self) -> Result<(), NotReady> {
        let outcome = self.evaluate().await;
        self.publish(&outcome);
        outcome
    }

    async fn evaluate(&self) -> Result<(), NotReady> {
        let stopping = *self.inner.stopping.borrow();
        if stopping {
            return Err(NotReady::ShuttingDown);
        }
        if !self.inner.listening.load(Ordering::Acquire) {
            return Err(NotReady::Starting);
        }
        self.store_writable().await.map_err(NotReady::Store)
    }

    /// The store check's answer: the cached one while fresh, else one new check however many
    /// callers ask at once.
    async fn store_writable(&self) -> Result<(), LogError> {
        if let Some(outcome) = self.cached_store_check() {
            return outcome;
        }
        let _probing = self.inner.probing.lock().await;
        // Whoever held the lock before us may have just checked.
        if let Some(outcome) = self.cached_store_check() {
            return outcome;
        }
        let outcome = self.inner.log.check_writable().await;
        *self
            .inner
            .store_checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), outcome.clone()));
        outcome
    }

    fn cached_store_check(&self) -> Option<Result<(), LogError>> {
        self.inner
            .store_checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < STORE_CHECK_TTL)
            .map(|(_, outcome)| outcome.clone())
    }

    fn publish(&self, outcome: &Result<(), NotReady>) {
        let ready = outcome.is_ok();
        // One atomic compare-and-set, so concurrent checks publish (and log) a change once.
        let changed = self.inner.published.send_if_modified(|published| {
            let changed = *published != Some(ready);
            *published = Some(ready);
            changed
        });
        if !changed {
            return;
        }
        match outcome {
            Ok(()) => tracing::info!("ready"),
            Err(error @ NotReady::ShuttingDown) => tracing::info!(%error, "not ready"),
            Err(error) => tracing::warn!(%error, "not ready"),
        }
    }

    /// Re-checks every `interval` so subscribers (gRPC health) follow the log even when no one
    /// asks `/readyz`; stops when the server starts shutting down (which publishes itself).
    pub fn spawn_refresh(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let readiness = self.clone();
        let mut stopping = self.inner.stopping.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        let _ = readiness.check().await;
                    }
                    () = async { drop(stopping.wait_for(|stop| *stop).await) } => break,
                }
            }
        })
    }
}
