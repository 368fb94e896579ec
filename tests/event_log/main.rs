//! The durable event log over real gRPC and a real SQLite file: resume cursors, the
//! catch-up/live seam, filters, slow subscribers, deduplication (sequential, concurrent, after a
//! restart), retention, listing and shutdown.

#[path = "../common/mod.rs"]
mod common;
mod dedup;
mod seam;

use std::time::Duration;

use common::stream::*;
use common::*;
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{
    Event, EventFilter, GetEventRequest, ListEventsRequest, Provider, ResourceRef,
};

async fn next_types(stream: &mut EventStream, count: usize) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    while out.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("in time")
            .expect("stream ok")
            .expect("stream open");
        if let Some(Message::Event(event)) = message.message {
            out.push((event.sequence, event.source.clone(), event.r#type.clone()));
        }
    }
    out
}

#[tokio::test]
async fn sequences_increase_and_resume_gives_exactly_what_follows() {
    let mut server = TestServer::start().await;
    let mut sequences = Vec::new();
    for n in 0..20 {
        sequences.push(append(&mut server.client, n, "subscription.renewed").await);
    }
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    let cursor = sequences[11];
    let mut stream = open_stream(&mut server.client, EventFilter::default(), after(cursor)).await;
    assert_eq!(
        next_sequences(&mut stream, 8).await,
        sequences[12..].to_vec()
    );
    // Then live: one more append arrives right after.
    let next = append(&mut server.client, 100, "subscription.renewed").await;
    assert_eq!(next_sequences(&mut stream, 1).await, vec![next]);

    let mut from_start = open_stream(&mut server.client, EventFilter::default(), earliest()).await;
    let mut all = sequences.clone();
    all.push(next);
    assert_eq!(next_sequences(&mut from_start, 21).await, all);
    server.shutdown().await;
}

#[tokio::test]
async fn filters_by_provider_source_type_and_resource() {
    let mut server = TestServer::start().await;
    let mm_order =
        std::fs::read(fixtures_dir().join("mobile_manager/order.complete.json")).expect("fixture");
    let abowire =
        std::fs::read(fixtures_dir().join("abowire/api-key.revoke.json")).expect("fixture");
    append(&mut server.client, 1, "subscription.renewed").await;
    append(&mut server.client, 2, "sim.updated").await;
    server
        .client
        .verify_and_normalize(token_request("mm", "key", MM_TOKEN, &mm_order))
        .await
        .expect("mm");
    server
        .client
        .verify_and_normalize(token_request("abowire", "token", ABOWIRE_TOKEN, &abowire))
        .await
        .expect("abowire");
    append(&mut server.client, 3, "subscriptionChange.applied").await;

    let cases: Vec<(EventFilter, Vec<&str>)> = vec![
        (
            EventFilter {
                providers: vec![Provider::Gigs as i32],
                ..Default::default()
            },
            vec![
                "subscription.renewed",
                "sim.updated",
                "subscription_change.applied",
            ],
        ),
        (
            EventFilter {
                sources: vec!["mm".into(), "abowire".into()],
                ..Default::default()
            },
            vec!["order.completed", "api_key.revoked"],
        ),
        (
            EventFilter {
                types: vec!["subscription.*".into()],
                ..Default::default()
            },
            vec!["subscription.renewed"],
        ),
        (
            EventFilter {
                types: vec!["subscription_change.applied".into(), "order.*".into()],
                ..Default::default()
            },
            vec!["order.completed", "subscription_change.applied"],
        ),
        // Subject match.
        (
            EventFilter {
                resource: Some(ResourceRef {
                    kind: "subscription".into(),
                    id: "sub_2".into(),
                }),
                ..Default::default()
            },
            vec!["sim.updated"],
        ),
        // Related match: every gigs_event references the shared plan.
        (
            EventFilter {
                resource: Some(ResourceRef {
                    kind: "plan".into(),
                    id: "pln_shared".into(),
                }),
                ..Default::default()
            },
            vec![
                "subscription.renewed",
                "sim.updated",
                "subscription_change.applied",
            ],
        ),
    ];
    for (filter, want) in cases {
        // Replay.
        let mut stream = open_stream(&mut server.client, filter.clone(), earliest()).await;
        let got: Vec<String> = next_types(&mut stream, want.len())
            .await
            .into_iter()
            .map(|t| t.2)
            .collect();
        assert_eq!(got, want, "replay with {filter:?}");
        // Listing (newest first).
        let listed = server
            .client
            .list_events(ListEventsRequest {
                filter: Some(filter.clone()),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        let mut listed: Vec<String> = listed.events.into_iter().map(|e| e.r#type).collect();
        listed.reverse();
        assert_eq!(listed, want, "list with {filter:?}");
    }
    // Live filtering: only the matching new event arrives.
    let filter = EventFilter {
        types: vec!["usage_threshold.*".into()],
        ..Default::default()
    };
    let mut stream = open_stream(&mut server.client, filter, None).await;
    append(&mut server.client, 10, "sim.updated").await;
    append(&mut server.client, 11, "usageThreshold.exceeded").await;
    let got = next_types(&mut stream, 1).await;
    assert_eq!(got[0].2, "usage_threshold.exceeded");
    server.shutdown().await;
}

/// A subscriber that stops reading is ended after `slow_subscriber_timeout` with a cursor from
/// which it resumes without a gap. (Ingestion, other subscribers and memory while one is paused:
/// `tests/slow_subscribers.rs`, against the real binary.)
#[tokio::test]
async fn a_stalled_subscriber_is_ended_with_a_cursor_it_resumes_from() {
    let toml = test_config_toml(1024 * 1024)
        + "\n[streams]\nbuffer = 16\nslow_subscriber_timeout_seconds = 1\n";
    let server = TestServer::start_with(&toml).await;
    // A subscriber that never reads, on its own connection as a separate client would be, with
    // small HTTP/2 windows so its unread data backs up to the server quickly.
    let mut paused_client = connect_paused(&server.addr.to_string()).await;
    let mut paused = open_stream(&mut paused_client, EventFilter::default(), None).await;
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let mut client = server.client.clone();
        writers.push(tokio::spawn(async move {
            let mut last = 0;
            for n in 0..80u64 {
                let request = padded_gigs_event_request(w * 1000 + n, "sim.updated", 4096);
                let response = client.verify_and_normalize(request).await.expect("append");
                last = last.max(response.into_inner().event.expect("event").sequence);
            }
            last
        }));
    }
    let mut last = 0;
    for writer in writers {
        last = last.max(writer.await.expect("writer"));
    }
    assert_eq!(last, 640, "every append stored");
    // Past the timeout with its buffers full (640 events of 4 KiB, 2.5 MiB, are far more than
    // they hold), the server gives up on it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The paused subscriber is ended, telling it where to resume, rather than buffered forever.
    let ended = stream_end(&mut paused, Duration::from_secs(30)).await;
    assert_eq!(ended.code(), tonic::Code::Aborted, "{ended:?}");
    assert_eq!(reason_of(&ended).0, "SUBSCRIBER_TOO_SLOW", "{ended:?}");
    let resume = resume_after(&ended);
    assert!(resume < last, "resume after {resume} of {last}");
    // Resuming from that cursor gives exactly what it had not been sent.
    let mut resumed = open_stream(&mut paused_client, EventFilter::default(), after(resume)).await;
    let want: Vec<u64> = (resume + 1..=last).collect();
    assert_eq!(next_sequences(&mut resumed, want.len()).await, want);
    server.shutdown().await;
}

#[tokio::test]
async fn idle_streams_get_heartbeats() {
    let toml = test_config_toml(1024 * 1024) + "\n[streams]\nheartbeat_seconds = 1\n";
    let mut server = TestServer::start_with(&toml).await;
    append(&mut server.client, 1, "sim.updated").await;
    let mut stream = open_stream(&mut server.client, EventFilter::default(), None).await;
    let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("heartbeat in time")
        .expect("ok")
        .expect("open");
    let Some(Message::Heartbeat(heartbeat)) = message.message else {
        panic!("expected a heartbeat")
    };
    assert_eq!(heartbeat.head_sequence, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn list_paginates_newest_first_and_get_finds_by_id() {
    let mut server = TestServer::start().await;
    let mut sequences = Vec::new();
    for n in 0..25 {
        sequences.push(append(&mut server.client, n, "invoice.created").await);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .client
            .list_events(ListEventsRequest {
                page_size: 10,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert!(page.events.len() <= 10);
        seen.extend(page.events.iter().map(|e| e.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    sequences.reverse();
    assert_eq!(seen, sequences);
    // A token used with another filter is refused.
    let first = server
        .client
        .list_events(ListEventsRequest {
            page_size: 5,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    let status = server
        .client
        .list_events(ListEventsRequest {
            page_token: first.next_page_token,
            filter: Some(EventFilter {
                sources: vec!["gigs".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("token bound to filter");
    assert_eq!(reason_of(&status).0, "INVALID_REQUEST");
    let status = server
        .client
        .get_event(GetEventRequest {
            id: "gigs:evt_nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("missing");
    assert_eq!(reason_of(&status).0, "EVENT_NOT_FOUND");
    server.shutdown().await;
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let mut server = TestServer::start().await;
    let mut request = gigs_event_request(1, "sim.updated");
    request.dry_run = true;
    let response = server
        .client
        .verify_and_normalize(request)
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(response.event.expect("event").sequence, 0);
    let listed = server
        .client
        .list_events(ListEventsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.events.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn retention_removes_old_events() {
    let toml = test_config_toml(1024 * 1024)
        + "\n[store]\npath = \"PLACEHOLDER\"\nretention_max_count = 5\nretention_interval_seconds = 1\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = toml.replace("PLACEHOLDER", &dir.path().display().to_string());
    let mut server = TestServer::start_in(&toml, dir.path()).await;
    let mut sequences = Vec::new();
    for n in 0..12 {
        sequences.push(append(&mut server.client, n, "sim.updated").await);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = server
            .client
            .list_events(ListEventsRequest::default())
            .await
            .expect("list")
            .into_inner();
        let kept: Vec<u64> = listed.events.iter().map(|e| e.sequence).collect();
        if kept.len() == 5 {
            assert_eq!(
                kept,
                sequences[7..].iter().rev().copied().collect::<Vec<_>>()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not run: {} kept",
            kept.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Within the dedup window a removed event's redelivery is still recognized.
    let again = server
        .client
        .verify_and_normalize(gigs_event_request(0, "sim.updated"))
        .await
        .expect("ok")
        .into_inner();
    assert!(again.duplicate);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_streams_with_a_resume_cursor() {
    let mut server = TestServer::start().await;
    let last = append(&mut server.client, 1, "sim.updated").await;
    let mut stream = open_stream(&mut server.client, EventFilter::default(), earliest()).await;
    assert_eq!(next_sequences(&mut stream, 1).await, vec![last]);
    let stopping = tokio::spawn(server.shutdown());
    let status = stream_end(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(reason_of(&status).0, "SHUTTING_DOWN");
    assert_eq!(resume_after(&status), last);
    stopping.await.expect("server stops");
}
