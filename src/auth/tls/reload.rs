//! Certificates re-read when their files change (cert-manager rotates them in place), without a
//! restart: a task re-reads the files every few seconds and, when their bytes differ and make a
//! valid configuration, swaps it in. Each handshake takes the configuration current at accept,
//! so new connections get the new certificate and open ones, streams included, are untouched.
//!
//! Polling rather than file notifications: Kubernetes updates a mounted secret by swapping a
//! symlink, which notification APIs report unreliably, and reading three small files every few
//! seconds costs nothing. Comparing bytes rather than modification times also catches a file
//! replaced within the same second; a half-written pair (a new certificate beside the old key)
//! is reported once, the current configuration kept, and loaded when the files change again.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::task::JoinHandle;

use super::{Snapshot, TlsError, TlsFiles, build};

/// A listener's current TLS configuration; cheap to clone, shared with its [`TlsReloader`].
#[derive(Debug, Clone)]
pub struct ReloadingTls {
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl ReloadingTls {
    /// The configuration for the next handshake. The lock is held only to clone an `Arc`.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, config: Arc<ServerConfig>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
    }
}

/// Loads a listener's files and keeps its [`ReloadingTls`] current.
#[derive(Debug, Clone)]
pub struct TlsReloader {
    files: TlsFiles,
    alpn: &'static [&'static [u8]],
    listener: &'static str,
    loaded: Snapshot,
    tls: ReloadingTls,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snapshot(<redacted>)")
    }
}

impl TlsReloader {
    /// Reads and loads the files now (blocking: at start-up). `listener` names it in logs.
    pub fn load(
        files: TlsFiles,
        alpn: &'static [&'static [u8]],
        listener: &'static str,
    ) -> Result<TlsReloader, TlsError> {
        let loaded = Snapshot::read(&files)?;
        let config = build(&files, &loaded, alpn)?;
        Ok(TlsReloader {
            files,
            alpn,
            listener,
            loaded,
            tls: ReloadingTls {
                current: Arc::new(RwLock::new(config)),
            },
        })
    }

    /// The configuration this reloader keeps current.
    pub fn tls(&self) -> ReloadingTls {
        self.tls.clone()
    }

    /// Re-reads the files every `interval` until the task is aborted.
    pub fn spawn(&self, interval: Duration) -> JoinHandle<()> {
        let mut this = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                this.check().await;
            }
        })
    }

    /// One round: reads the files off the async workers and swaps in what they make, if they
    /// changed.
    pub async fn check(&mut self) {
        let listener = self.listener;
        let files = self.files.clone();
        let loaded = self.loaded.clone();
        let alpn = self.alpn;
        let outcome = tokio::task::spawn_blocking(move || match Snapshot::read(&files) {
            Ok(snapshot) if snapshot == loaded => Outcome::Unchanged,
            Ok(snapshot) => match build(&files, &snapshot, alpn) {
                Ok(config) => Outcome::Reloaded(snapshot, config),
                Err(error) => Outcome::Failed(snapshot, error),
            },
            // Between a delete and a create, or a permission slip: keep what works.
            Err(error) => Outcome::Unreadable(error),
        })
        .await;
        match outcome {
            Ok(Outcome::Unchanged) => {}
            Ok(Outcome::Reloaded(snapshot, config)) => {
                self.tls.replace(config);
                self.loaded = snapshot;
                tracing::info!(listener, cert = %self.files.cert.display(), "tls certificate reloaded");
            }
            Ok(Outcome::Failed(snapshot, error)) => {
                // Remembered, so a broken pair is reported once, not every round.
                self.loaded = snapshot;
                tracing::warn!(%error, listener, "tls files changed but do not load, keeping the current certificate");
            }
            Ok(Outcome::Unreadable(error)) => {
                tracing::debug!(%error, listener, "tls files unreadable, keeping the current certificate");
            }
            Err(error) => tracing::error!(%error, listener, "tls reload round failed"),
        }
    }
}

enum Outcome {
    Unchanged,
    Reloaded(Snapshot, Arc<ServerConfig>),
    Failed(Snapshot, TlsError),
    Unreadable(TlsError),
}
