//! The catch-up/live seam: nothing lost or repeated where a resuming stream meets the live
//! feed, with events committed exactly in its race windows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use common::hooked_log::{LogHooks, hooked};
use hooknorm::log::{AppendRequest, EncodedBatch, EventLog, Live, LiveSubscription, LogError};

use super::*;

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

/// Hooks that, once armed, commit a new event exactly in a subscriber's race windows: inside
/// `subscribe()`, just before and just after subscribing; then inside the next `head()` calls,
/// after reading the head (so the caller acts on a head already stale); and inside the next
/// `read_encoded_after` calls, before the read (the event is in the read and on the live feed)
/// and after it (on the live feed only, past the head the caller read).
#[derive(Default)]
struct SeamLog {
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

    /// A server whose log runs these hooks.
    async fn serve(self: &Arc<Self>, dir: &std::path::Path) -> TestServer {
        let hooks = self.clone();
        TestServer::start_wrapping_log(&test_config_toml(1024 * 1024), dir, move |log| {
            hooked(log, hooks)
        })
        .await
    }

    fn take(counter: &AtomicU64, most: u64) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < most).then_some(n + 1)
            })
            .is_ok()
    }

    async fn inject(&self, log: &dyn EventLog) {
        let n = self.injected.fetch_add(1, Ordering::SeqCst);
        let event = Event {
            id: format!("gigs:evt_seam{n}"),
            provider: Provider::Gigs as i32,
            source: "gigs".into(),
            r#type: "sim.updated".into(),
            ..Default::default()
        };
        let appended = log
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
impl LogHooks for SeamLog {
    async fn read_encoded_after(
        &self,
        log: &dyn EventLog,
        after: u64,
        filter: &hooknorm::log::EventFilter,
        limit: usize,
    ) -> Result<EncodedBatch, LogError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let inject = self.subscribed.load(Ordering::SeqCst)
            && Self::take(&self.read_injections, Self::READ_INJECTIONS);
        if inject {
            self.inject(log).await;
        }
        let read = log.read_encoded_after(after, filter, limit).await;
        if inject {
            self.inject(log).await;
        }
        read
    }

    async fn head(&self, log: &dyn EventLog) -> Result<u64, LogError> {
        let head = log.head().await;
        if self.subscribed.load(Ordering::SeqCst)
            && Self::take(&self.head_injections, Self::HEAD_INJECTIONS)
        {
            self.inject(log).await;
        }
        head
    }

    async fn subscribe(&self, log: &dyn EventLog) -> Result<LiveSubscription, LogError> {
        // Only the first subscription once armed.
        let window = self.armed.swap(false, Ordering::SeqCst);
        if window {
            self.inject(log).await;
        }
        let live = log.subscribe().await;
        if window {
            self.inject(log).await;
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
}

/// A live feed that leaves an event out (the stream sees the next sequence jump) is filled in
/// from the log: the subscriber still gets every event once, in order.
#[tokio::test]
async fn an_event_the_live_feed_leaves_out_is_read_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seam = Arc::new(SeamLog::default());
    seam.skip_live.store(3, Ordering::SeqCst);
    let mut server = seam.serve(dir.path()).await;
    let mut stream = open_stream(&mut server.client, EventFilter::default(), after(0)).await;
    for n in 0..5 {
        append(&mut server.client, n, "subscription.renewed").await;
    }
    // A stream that lost the event waits for a fifth one forever: bound it.
    let sequences = tokio::time::timeout(Duration::from_secs(10), next_sequences(&mut stream, 5))
        .await
        .expect("the event the live feed left out never arrived");
    assert_eq!(sequences, vec![1, 2, 3, 4, 5], "gap or disorder");
    server.shutdown().await;
}

/// A live subscriber is sent each next event from the feed itself: not one is read back from
/// the log (only a jump in sequence sends it there).
#[tokio::test]
async fn a_live_subscriber_is_fed_without_reading_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(SeamLog::default());
    let hooks = log.clone();
    let toml = test_config_toml(1024 * 1024) + "\n[streams]\nheartbeat_seconds = 1\n";
    let mut server =
        TestServer::start_wrapping_log(&toml, dir.path(), move |inner| hooked(inner, hooks)).await;
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
        let seam = Arc::new(SeamLog::default());
        let mut server = seam.serve(dir.path()).await;
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
