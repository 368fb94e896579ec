//! Opening a subscription: refused while the server is stopping, and from a cursor this log
//! never issued (see [`check_start`]).

use std::sync::Arc;

use tokio::sync::watch;

use super::{Start, StartError, StreamSettings, Subscription, check_start, subscribe};
use crate::error::Reason;
use crate::log::{EventFilter, EventLog};

/// Why a subscription was not opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenError {
    #[error("server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Start(#[from] StartError),
}

impl OpenError {
    pub fn reason(&self) -> Reason {
        match self {
            OpenError::ShuttingDown => Reason::ShuttingDown,
            OpenError::Start(StartError::CursorAhead { .. }) => Reason::CursorOutOfRange,
            OpenError::Start(StartError::Log(error)) => error.reason(),
        }
    }
}

/// Checks the start and the shutdown signal, then [`subscribe`]s.
pub async fn open(
    log: Arc<dyn EventLog>,
    filter: EventFilter,
    start: Start,
    settings: StreamSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<Subscription, OpenError> {
    if *shutdown.borrow() {
        return Err(OpenError::ShuttingDown);
    }
    check_start(log.as_ref(), start).await?;
    Ok(subscribe(log, filter, start, settings, shutdown))
}
