//! Tests over real SQLite files in temporary directories, with a manual clock.

mod appends;
mod compression;
mod dedup;
mod lifecycle;
mod reads;
mod upgrades;

use std::sync::atomic::{AtomicI64, Ordering};

use std::time::Duration;

use chrono::{DateTime, Utc};
use tempfile::TempDir;

use super::*;
use crate::event::{EntityKey, Identity};
use crate::event::{resource, timestamp};
use crate::log::EncodedEvent;
use crate::proto::v1::{Provider, ResourceRef};

/// 2023-11-14T22:13:20Z.
const T0_MS: i64 = 1_700_000_000_000;

struct Fixture {
    /// Kept for its `Drop`, which removes the directory.
    _dir: TempDir,
    now_ms: Arc<AtomicI64>,
    config: StoreConfig,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(|_| {})
    }

    fn with(adjust: impl FnOnce(&mut StoreConfig)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: `open` creates it.
        let mut config = StoreConfig {
            path: dir.path().join("store"),
            ..StoreConfig::default()
        };
        adjust(&mut config);
        Fixture {
            _dir: dir,
            now_ms: Arc::new(AtomicI64::new(T0_MS)),
            config,
        }
    }

    fn open(&self) -> SqliteEventLog {
        let now_ms = Arc::clone(&self.now_ms);
        let clock: Clock = Arc::new(move || time(now_ms.load(Ordering::SeqCst)));
        SqliteEventLog::open_with(
            &self.config,
            SqliteOptions {
                clock,
                ..SqliteOptions::default()
            },
        )
        .unwrap()
    }

    fn advance(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// A separate connection for looking at the file directly.
    fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.config.path.join(DB_FILE_NAME)).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.raw().query_row(sql, [], |row| row.get(0)).unwrap()
    }
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

fn event(id: &str, event_type: &str) -> Event {
    Event {
        id: id.to_owned(),
        provider: Provider::Gigs as i32,
        source: "gigs".to_owned(),
        r#type: event_type.to_owned(),
        received_at: Some(timestamp(time(T0_MS))),
        ..Event::default()
    }
}

fn received(mut event: Event, ms: i64) -> Event {
    event.received_at = Some(timestamp(time(ms)));
    event
}

fn about(mut event: Event, subject: ResourceRef, related: Vec<ResourceRef>) -> Event {
    event.subject = Some(subject);
    event.related = related;
    event
}

fn by_id(event: Event) -> AppendRequest {
    AppendRequest {
        event,
        identity: Identity::ProviderId,
        delivery: None,
    }
}

fn latest(entity: &str, event: Event) -> AppendRequest {
    AppendRequest {
        event,
        identity: Identity::LatestState(EntityKey::new("test").part(entity)),
        delivery: None,
    }
}

fn ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.id.as_str()).collect()
}

fn sequences(events: &[Event]) -> Vec<u64> {
    events.iter().map(|event| event.sequence).collect()
}

async fn all(log: &SqliteEventLog) -> Vec<Event> {
    log.read_after(0, &EventFilter::default(), 1000)
        .await
        .unwrap()
}

trait WithSequence {
    fn with_sequence(self, sequence: u64) -> Event;
}

impl WithSequence for Event {
    fn with_sequence(mut self, sequence: u64) -> Event {
        self.sequence = sequence;
        self
    }
}
