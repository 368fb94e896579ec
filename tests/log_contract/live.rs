//! The live feed: exactly the committed events, in order, each readable by the time it
//! arrives; the seam with a read up to the head; lag reported, never silent.

use std::sync::Arc;
use std::time::Duration;

use hooknorm::log::{EventFilter, LiveEvent};
use prost::Message;

use super::*;

pub async fn the_live_feed_carries_exactly_the_committed_events_in_order<H: Harness>(
    harness: &mut H,
) {
    let log = harness.open(Settings::default()).await;
    let mut subscription = log.subscribe().await.expect("subscribe");
    let appends: Vec<_> = (0..20)
        .map(|index| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { store(&log, event(&format!("e{index}"), "t.x")).await })
        })
        .collect();
    let mut stored = Vec::new();
    for append in appends {
        stored.push(append.await.expect("append task"));
    }
    stored.sort_by_key(|event| event.sequence);

    let everything = EventFilter::default();
    let mut previous = 0;
    for expected in &stored {
        let Live::Event(live) = next_live(&mut subscription).await else {
            panic!("expected event {}", expected.sequence);
        };
        assert_eq!(live.sequence(), expected.sequence, "commit order");
        if let LiveEvent::Full(committed) = &live {
            assert_eq!(&committed.event, expected);
            assert_eq!(committed.encoded.sequence, expected.sequence);
            let decoded = Event::decode(committed.encoded.bytes.clone()).expect("decodes");
            assert_eq!(&decoded, expected);
        }
        // Published only once durable: whoever hears of it can read it.
        let read = log
            .read_after(previous, &everything, 1)
            .await
            .expect("read");
        assert_eq!(
            read,
            std::slice::from_ref(expected),
            "event {} not yet readable",
            expected.sequence
        );
        previous = expected.sequence;
    }
    // A duplicate's answer is not a new event: nothing is published for it.
    let again = log
        .append(request(event("e0", "t.x")))
        .await
        .expect("append");
    assert!(again.duplicate);
    assert_no_live_event(&mut subscription, Duration::from_millis(300)).await;
    log.close().await;
}

/// Subscribe, then ask the head: everything at or below it is readable, everything above it
/// arrives on the subscription, while appends go on all the time.
pub async fn subscribe_then_read_to_head_leaves_no_gap_and_no_duplicate<H: Harness>(
    harness: &mut H,
) {
    const BEFORE: usize = 50;
    const DURING: usize = 300;
    let log = harness.open(Settings::default()).await;
    let mut appended = Vec::new();
    for index in 0..BEFORE {
        appended.push(
            store(&log, event(&format!("before{index}"), "t.x"))
                .await
                .sequence,
        );
    }
    let writer = {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            let mut sequences = Vec::new();
            for index in 0..DURING {
                let stored = store(&log, event(&format!("during{index}"), "t.x")).await;
                sequences.push(stored.sequence);
            }
            sequences
        })
    };
    // Subscribers join all through the run, each asking the head right after subscribing. Of
    // those that saw the same head the last is kept, the nearest to the next commit: that is
    // where a broken backend's window between a commit, its publication and its head lies.
    let mut joined: Vec<(LiveSubscription, u64)> = Vec::new();
    while !writer.is_finished() {
        let subscription = log.subscribe().await.expect("subscribe");
        let head = head(&log).await;
        match joined.last_mut() {
            Some((kept, seen)) if *seen == head => *kept = subscription,
            _ => joined.push((subscription, head)),
        }
        tokio::task::yield_now().await;
    }
    appended.extend(writer.await.expect("writer"));
    // Everything at or below any head is readable (visibility itself:
    // `appends_are_visible_to_every_read_once_they_return`).
    assert_same(&read_through(&log, u64::MAX).await, &appended, "the log");
    for (mut subscription, head) in joined {
        let above: Vec<u64> = appended.iter().copied().filter(|s| *s > head).collect();
        // Until the newest event arrives (none is due when the head was already the newest).
        let mut live = Vec::new();
        while live.last() < above.last() {
            match next_live(&mut subscription).await {
                Live::Event(event) if event.sequence() > head => live.push(event.sequence()),
                // Events at or below the head may come too; the read already had them.
                Live::Event(_) => {}
                other => panic!("after head {head}, got {other:?}"),
            }
        }
        assert_same(&live, &above, &format!("the live feed after head {head}"));
    }
    log.close().await;
}

/// Fails at the first place `got` and `want` differ, naming it (the whole lists are long).
fn assert_same(got: &[u64], want: &[u64], what: &str) {
    let first_difference = got.iter().zip(want).position(|(got, want)| got != want);
    match first_difference {
        Some(at) => panic!("{what}: got {} where {} was due", got[at], want[at]),
        None => assert_eq!(got.len(), want.len(), "{what}: lengths differ"),
    }
}

/// The sequences of every event at or below `head`, read in small batches.
async fn read_through(log: &Arc<dyn EventLog>, head: u64) -> Vec<u64> {
    let mut read = Vec::new();
    let mut cursor = 0;
    while cursor < head {
        let batch = log
            .read_after(cursor, &EventFilter::default(), 16)
            .await
            .expect("read");
        let Some(newest) = batch.last() else { break };
        cursor = newest.sequence;
        read.extend(batch.iter().map(|e| e.sequence).filter(|s| *s <= head));
    }
    read
}

/// A subscription that does not read while many events commit either gets them all or is
/// told it lagged before any jump: a committed event never goes missing unannounced.
pub async fn a_lagging_subscription_is_told<H: Harness>(harness: &mut H) {
    let settings = Settings {
        live_capacity: 8,
        ..Settings::default()
    };
    let log = harness.open(settings).await;
    let mut subscription = log.subscribe().await.expect("subscribe");
    let mut committed = Vec::new();
    for index in 0..64 {
        committed.push(
            store(&log, event(&format!("e{index}"), "t.x"))
                .await
                .sequence,
        );
    }
    let last = committed[committed.len() - 1];
    // Index into `committed` of the next event not yet delivered.
    let mut next = 0;
    let mut lag_told = false;
    let mut ever_lagged = false;
    loop {
        let item = tokio::time::timeout(Duration::from_secs(2), subscription.next()).await;
        match item {
            Ok(Live::Event(event)) => {
                let at = committed
                    .iter()
                    .position(|s| *s == event.sequence())
                    .unwrap_or_else(|| panic!("{} was never committed", event.sequence()));
                assert!(at >= next, "{} again or out of order", event.sequence());
                assert!(
                    at == next || lag_told,
                    "{} missing without a lag report",
                    committed[next]
                );
                next = at + 1;
                lag_told = false;
                if event.sequence() == last {
                    break;
                }
            }
            Ok(Live::Lagged { .. }) => {
                lag_told = true;
                ever_lagged = true;
            }
            // The feed may stop after saying it lagged; the missed events are in the log.
            Err(_) if lag_told => break,
            Err(_) => panic!("{} never arrived and no lag was reported", committed[next]),
            Ok(Live::Closed) => panic!("the feed closed while the log is open"),
        }
    }
    assert!(
        ever_lagged || next == committed.len(),
        "events missing: {:?}",
        &committed[next..]
    );
    log.close().await;
}

pub async fn close_ends_subscriptions_after_the_committed_events<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    let mut subscription = log.subscribe().await.expect("subscribe");
    let mut stored = Vec::new();
    for id in ["a", "b", "c"] {
        stored.push(store(&log, event(id, "t.x")).await.sequence);
    }
    log.close().await;
    for sequence in stored {
        match next_live(&mut subscription).await {
            Live::Event(event) => assert_eq!(event.sequence(), sequence),
            other => panic!("expected event {sequence}, got {other:?}"),
        }
    }
    assert!(matches!(next_live(&mut subscription).await, Live::Closed));
    assert!(matches!(next_live(&mut subscription).await, Live::Closed));
    assert!(matches!(
        log.subscribe().await,
        Err(hooknorm::log::LogError::Closed)
    ));
}
