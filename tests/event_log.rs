//! The durable event log over real gRPC and a real SQLite file: resume cursors, the
//! catch-up/live seam, filters, slow subscribers, deduplication (sequential, concurrent, after a
//! restart), retention, listing and shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::stream::*;
use common::*;
use hooknorm::log::{
    AppendRequest, Appended, EncodedBatch, EventLog, Live, LiveSubscription, LogError,
    RetentionReport,
};
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{
    Event, EventFilter, GetEventRequest, ListEventsRequest, Provider, ResourceRef,
};
use tokio::sync::watch;

async fn next_types(stream: &mut EventStream, count: usize) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    while out.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("in time")
            .expect("stream ok")
            .expect("stream open");
        if let Some(Message::Event(event)) = message.message {
            out.push((event.sequence, event.source.clone(), event.r#type.clone()));
        }
    }
    out
}

#[tokio::test]
async fn sequences_increase_and_resume_gives_exactly_what_follows() {
    let mut server = TestServer::start().await;
    let mut sequences = Vec::new();
    for n in 0..20 {
        sequences.push(append(&mut server.client, n, "subscription.renewed").await);
    }
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    let cursor = sequences[11];
    let mut stream = open_stream(&mut server.client, EventFilter::default(), after(cursor)).await;
    assert_eq!(
        next_sequences(&mut stream, 8).await,
        sequences[12..].to_vec()
    );
    // Then live: one more append arrives right after.
    let next = append(&mut server.client, 100, "subscription.renewed").await;
    assert_eq!(next_sequences(&mut stream, 1).await, vec![next]);

    let mut from_start = open_stream(&mut server.client, EventFilter::default(), earliest()).await;
    let mut all = sequences.clone();
    all.push(next);
    assert_eq!(next_sequences(&mut from_start, 21).await, all);
    server.shutdown().await;
}

#[tokio::test]
async fn the_catch_up_live_seam_loses_and_repeats_nothing() {
    let mut server = TestServer::start().await;
    for n in 0..300 {
        append(&mut server.client, n, "sim.updated").await;
    }
    // Keep appending while several subscribers replay from the start.
    let mut writer = server.client.clone();
    let producer = tokio::spawn(async move {
        let mut last = 0;
        for n in 300..900 {
            last = append(&mut writer, n, "sim.updated").await;
        }
        last
    });
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut client = server.client.clone();
        readers.push(tokio::spawn(async move {
            let mut stream = open_stream(&mut client, EventFilter::default(), earliest()).await;
            next_sequences(&mut stream, 900).await
        }));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let last = producer.await.expect("producer");
    for reader in readers {
        let got = reader.await.expect("reader");
        let want: Vec<u64> = (got[0]..=last).collect();
        assert_eq!(got.len(), 900);
        assert_eq!(got, want, "gap or duplicate at the seam");
    }
    server.shutdown().await;
}

/// A log that, once armed, commits a new event exactly in a subscriber's race windows: inside
/// `subscribe()`, just before and just after subscribing; then inside the next `head()` calls,
/// after reading the head (so the caller acts on a head already stale); and inside the next
/// `read_encoded_after` calls, before the read (the event is in the read and on the live feed)
/// and after it (on the live feed only, past the head the caller read).
struct SeamLog {
    inner: Arc<dyn EventLog>,
    armed: AtomicBool,
    subscribed: AtomicBool,
    head_injections: AtomicU64,
    read_injections: AtomicU64,
    injected: AtomicU64,
    /// A sequence the live feed leaves out (0: none), as a feed that lost an event would.
    skip_live: AtomicU64,
    /// Catch-up reads so far.
    reads: AtomicU64,
}

impl SeamLog {
    const HEAD_INJECTIONS: u64 = 2;
    const READ_INJECTIONS: u64 = 2;
    /// Two in `subscribe`, one per head, two per read.
    const INJECTIONS: u64 = 2 + Self::HEAD_INJECTIONS + 2 * Self::READ_INJECTIONS;

    fn new(inner: Arc<dyn EventLog>) -> SeamLog {
        SeamLog {
            inner,
            armed: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            head_injections: AtomicU64::new(0),
            read_injections: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            skip_live: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }
    }

    fn take(counter: &AtomicU64, most: u64) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < most).then_some(n + 1)
            })
            .is_ok()
    }

    async fn inject(&self) {
        let n = self.injected.fetch_add(1, Ordering::SeqCst);
        let event = Event {
            id: format!("gigs:evt_seam{n}"),
            provider: Provider::Gigs as i32,
            source: "gigs".into(),
            r#type: "sim.updated".into(),
            ..Default::default()
        };
        let appended = self
            .inner
            .append(AppendRequest {
                event,
                identity: hooknorm::event::Identity::ProviderId,
                delivery: None,
            })
            .await
            .expect("injected append");
        assert!(!appended.duplicate);
    }
}

#[async_trait]
impl EventLog for SeamLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        self.inner.append(request).await
    }
    async fn read_after(
        &self,
        after: u64,
        filter: &hooknorm::log::EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.inner.read_after(after, filter, limit).await
    }
    async fn read_encoded_after(
        &self,
        after: u64,
        filter: &hooknorm::log::EventFilter,
        limit: usize,
    ) -> Result<EncodedBatch, LogError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let inject = self.subscribed.load(Ordering::SeqCst)
            && Self::take(&self.read_injections, Self::READ_INJECTIONS);
        if inject {
            self.inject().await;
        }
        let read = self.inner.read_encoded_after(after, filter, limit).await;
        if inject {
            self.inject().await;
        }
        read
    }
    async fn list(
        &self,
        filter: &hooknorm::log::EventFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Event>, LogError> {
        self.inner.list(filter, before, limit).await
    }
    async fn get(&self, id: &str, view: hooknorm::log::View) -> Result<Option<Event>, LogError> {
        self.inner.get(id, view).await
    }
    async fn cursor_at(&self, time: DateTime<Utc>) -> Result<u64, LogError> {
        self.inner.cursor_at(time).await
    }
    async fn head(&self) -> Result<u64, LogError> {
        let head = self.inner.head().await;
        if self.subscribed.load(Ordering::SeqCst)
            && Self::take(&self.head_injections, Self::HEAD_INJECTIONS)
        {
            self.inject().await;
        }
        head
    }
    async fn subscribe(&self) -> Result<LiveSubscription, LogError> {
        // Only the first subscription once armed.
        let window = self.armed.swap(false, Ordering::SeqCst);
        if window {
            self.inject().await;
        }
        let live = self.inner.subscribe().await;
        if window {
            self.inject().await;
            self.subscribed.store(true, Ordering::SeqCst);
        }
        let skip = self.skip_live.load(Ordering::SeqCst);
        if skip == 0 {
            return live;
        }
        let items = futures_util::stream::unfold(Some(live?), move |live| async move {
            let mut live = live?;
            loop {
                match live.next().await {
                    Live::Closed => return None,
                    Live::Event(event) if event.sequence() == skip => continue,
                    item => return Some((item, Some(live))),
                }
            }
        });
        Ok(LiveSubscription::new(items))
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

/// A live feed that leaves an event out (the stream sees the next sequence jump) is filled in
/// from the log: the subscriber still gets every event once, in order.
#[tokio::test]
async fn an_event_the_live_feed_leaves_out_is_read_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slot: Arc<std::sync::OnceLock<Arc<SeamLog>>> = Arc::default();
    let wrapped = slot.clone();
    let toml = test_config_toml(1024 * 1024);
    let mut server = TestServer::start_wrapping_log(&toml, dir.path(), move |inner| {
        let log = Arc::new(SeamLog::new(inner));
        log.skip_live.store(3, Ordering::SeqCst);
        let _ = wrapped.set(log.clone());
        log
    })
    .await;
    let mut stream = open_stream(&mut server.client, EventFilter::default(), after(0)).await;
    for n in 0..5 {
        append(&mut server.client, n, "subscription.renewed").await;
    }
    // A stream that lost the event waits for a fifth one forever: bound it.
    let sequences = tokio::time::timeout(Duration::from_secs(10), next_sequences(&mut stream, 5))
        .await
        .expect("the event the live feed left out never arrived");
    assert_eq!(sequences, vec![1, 2, 3, 4, 5], "gap or disorder");
    assert!(slot.get().is_some());
    server.shutdown().await;
}

/// A live subscriber is sent each next event from the feed itself: not one is read back from
/// the log (only a jump in sequence sends it there).
#[tokio::test]
async fn a_live_subscriber_is_fed_without_reading_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slot: Arc<std::sync::OnceLock<Arc<SeamLog>>> = Arc::default();
    let wrapped = slot.clone();
    let toml = test_config_toml(1024 * 1024) + "\n[streams]\nheartbeat_seconds = 1\n";
    let mut server = TestServer::start_wrapping_log(&toml, dir.path(), move |inner| {
        let log = Arc::new(SeamLog::new(inner));
        let _ = wrapped.set(log.clone());
        log
    })
    .await;
    let log = slot.get().expect("wrapped").clone();
    let mut stream = open_stream(&mut server.client, EventFilter::default(), after(0)).await;
    // A heartbeat comes only from a producer that is following the live feed.
    let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("heartbeat in time")
        .expect("ok")
        .expect("open");
    assert!(matches!(message.message, Some(Message::Heartbeat(_))));
    let reads = log.reads.load(Ordering::SeqCst);
    for n in 0..5 {
        append(&mut server.client, n, "subscription.renewed").await;
    }
    assert_eq!(next_sequences(&mut stream, 5).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        log.reads.load(Ordering::SeqCst),
        reads,
        "live events read from the log"
    );
    server.shutdown().await;
}

/// Events committed exactly in the catch-up/live race windows (see [`SeamLog`]) arrive once
/// each, in order, and nothing else follows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_in_the_seam_windows_arrive_exactly_once() {
    for (start, first) in [(earliest(), 1), (after(3), 4)] {
        // A broken seam may leave a call waiting rather than a stream short: fail either way.
        tokio::time::timeout(Duration::from_secs(60), seam_case(start, first))
            .await
            .unwrap_or_else(|_| panic!("{start:?}: timed out"));
    }
}

async fn seam_case(start: Option<hooknorm::proto::v1::stream_events_request::Start>, first: u64) {
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let slot: Arc<std::sync::OnceLock<Arc<SeamLog>>> = Arc::default();
        let wrapped = slot.clone();
        let toml = test_config_toml(1024 * 1024);
        let mut server = TestServer::start_wrapping_log(&toml, dir.path(), move |inner| {
            let log = Arc::new(SeamLog::new(inner));
            let _ = wrapped.set(log.clone());
            log
        })
        .await;
        let seam = slot.get().expect("wrapped").clone();
        for n in 0..5 {
            append(&mut server.client, n, "subscription.renewed").await;
        }
        seam.armed.store(true, Ordering::SeqCst);
        let mut stream = open_stream(&mut server.client, EventFilter::default(), start).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while seam.injected.load(Ordering::SeqCst) < SeamLog::INJECTIONS {
            assert!(
                std::time::Instant::now() < deadline,
                "{start:?}: the subscriber went through {} of the {} windows",
                seam.injected.load(Ordering::SeqCst),
                SeamLog::INJECTIONS
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Appended once the windows are spent: the stream must be live by now, and the
        // sentinel closes the sequence.
        let sentinel = append(&mut server.client, 100, "sim.updated").await;
        assert_eq!(sentinel, 5 + SeamLog::INJECTIONS + 1, "{start:?}");
        let want: Vec<u64> = (first..=sentinel).collect();
        assert_eq!(
            next_sequences(&mut stream, want.len()).await,
            want,
            "{start:?}: gap, duplicate or disorder at the seam"
        );
        // Nothing extra: the next message, if any, is not an event.
        let next = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
        if let Ok(message) = next {
            let message = message.expect("stream ok").expect("stream open");
            assert!(
                !matches!(message.message, Some(Message::Event(_))),
                "{start:?}: extra event {message:?}"
            );
        }
        server.shutdown().await;
    }
}

#[tokio::test]
async fn filters_by_provider_source_type_and_resource() {
    let mut server = TestServer::start().await;
    let mm_order =
        std::fs::read(fixtures_dir().join("mobile_manager/order.complete.json")).expect("fixture");
    let abowire =
        std::fs::read(fixtures_dir().join("abowire/api-key.revoke.json")).expect("fixture");
    append(&mut server.client, 1, "subscription.renewed").await;
    append(&mut server.client, 2, "sim.updated").await;
    server
        .client
        .verify_and_normalize(token_request("mm", "key", MM_TOKEN, &mm_order))
        .await
        .expect("mm");
    server
        .client
        .verify_and_normalize(token_request("abowire", "token", ABOWIRE_TOKEN, &abowire))
        .await
        .expect("abowire");
    append(&mut server.client, 3, "subscriptionChange.applied").await;

    let cases: Vec<(EventFilter, Vec<&str>)> = vec![
        (
            EventFilter {
                providers: vec![Provider::Gigs as i32],
                ..Default::default()
            },
            vec![
                "subscription.renewed",
                "sim.updated",
                "subscription_change.applied",
            ],
        ),
        (
            EventFilter {
                sources: vec!["mm".into(), "abowire".into()],
                ..Default::default()
            },
            vec!["order.completed", "api_key.revoked"],
        ),
        (
            EventFilter {
                types: vec!["subscription.*".into()],
                ..Default::default()
            },
            vec!["subscription.renewed"],
        ),
        (
            EventFilter {
                types: vec!["subscription_change.applied".into(), "order.*".into()],
                ..Default::default()
            },
            vec!["order.completed", "subscription_change.applied"],
        ),
        // Subject match.
        (
            EventFilter {
                resource: Some(ResourceRef {
                    kind: "subscription".into(),
                    id: "sub_2".into(),
                }),
                ..Default::default()
            },
            vec!["sim.updated"],
        ),
        // Related match: every gigs_event references the shared plan.
        (
            EventFilter {
                resource: Some(ResourceRef {
                    kind: "plan".into(),
                    id: "pln_shared".into(),
                }),
                ..Default::default()
            },
            vec![
                "subscription.renewed",
                "sim.updated",
                "subscription_change.applied",
            ],
        ),
    ];
    for (filter, want) in cases {
        // Replay.
        let mut stream = open_stream(&mut server.client, filter.clone(), earliest()).await;
        let got: Vec<String> = next_types(&mut stream, want.len())
            .await
            .into_iter()
            .map(|t| t.2)
            .collect();
        assert_eq!(got, want, "replay with {filter:?}");
        // Listing (newest first).
        let listed = server
            .client
            .list_events(ListEventsRequest {
                filter: Some(filter.clone()),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        let mut listed: Vec<String> = listed.events.into_iter().map(|e| e.r#type).collect();
        listed.reverse();
        assert_eq!(listed, want, "list with {filter:?}");
    }
    // Live filtering: only the matching new event arrives.
    let filter = EventFilter {
        types: vec!["usage_threshold.*".into()],
        ..Default::default()
    };
    let mut stream = open_stream(&mut server.client, filter, None).await;
    append(&mut server.client, 10, "sim.updated").await;
    append(&mut server.client, 11, "usageThreshold.exceeded").await;
    let got = next_types(&mut stream, 1).await;
    assert_eq!(got[0].2, "usage_threshold.exceeded");
    server.shutdown().await;
}

#[tokio::test]
async fn redeliveries_are_stored_once_sequentially_concurrently_and_after_restart() {
    let server = TestServer::start().await;
    let mut client = server.client.clone();
    let first = client
        .verify_and_normalize(gigs_event_request(7, "sim.retired"))
        .await
        .expect("ok")
        .into_inner();
    assert!(!first.duplicate);
    let first = first.event.expect("event");
    let again = client
        .verify_and_normalize(gigs_event_request(7, "sim.retired"))
        .await
        .expect("ok")
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(
        again.event.as_ref().map(|e| (e.id.clone(), e.sequence)),
        Some((first.id.clone(), first.sequence))
    );

    // Concurrent identical deliveries of a new event: exactly one is new.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .verify_and_normalize(gigs_event_request(8, "sim.retired"))
                .await
                .expect("ok")
                .into_inner()
        }));
    }
    let mut fresh = 0;
    let mut sequences = std::collections::HashSet::new();
    for task in tasks {
        let response = task.await.expect("task");
        fresh += usize::from(!response.duplicate);
        sequences.insert(response.event.expect("event").sequence);
    }
    assert_eq!(fresh, 1, "exactly one concurrent delivery is new");
    assert_eq!(sequences.len(), 1, "all answers name the same stored event");

    // Abowire (content-identified) redelivery.
    let abowire =
        std::fs::read(fixtures_dir().join("abowire/payment.accepted.json")).expect("fixture");
    let a1 = client
        .verify_and_normalize(token_request("abowire", "token", ABOWIRE_TOKEN, &abowire))
        .await
        .expect("ok")
        .into_inner();
    let a2 = client
        .verify_and_normalize(token_request("abowire", "token", ABOWIRE_TOKEN, &abowire))
        .await
        .expect("ok")
        .into_inner();
    assert!(!a1.duplicate && a2.duplicate);

    // After a restart on the same store.
    let (dir, store) = server.stop_keep_store().await;
    let toml = test_config_toml(1024 * 1024);
    let mut restarted = TestServer::start_in(&toml, &store).await;
    let after_restart = restarted
        .client
        .verify_and_normalize(gigs_event_request(7, "sim.retired"))
        .await
        .expect("ok")
        .into_inner();
    assert!(after_restart.duplicate);
    assert_eq!(after_restart.event.expect("event").sequence, first.sequence);
    // Sequences continue where they stopped.
    let next = append(&mut restarted.client, 9, "sim.retired").await;
    assert!(next > first.sequence);
    let listed = restarted
        .client
        .list_events(ListEventsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.events.len(), 4, "evt 7, evt 8, abowire, evt 9");
    restarted.shutdown().await;
    drop(dir);
}

#[tokio::test]
async fn mobile_manager_alerts_dedupe_by_latest_state() {
    let mut server = TestServer::start().await;
    let on = std::fs::read(fixtures_dir().join("mobile_manager/alert.on.json")).expect("fixture");
    // The same alert on the same SIM turning off.
    let off = String::from_utf8(on.clone())
        .expect("utf-8")
        .replace("\"On\"", "\"Off\"")
        .into_bytes();
    assert_ne!(on, off);
    let mut ids = Vec::new();
    for (body, want_duplicate) in [
        (&on, false),
        (&on, true),
        (&off, false),
        (&off, true),
        (&on, false),
    ] {
        let response = server
            .client
            .verify_and_normalize(token_request("mm", "key", MM_TOKEN, body))
            .await
            .expect("ok")
            .into_inner();
        assert_eq!(response.duplicate, want_duplicate);
        if !response.duplicate {
            ids.push(response.event.expect("event").id);
        }
    }
    assert_eq!(ids.len(), 3, "on, off, on again: three events");
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 3, "ids stay unique: {ids:?}");
    for id in &ids {
        let got = server
            .client
            .get_event(GetEventRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .expect("get")
            .into_inner();
        assert_eq!(&got.event.expect("event").id, id);
    }
    server.shutdown().await;
}

/// A subscriber that stops reading is ended after `slow_subscriber_timeout` with a cursor from
/// which it resumes without a gap. (Ingestion, other subscribers and memory while one is paused:
/// `tests/slow_subscribers.rs`, against the real binary.)
#[tokio::test]
async fn a_stalled_subscriber_is_ended_with_a_cursor_it_resumes_from() {
    let toml = test_config_toml(1024 * 1024)
        + "\n[streams]\nbuffer = 16\nslow_subscriber_timeout_seconds = 1\n";
    let server = TestServer::start_with(&toml).await;
    // A subscriber that never reads, on its own connection as a separate client would be, with
    // small HTTP/2 windows so its unread data backs up to the server quickly.
    let mut paused_client = connect_paused(&server.addr.to_string()).await;
    let mut paused = open_stream(&mut paused_client, EventFilter::default(), None).await;
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let mut client = server.client.clone();
        writers.push(tokio::spawn(async move {
            let mut last = 0;
            for n in 0..80u64 {
                let request = padded_gigs_event_request(w * 1000 + n, "sim.updated", 4096);
                let response = client.verify_and_normalize(request).await.expect("append");
                last = last.max(response.into_inner().event.expect("event").sequence);
            }
            last
        }));
    }
    let mut last = 0;
    for writer in writers {
        last = last.max(writer.await.expect("writer"));
    }
    assert_eq!(last, 640, "every append stored");
    // Past the timeout with its buffers full (640 events of 4 KiB, 2.5 MiB, are far more than
    // they hold), the server gives up on it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The paused subscriber is ended, telling it where to resume, rather than buffered forever.
    let ended = stream_end(&mut paused, Duration::from_secs(30)).await;
    assert_eq!(ended.code(), tonic::Code::Aborted, "{ended:?}");
    assert_eq!(reason_of(&ended).0, "SUBSCRIBER_TOO_SLOW", "{ended:?}");
    let resume = resume_after(&ended);
    assert!(resume < last, "resume after {resume} of {last}");
    // Resuming from that cursor gives exactly what it had not been sent.
    let mut resumed = open_stream(&mut paused_client, EventFilter::default(), after(resume)).await;
    let want: Vec<u64> = (resume + 1..=last).collect();
    assert_eq!(next_sequences(&mut resumed, want.len()).await, want);
    server.shutdown().await;
}

#[tokio::test]
async fn idle_streams_get_heartbeats() {
    let toml = test_config_toml(1024 * 1024) + "\n[streams]\nheartbeat_seconds = 1\n";
    let mut server = TestServer::start_with(&toml).await;
    append(&mut server.client, 1, "sim.updated").await;
    let mut stream = open_stream(&mut server.client, EventFilter::default(), None).await;
    let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("heartbeat in time")
        .expect("ok")
        .expect("open");
    let Some(Message::Heartbeat(heartbeat)) = message.message else {
        panic!("expected a heartbeat")
    };
    assert_eq!(heartbeat.head_sequence, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn list_paginates_newest_first_and_get_finds_by_id() {
    let mut server = TestServer::start().await;
    let mut sequences = Vec::new();
    for n in 0..25 {
        sequences.push(append(&mut server.client, n, "invoice.created").await);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .client
            .list_events(ListEventsRequest {
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert!(page.events.len() <= 10);
        seen.extend(page.events.iter().map(|e| e.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    sequences.reverse();
    assert_eq!(seen, sequences);
    // A token used with another filter is refused.
    let first = server
        .client
        .list_events(ListEventsRequest {
            page_size: 5,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    let status = server
        .client
        .list_events(ListEventsRequest {
            page_token: first.next_page_token,
            filter: Some(EventFilter {
                sources: vec!["gigs".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("token bound to filter");
    assert_eq!(reason_of(&status).0, "INVALID_REQUEST");
    let status = server
        .client
        .get_event(GetEventRequest {
            id: "gigs:evt_nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("missing");
    assert_eq!(reason_of(&status).0, "EVENT_NOT_FOUND");
    server.shutdown().await;
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let mut server = TestServer::start().await;
    let mut request = gigs_event_request(1, "sim.updated");
    request.dry_run = true;
    let response = server
        .client
        .verify_and_normalize(request)
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(response.event.expect("event").sequence, 0);
    let listed = server
        .client
        .list_events(ListEventsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.events.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn retention_removes_old_events() {
    let toml = test_config_toml(1024 * 1024)
        + "\n[store]\npath = \"PLACEHOLDER\"\nretention_max_count = 5\nretention_interval_seconds = 1\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = toml.replace("PLACEHOLDER", &dir.path().display().to_string());
    let mut server = TestServer::start_in(&toml, dir.path()).await;
    let mut sequences = Vec::new();
    for n in 0..12 {
        sequences.push(append(&mut server.client, n, "sim.updated").await);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = server
            .client
            .list_events(ListEventsRequest::default())
            .await
            .expect("list")
            .into_inner();
        let kept: Vec<u64> = listed.events.iter().map(|e| e.sequence).collect();
        if kept.len() == 5 {
            assert_eq!(
                kept,
                sequences[7..].iter().rev().copied().collect::<Vec<_>>()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not run: {} kept",
            kept.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Within the dedup window a removed event's redelivery is still recognized.
    let again = server
        .client
        .verify_and_normalize(gigs_event_request(0, "sim.updated"))
        .await
        .expect("ok")
        .into_inner();
    assert!(again.duplicate);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_streams_with_a_resume_cursor() {
    let mut server = TestServer::start().await;
    let last = append(&mut server.client, 1, "sim.updated").await;
    let mut stream = open_stream(&mut server.client, EventFilter::default(), earliest()).await;
    assert_eq!(next_sequences(&mut stream, 1).await, vec![last]);
    let stopping = tokio::spawn(server.shutdown());
    let status = stream_end(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(reason_of(&status).0, "SHUTTING_DOWN");
    assert_eq!(resume_after(&status), last);
    stopping.await.expect("server stops");
}
