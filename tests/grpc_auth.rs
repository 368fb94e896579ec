//! Who may call, over real gRPC: every method without a key, with an unknown key and with the
//! wrong scope; keys limited to sources see exactly their own events whatever they ask for;
//! forwarded fields are believed only from forwarders, and only within the skew.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::stream::{Client, with_key};
use common::*;
use hooknorm::proto::v1::normalizer_service_client::NormalizerServiceClient;
use hooknorm::proto::v1::stream_events_request::Start;
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{
    EventFilter, GetEventRequest, ListEventsRequest, Provider, StartPosition, StreamEventsRequest,
    VerifyAndNormalizeRequest,
};
use sha2::Digest as _;
use tonic::Code;
use tonic::transport::Channel;

const INGEST_KEY: &str = "ingest-key-7a1c5e0b93d4";
const FORWARDER_KEY: &str = "forwarder-key-2f8e61ac0d57";
const GIGS_READER_KEY: &str = "gigs-reader-key-c4d09b6e11";
const MM_READER_KEY: &str = "mm-reader-key-90e7d2a35f";
/// Configured by digest only.
const READER_KEY: &str = "reader-key-by-digest-5b3e8f";

fn auth_toml(forwarder_key_file: &std::path::Path) -> String {
    let digest = hex::encode(sha2::Sha256::digest(READER_KEY.as_bytes()));
    format!(
        r#"{}
[auth]
[[auth.keys]]
name = "ingest"
key = "{INGEST_KEY}"
scopes = ["ingest"]

[[auth.keys]]
name = "forwarder"
key = {{ file = {forwarder_key_file:?} }}
scopes = ["ingest"]
forwarder = true

[[auth.keys]]
name = "gigs-reader"
key = "{GIGS_READER_KEY}"
scopes = ["read"]
sources = ["gigs"]

[[auth.keys]]
name = "mm-reader"
key = "{MM_READER_KEY}"
scopes = ["read", "ingest"]
sources = ["mm", "mm-open"]

[[auth.keys]]
name = "reader"
key_sha256 = "{digest}"
scopes = ["read"]
"#,
        test_config_without_auth(MIB)
    )
}

const MIB: usize = 1024 * 1024;

/// The server, and the directory holding the forwarder's key file (as Kubernetes mounts one).
async fn start() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("forwarder-key");
    std::fs::write(&key_file, format!("{FORWARDER_KEY}\n")).expect("key file");
    (TestServer::start_with(&auth_toml(&key_file)).await, dir)
}

fn anonymous(server: &TestServer) -> NormalizerServiceClient<Channel> {
    NormalizerServiceClient::new(server.channel.clone())
}

fn keyed(server: &TestServer, key: &str) -> Client {
    with_key(server.channel.clone(), key).max_decoding_message_size(64 << 20)
}

fn assert_refused(status: &tonic::Status, code: Code, reason: &str, what: &str) {
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert_eq!(reason_of(status).0, reason, "{what}");
}

/// Calls every method once with `client` and returns each outcome's status (OK as `Ok`).
macro_rules! every_method {
    ($client:expr) => {{
        let client = &mut $client;
        let stream = StreamEventsRequest::default();
        vec![
            (
                "VerifyAndNormalize",
                client
                    .verify_and_normalize(gigs_event_request(1, "sim.updated"))
                    .await
                    .map(drop),
            ),
            ("StreamEvents", client.stream_events(stream).await.map(drop)),
            (
                "ListEvents",
                client
                    .list_events(ListEventsRequest::default())
                    .await
                    .map(drop),
            ),
            (
                "GetEvent",
                client
                    .get_event(GetEventRequest {
                        id: "gigs:evt_nope".into(),
                        view: 0,
                    })
                    .await
                    .map(drop),
            ),
        ]
    }};
}

#[tokio::test]
async fn every_method_needs_a_known_key_with_its_scope() {
    let (server, _keys) = start().await;
    for (method, outcome) in every_method!(anonymous(&server)) {
        let status = outcome.expect_err(method);
        assert_refused(&status, Code::Unauthenticated, "MISSING_API_KEY", method);
    }
    for (method, outcome) in every_method!(keyed(&server, "not-a-configured-key-123")) {
        let status = outcome.expect_err(method);
        assert_refused(&status, Code::Unauthenticated, "UNKNOWN_API_KEY", method);
    }
    // A credential in another scheme is not ignored: the caller meant something by it.
    let mut basic = NormalizerServiceClient::with_interceptor(
        server.channel.clone(),
        |mut request: tonic::Request<()>| {
            let value = "Basic dXNlcjpwYXNz".parse().expect("ascii");
            request.metadata_mut().insert("authorization", value);
            Ok(request)
        },
    );
    let status = basic
        .list_events(ListEventsRequest::default())
        .await
        .expect_err("basic");
    assert_refused(&status, Code::Unauthenticated, "UNKNOWN_API_KEY", "basic");

    let ingest_only = every_method!(keyed(&server, INGEST_KEY));
    for (method, outcome) in ingest_only {
        match method {
            "VerifyAndNormalize" => outcome.expect("ingest key ingests"),
            _ => assert_refused(
                &outcome.expect_err(method),
                Code::PermissionDenied,
                "PERMISSION_DENIED",
                method,
            ),
        }
    }
    let read_only = every_method!(keyed(&server, READER_KEY));
    for (method, outcome) in read_only {
        match method {
            "VerifyAndNormalize" => assert_refused(
                &outcome.expect_err(method),
                Code::PermissionDenied,
                "PERMISSION_DENIED",
                method,
            ),
            "GetEvent" => assert_refused(
                &outcome.expect_err(method),
                Code::NotFound,
                "EVENT_NOT_FOUND",
                method,
            ),
            _ => outcome.expect("a key known by its digest reads"),
        }
    }
    // Health and reflection stay open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health needs no key");
    server.shutdown().await;
}

/// A Mobile Manager order update for order `n`, to source `mm`.
fn mm_order(n: u64) -> VerifyAndNormalizeRequest {
    let body = format!(
        r#"{{"OrderId":"7d5b2f8e-3c41-4a9b-b1e2-{n:012x}","State":1,"Type":0,"SimId":"b3e1c7a2-9d4f-4e6b-8a15-2c7f9e0d1b34"}}"#
    );
    token_request("mm", "key", MM_TOKEN, body.as_bytes())
}

/// Reads `count` events from a stream and returns their sequences.
async fn read_events(client: &mut Client, filter: EventFilter, count: usize) -> BTreeSet<u64> {
    let mut stream = client
        .stream_events(StreamEventsRequest {
            filter: Some(filter),
            start: Some(Start::Position(StartPosition::Earliest as i32)),
        })
        .await
        .expect("stream opens")
        .into_inner();
    let mut seen = BTreeSet::new();
    while seen.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("events arrive in time")
            .expect("stream goes on")
            .expect("stream is open");
        if let Some(Message::Event(event)) = message.message {
            assert!(
                seen.insert(event.sequence),
                "sequence {} twice",
                event.sequence
            );
        }
    }
    seen
}

async fn list_all(client: &mut Client, filter: EventFilter) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_events(ListEventsRequest {
                filter: Some(filter.clone()),
                page_size: 400,
                page_token,
            })
            .await
            .expect("list")
            .into_inner();
        seen.extend(page.events.iter().map(|event| event.sequence));
        if page.next_page_token.is_empty() {
            return seen;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_scoped_to_sources_see_exactly_their_own_events() {
    let (server, _keys) = start().await;
    // 1,000 events, the two sources interleaved, from eight callers at once.
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..8u64 {
        let mut client = keyed(&server, INGEST_KEY);
        callers.spawn(async move {
            let mut stored = Vec::new();
            for n in (caller..1000).step_by(8) {
                let request = if n % 2 == 0 {
                    gigs_event_request(n, "sim.updated")
                } else {
                    mm_order(n)
                };
                let event = client
                    .verify_and_normalize(request)
                    .await
                    .expect("stored")
                    .into_inner()
                    .event
                    .expect("event");
                stored.push((event.source, event.sequence, event.id));
            }
            stored
        });
    }
    let mut gigs = BTreeSet::new();
    let mut mm = BTreeSet::new();
    let mut ids = (String::new(), String::new());
    while let Some(stored) = callers.join_next().await {
        for (source, sequence, id) in stored.expect("caller") {
            match source.as_str() {
                "gigs" => {
                    gigs.insert(sequence);
                    ids.0 = id;
                }
                _ => {
                    mm.insert(sequence);
                    ids.1 = id;
                }
            }
        }
    }
    assert_eq!((gigs.len(), mm.len()), (500, 500));

    let mut gigs_reader = keyed(&server, GIGS_READER_KEY);
    let mut mm_reader = keyed(&server, MM_READER_KEY);
    let all = EventFilter::default();
    // Streams are in sequence order and the sources interleave: a leak would show in the first
    // 500 either gets.
    assert_eq!(read_events(&mut gigs_reader, all.clone(), 500).await, gigs);
    assert_eq!(read_events(&mut mm_reader, all.clone(), 500).await, mm);
    assert_eq!(list_all(&mut gigs_reader, all.clone()).await, gigs);
    assert_eq!(list_all(&mut mm_reader, all.clone()).await, mm);
    // Other parts of a filter narrow further, never widen.
    let by_provider = EventFilter {
        providers: vec![Provider::Gigs as i32],
        ..EventFilter::default()
    };
    assert!(list_all(&mut mm_reader, by_provider).await.is_empty());
    let own = EventFilter {
        sources: vec!["mm".into()],
        ..EventFilter::default()
    };
    assert_eq!(list_all(&mut mm_reader, own).await, mm);

    // Asking for a foreign source is refused, on every read method.
    let foreign = EventFilter {
        sources: vec!["mm".into(), "gigs".into()],
        ..EventFilter::default()
    };
    let status = mm_reader
        .stream_events(StreamEventsRequest {
            filter: Some(foreign.clone()),
            start: None,
        })
        .await
        .expect_err("foreign stream");
    assert_refused(
        &status,
        Code::PermissionDenied,
        "SOURCE_NOT_ALLOWED",
        "stream",
    );
    let status = mm_reader
        .list_events(ListEventsRequest {
            filter: Some(foreign),
            ..ListEventsRequest::default()
        })
        .await
        .expect_err("foreign list");
    assert_refused(
        &status,
        Code::PermissionDenied,
        "SOURCE_NOT_ALLOWED",
        "list",
    );
    // A foreign event's existence is not told: the same answer as an id never stored.
    let status = mm_reader
        .get_event(GetEventRequest {
            id: ids.0.clone(),
            view: 0,
        })
        .await
        .expect_err("foreign event");
    assert_refused(&status, Code::NotFound, "EVENT_NOT_FOUND", "get");
    mm_reader
        .get_event(GetEventRequest { id: ids.1, view: 0 })
        .await
        .expect("own event");
    // Ingest is bound by the same list.
    let status = mm_reader
        .verify_and_normalize(gigs_event_request(5000, "sim.updated"))
        .await
        .expect_err("foreign source");
    assert_refused(
        &status,
        Code::PermissionDenied,
        "SOURCE_NOT_ALLOWED",
        "ingest",
    );
    server.shutdown().await;
}

/// A request to `mm-ip` (allowlist 192.0.2.0/24) claiming to come from inside it.
fn allowlisted(n: u64) -> VerifyAndNormalizeRequest {
    let mut request = mm_order(n);
    request.source = "mm-ip".into();
    request.request_uri = "/webhooks/mm-ip".into();
    request.remote_addr = "192.0.2.7:443".into();
    request
}

/// A Gigs delivery signed `age` seconds ago, claiming to have been received then.
fn signed_ago(n: u64, age: i64) -> VerifyAndNormalizeRequest {
    let at = chrono::Utc::now().timestamp() - age;
    gigs_request(
        &gigs_event(n, "sim.updated"),
        GIGS_SECRET,
        &format!("msg_{n}"),
        at,
    )
}

#[tokio::test]
async fn forwarded_fields_count_only_from_forwarders_within_the_skew() {
    let (server, _keys) = start().await;
    let mut ingest = keyed(&server, INGEST_KEY);
    let mut forwarder = keyed(&server, FORWARDER_KEY);

    // Not a forwarder: the forged address is replaced by the peer's, the stale time by now.
    let status = ingest
        .verify_and_normalize(allowlisted(1))
        .await
        .expect_err("forged address");
    assert_refused(
        &status,
        Code::Unauthenticated,
        "ADDRESS_NOT_ALLOWED",
        "addr",
    );
    let status = ingest
        .verify_and_normalize(signed_ago(2, 3600))
        .await
        .expect_err("replayed delivery");
    assert_refused(
        &status,
        Code::Unauthenticated,
        "TIMESTAMP_OUT_OF_TOLERANCE",
        "replay",
    );
    let event = ingest
        .verify_and_normalize(signed_ago(3, 200))
        .await
        .expect("fresh enough, received now")
        .into_inner()
        .event
        .expect("event");
    let received = event.received_at.expect("received_at").seconds;
    assert!(
        (received - chrono::Utc::now().timestamp()).abs() < 60,
        "{received}"
    );

    // A forwarder is believed, within the skew.
    forwarder
        .verify_and_normalize(allowlisted(4))
        .await
        .expect("forwarded address");
    let event = forwarder
        .verify_and_normalize(signed_ago(5, 200))
        .await
        .expect("forwarded time within the skew")
        .into_inner()
        .event
        .expect("event");
    let claimed = chrono::Utc::now().timestamp() - 200;
    assert!((event.received_at.expect("at").seconds - claimed).abs() < 5);
    let status = forwarder
        .verify_and_normalize(signed_ago(6, 3600))
        .await
        .expect_err("beyond the skew");
    assert_refused(
        &status,
        Code::InvalidArgument,
        "RECEIVED_AT_OUT_OF_RANGE",
        "skew",
    );
    // Re-verifying an old delivery stores nothing, so any time goes.
    let mut dry = signed_ago(6, 3600);
    dry.dry_run = true;
    forwarder
        .verify_and_normalize(dry)
        .await
        .expect("dry run of an old delivery");
    server.shutdown().await;
}

/// `auth = "none"` is a choice to be seen: the start-up log says so, as a warning.
#[test]
fn auth_none_is_warned_about_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hooknorm.toml");
    let store = dir.path().join("store").display().to_string();
    let toml = format!(
        "auth = \"none\"\n{}\n[store]\npath = {store:?}\n",
        test_config_without_auth(MIB)
    );
    std::fs::write(&config, toml).expect("config");
    let running = serve_binary(env!("CARGO_BIN_EXE_hooknorm"), &config);
    let warning = running
        .startup_log
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| {
            line["message"]
                .as_str()
                .is_some_and(|message| message.contains("(auth none)"))
        })
        .expect("a warning about auth none");
    assert_eq!(warning["level"], "WARN");
}
