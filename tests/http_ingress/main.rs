//! The HTTP ingress over real sockets against the real server: every provider's authenticated
//! samples are accepted and streamed, every refusal status is produced by a request that should
//! produce it, redeliveries are 200 `duplicate`, forwarding headers count only from trusted
//! proxies, probes agree with gRPC health, traceparent is carried, and `send --http` works.
//! Load, failure and shutdown behaviour: `http_ingress_limits.rs`.

#[path = "../common/mod.rs"]
mod common;
mod forwarding;

use std::time::Duration;

use chrono::Utc;
use common::http::*;
use common::*;
use hooknorm::proto::v1::stream_events_request::Start;
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{GetEventRequest, StartPosition, StreamEventsRequest};
use tonic_health::pb::health_check_response::ServingStatus;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

#[tokio::test]
async fn every_provider_sample_is_accepted_and_streamed() {
    let mut server = TestServer::start().await;
    let mut stream = server
        .client
        .stream_events(StreamEventsRequest {
            filter: None,
            start: Some(Start::Position(StartPosition::Earliest as i32)),
        })
        .await
        .expect("stream opens")
        .into_inner();

    let mut accepted = Vec::new();
    for (rel, want_type) in expected_fixtures() {
        let answer = post_webhook(server.http_addr, &fixture_request(&rel, &fixture(&rel))).await;
        let (id, sequence, duplicate) = assert_accepted(&answer, &rel);
        assert!(!duplicate, "{rel}");
        accepted.push((id, sequence, want_type));
    }
    // The other schemes, as their providers would send them.
    let abowire = fixture("abowire/subscription.bulk-enable.json");
    let mut request = token_request("abowire-header", "unused", "x", &abowire);
    request.request_uri = "/webhooks/abowire-header".into();
    request.headers.push(header(
        "X-Abowire-Token",
        &format!("Bearer {ABOWIRE_TOKEN}"),
    ));
    let (id, sequence, _) = assert_accepted(&post_webhook(server.http_addr, &request).await, "hdr");
    accepted.push((id, sequence, "subscription.bulk_enabled".into()));
    let mut request = token_request("abowire-basic", "unused", "x", &abowire);
    request.request_uri = "/webhooks/abowire-basic".into();
    request
        .headers
        .push(header("authorization", "Basic YWJvd2lyZTpzM2NyZXQ="));
    let (id, sequence, _) =
        assert_accepted(&post_webhook(server.http_addr, &request).await, "basic");
    accepted.push((id, sequence, "subscription.bulk_enabled".into()));
    // 21 fixtures in expected.json plus the header_token and basic_auth deliveries: a fixture
    // that silently dropped out of the list would change this.
    assert_eq!(accepted.len(), 23, "{accepted:?}");

    let mut providers = std::collections::BTreeSet::new();

    for (id, sequence, want_type) in &accepted {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("in time")
            .expect("stream ok")
            .expect("stream open");
        let Some(Message::Event(event)) = message.message else {
            panic!("expected an event, got {message:?}");
        };
        assert_eq!(
            (&event.id, event.sequence, &event.r#type),
            (id, *sequence, want_type)
        );
        providers.insert(event.provider().as_str_name());
    }
    assert_eq!(
        providers.into_iter().collect::<Vec<_>>(),
        [
            "PROVIDER_ABOWIRE",
            "PROVIDER_GIGS",
            "PROVIDER_MOBILE_MANAGER"
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn redeliveries_answer_200_duplicate() {
    let server = TestServer::start().await;
    let now = Utc::now().timestamp();
    let gigs = gigs_request(&fixture("gigs/sim.retired.json"), GIGS_SECRET, "msg_r", now);
    let order = fixture("mobile_manager/order.complete.json");
    let abowire = fixture("abowire/api-key.revoke.json");
    for (what, request) in [
        ("gigs", gigs),
        ("mm", token_request("mm", "key", MM_TOKEN, &order)),
        (
            "abowire",
            token_request("abowire", "token", ABOWIRE_TOKEN, &abowire),
        ),
    ] {
        let first = assert_accepted(&post_webhook(server.http_addr, &request).await, what);
        assert!(!first.2, "{what}");
        for _ in 0..2 {
            let again = assert_accepted(&post_webhook(server.http_addr, &request).await, what);
            assert_eq!(
                (&again.0, again.1, again.2),
                (&first.0, first.1, true),
                "{what}"
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn every_refusal_status_is_produced() {
    let server = TestServer::start().await;
    let addr = server.http_addr;
    let gigs = fixture("gigs/sim.retired.json");
    let abowire = fixture("abowire/api-key.revoke.json");
    let order = fixture("mobile_manager/order.complete.json");
    let now = Utc::now().timestamp();
    let signed = || gigs_request(&gigs, GIGS_SECRET, "msg_1", now);

    let mut cases = Vec::new();
    let mut request = signed();
    request.headers.retain(|h| h.name != "webhook-signature");
    cases.push(("no signature", request, 401, "MISSING_SIGNATURE"));
    let mut request = signed();
    for h in &mut request.headers {
        if h.name == "webhook-signature" {
            h.value = "garbage-without-version".into();
        }
    }
    cases.push(("bad signature", request, 401, "MALFORMED_SIGNATURE"));
    let mut request = signed();
    request.body.push(b' ');
    cases.push(("altered body", request, 401, "SIGNATURE_MISMATCH"));
    // Over HTTP the receive time is the arrival time, whatever the request claims.
    let request = gigs_request(&gigs, GIGS_SECRET, "msg_1", now - 3600);
    cases.push(("stale", request, 401, "TIMESTAMP_OUT_OF_TOLERANCE"));
    let mut request = token_request("abowire", "token", ABOWIRE_TOKEN, &abowire);
    request.request_uri = "/webhooks/abowire".into();
    cases.push(("no token", request, 401, "MISSING_TOKEN"));
    let request = token_request("abowire", "token", "wrong", &abowire);
    cases.push(("wrong token", request, 401, "TOKEN_MISMATCH"));
    // header_token and basic_auth sources: credentials absent, then wrong.
    for (source, name, wrong) in [
        ("abowire-header", "x-abowire-token", "Bearer not-the-token"),
        (
            "abowire-basic",
            "authorization",
            "Basic YWJvd2lyZTp3cm9uZw==",
        ),
    ] {
        let mut request = token_request(source, "token", ABOWIRE_TOKEN, &abowire);
        request.request_uri = format!("/webhooks/{source}");
        cases.push((source, request.clone(), 401, "MISSING_TOKEN"));
        request.headers.push(header(name, wrong));
        cases.push((source, request, 401, "TOKEN_MISMATCH"));
    }
    let request = token_request("mm-allowlisted", "token", MM_TOKEN, &order);
    cases.push(("peer 127.0.0.1", request, 401, "ADDRESS_NOT_ALLOWED"));
    let mut request = token_request("mm-ip", "token", MM_TOKEN, &order);
    // Not from a trusted proxy (none configured): ignored.
    request
        .headers
        .push(header("x-forwarded-for", "192.0.2.10"));
    cases.push(("untrusted xff", request, 401, "ADDRESS_NOT_ALLOWED"));
    let mut request = signed();
    request.request_uri = "/webhooks/nope".into();
    cases.push(("unknown source", request, 404, "UNKNOWN_SOURCE"));
    let mut request = signed();
    request.request_uri = "/hooks/gigs".into();
    cases.push(("unknown path", request, 404, "UNKNOWN_PATH"));
    let request = token_request("mm", "key", MM_TOKEN, br#"{"Unrelated": true}"#);
    cases.push(("not an order", request, 400, "MALFORMED_PAYLOAD"));
    let request = token_request("abowire", "token", ABOWIRE_TOKEN, b"[1,2]");
    cases.push(("not an object", request, 400, "MALFORMED_PAYLOAD"));
    // Exactly at the limit is not too large (it is just not JSON).
    let request = token_request("abowire", "token", ABOWIRE_TOKEN, &vec![b'x'; MIB]);
    cases.push(("at the limit", request, 400, "MALFORMED_PAYLOAD"));
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/json",
    ] {
        let mut request = token_request("abowire", "token", ABOWIRE_TOKEN, &abowire);
        request.headers[0] = header("Content-Type", content_type);
        cases.push(("not json", request, 415, "UNSUPPORTED_MEDIA_TYPE"));
    }
    for (what, request, status, reason) in cases {
        let answer = post_webhook(addr, &request).await;
        assert_refused(&answer, status, reason, what);
        assert!(answer.header("retry-after").is_none(), "{what}");
        // Neither the address the server saw nor what the sender put in a header comes back.
        let body = String::from_utf8_lossy(&answer.body);
        for echoed in ["127.0.0.1", "192.0.2.10", "text/", "x-www-form"] {
            assert!(!body.contains(echoed), "{what}: {echoed} in {body}");
        }
    }

    // JSON with parameters, a +json type and no type at all are accepted.
    for content_type in [
        Some("application/json; charset=utf-8"),
        Some("application/cloudevents+json"),
        None,
    ] {
        let mut request = token_request("mm-open", "token", "x", &order);
        request.headers.clear();
        if let Some(content_type) = content_type {
            request.headers.push(header("content-type", content_type));
        }
        request.request_uri = "/webhooks/mm-open".into();
        let answer = post_webhook(addr, &request).await;
        assert_eq!(answer.status, 200, "{content_type:?}: {:?}", answer.json);
    }

    for (method, path, allow) in [
        ("GET", "/webhooks/gigs", "POST"),
        ("PUT", "/webhooks/gigs", "POST"),
        ("DELETE", "/webhooks/nope", "POST"),
    ] {
        let answer = send(addr, method, path, &[], Vec::new()).await;
        assert_refused(
            &answer,
            405,
            "METHOD_NOT_ALLOWED",
            &format!("{method} {path}"),
        );
        assert_eq!(answer.header("allow"), Some(allow));
    }

    // Over the limit: refused from Content-Length before any of the body is sent...
    let uri = abowire_uri();
    let upload = RawUpload::start(
        addr,
        &uri,
        &[
            "content-type: application/json",
            &format!("content-length: {}", MIB + 1),
        ],
    )
    .await;
    let answer = upload.answer().await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.json()["error"]["reason"], "PAYLOAD_TOO_LARGE");
    // ...and without a length, as soon as the chunks read cross it.
    let mut upload = RawUpload::start(
        addr,
        &uri,
        &[
            "content-type: application/json",
            "transfer-encoding: chunked",
        ],
    )
    .await;
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
    for _ in 0..17 {
        if upload.write(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let answer = upload.answer().await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.json()["error"]["reason"], "PAYLOAD_TOO_LARGE");
    server.shutdown().await;
}

#[tokio::test]
async fn probes_answer_on_their_own_listener_and_grpc_health_agrees() {
    let server = TestServer::start().await;
    let live = get(server.ops_addr, "/healthz").await;
    assert_eq!((live.status, &live.json["status"]), (200, &"ok".into()));
    let ready = get(server.ops_addr, "/readyz").await;
    assert_eq!(
        (ready.status, &ready.json["status"]),
        (200, &"ready".into())
    );
    let head = send(server.ops_addr, "HEAD", "/readyz", &[], Vec::new()).await;
    assert_eq!(head.status, 200);
    let post = send(server.ops_addr, "POST", "/healthz", &[], Vec::new()).await;
    assert_refused(&post, 405, "METHOD_NOT_ALLOWED", "POST /healthz");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // The public ingress does not serve them.
    for path in ["/healthz", "/readyz"] {
        let answer = get(server.http_addr, path).await;
        assert_refused(&answer, 404, "UNKNOWN_PATH", path);
    }
    for service in ["", "hooknorm.v1.NormalizerService"] {
        assert_eq!(
            grpc_health(&server, service).await,
            ServingStatus::Serving as i32
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn traceparent_is_carried_into_the_stored_event() {
    let mut server = TestServer::start().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = gigs_event_request(7, "sim.updated");
    request.headers.push(header("traceparent", traceparent));
    let (id, _, _) = assert_accepted(&post_webhook(server.http_addr, &request).await, "traced");
    let event = server
        .client
        .get_event(GetEventRequest {
            id,
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner()
        .event
        .expect("event");
    assert_eq!(event.traceparent, traceparent);

    // Invalid ones (uppercase hex, an all-zero trace id) are dropped; the webhook is still taken.
    for (n, invalid) in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ]
    .into_iter()
    .enumerate()
    {
        let mut request = gigs_event_request(100 + n as u64, "sim.updated");
        request.headers.push(header("traceparent", invalid));
        let (id, _, _) = assert_accepted(&post_webhook(server.http_addr, &request).await, invalid);
        let event = server
            .client
            .get_event(GetEventRequest {
                id,
                ..Default::default()
            })
            .await
            .expect("get")
            .into_inner()
            .event
            .expect("event");
        assert_eq!(event.traceparent, "", "{invalid}");
    }
    server.shutdown().await;
}

#[test]
fn send_http_posts_through_the_ingress() {
    use std::process::Command;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hooknorm.toml");
    let toml = format!(
        "{}\n[store]\npath = {:?}\n",
        test_config_toml(MIB),
        dir.path().join("store").display().to_string()
    );
    std::fs::write(&config, toml).expect("config written");
    let running = serve_binary(BIN, &config);
    let send = |args: &[&str]| {
        Command::new(BIN)
            .args(["send", "--config"])
            .arg(&config)
            .args(["--http", "--http-server"])
            .arg(format!("http://{}", running.http_addr))
            .args(args)
            .output()
            .expect("send runs")
    };
    for (source, sample) in [
        ("gigs", "subscription.activated"),
        ("abowire", "api-key.revoke"),
        ("abowire-header", "subscription.bulk-enable"),
        ("abowire-basic", "current.customer.updated"),
        ("mm", "alert.on"),
    ] {
        for duplicate in [false, true] {
            let output = send(&["--source", source, "--sample", sample]);
            assert!(
                output.status.success(),
                "{source}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
            assert_eq!(json["duplicate"], duplicate, "{source}: {json}");
            assert!(
                json["id"]
                    .as_str()
                    .expect("id")
                    .starts_with(&format!("{source}:")),
                "{json}"
            );
            assert!(json["sequence"].as_u64().expect("sequence") > 0);
        }
    }
    let bogus = dir.path().join("bogus.json");
    std::fs::write(&bogus, "[1,2]").expect("written");
    let output = send(&[
        "--source",
        "abowire",
        "--file",
        bogus.to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HTTP 400") && stderr.contains("MALFORMED_PAYLOAD"),
        "{stderr}"
    );
}
