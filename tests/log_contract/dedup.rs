//! Dedup: how the log answers a redelivery of an event it stores. The identity rules (which
//! appends are redeliveries) are the request's to say; these checks cover the answer, which
//! every rule shares: the event as first stored, `duplicate = true`, nothing new stored,
//! published or counted in the head, also under concurrency and across a reopen.

use std::sync::Arc;
use std::time::Duration;

use hooknorm::event::resource;

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
