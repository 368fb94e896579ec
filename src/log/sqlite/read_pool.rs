//! A small pool of read-only connections, each used on a blocking thread, so reads never block
//! the async runtime nor open a connection (and parse the schema) each time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;

use super::codec::Codec;
use super::read::unavailable;
use super::schema;
use crate::log::LogError;

/// A fixed number of read-only connections, each opened when first needed and kept open, and
/// one read at a time on each.
pub(super) struct ReadPool {
    path: PathBuf,
    /// Connections not in use right now.
    idle: Mutex<Vec<Connection>>,
    /// How many connections there may be, and so how many reads run at once.
    size: usize,
    /// One permit per connection: reads beyond `size` wait here, off the blocking pool, rather
    /// than each open a connection of its own (which parses the schema every time) and compete
    /// for the same few cores.
    running: tokio::sync::Semaphore,
    /// Decompresses the bodies reads return.
    codec: Codec,
}

impl ReadPool {
    pub(super) fn new(path: PathBuf, size: usize, codec: Codec) -> ReadPool {
        let size = size.max(1);
        ReadPool {
            codec,
            path,
            idle: Mutex::new(Vec::with_capacity(size)),
            size,
            running: tokio::sync::Semaphore::new(size),
        }
    }

    /// Opens one connection and keeps it idle.
    pub(super) fn warm(&self) -> rusqlite::Result<()> {
        let conn = schema::open_reader(&self.path)?;
        self.put_back(conn);
        Ok(())
    }

    /// Runs `read` on a pooled connection on a blocking thread.
    pub(super) async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T, LogError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Codec) -> Result<T, LogError> + Send + 'static,
    {
        // Never closed, so this only waits. Holding a permit means an idle connection exists
        // or may be opened without passing `size`.
        let _running = self.running.acquire().await.map_err(|_| LogError::Closed)?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || pool.with_connection(read))
            .await
            .map_err(|error| LogError::Unavailable {
                reason: format!("read task failed: {error}"),
            })?
    }

    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection, &Codec) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        // The guarded `Vec` is valid whatever a panicking holder did, so poisoning is harmless.
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::open_reader(&self.path).map_err(unavailable)?,
        };
        let result = read(&conn, &self.codec);
        self.put_back(conn);
        result
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.size {
            idle.push(conn);
        }
    }
}
