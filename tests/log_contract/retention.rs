//! Retention: it removes the oldest events, by count or by append time, and catch-up reads say
//! how far it has gone, so a cursor below the oldest kept event is never passed silently.

use std::time::Duration;

use hooknorm::log::{EventFilter, TypePattern};

use super::*;

pub async fn retention_by_count_removes_the_oldest_and_reads_say_how_far<H: Harness>(
    harness: &mut H,
) {
    let settings = Settings {
        retention_max_count: Some(2),
        ..Settings::default()
    };
    let log = harness.open(settings).await;
    let mut stored = Vec::new();
    for index in 1..=5 {
        stored.push(store(&log, event(&format!("e{index}"), "t.x")).await);
    }
    let s = sequences(&stored);
    let everything = EventFilter::default();
    let before = log
        .read_encoded_after(0, &everything, 10)
        .await
        .expect("read");
    assert_eq!(before.removed_through, 0, "nothing removed yet");

    let report = log.enforce_retention().await.expect("retention");
    assert_eq!(report.events_removed, 3);
    assert_eq!(all(&log).await, stored[3..]);
    assert_eq!(head(&log).await, s[4], "the head does not move");
    let batch = log
        .read_encoded_after(0, &everything, 10)
        .await
        .expect("read");
    assert!(
        (s[2]..s[3]).contains(&batch.removed_through),
        "removed through {} of {s:?}",
        batch.removed_through
    );
    assert_eq!(batch.events.len(), 2);
    for removed in &stored[..3] {
        assert_eq!(log.get(&removed.id, View::Basic).await.expect("get"), None);
    }
    // A second pass has nothing left to do.
    let again = log.enforce_retention().await.expect("retention");
    assert_eq!(again.events_removed, 0);
    log.close().await;
}

/// Age is the log's to judge, by when it appended an event, not by the `received_at` a caller
/// supplied.
pub async fn retention_by_age_goes_by_append_time_not_received_at<H: Harness>(harness: &mut H) {
    let settings = Settings {
        retention_max_age: Some(Duration::from_secs(3600)),
        ..Settings::default()
    };
    let log = harness.open(settings).await;
    // Appended two hours before the pass, though received "later".
    let old = store(&log, received(event("old", "t.x"), T0_MS + 300_000)).await;
    harness.advance(Duration::from_secs(7190)).await;
    // Appended 310 s before the pass, with a `received_at` ten days back.
    let recent = store(&log, received(event("recent", "t.x"), T0_MS - 864_000_000)).await;
    harness.advance(Duration::from_secs(310)).await;
    store(&log, event("new", "t.x")).await;

    let report = log.enforce_retention().await.expect("retention");
    assert_eq!(report.events_removed, 1);
    assert_eq!(ids(&all(&log).await), ["recent", "new"]);
    let batch = log
        .read_encoded_after(0, &EventFilter::default(), 10)
        .await
        .expect("read");
    assert!((old.sequence..recent.sequence).contains(&batch.removed_through));
    log.close().await;
}

/// A cursor below the oldest kept event reads on from it, and the read says which events are
/// gone, also when the filter matches none of what is left: a reader tells removed events
/// from filtered ones.
pub async fn a_cursor_below_the_oldest_kept_event_reads_on_from_it<H: Harness>(harness: &mut H) {
    let settings = Settings {
        retention_max_count: Some(3),
        ..Settings::default()
    };
    let log = harness.open(settings).await;
    let mut stored = Vec::new();
    for index in 1..=6 {
        stored.push(store(&log, event(&format!("e{index}"), "t.x")).await);
    }
    let s = sequences(&stored);
    log.enforce_retention().await.expect("retention");

    let everything = EventFilter::default();
    let batch = log
        .read_encoded_after(s[0], &everything, 10)
        .await
        .expect("read");
    let removed_through = batch.removed_through;
    assert!((s[2]..s[3]).contains(&removed_through), "{removed_through}");
    let kept: Vec<u64> = batch.events.iter().map(|e| e.sequence).collect();
    assert_eq!(kept, s[3..]);
    assert_eq!(
        log.read_after(s[0], &everything, 10).await.expect("read"),
        stored[3..]
    );

    // From the cursor retention stopped at, nothing is lost and the read says so.
    let batch = log
        .read_encoded_after(removed_through, &everything, 10)
        .await
        .expect("read");
    assert_eq!(batch.removed_through, removed_through);
    assert_eq!(batch.events.len(), 3);

    let nothing = EventFilter {
        types: vec![TypePattern::parse("no.such.*").expect("pattern")],
        ..EventFilter::default()
    };
    let filtered = log
        .read_encoded_after(s[0], &nothing, 10)
        .await
        .expect("read");
    assert!(filtered.events.is_empty());
    assert_eq!(filtered.removed_through, removed_through);
    log.close().await;
}

pub async fn spawned_retention_runs_until_close<H: Harness>(harness: &mut H) {
    let settings = Settings {
        retention_max_count: Some(1),
        ..Settings::default()
    };
    let log = harness.open(settings).await;
    store(&log, event("a", "t.x")).await;
    store(&log, event("b", "t.x")).await;
    let task = hooknorm::log::spawn_retention(&log, Duration::from_millis(10));
    for _ in 0..500 {
        if all(&log).await.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ids(&all(&log).await), ["b"]);
    log.close().await;
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the retention task ends once the log is closed")
        .expect("the retention task does not panic");
}
