//! A log that fails on purpose: the real SQLite log behind hooks that refuse writes, or store
//! an event and then report failure or answer late, as a test's [`Switch`] says.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hooknorm::log::{AppendRequest, Appended, EventLog, LogError};

use crate::common::TestServer;
use crate::common::hooked_log::{LogHooks, hooked};

/// How a [`FailingLog`] behaves right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Passes everything through.
    Healthy,
    /// Refuses every write before storing anything, as a full disk would.
    Refuse,
    /// Stores the event, then reports failure: a commit whose acknowledgement was lost.
    StoreThenFail,
    /// Stores the event, then answers only after [`STALL`], past the request timeout.
    StoreThenStall,
}

/// How long [`Mode::StoreThenStall`] holds the answer back.
pub const STALL: Duration = Duration::from_secs(5);

/// The test's handle on a [`FailingLog`]'s mode.
#[derive(Clone)]
pub struct Switch(Arc<AtomicU8>);

impl Switch {
    pub fn new() -> Self {
        Switch(Arc::new(AtomicU8::new(Mode::Healthy as u8)))
    }

    pub fn set(&self, mode: Mode) {
        self.0.store(mode as u8, Ordering::SeqCst);
    }

    fn get(&self) -> Mode {
        match self.0.load(Ordering::SeqCst) {
            0 => Mode::Healthy,
            1 => Mode::Refuse,
            2 => Mode::StoreThenFail,
            _ => Mode::StoreThenStall,
        }
    }
}

/// Hooks that make the real log fail on purpose, as [`Switch`] says.
struct FailingLog {
    mode: Switch,
}

fn disk_full() -> LogError {
    LogError::Unavailable {
        reason: "database or disk is full at /var/lib/secret-path".into(),
    }
}

impl FailingLog {
    fn check(&self) -> Result<(), LogError> {
        if self.mode.get() == Mode::Refuse {
            Err(disk_full())
        } else {
            Ok(())
        }
    }
}

/// A server whose log runs [`FailingLog`] behind `switch`.
pub async fn start_failing(toml: &str, dir: &std::path::Path, switch: &Switch) -> TestServer {
    let mode = switch.clone();
    TestServer::start_wrapping_log(toml, dir, move |log| hooked(log, FailingLog { mode })).await
}

#[async_trait]
impl LogHooks for FailingLog {
    async fn append(
        &self,
        log: &dyn EventLog,
        request: AppendRequest,
    ) -> Result<Appended, LogError> {
        self.check()?;
        let appended = log.append(request).await?;
        match self.mode.get() {
            Mode::StoreThenFail => Err(disk_full()),
            Mode::StoreThenStall => {
                tokio::time::sleep(STALL).await;
                Ok(appended)
            }
            Mode::Healthy | Mode::Refuse => Ok(appended),
        }
    }

    async fn check_writable(&self, log: &dyn EventLog) -> Result<(), LogError> {
        self.check()?;
        log.check_writable().await
    }
}
