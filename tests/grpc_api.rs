//! VerifyAndNormalize over real gRPC against a server on 127.0.0.1:0: every documented example
//! normalizes as specified, independent signatures verify, and every refusal reason is produced
//! by a request that should produce it while the server stays up.

mod common;

use common::*;
use hooknorm::proto::v1::{Provider, VerifyAndNormalizeRequest};
use tonic::Code;

fn expected_fixtures() -> serde_json::Map<String, serde_json::Value> {
    let text =
        std::fs::read_to_string(fixtures_dir().join("expected.json")).expect("expected.json");
    match serde_json::from_str(&text).expect("expected.json is json") {
        serde_json::Value::Object(map) => map,
        other => panic!("expected.json is not an object: {other}"),
    }
}

#[tokio::test]
async fn every_fixture_normalizes_as_expected_over_grpc() {
    let mut server = TestServer::start().await;
    let expected = expected_fixtures();
    assert!(expected.len() >= 21, "too few fixtures: {}", expected.len());
    for (rel, want) in &expected {
        let body = std::fs::read(fixtures_dir().join(rel)).expect("fixture reads");
        let response = server
            .client
            .verify_and_normalize(fixture_request(rel, &body))
            .await
            .unwrap_or_else(|status| panic!("{rel}: {status:?}"))
            .into_inner();
        let event = response.event.expect("event is set");
        assert_eq!(event.r#type, want["type"], "{rel}: type");
        let subject = event.subject.clone().expect("subject is set");
        assert_eq!(subject.kind, want["subject"]["kind"], "{rel}: subject kind");
        assert_eq!(subject.id, want["subject"]["id"], "{rel}: subject id");
        let related: Vec<(String, String)> = event
            .related
            .iter()
            .map(|r| (r.kind.clone(), r.id.clone()))
            .collect();
        let want_related: Vec<(String, String)> = want["related"]
            .as_array()
            .expect("related is a list")
            .iter()
            .map(|r| {
                (
                    r["kind"].as_str().expect("kind").to_owned(),
                    r["id"].as_str().expect("id").to_owned(),
                )
            })
            .collect();
        assert_eq!(related, want_related, "{rel}: related");
        let source = &event.source;
        assert!(
            event.id.starts_with(&format!("{source}:")),
            "{rel}: id {}",
            event.id
        );
        assert!(event.data.is_some(), "{rel}: data");
        let json = event_json(&event);
        let occurred_at = match want["occurred_at"].as_str() {
            // Formats without a time of their own: the receive time stands in.
            Some("received_at") => json["receivedAt"].clone(),
            _ => want["occurred_at"].clone(),
        };
        assert!(occurred_at.is_string(), "{rel}: received_at {json}");
        assert_eq!(json["occurredAt"], occurred_at, "{rel}: occurred_at");
        assert_eq!(
            json.get("previousData").unwrap_or(&serde_json::Value::Null),
            &want["previous_data"],
            "{rel}: previous_data"
        );
        let (detail_name, want_detail) = want["detail"]
            .as_object()
            .and_then(|detail| detail.iter().next())
            .unwrap_or_else(|| panic!("{rel}: expected.json has no detail"));
        assert_eq!(&json[detail_name], want_detail, "{rel}: detail");
        let provider = match rel.split('/').next() {
            Some("gigs") => Provider::Gigs,
            Some("abowire") => Provider::Abowire,
            _ => Provider::MobileManager,
        };
        assert_eq!(event.provider, provider as i32, "{rel}: provider");
        assert!(!response.duplicate);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn redelivery_gives_the_same_id() {
    let mut server = TestServer::start().await;
    for rel in [
        "gigs/sim.retired.json",
        "abowire/api-key.revoke.json",
        "mobile_manager/alert.on.json",
    ] {
        let body = std::fs::read(fixtures_dir().join(rel)).expect("fixture reads");
        let first = server
            .client
            .verify_and_normalize(fixture_request(rel, &body))
            .await
            .expect("ok");
        let second = server
            .client
            .verify_and_normalize(fixture_request(rel, &body))
            .await
            .expect("ok");
        let (first, second) = (
            first.into_inner().event.expect("event"),
            second.into_inner().event.expect("event"),
        );
        assert_eq!(first.id, second.id, "{rel}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn rotation_and_multi_signature_headers_verify() {
    let mut server = TestServer::start().await;
    let body = std::fs::read(fixtures_dir().join("gigs/sim.retired.json")).expect("fixture");
    let now = chrono::Utc::now().timestamp();
    // Signed with the rotated-in secret only.
    let request = gigs_request(&body, GIGS_SECRET_NEW, "msg_rot", now);
    server
        .client
        .verify_and_normalize(request)
        .await
        .expect("new secret verifies");

    // Several entries: an unknown version, a wrong v1, then the right one, with svix-* names.
    let good = gigs_request(&body, GIGS_SECRET, "msg_multi", now);
    let good_sig = good
        .headers
        .iter()
        .find(|h| h.name == "webhook-signature")
        .expect("sig")
        .value
        .clone();
    let request = VerifyAndNormalizeRequest {
        headers: vec![
            header("svix-id", "msg_multi"),
            header("svix-timestamp", &now.to_string()),
            header(
                "svix-signature",
                &format!("v2,abcdef v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= {good_sig}"),
            ),
        ],
        ..good
    };
    server
        .client
        .verify_and_normalize(request)
        .await
        .expect("multi-signature header verifies");

    // A secret the source does not have.
    let request = gigs_request(
        &body,
        "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldA==",
        "msg_x",
        now,
    );
    let status = server
        .client
        .verify_and_normalize(request)
        .await
        .expect_err("unknown secret");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        reason_of(&status),
        ("SIGNATURE_MISMATCH".into(), "hooknorm".into())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn stale_and_future_timestamps_are_rejected() {
    let mut server = TestServer::start().await;
    let body = std::fs::read(fixtures_dir().join("gigs/sim.retired.json")).expect("fixture");
    let now = chrono::Utc::now().timestamp();
    for skew in [-301_i64, 301, -86_400, 86_400] {
        let mut request = gigs_request(&body, GIGS_SECRET, "msg_skew", now + skew);
        request.received_at = Some(prost_types::Timestamp {
            seconds: now,
            nanos: 0,
        });
        let status = server
            .client
            .verify_and_normalize(request)
            .await
            .expect_err("out of tolerance");
        assert_eq!(
            reason_of(&status).0,
            "TIMESTAMP_OUT_OF_TOLERANCE",
            "skew {skew}"
        );
    }
    for skew in [-299_i64, 299] {
        let mut request = gigs_request(&body, GIGS_SECRET, "msg_skew", now + skew);
        request.received_at = Some(prost_types::Timestamp {
            seconds: now,
            nanos: 0,
        });
        server
            .client
            .verify_and_normalize(request)
            .await
            .expect("within tolerance");
    }
    server.shutdown().await;
}

/// Sends `request` and asserts the refusal's gRPC code and reason.
async fn assert_refused(
    server: &mut TestServer,
    request: VerifyAndNormalizeRequest,
    code: Code,
    reason: &str,
) {
    let status = server
        .client
        .verify_and_normalize(request)
        .await
        .expect_err(reason);
    assert_eq!(status.code(), code, "{reason}: {status:?}");
    assert_eq!(
        reason_of(&status),
        (reason.to_owned(), "hooknorm".to_owned()),
        "{status:?}"
    );
    for secret in [GIGS_SECRET, ABOWIRE_TOKEN, MM_TOKEN, "s3cret"] {
        assert!(
            !status.message().contains(secret),
            "message leaks a secret: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn every_refusal_reason_is_produced() {
    let mut server = TestServer::start().await;
    let gigs = std::fs::read(fixtures_dir().join("gigs/sim.retired.json")).expect("fixture");
    let abowire =
        std::fs::read(fixtures_dir().join("abowire/api-key.revoke.json")).expect("fixture");
    let order =
        std::fs::read(fixtures_dir().join("mobile_manager/order.complete.json")).expect("fixture");
    let now = chrono::Utc::now().timestamp();

    let mut request = gigs_request(&gigs, GIGS_SECRET, "msg_1", now);
    request.source = "nope".into();
    assert_refused(&mut server, request, Code::NotFound, "UNKNOWN_SOURCE").await;

    let mut request = gigs_request(&gigs, GIGS_SECRET, "msg_1", now);
    request.headers.retain(|h| h.name != "webhook-signature");
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "MISSING_SIGNATURE",
    )
    .await;

    let mut request = gigs_request(&gigs, GIGS_SECRET, "msg_1", now);
    request.headers.retain(|h| h.name != "webhook-id");
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "MISSING_SIGNATURE",
    )
    .await;

    let mut request = gigs_request(&gigs, GIGS_SECRET, "msg_1", now);
    for h in &mut request.headers {
        if h.name == "webhook-timestamp" {
            h.value = format!("{now}.5");
        }
    }
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "MALFORMED_SIGNATURE",
    )
    .await;

    let mut request = gigs_request(&gigs, GIGS_SECRET, "msg_1", now);
    for h in &mut request.headers {
        if h.name == "webhook-signature" {
            h.value = "garbage-without-version".into();
        }
    }
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "MALFORMED_SIGNATURE",
    )
    .await;

    let mut request = gigs_request(&gigs, GIGS_SECRET, "msg_1", now);
    request.body.push(b' ');
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "SIGNATURE_MISMATCH",
    )
    .await;

    let request = gigs_request(&gigs, GIGS_SECRET, "msg_1", now - 3600);
    let mut request = request;
    request.received_at = None;
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "TIMESTAMP_OUT_OF_TOLERANCE",
    )
    .await;

    let mut request = token_request("abowire", "token", ABOWIRE_TOKEN, &abowire);
    request.request_uri = "/webhooks/abowire".into();
    assert_refused(&mut server, request, Code::Unauthenticated, "MISSING_TOKEN").await;

    let request = token_request("abowire", "token", "wrong", &abowire);
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "TOKEN_MISMATCH",
    )
    .await;

    let mut request = token_request("abowire-header", "token", ABOWIRE_TOKEN, &abowire);
    request
        .headers
        .push(header("x-abowire-token", "Bearer nope"));
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "TOKEN_MISMATCH",
    )
    .await;

    let mut request = token_request("abowire-basic", "token", ABOWIRE_TOKEN, &abowire);
    request
        .headers
        .push(header("authorization", "Basic YWJvd2lyZTp3cm9uZw=="));
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "TOKEN_MISMATCH",
    )
    .await;

    let mut request = token_request("mm-allowlisted", "token", MM_TOKEN, &order);
    request.remote_addr = "203.0.113.9:4431".into();
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "ADDRESS_NOT_ALLOWED",
    )
    .await;

    let mut request = token_request("mm-ip", "token", MM_TOKEN, &order);
    request.remote_addr = "198.51.100.1".into();
    assert_refused(
        &mut server,
        request,
        Code::Unauthenticated,
        "ADDRESS_NOT_ALLOWED",
    )
    .await;

    let request = token_request("mm", "key", MM_TOKEN, br#"{"Unrelated": true}"#);
    assert_refused(
        &mut server,
        request,
        Code::InvalidArgument,
        "MALFORMED_PAYLOAD",
    )
    .await;

    let request = token_request("mm", "key", MM_TOKEN, &vec![b'x'; 1024 * 1024 + 1]);
    assert_refused(
        &mut server,
        request,
        Code::InvalidArgument,
        "PAYLOAD_TOO_LARGE",
    )
    .await;

    // Accepted variants of the same sources, so the refusals above are not refusing everything.
    let mut request = token_request("mm-allowlisted", "token", MM_TOKEN, &order);
    request.remote_addr = "[2001:db8::7]:443".into();
    server
        .client
        .verify_and_normalize(request)
        .await
        .expect("allowlisted v6 peer");
    let mut request = token_request("mm-ip", "token", MM_TOKEN, &order);
    request.remote_addr = "192.0.2.10".into();
    server
        .client
        .verify_and_normalize(request)
        .await
        .expect("allowlisted peer");
    let mut request = token_request("abowire-header", "token", ABOWIRE_TOKEN, &abowire);
    request.headers.push(header(
        "X-Abowire-Token",
        &format!("Bearer {ABOWIRE_TOKEN}"),
    ));
    server
        .client
        .verify_and_normalize(request)
        .await
        .expect("header token");
    let mut request = token_request("abowire-basic", "token", ABOWIRE_TOKEN, &abowire);
    request
        .headers
        .push(header("authorization", "Basic YWJvd2lyZTpzM2NyZXQ="));
    server
        .client
        .verify_and_normalize(request)
        .await
        .expect("basic auth");
    let request = token_request("mm-open", "token", "", &order);
    server
        .client
        .verify_and_normalize(request)
        .await
        .expect("scheme none");
    let request = token_request("abowire", "token", "other-token", &abowire);
    server
        .client
        .verify_and_normalize(request)
        .await
        .expect("second token");
    server.shutdown().await;
}

#[tokio::test]
async fn hostile_bodies_get_specific_errors_and_the_server_stays_up() {
    let mut server = TestServer::start().await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!(
        "{{\"a\":{}{}}}",
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not json", b"this is not json".to_vec(), "not json"),
        ("json array", b"[1, 2, 3]".to_vec(), "not an object"),
        ("json string", b"\"hello\"".to_vec(), "not an object"),
        ("empty", Vec::new(), "empty"),
        ("deep array", deep.into_bytes(), "nesting"),
        ("deep object", deep_object.into_bytes(), "nesting"),
        (
            "invalid utf-8",
            b"{\"OrderId\": \"\xff\xfe\"}".to_vec(),
            "utf-8",
        ),
    ];
    for (name, body, needle) in cases {
        // Both an HMAC-signed source and a token source: the error comes after verification.
        for request in [
            token_request("mm", "key", MM_TOKEN, &body),
            gigs_request(
                &body,
                GIGS_SECRET,
                "msg_bad",
                chrono::Utc::now().timestamp(),
            ),
        ] {
            let status = server
                .client
                .verify_and_normalize(request)
                .await
                .expect_err(name);
            assert_eq!(status.code(), Code::InvalidArgument, "{name}");
            assert_eq!(reason_of(&status).0, "MALFORMED_PAYLOAD", "{name}");
            assert!(
                status.message().contains(needle),
                "{name}: {}",
                status.message()
            );
        }
    }
    let status = server
        .client
        .verify_and_normalize(token_request(
            "mm",
            "key",
            MM_TOKEN,
            &vec![b' '; 3 * 1024 * 1024],
        ))
        .await
        .expect_err("oversized");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason_of(&status).0, "PAYLOAD_TOO_LARGE");
    assert!(status.message().contains("1048576"), "{}", status.message());
    // Slightly over the limit: refused by the pipeline, which names the size.
    let status = server
        .client
        .verify_and_normalize(token_request(
            "mm",
            "key",
            MM_TOKEN,
            &vec![b' '; 1024 * 1024 + 10],
        ))
        .await
        .expect_err("just over");
    assert_eq!(reason_of(&status).0, "PAYLOAD_TOO_LARGE");
    assert!(status.message().contains("1048586"), "{}", status.message());

    // Still serving.
    let body = std::fs::read(fixtures_dir().join("mobile_manager/alert.on.json")).expect("fixture");
    server
        .client
        .verify_and_normalize(token_request("mm", "key", MM_TOKEN, &body))
        .await
        .expect("server still works");
    server.shutdown().await;
}

#[tokio::test]
async fn missing_fields_name_the_field() {
    let mut server = TestServer::start().await;
    let body = br#"{"object":"event","id":"evt_1","type":"com.gigs.sim.retired","time":"2022-03-16T14:12:42Z"}"#;
    let request = gigs_request(body, GIGS_SECRET, "msg_f", chrono::Utc::now().timestamp());
    let status = server
        .client
        .verify_and_normalize(request)
        .await
        .expect_err("no data");
    assert_eq!(reason_of(&status).0, "MALFORMED_PAYLOAD");
    assert!(status.message().contains("data"), "{}", status.message());

    let status = server
        .client
        .verify_and_normalize(VerifyAndNormalizeRequest::default())
        .await
        .expect_err("empty request");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("source"), "{}", status.message());
    server.shutdown().await;
}

#[tokio::test]
async fn traceparent_is_carried_into_the_event() {
    let mut server = TestServer::start().await;
    let body = std::fs::read(fixtures_dir().join("abowire/api-key.revoke.json")).expect("fixture");
    let mut request = token_request("abowire", "token", ABOWIRE_TOKEN, &body);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    request.headers.push(header("Traceparent", traceparent));
    let event = server
        .client
        .verify_and_normalize(request)
        .await
        .expect("ok")
        .into_inner()
        .event
        .expect("event");
    assert_eq!(event.traceparent, traceparent);
    server.shutdown().await;
}
