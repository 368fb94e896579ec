//! Appending: sequences, restarts, broadcast.

use super::*;

#[tokio::test]
async fn append_assigns_increasing_sequences_and_read_after_returns_them() {
    let fixture = Fixture::new();
    let log = fixture.open();
    assert_eq!(log.head().await.unwrap(), 0);
    for (index, id) in ["a", "b", "c"].into_iter().enumerate() {
        let appended = log.append(by_id(event(id, "order.created"))).await.unwrap();
        assert!(!appended.duplicate);
        assert_eq!(appended.event.sequence, index as u64 + 1);
        assert_eq!(appended.event.id, id);
    }
    assert_eq!(log.head().await.unwrap(), 3);
    assert!(log.path().ends_with("store/events.sqlite3"));

    let events = all(&log).await;
    assert_eq!(ids(&events), ["a", "b", "c"]);
    assert_eq!(sequences(&events), [1, 2, 3]);
    assert_eq!(events[0], event("a", "order.created").with_sequence(1));

    let page = log.read_after(1, &EventFilter::default(), 1).await.unwrap();
    assert_eq!(ids(&page), ["b"]);
    assert!(
        log.read_after(0, &EventFilter::default(), 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        log.read_after(u64::MAX, &EventFilter::default(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    log.check_writable().await.unwrap();
    log.close().await;
}

#[tokio::test]
async fn restart_continues_sequences_and_keeps_data() {
    let fixture = Fixture::new();
    let log = fixture.open();
    log.append(by_id(event("a", "t.x"))).await.unwrap();
    log.append(by_id(event("b", "t.x"))).await.unwrap();
    log.close().await;

    let log = fixture.open();
    assert_eq!(log.head().await.unwrap(), 2);
    assert_eq!(sequences(&all(&log).await), [1, 2]);
    let c = log.append(by_id(event("c", "t.x"))).await.unwrap();
    assert_eq!(c.event.sequence, 3);
    // Dropped without `close`: the writer still drains, checkpoints and lets go of the file.
    drop(log);

    let log = fixture.open();
    assert_eq!(log.head().await.unwrap(), 3);
    assert_eq!(ids(&all(&log).await), ["a", "b", "c"]);
    log.close().await;
}

#[tokio::test]
async fn sequences_are_never_reused_after_deletes() {
    let fixture = Fixture::with(|config| config.retention_max_age_seconds = Some(60));
    let log = fixture.open();
    for id in ["a", "b", "c"] {
        log.append(by_id(event(id, "t.x"))).await.unwrap();
    }
    // Every event, the newest included, is past its age.
    fixture.advance(61_000);
    let report = log.enforce_retention().await.unwrap();
    assert_eq!(report.events_removed, 3);
    assert!(all(&log).await.is_empty());
    log.close().await;

    let log = fixture.open();
    assert_eq!(log.head().await.unwrap(), 3);
    let d = log.append(by_id(event("d", "t.x"))).await.unwrap();
    assert_eq!(d.event.sequence, 4);
    log.close().await;
}

#[tokio::test]
async fn an_event_without_id_is_always_stored() {
    let fixture = Fixture::new();
    let log = fixture.open();
    let first = log.append(by_id(event("", "t.x"))).await.unwrap();
    let second = log.append(by_id(event("", "t.x"))).await.unwrap();
    assert!(!first.duplicate && !second.duplicate);
    assert_eq!([first.event.id, second.event.id], ["1", "2"]);
    log.close().await;
}

#[tokio::test]
async fn subscribers_receive_committed_events_in_order() {
    let fixture = Fixture::new();
    let log = Arc::new(fixture.open());
    let mut subscriber = log.subscribe().await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|index| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(by_id(event(&format!("e{index}"), "t.x"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut received = Vec::new();
    for _ in 0..20 {
        match subscriber.next().await {
            crate::log::Live::Event(event) => received.push(event.sequence()),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    assert_eq!(received, (1..=20).collect::<Vec<u64>>());
    // Duplicates are not broadcast.
    assert!(
        log.append(by_id(event("e0", "t.x")))
            .await
            .unwrap()
            .duplicate
    );
    assert!(subscriber.try_next().is_none());
    log.close().await;
}

#[test]
fn the_log_is_shareable_across_tasks() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<SqliteEventLog>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_group_commits() {
    const APPENDS: usize = 256;
    let fixture = Fixture::new();
    let log = Arc::new(fixture.open());
    let tasks: Vec<_> = (0..APPENDS)
        .map(|index| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.append(by_id(event(&format!("evt_{index}"), "order.created")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert!(!task.await.unwrap().duplicate);
    }
    assert_eq!(log.head().await.unwrap(), APPENDS as u64);
    let commits = log.commits();
    // One commit per append would be 256; appends queued while a commit runs share the next.
    assert!(
        (1..=APPENDS as u64 / 8).contains(&commits),
        "{APPENDS} concurrent appends took {commits} commits"
    );
    log.close().await;
}
