//! VerifyAndNormalize over real gRPC against a server on 127.0.0.1:0: every documented example
//! normalizes as specified, independent signatures verify, and every refusal reason is produced
//! by a request that should produce it while the server stays up.

#[path = "../common/mod.rs"]
mod common;
mod refusals;

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
