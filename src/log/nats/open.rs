//! Opening a replica: the errors that stop start-up, and the local index, kept when it was
//! built from this very stream, else started over (it is rebuilt from the stream).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::StoreConfig;
use crate::log::sqlite::{SqliteEventLog, SqliteOptions};
use crate::log::{EventLog, LogError};

/// Why the NATS log could not be opened (a start-up error).
#[derive(Debug, thiserror::Error)]
pub enum NatsOpenError {
    #[error("invalid config key `{key}`: {reason}")]
    Config { key: &'static str, reason: String },
    #[error("cannot connect to nats at {servers}: {reason}")]
    Connect { servers: String, reason: String },
    #[error("stream {stream} {reason}")]
    Stream { stream: String, reason: String },
    #[error(
        "stream {stream} exists with settings the configuration does not match (hooknorm never \
         alters a stream; change one or the other): {differences}"
    )]
    Incompatible { stream: String, differences: String },
    #[error("cannot open the local index: {0}")]
    Index(#[from] LogError),
}

/// Opens the index in `dir`, starting it over when it was built from another stream (or from
/// an earlier stream of the same name) or is ahead of this one.
pub(super) async fn open_index(
    dir: &Path,
    config: &StoreConfig,
    binding: &str,
    last_sequence: u64,
) -> Result<Arc<SqliteEventLog>, NatsOpenError> {
    let open = |dir: PathBuf, config: StoreConfig| async move {
        let options = SqliteOptions {
            broadcast_capacity: config.live_events,
            live_bytes: config.live_bytes,
            ..SqliteOptions::default()
        };
        tokio::task::spawn_blocking(move || SqliteEventLog::open_index(&dir, &config, options))
            .await
            .map_err(|error| LogError::Unavailable {
                reason: format!("open task failed: {error}"),
            })?
    };
    let index = open(dir.to_owned(), config.clone()).await?;
    let bound = index.binding().await?;
    let stale =
        (!bound.is_empty() && bound != binding) || index.index_position().applied > last_sequence;
    if stale {
        tracing::warn!(
            index = %dir.display(),
            was = %bound,
            now = %binding,
            "local index belongs to another stream, rebuilding it"
        );
        index.close().await;
        drop(index);
        for name in ["events.sqlite3", "events.sqlite3-wal", "events.sqlite3-shm"] {
            match tokio::fs::remove_file(dir.join(name)).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(NatsOpenError::Index(LogError::Unavailable {
                        reason: format!("cannot remove the stale index: {error}"),
                    }));
                }
            }
        }
        let index = open(dir.to_owned(), config.clone()).await?;
        index.bind(binding.to_owned()).await?;
        return Ok(Arc::new(index));
    }
    if bound.is_empty() {
        index.bind(binding.to_owned()).await?;
    }
    Ok(Arc::new(index))
}
