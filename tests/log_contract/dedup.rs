//! Dedup: how the log answers a redelivery of an event it stores (the event as first stored,
//! `duplicate = true`, nothing new stored, published or counted in the head, also under
//! concurrency and across a reopen), and which appends are redeliveries under each
//! [`Identity`](hooknorm::event::Identity) a provider declares: a provider id for as long as its
//! event is retained (and for the window after retention removed it), a state only when it
//! repeats its entity's latest within the window. Ids are never rewritten. Also the delivery
//! kept beside an event, which only the full view returns, and the count of redeliveries kept
//! for each event by a backend that counts them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hooknorm::event::resource;
use hooknorm::proto::v1::{Header, WebhookDelivery};

use super::*;

pub async fn a_redelivered_provider_id_is_answered_with_the_first_event<H: Harness>(
    harness: &mut H,
) {
    let log = harness.open(Settings::default()).await;
    let mut subscription = log.subscribe().await.expect("subscribe");
    let mut first = event("gigs:evt_1", "subscription.created");
    first.subject = Some(resource("subscription", "sub_1"));
    let first = store(&log, first).await;
    // A redelivery, received later and without the subject: the answer is the first event.
    let redelivery = received(event("gigs:evt_1", "subscription.created"), T0_MS + 5000);
    let again = log.append(request(redelivery)).await.expect("append");
    assert!(again.duplicate);
    assert_eq!(again.event, first);
    assert_eq!(all(&log).await, std::slice::from_ref(&first));
    assert_eq!(head(&log).await, first.sequence);
    match next_live(&mut subscription).await {
        Live::Event(event) => assert_eq!(event.sequence(), first.sequence),
        other => panic!("expected the first event, got {other:?}"),
    }
    assert_no_live_event(&mut subscription, Duration::from_millis(300)).await;
    log.close().await;
}

pub async fn concurrent_redeliveries_store_one_event<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    let appends: Vec<_> = (0..32)
        .map(|_| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(request(event("gigs:evt_1", "t.x"))).await })
        })
        .collect();
    let mut answers = Vec::new();
    for append in appends {
        answers.push(append.await.expect("append task").expect("append"));
    }
    assert_eq!(answers.iter().filter(|a| !a.duplicate).count(), 1);
    let stored = all(&log).await;
    assert_eq!(stored.len(), 1);
    assert!(answers.iter().all(|answer| answer.event == stored[0]));
    log.close().await;
}

pub async fn dedup_holds_across_a_reopen<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    let first = store(&log, event("a", "t.x")).await;
    log.close().await;

    let log = harness.reopen().await;
    let again = log
        .append(request(event("a", "t.x")))
        .await
        .expect("append");
    assert!(again.duplicate);
    assert_eq!(again.event, first);
    assert_eq!(all(&log).await.len(), 1);
    log.close().await;
}

pub async fn redeliveries_are_counted_where_the_backend_counts<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    let first = store(&log, event("gigs:evt_1", "t.x")).await;
    let other = store(&log, event("gigs:evt_2", "t.x")).await;
    for _ in 0..3 {
        let again = log.append(request(event("gigs:evt_1", "t.x"))).await;
        assert!(again.expect("append").duplicate);
    }
    let wanted = [first.sequence, other.sequence];
    let Some(counts) = log.duplicate_counts(&wanted).await.expect("counts") else {
        // This backend does not count: unknown, which is allowed.
        log.close().await;
        return;
    };
    assert_eq!(counts, HashMap::from([(first.sequence, 3)]));
    log.close().await;
    let log = harness.reopen().await;
    let counts = log.duplicate_counts(&wanted).await.expect("counts");
    assert_eq!(counts, Some(HashMap::from([(first.sequence, 3)])));
    log.close().await;
}

pub async fn a_retained_provider_id_is_a_duplicate_past_the_window_and_never_renamed<H: Harness>(
    harness: &mut H,
) {
    let settings = Settings {
        dedup_window: Duration::from_secs(60),
        ..Settings::default()
    };
    let log = harness.open(settings).await;
    let first = store(&log, event("gigs:evt_1", "t.x")).await;
    harness.advance(Duration::from_secs(120)).await;
    let again = log
        .append(request(event("gigs:evt_1", "t.x")))
        .await
        .expect("append");
    assert!(again.duplicate, "a retained provider id is the same event");
    assert_eq!(again.event, first);
    assert_eq!(ids(&all(&log).await), ["gigs:evt_1"]);
    log.close().await;
}

pub async fn a_removed_provider_id_is_recognized_within_the_window_then_stored_again<H: Harness>(
    harness: &mut H,
) {
    let settings = Settings {
        dedup_window: Duration::from_secs(60),
        retention_max_count: Some(1),
        ..Settings::default()
    };
    let log = harness.open(settings).await;
    let first = store(&log, event("gigs:evt_1", "t.x")).await;
    store(&log, event("gigs:evt_2", "t.x")).await;
    log.enforce_retention().await.expect("retention");
    assert_eq!(log.get("gigs:evt_1", View::Basic).await.expect("get"), None);

    let within = log
        .append(request(event("gigs:evt_1", "t.x")))
        .await
        .expect("append");
    assert!(
        within.duplicate,
        "recognized within the window after removal"
    );
    assert_eq!(
        (within.event.id.as_str(), within.event.sequence),
        ("gigs:evt_1", first.sequence)
    );

    harness.advance(Duration::from_secs(61)).await;
    let again = log
        .append(request(event("gigs:evt_1", "t.x")))
        .await
        .expect("append");
    assert!(!again.duplicate, "past the window and removed: a new event");
    assert_eq!(again.event.id, "gigs:evt_1", "under its own id");
    assert!(again.event.sequence > first.sequence);
    log.close().await;
}

pub async fn only_a_repeat_of_the_latest_state_is_a_duplicate<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    let append = |entity: &'static str, id: &'static str| {
        let log = Arc::clone(&log);
        async move {
            log.append(state_request(entity, event(id, "alert.triggered")))
                .await
                .expect("append")
        }
    };
    let on = append("sim_1", "mm:on").await;
    assert!(!on.duplicate);
    assert!(
        append("sim_1", "mm:on").await.duplicate,
        "a repeat of the latest"
    );
    // Another entity in the same state is its own event... which is the same id, so it is
    // named by its sequence too.
    let other = append("sim_2", "mm:on").await;
    assert!(!other.duplicate);
    assert_eq!(other.event.id, format!("mm:on-{}", other.event.sequence));
    let off = append("sim_1", "mm:off").await;
    assert!(!off.duplicate);
    assert_eq!(off.event.id, "mm:off");
    // On, off, on: three events; the third has the first one's content.
    let on_again = append("sim_1", "mm:on").await;
    assert!(!on_again.duplicate);
    assert_eq!(
        on_again.event.id,
        format!("mm:on-{}", on_again.event.sequence)
    );
    // Its redelivery is answered with it, under the id it was stored with.
    let repeat = append("sim_1", "mm:on").await;
    assert!(repeat.duplicate);
    assert_eq!(repeat.event, on_again.event);
    let stored = all(&log).await;
    assert_eq!(stored.len(), 4);
    let mut unique: Vec<&str> = ids(&stored);
    unique.dedup();
    assert_eq!(unique.len(), 4, "ids are unique: {unique:?}");
    log.close().await;
}

pub async fn state_matching_ends_with_the_window<H: Harness>(harness: &mut H) {
    let settings = Settings {
        dedup_window: Duration::from_secs(60),
        ..Settings::default()
    };
    let log = harness.open(settings).await;
    let first = log
        .append(state_request(
            "order_1",
            event("mm:done", "order.completed"),
        ))
        .await
        .expect("append");
    harness.advance(Duration::from_secs(61)).await;
    let later = log
        .append(state_request(
            "order_1",
            event("mm:done", "order.completed"),
        ))
        .await
        .expect("append");
    assert!(
        !later.duplicate,
        "past the window the same state is a new event"
    );
    assert_eq!(
        later.event.id,
        format!("mm:done-{}", later.event.sequence),
        "and the first event keeps its id"
    );
    assert_eq!(
        log.get("mm:done", View::Basic).await.expect("get"),
        Some(first.event)
    );
    log.close().await;
}

pub async fn the_full_view_returns_the_kept_delivery_and_nothing_else_carries_it<H: Harness>(
    harness: &mut H,
) {
    let log = harness.open(Settings::default()).await;
    let mut subscription = log.subscribe().await.expect("subscribe");
    let delivery = WebhookDelivery {
        body: br#"{"id":"evt_1","n":9007199254740993}"#.to_vec(),
        headers: vec![Header {
            name: "webhook-id".to_owned(),
            value: "msg_1".to_owned(),
        }],
        request_path: "/webhooks/gigs".to_owned(),
        remote_addr: "203.0.113.9".to_owned(),
    };
    let mut with_delivery = request(event("gigs:evt_1", "t.x"));
    with_delivery.delivery = Some(delivery.clone());
    let stored = log.append(with_delivery).await.expect("append").event;
    assert_eq!(
        stored.delivery, None,
        "an append's answer carries no delivery"
    );
    let without = store(&log, event("gigs:evt_2", "t.x")).await;

    let full = log
        .get("gigs:evt_1", View::Full)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(full.delivery.as_ref(), Some(&delivery));
    let mut basic = full.clone();
    basic.delivery = None;
    assert_eq!(
        log.get("gigs:evt_1", View::Basic).await.expect("get"),
        Some(basic)
    );
    assert_eq!(
        log.get("gigs:evt_2", View::Full).await.expect("get"),
        Some(without),
        "an event stored without a delivery has none"
    );
    assert!(all(&log).await.iter().all(|event| event.delivery.is_none()));
    match next_live(&mut subscription).await {
        Live::Event(hooknorm::log::LiveEvent::Full(committed)) => {
            use prost::Message;
            let decoded = Event::decode(committed.encoded.bytes.clone()).expect("decodes");
            assert_eq!(decoded.delivery, None, "the live feed carries no delivery");
            assert_eq!(committed.event.delivery, None);
        }
        Live::Event(hooknorm::log::LiveEvent::Elided { .. }) => {}
        other => panic!("expected an event, got {other:?}"),
    }
    log.close().await;
}
