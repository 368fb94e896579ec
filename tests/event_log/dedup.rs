//! Deduplication over real gRPC: redeliveries stored once (sequentially, concurrently, after a
//! restart), and Mobile Manager alerts by their latest state.

use super::*;

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
