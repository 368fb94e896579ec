//! Subscriptions over a real SQLite log: the bytes sent, the byte budget, slow subscribers,
//! retention overtaking a subscriber, filters and the delivery count.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use prost::Message;

use super::*;
use crate::config::StoreConfig;
use crate::event::Identity;
use crate::log::sqlite::SqliteEventLog;
use crate::log::{AppendRequest, Appended, EncodedBatch, LiveSubscription, RetentionReport, View};
use crate::proto::v1::Event;

fn open_log(dir: &tempfile::TempDir) -> Arc<dyn EventLog> {
    let config = StoreConfig {
        path: dir.path().to_path_buf(),
        ..StoreConfig::default()
    };
    Arc::new(SqliteEventLog::open(&config).unwrap())
}

fn event(id: &str, padding: usize) -> Event {
    Event {
        id: id.to_owned(),
        source: "gigs".to_owned(),
        r#type: "subscription.activated".to_owned(),
        provider_event_type: "x".repeat(padding),
        ..Event::default()
    }
}

async fn append(log: &Arc<dyn EventLog>, event: Event) -> Event {
    let request = AppendRequest {
        event,
        identity: Identity::ProviderId,
        delivery: None,
    };
    log.append(request).await.unwrap().event
}

fn settings() -> StreamSettings {
    StreamSettings {
        heartbeat: Duration::from_secs(3600),
        ..StreamSettings::default()
    }
}

async fn next_item(subscription: &mut Subscription) -> StreamItem {
    let queued = tokio::time::timeout(Duration::from_secs(10), subscription.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    queued.item
}

async fn next_event(subscription: &mut Subscription) -> EncodedEvent {
    match next_item(subscription).await {
        StreamItem::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn replayed_and_live_bytes_decode_to_exactly_the_stored_events() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(&dir);
    let stored = append(&log, event("evt_1", 10)).await;
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let mut subscription = subscribe(
        Arc::clone(&log),
        EventFilter::default(),
        Start::Earliest,
        settings(),
        shutdown,
    );
    let replayed = next_event(&mut subscription).await;
    let live_stored = append(&log, event("evt_2", 10)).await;
    let live = next_event(&mut subscription).await;
    for (encoded, stored) in [(replayed, stored), (live, live_stored)] {
        assert_eq!(encoded.sequence, stored.sequence);
        assert_eq!(Event::decode(encoded.bytes.clone()).unwrap(), stored);
        let listed = log
            .get(&stored.id, crate::log::View::Basic)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(Event::decode(encoded.bytes).unwrap(), listed);
    }
    log.close().await;
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_holds_at_most_its_byte_budget() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(&dir);
    // 32 events of ~16 KiB: 512 KiB in all, far over the budget but under the count bound.
    for index in 0..32 {
        append(&log, event(&format!("evt_{index}"), 16 * 1024)).await;
    }
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let mut subscription = subscribe(
        Arc::clone(&log),
        EventFilter::default(),
        Start::Earliest,
        StreamSettings {
            buffer: 256,
            buffer_bytes: 40 * 1024,
            ..settings()
        },
        shutdown,
    );
    // Let the producer fill what it may.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(subscription.len(), 2, "two 16 KiB events fit in 40 KiB");
    // Reading frees room for more, in order, until everything has arrived.
    let mut sequences = Vec::new();
    while sequences.len() < 32 {
        sequences.push(next_event(&mut subscription).await.sequence);
        assert!(subscription.len() <= 2);
    }
    assert_eq!(sequences, (1..=32).collect::<Vec<u64>>());
    log.close().await;
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_let_go_even_without_room_for_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(&dir);
    for index in 0..3 {
        append(&log, event(&format!("evt_{index}"), 10)).await;
    }
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let mut subscription = subscribe(
        Arc::clone(&log),
        EventFilter::default(),
        Start::Earliest,
        StreamSettings {
            buffer: 1,
            slow_subscriber_timeout: Duration::from_millis(100),
            ..settings()
        },
        shutdown,
    );
    // 100 ms to give up on the subscriber, at most 100 ms more for the status.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        subscription.is_closed(),
        "the producer still waits to send the final status"
    );
    // What was buffered is still there, then the stream ends.
    assert_eq!(next_event(&mut subscription).await.sequence, 1);
    assert!(subscription.recv().await.is_none());
    log.close().await;
}

#[tokio::test]
async fn an_event_larger_than_the_budget_still_goes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(&dir);
    append(&log, event("evt_big", 64 * 1024)).await;
    append(&log, event("evt_small", 10)).await;
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let mut subscription = subscribe(
        Arc::clone(&log),
        EventFilter::default(),
        Start::Earliest,
        StreamSettings {
            buffer_bytes: 1024,
            ..settings()
        },
        shutdown,
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(subscription.len(), 1);
    assert_eq!(next_event(&mut subscription).await.sequence, 1);
    assert_eq!(next_event(&mut subscription).await.sequence, 2);
    log.close().await;
}

#[tokio::test]
async fn a_subscriber_retention_overtakes_is_told_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        path: dir.path().to_path_buf(),
        retention_max_count: Some(2),
        ..StoreConfig::default()
    };
    let log: Arc<dyn EventLog> = Arc::new(SqliteEventLog::open(&config).unwrap());
    for index in 1..=10 {
        append(&log, event(&format!("evt_{index}"), 10)).await;
    }
    let (_shutdown_tx, shutdown) = watch::channel(false);
    // Reads two events at a time and buffers one: it is still catching up when retention
    // removes everything but 9 and 10.
    let mut subscription = subscribe(
        Arc::clone(&log),
        EventFilter::default(),
        Start::After(0),
        StreamSettings {
            buffer: 1,
            catch_up_batch: 2,
            ..settings()
        },
        shutdown,
    );
    assert_eq!(next_event(&mut subscription).await.sequence, 1);
    assert_eq!(log.enforce_retention().await.unwrap().events_removed, 8);
    // What it had read before the removal still arrives, then the notice, then the rest.
    let mut sent = vec![1];
    let (after, through) = loop {
        match next_item(&mut subscription).await {
            StreamItem::Event(event) => sent.push(event.sequence),
            StreamItem::Skipped { after, through } => break (after, through),
            other => panic!("expected an event or a notice, got {other:?}"),
        }
    };
    assert_eq!(sent, (1..=after).collect::<Vec<u64>>());
    assert_eq!(through, 8);
    assert_eq!(next_event(&mut subscription).await.sequence, 9);
    assert_eq!(next_event(&mut subscription).await.sequence, 10);
    log.close().await;
}

#[tokio::test]
async fn events_the_filter_leaves_out_are_passed_over_and_the_stream_goes_live() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(&dir);
    append(&log, event("evt_1", 10)).await;
    for index in 2..=5 {
        let other = Event {
            source: "abowire".to_owned(),
            ..event(&format!("evt_{index}"), 10)
        };
        append(&log, other).await;
    }
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let mut subscription = subscribe(
        Arc::clone(&log),
        EventFilter {
            sources: vec!["gigs".to_owned()],
            ..EventFilter::default()
        },
        Start::Earliest,
        StreamSettings {
            heartbeat: Duration::from_millis(100),
            ..settings()
        },
        shutdown,
    );
    assert_eq!(next_event(&mut subscription).await.sequence, 1);
    // A catch-up that read everything matching is done, however many events it passed
    // over: the producer goes live, so it beats while idle and a new match arrives.
    match next_item(&mut subscription).await {
        StreamItem::Heartbeat { head, .. } => assert_eq!(head, 5),
        other => panic!("expected a heartbeat, got {other:?}"),
    }
    let live = append(&log, event("evt_6", 10)).await;
    assert_eq!(next_event(&mut subscription).await.sequence, live.sequence);
    log.close().await;
}

/// `hooknorm_events_delivered_total` as the installed metrics show it now.
fn delivered_so_far() -> f64 {
    let text = crate::metrics::render().expect("metrics installed");
    text.lines()
        .find_map(|line| line.strip_prefix("hooknorm_events_delivered_total "))
        .expect("the delivered counter")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn events_handed_to_a_subscriber_are_counted() {
    // Process-wide and shared with the tests running beside this one: only a lower bound holds.
    crate::metrics::install(Vec::new(), None);
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(&dir);
    append(&log, event("evt_1", 10)).await;
    let before = delivered_so_far();
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let mut subscription = subscribe(
        Arc::clone(&log),
        EventFilter::default(),
        Start::Earliest,
        settings(),
        shutdown,
    );
    assert_eq!(next_event(&mut subscription).await.sequence, 1);
    append(&log, event("evt_2", 10)).await;
    assert_eq!(next_event(&mut subscription).await.sequence, 2);
    assert!(delivered_so_far() >= before + 2.0);
    log.close().await;
}

/// The log, counting catch-up reads: a subscriber the live feed serves makes none.
struct CountingLog {
    inner: Arc<dyn EventLog>,
    reads: AtomicU64,
}

#[async_trait]
impl EventLog for CountingLog {
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
    async fn read_encoded_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<EncodedBatch, LogError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_encoded_after(after, filter, limit).await
    }
    async fn list(
        &self,
        filter: &EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.inner.list(filter, before, limit).await
    }
    async fn get(&self, id: &str, view: View) -> Result<Option<Event>, LogError> {
        self.inner.get(id, view).await
    }
    async fn cursor_at(&self, time: DateTime<Utc>) -> Result<u64, LogError> {
        self.inner.cursor_at(time).await
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
        self.inner.check_writable().await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}

#[tokio::test]
async fn a_briefly_full_buffer_keeps_the_subscriber_on_the_live_feed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(CountingLog {
        inner: open_log(&dir),
        reads: AtomicU64::new(0),
    });
    let (_shutdown_tx, shutdown) = watch::channel(false);
    let mut subscription = subscribe(
        Arc::clone(&log) as Arc<dyn EventLog>,
        EventFilter::default(),
        Start::Earliest,
        StreamSettings {
            buffer: 1,
            heartbeat: Duration::from_millis(50),
            ..settings()
        },
        shutdown,
    );
    // Only a producer following the live feed beats.
    let beat = next_item(&mut subscription).await;
    assert!(matches!(beat, StreamItem::Heartbeat { .. }), "{beat:?}");
    let reads = log.reads.load(Ordering::SeqCst);
    for index in 1..=3 {
        append(&log.inner, event(&format!("evt_{index}"), 10)).await;
    }
    // The buffer holds one item: the producer waits with the rest. The feed holds a few
    // hundred bytes, far from pressure, so it has no reason to leave it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sequences = Vec::new();
    while sequences.len() < 3 {
        match next_item(&mut subscription).await {
            StreamItem::Event(event) => sequences.push(event.sequence),
            StreamItem::Heartbeat { .. } => {}
            other => panic!("expected an event or a heartbeat, got {other:?}"),
        }
    }
    assert_eq!(sequences, [1, 2, 3]);
    assert_eq!(
        log.reads.load(Ordering::SeqCst),
        reads,
        "left the live feed"
    );
    log.close().await;
}

/// The status a subscription ends with, within `within`, skipping what comes before it.
async fn end_within(subscription: &mut Subscription, within: Duration) -> StreamEnd {
    tokio::time::timeout(within, async {
        loop {
            match subscription.recv().await {
                Some(Ok(_)) => {}
                Some(Err(end)) => return end,
                None => panic!("the stream ended without a status"),
            }
        }
    })
    .await
    .expect("the stream went on")
}

// The log stays open in both: the stream ends on the server's signal, not because the feed
// closed under it.
#[tokio::test]
async fn shutdown_ends_a_live_stream_with_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(&dir);
    append(&log, event("evt_1", 10)).await;
    let (shutdown_tx, shutdown) = watch::channel(false);
    let mut subscription = subscribe(
        Arc::clone(&log),
        EventFilter::default(),
        Start::Earliest,
        settings(),
        shutdown,
    );
    assert_eq!(next_event(&mut subscription).await.sequence, 1);
    shutdown_tx.send(true).unwrap();
    let end = end_within(&mut subscription, Duration::from_secs(5)).await;
    assert!(
        matches!(end, StreamEnd::ShuttingDown { resume_after: 1 }),
        "{end:?}"
    );
    log.close().await;
}

#[tokio::test]
async fn a_stream_opened_during_shutdown_ends_before_sending_anything() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_log(&dir);
    append(&log, event("evt_1", 10)).await;
    let (_shutdown_tx, shutdown) = watch::channel(true);
    let mut subscription = subscribe(
        Arc::clone(&log),
        EventFilter::default(),
        Start::After(0),
        settings(),
        shutdown,
    );
    match subscription.recv().await {
        Some(Err(StreamEnd::ShuttingDown { resume_after: 0 })) => {}
        other => panic!("expected the end at sequence 0, got {other:?}"),
    }
    log.close().await;
}
