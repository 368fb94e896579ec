//! The store's lock file: one hooknorm process per store directory.

use std::path::Path;
use std::time::Duration;

use crate::log::LogError;

/// The lock file that keeps a second process off the same store.
pub const LOCK_FILE_NAME: &str = "events.lock";

/// Takes the store's exclusive lock, held as long as the returned file is open, waiting up to
/// `wait` for a previous holder (a log still closing, a process still shutting down). The
/// writer keeps its next sequence in memory, so a second writer on the same file would fail
/// every append; it is refused at start-up instead.
pub(super) fn lock_store(dir: &Path, wait: Duration) -> Result<std::fs::File, LogError> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| LogError::Unavailable {
            reason: format!("cannot open lock file {}: {error}", path.display()),
        })?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::Unavailable {
                    reason: format!(
                        "store {} is in use by another hooknorm process (lock {})",
                        dir.display(),
                        path.display()
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(LogError::Unavailable {
                    reason: format!("cannot lock {}: {error}", path.display()),
                });
            }
        }
    }
}
