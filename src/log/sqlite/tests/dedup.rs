//! Dedup rules, across batches, within one batch, across restarts and past the window.

use super::*;
use crate::log::View;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_id_dedup_holds_under_concurrency() {
    let fixture = Fixture::new();
    let log = Arc::new(fixture.open());
    // All 50 in one batch: the dedup must hold among appends not yet committed.
    let resume = log.pause_writer().await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(by_id(event("gigs:evt_1", "t.x"))).await })
        })
        .collect();
    while log.queued() < 50 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    resume.send(()).unwrap();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
    assert_eq!(results.iter().filter(|r| r.duplicate).count(), 49);
    assert!(results.iter().all(|r| r.event.sequence == 1));
    assert!(results.iter().all(|r| r.event.id == "gigs:evt_1"));
    assert_eq!(all(&log).await.len(), 1);
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_id_dedup_holds_across_concurrent_batches() {
    let fixture = Fixture::with(|config| config.group_commit_max = 4);
    let log = Arc::new(fixture.open());
    let tasks: Vec<_> = (0..60)
        .map(|index| {
            let log = Arc::clone(&log);
            let id = format!("gigs:evt_{}", index % 6);
            tokio::spawn(async move { log.append(by_id(event(&id, "t.x"))).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 6);
    let stored = all(&log).await;
    assert_eq!(sequences(&stored), [1, 2, 3, 4, 5, 6]);
    for result in &results {
        let original = stored.iter().find(|e| e.id == result.event.id).unwrap();
        assert_eq!(&result.event, original);
    }
    log.close().await;
}

#[tokio::test]
async fn latest_for_entity_on_off_on_is_three_events() {
    let fixture = Fixture::new();
    let log = fixture.open();
    let entity = "mm:alert_1:sim_9";
    let on = || latest(entity, event("mm:fp_on", "alert.triggered"));
    let off = || latest(entity, event("mm:fp_off", "alert.cleared"));

    let first = log.append(on()).await.unwrap();
    let second = log.append(off()).await.unwrap();
    let third = log.append(on()).await.unwrap();
    assert!(!first.duplicate && !second.duplicate && !third.duplicate);
    assert_eq!(
        [first.event.id.as_str(), &second.event.id, &third.event.id],
        ["mm:fp_on", "mm:fp_off", "mm:fp_on-3"]
    );
    // The same state again is a duplicate of the latest, stored under its unique id.
    let repeat = log.append(on()).await.unwrap();
    assert!(repeat.duplicate);
    assert_eq!(repeat.event.id, "mm:fp_on-3");
    assert_eq!(repeat.event.sequence, 3);

    assert_eq!(
        ids(&all(&log).await),
        ["mm:fp_on", "mm:fp_off", "mm:fp_on-3"]
    );
    assert_eq!(
        log.get("mm:fp_on-3", View::Basic)
            .await
            .unwrap()
            .unwrap()
            .sequence,
        3
    );
    // Another entity with the same fingerprint is its own history.
    let other = log
        .append(latest(
            "mm:alert_1:sim_10",
            event("mm:fp_on", "alert.triggered"),
        ))
        .await
        .unwrap();
    assert!(!other.duplicate);
    assert_eq!(other.event.id, "mm:fp_on-4");
    log.close().await;
}

#[tokio::test]
async fn latest_for_entity_on_on_is_one_event() {
    let fixture = Fixture::new();
    let log = fixture.open();
    let entity = "mm:alert_1:sim_9";
    let on = || latest(entity, event("mm:fp_on", "alert.triggered"));
    assert!(!log.append(on()).await.unwrap().duplicate);
    let again = log.append(on()).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.event.sequence, 1);
    assert_eq!(all(&log).await.len(), 1);
    log.close().await;
}

#[tokio::test]
async fn dedup_within_one_batch_follows_queue_order() {
    let fixture = Fixture::new();
    let log = fixture.open();
    let entity = "mm:alert_1:sim_9";
    let on = || latest(entity, event("mm:fp_on", "alert.triggered"));
    let off = || latest(entity, event("mm:fp_off", "alert.cleared"));
    // `join!` polls in order: all five are queued before the writer is let go, so they
    // share one batch.
    let resume = log.pause_writer().await;
    let (a, b, c, d, e, ()) = tokio::join!(
        log.append(on()),
        log.append(on()),
        log.append(off()),
        log.append(on()),
        log.append(by_id(event("plain", "t.x"))),
        async { resume.send(()).unwrap() },
    );
    let (a, b, c, d, e) = (a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap(), e.unwrap());
    assert!(!a.duplicate && b.duplicate && !c.duplicate && !d.duplicate && !e.duplicate);
    assert_eq!(b.event, a.event);
    assert_eq!(
        sequences(&[a.event, c.event, d.event, e.event]),
        [1, 2, 3, 4]
    );
    assert_eq!(
        ids(&all(&log).await),
        ["mm:fp_on", "mm:fp_off", "mm:fp_on-3", "plain"]
    );
    log.close().await;
}

#[tokio::test]
async fn dedup_window_expires() {
    let fixture = Fixture::with(|config| config.dedup_window_seconds = 60);
    let log = fixture.open();
    log.append(by_id(event("a", "t.x"))).await.unwrap();
    log.append(latest("sim_1", event("fp_on", "alert.triggered")))
        .await
        .unwrap();

    fixture.advance(60_000);
    assert!(
        log.append(by_id(event("a", "t.x")))
            .await
            .unwrap()
            .duplicate
    );
    assert!(
        log.append(latest("sim_1", event("fp_on", "alert.triggered")))
            .await
            .unwrap()
            .duplicate
    );

    // Past the window a provider id is still the same event while that event is retained:
    // never stored again, never renamed.
    fixture.advance(1);
    let late = log.append(by_id(event("a", "t.x"))).await.unwrap();
    assert!(late.duplicate);
    assert_eq!((late.event.id.as_str(), late.event.sequence), ("a", 1));

    // A state past the window is new; its fingerprint names an older event, so it is stored
    // under its own name.
    let state = log
        .append(latest("sim_1", event("fp_on", "alert.triggered")))
        .await
        .unwrap();
    assert!(!state.duplicate);
    assert_eq!(state.event.id, "fp_on-3");
    log.close().await;
}

#[tokio::test]
async fn a_provider_id_removed_by_retention_is_stored_again_past_the_window() {
    let fixture = Fixture::with(|config| {
        config.dedup_window_seconds = 60;
        config.retention_max_count = Some(1);
    });
    let log = fixture.open();
    log.append(by_id(event("a", "t.x"))).await.unwrap();
    log.append(by_id(event("b", "t.x"))).await.unwrap();
    log.enforce_retention().await.unwrap();
    assert!(log.get("a", View::Basic).await.unwrap().is_none());

    // Within the window the removed event is still recognized.
    let within = log.append(by_id(event("a", "t.x"))).await.unwrap();
    assert!(within.duplicate);
    assert_eq!((within.event.id.as_str(), within.event.sequence), ("a", 1));

    fixture.advance(60_001);
    let again = log.append(by_id(event("a", "t.x"))).await.unwrap();
    assert!(!again.duplicate);
    assert_eq!((again.event.id.as_str(), again.event.sequence), ("a", 3));
    log.close().await;
}
