//! Providers that re-send state without an event id (Abowire's current format): a redelivery
//! is recognized, while the same state after a different one is a new event, over real gRPC.

mod common;

use common::{ABOWIRE_TOKEN, TestServer, token_request};
use hooknorm::proto::v1::ListEventsRequest;

fn subscription_updated(status: &str) -> Vec<u8> {
    format!(
        r#"{{"source":"abowire","event":"subscription.updated","accountId":"acc_1","isProduction":true,
            "payload":{{"id":"sub_1","status":"{status}"}},"previousPayload":{{"id":"sub_1"}}}}"#
    )
    .into_bytes()
}

async fn send(server: &mut TestServer, body: &[u8]) -> (bool, u64, String) {
    let response = server
        .client
        .verify_and_normalize(token_request("abowire", "token", ABOWIRE_TOKEN, body))
        .await
        .expect("accepted")
        .into_inner();
    let event = response.event.expect("event");
    (response.duplicate, event.sequence, event.id)
}

#[tokio::test]
async fn abowire_state_changing_back_is_a_new_event_and_a_redelivery_is_not() {
    let mut server = TestServer::start().await;
    let active = subscription_updated("active");
    let paused = subscription_updated("paused");
    let mut stored = Vec::new();
    for (body, want_duplicate) in [
        (&active, false),
        (&active, true),
        (&paused, false),
        (&paused, true),
        (&active, false),
        (&active, true),
    ] {
        let (duplicate, sequence, id) = send(&mut server, body).await;
        assert_eq!(duplicate, want_duplicate, "sequence {sequence}");
        if !duplicate {
            stored.push((sequence, id));
        }
    }
    assert_eq!(stored.len(), 3, "active, paused, active: three events");
    let ids: std::collections::HashSet<_> = stored.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 3, "ids stay unique: {stored:?}");

    // Another subscription's state is its own: the same status there is not a duplicate.
    let other = String::from_utf8(active.clone())
        .expect("utf-8")
        .replace("sub_1", "sub_2");
    assert!(!send(&mut server, other.as_bytes()).await.0);

    let listed = server
        .client
        .list_events(ListEventsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .events;
    assert_eq!(listed.len(), 4);
    server.shutdown().await;
}

#[tokio::test]
async fn abowire_v1_deliveries_with_a_timestamp_dedupe_by_content() {
    let mut server = TestServer::start().await;
    let at = |timestamp: &str| {
        format!(
            r#"{{"id":"5f0c9a3e-2b7d-4c81-9e46-1d8f3a6b7c20","action":"subscription:update",
                "timestamp":"{timestamp}","payload":{{"id":"sub_1","status":"active"}}}}"#
        )
        .into_bytes()
    };
    let first = at("2026-01-01T00:00:00Z");
    let later = at("2026-01-01T00:05:00Z");
    assert!(!send(&mut server, &first).await.0);
    assert!(
        !send(&mut server, &later).await.0,
        "a later event, not a retry"
    );
    // A retry of the first after the second was stored is still recognized by its content.
    let (duplicate, sequence, _) = send(&mut server, &first).await;
    assert!(duplicate);
    assert_eq!(sequence, 1);
    server.shutdown().await;
}
