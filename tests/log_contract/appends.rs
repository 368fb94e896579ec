//! Appends: sequences strictly increase and are never reused, an appended event is visible to
//! every read once `append` returns, and both survive a reopen.

use std::time::Duration;

use hooknorm::log::EventFilter;
use prost::Message;

use super::*;

pub async fn append_assigns_increasing_sequences<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    assert_eq!(head(&log).await, 0, "a new log's head");
    let mut stored = Vec::new();
    for id in ["a", "b", "c"] {
        let appended = log
            .append(request(event(id, "order.created")))
            .await
            .expect("append");
        assert!(!appended.duplicate);
        assert_eq!(appended.event.id, id);
        stored.push(appended.event);
    }
    let assigned = sequences(&stored);
    assert!(assigned[0] > 0, "{assigned:?}");
    assert!(assigned.windows(2).all(|w| w[0] < w[1]), "{assigned:?}");
    assert_eq!(head(&log).await, assigned[2]);

    // Stored as given, with the sequence assigned.
    let mut expected = event("a", "order.created");
    expected.sequence = assigned[0];
    assert_eq!(stored[0], expected);
    assert_eq!(all(&log).await, stored);

    let everything = EventFilter::default();
    let page = log
        .read_after(assigned[0], &everything, 1)
        .await
        .expect("read");
    assert_eq!(ids(&page), ["b"]);
    assert!(
        log.read_after(0, &everything, 0)
            .await
            .expect("read")
            .is_empty()
    );
    let past = log
        .read_after(u64::MAX, &everything, 10)
        .await
        .expect("read");
    assert!(past.is_empty());
    log.check_writable().await.expect("writable");
    log.close().await;
}

/// Once `append` returns, the event is in every read: the head, `read_after`, the encoded
/// catch-up read, `get` and `list` all see it.
pub async fn appends_are_visible_to_every_read_once_they_return<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    let everything = EventFilter::default();
    let mut previous = 0;
    for index in 0..20 {
        let stored = store(&log, event(&format!("e{index}"), "t.x")).await;
        assert!(head(&log).await >= stored.sequence);
        let after = log
            .read_after(previous, &everything, 1)
            .await
            .expect("read");
        assert_eq!(after, std::slice::from_ref(&stored));
        let encoded = log
            .read_encoded_after(previous, &everything, 1)
            .await
            .expect("encoded read");
        assert_eq!(sequences_of(&encoded.events), [stored.sequence]);
        let decoded = Event::decode(encoded.events[0].bytes.clone()).expect("decodes");
        assert_eq!(decoded, stored, "the encoding subscribers are sent");
        let got = log.get(&stored.id, View::Basic).await.expect("get");
        assert_eq!(got.as_ref(), Some(&stored));
        let newest = log.list(&everything, None, 1).await.expect("list");
        assert_eq!(newest, std::slice::from_ref(&stored));
        previous = stored.sequence;
    }
    log.close().await;
}

pub async fn sequences_and_events_survive_a_reopen<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    let a = store(&log, event("a", "t.x")).await;
    let b = store(&log, event("b", "t.x")).await;
    log.close().await;

    let log = harness.reopen().await;
    assert_eq!(head(&log).await, b.sequence);
    assert_eq!(all(&log).await, [a, b.clone()]);
    let c = store(&log, event("c", "t.x")).await;
    assert!(c.sequence > b.sequence);
    log.close().await;
}

/// Retention by age can remove every event, the newest included: the next sequences still go
/// on from the newest ever assigned, before and after a reopen.
pub async fn sequences_are_never_reused_after_retention_or_a_reopen<H: Harness>(harness: &mut H) {
    let settings = Settings {
        retention_max_age: Some(Duration::from_secs(60)),
        ..Settings::default()
    };
    let log = harness.open(settings).await;
    let mut newest = 0;
    for id in ["a", "b", "c"] {
        newest = store(&log, event(id, "t.x")).await.sequence;
    }
    harness.advance(Duration::from_secs(61)).await;
    let report = log.enforce_retention().await.expect("retention");
    assert_eq!(report.events_removed, 3);
    assert!(all(&log).await.is_empty());
    assert_eq!(
        head(&log).await,
        newest,
        "the head is the newest ever committed"
    );
    let d = store(&log, event("d", "t.x")).await;
    assert!(d.sequence > newest, "{} reused", d.sequence);

    harness.advance(Duration::from_secs(61)).await;
    log.enforce_retention().await.expect("retention");
    log.close().await;
    let log = harness.reopen().await;
    assert_eq!(head(&log).await, d.sequence);
    let e = store(&log, event("e", "t.x")).await;
    assert!(
        e.sequence > d.sequence,
        "{} reused after a reopen",
        e.sequence
    );
    log.close().await;
}

fn sequences_of(events: &[hooknorm::log::EncodedEvent]) -> Vec<u64> {
    events.iter().map(|event| event.sequence).collect()
}
