//! StreamEvents over real gRPC, the parts `event_log/` does not cover: a `since` start, live
//! filtering by provider, source and resource, replays that deliver nothing beyond what
//! matches, and retention by age (by the server's clock, not the caller's `received_at`).

mod common;

use std::time::Duration;

use common::stream::*;
use common::*;
use hooknorm::proto::v1::stream_events_request::Start;
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{EventFilter, ListEventsRequest, Provider, ResourceRef};

/// The next `count` events' (sequence, type), heartbeats skipped.
async fn next_events(stream: &mut EventStream, count: usize) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while out.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {count} events", out.len()))
            .expect("stream ok")
            .expect("stream open");
        if let Some(Message::Event(event)) = message.message {
            out.push((event.sequence, event.r#type));
        }
    }
    out
}

/// Fails if an event arrives within `window` (a heartbeat or silence is fine).
async fn assert_no_more_events(stream: &mut EventStream, window: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(message) = tokio::time::timeout_at(deadline, stream.message()).await {
        let message = message.expect("stream ok").expect("stream open");
        if let Some(Message::Event(event)) = message.message {
            panic!(
                "{what}: unexpected extra event {} {}",
                event.sequence, event.r#type
            );
        }
    }
}

/// A signed Gigs event `n` whose `received_at` (and signature time) is `at` (unix seconds).
fn gigs_received_at(
    n: u64,
    event_type: &str,
    at: i64,
) -> hooknorm::proto::v1::VerifyAndNormalizeRequest {
    gigs_request(
        &gigs_event(n, event_type),
        GIGS_SECRET,
        &format!("msg_{n}"),
        at,
    )
}

#[tokio::test]
async fn since_starts_at_the_first_event_received_at_or_after_it_then_goes_live() {
    let mut server = TestServer::start().await;
    let now = chrono::Utc::now().timestamp();
    let mut sequences = Vec::new();
    for (n, age) in [(1, 300), (2, 200), (3, 100)] {
        let response = server
            .client
            .verify_and_normalize(gigs_received_at(n, "sim.updated", now - age))
            .await
            .expect("append")
            .into_inner();
        sequences.push(response.event.expect("event").sequence);
    }
    let since = prost_types::Timestamp {
        seconds: now - 200,
        nanos: 0,
    };
    let mut stream = open_stream(
        &mut server.client,
        EventFilter::default(),
        Some(Start::Since(since)),
    )
    .await;
    assert_eq!(
        next_sequences(&mut stream, 2).await,
        sequences[1..].to_vec()
    );
    let live = append(&mut server.client, 4, "sim.updated").await;
    assert_eq!(next_sequences(&mut stream, 1).await, vec![live]);
    assert_no_more_events(&mut stream, Duration::from_millis(300), "since").await;

    // A time after every stored event: only live ones.
    let later = prost_types::Timestamp {
        seconds: now + 3600,
        nanos: 0,
    };
    let mut stream = open_stream(
        &mut server.client,
        EventFilter::default(),
        Some(Start::Since(later)),
    )
    .await;
    // Give the subscription time to start before the event it must see.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let next = append(&mut server.client, 5, "sim.updated").await;
    assert_eq!(next_sequences(&mut stream, 1).await, vec![next]);
    assert_no_more_events(&mut stream, Duration::from_millis(300), "since later").await;
    server.shutdown().await;
}

/// Appends one event of each kind; returns their sequences in order: Gigs `subscription.renewed`
/// about sub_<a>, Mobile Manager `order.completed`, Abowire `api_key.revoked`, Gigs
/// `sim.updated` about sub_<b> (every Gigs event also names the shared plan).
async fn append_mix(server: &mut TestServer, a: u64, b: u64) -> Vec<u64> {
    let mm_order =
        std::fs::read(fixtures_dir().join("mobile_manager/order.complete.json")).expect("fixture");
    let abowire =
        std::fs::read(fixtures_dir().join("abowire/api-key.revoke.json")).expect("fixture");
    let mut sequences = vec![append(&mut server.client, a, "subscription.renewed").await];
    for request in [
        token_request("mm", "key", MM_TOKEN, &mm_order),
        token_request("abowire", "token", ABOWIRE_TOKEN, &abowire),
    ] {
        let response = server
            .client
            .verify_and_normalize(request)
            .await
            .expect("append")
            .into_inner();
        assert!(!response.duplicate);
        sequences.push(response.event.expect("event").sequence);
    }
    sequences.push(append(&mut server.client, b, "sim.updated").await);
    sequences
}

/// (filter, the indexes into [`append_mix`]'s events it matches).
fn filter_cases(b: u64) -> Vec<(EventFilter, Vec<usize>)> {
    vec![
        (
            EventFilter {
                providers: vec![Provider::Gigs as i32, Provider::Abowire as i32],
                ..Default::default()
            },
            vec![0, 2, 3],
        ),
        (
            EventFilter {
                sources: vec!["abowire".into()],
                ..Default::default()
            },
            vec![2],
        ),
        // Subject.
        (
            EventFilter {
                resource: Some(ResourceRef {
                    kind: "subscription".into(),
                    id: format!("sub_{b}"),
                }),
                ..Default::default()
            },
            vec![3],
        ),
        // Related.
        (
            EventFilter {
                resource: Some(ResourceRef {
                    kind: "plan".into(),
                    id: "pln_shared".into(),
                }),
                ..Default::default()
            },
            vec![0, 3],
        ),
        // Provider and type together.
        (
            EventFilter {
                providers: vec![Provider::Gigs as i32],
                types: vec!["sim.*".into()],
                ..Default::default()
            },
            vec![3],
        ),
    ]
}

#[tokio::test]
async fn live_and_replayed_streams_carry_exactly_the_matching_events() {
    let mut server = TestServer::start().await;
    let base = append(&mut server.client, 1000, "invoice.created").await;
    let mut live = Vec::new();
    for (filter, want) in filter_cases(2) {
        let stream = open_stream(&mut server.client, filter.clone(), after(base)).await;
        live.push((filter, want, stream));
    }
    let sequences = append_mix(&mut server, 1, 2).await;
    for (filter, want, stream) in &mut live {
        let want: Vec<u64> = want.iter().map(|&i| sequences[i]).collect();
        let got: Vec<u64> = next_events(stream, want.len())
            .await
            .into_iter()
            .map(|(sequence, _)| sequence)
            .collect();
        assert_eq!(got, want, "live with {filter:?}");
    }
    // A last event that matches none of the filters (another provider, source and resource):
    // still nothing more for any of them.
    let alert =
        std::fs::read(fixtures_dir().join("mobile_manager/alert.on.json")).expect("fixture");
    server
        .client
        .verify_and_normalize(token_request("mm", "key", MM_TOKEN, &alert))
        .await
        .expect("append");
    for (filter, _, stream) in &mut live {
        assert_no_more_events(
            stream,
            Duration::from_millis(300),
            &format!("live {filter:?}"),
        )
        .await;
    }
    // Replays of the same stored events: exactly the matching ones, then nothing.
    for (filter, want) in filter_cases(2) {
        let mut stream = open_stream(&mut server.client, filter.clone(), after(base)).await;
        let want: Vec<u64> = want.iter().map(|&i| sequences[i]).collect();
        let got: Vec<u64> = next_events(&mut stream, want.len())
            .await
            .into_iter()
            .map(|(sequence, _)| sequence)
            .collect();
        assert_eq!(got, want, "replay with {filter:?}");
        assert_no_more_events(
            &mut stream,
            Duration::from_millis(300),
            &format!("replay {filter:?}"),
        )
        .await;
    }
    server.shutdown().await;
}

fn retention_toml(dir: &std::path::Path, max_age_seconds: u64) -> String {
    format!(
        "{}\n[store]\npath = {:?}\nretention_max_age_seconds = {max_age_seconds}\n\
         retention_interval_seconds = 1\n",
        test_config_toml(1024 * 1024),
        dir.display().to_string()
    )
}

async fn listed(server: &mut TestServer) -> Vec<u64> {
    let listed = server
        .client
        .list_events(ListEventsRequest::default())
        .await
        .expect("list")
        .into_inner();
    listed.events.iter().map(|event| event.sequence).collect()
}

#[tokio::test]
async fn retention_by_age_goes_by_when_events_were_stored() {
    // Kept for an hour: an event that says it was received ten days ago is kept all the same.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start_in(&retention_toml(dir.path(), 3600), dir.path()).await;
    let ten_days_ago = chrono::Utc::now().timestamp() - 10 * 24 * 3600;
    let response = server
        .client
        .verify_and_normalize(gigs_received_at(1, "sim.updated", ten_days_ago))
        .await
        .expect("a backdated received_at is accepted")
        .into_inner();
    let backdated = response.event.expect("event").sequence;
    // Retention runs at start and every second: two passes at least.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(listed(&mut server).await, vec![backdated], "removed early");
    server.shutdown().await;

    // Kept for a second: events go once they have been stored that long.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = TestServer::start_in(&retention_toml(dir.path(), 1), dir.path()).await;
    append(&mut server.client, 1, "sim.updated").await;
    append(&mut server.client, 2, "sim.updated").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !listed(&mut server).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "retention by age did not run"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.shutdown().await;
}
