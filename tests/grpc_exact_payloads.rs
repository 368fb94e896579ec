//! Lossless payloads, kept deliveries and stable ids over real gRPC against one server on
//! 127.0.0.1:0: integers beyond 2^53 arrive exactly through VerifyAndNormalize, StreamEvents and
//! GetEvent; the delivery GetEvent returns re-verifies with the original signature and holds no
//! token; a Gigs event id is never renamed, whatever the dedup window.

mod common;

use common::*;
use hooknorm::proto::v1::stream_events_request::Start;
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{
    Event, EventView, GetEventRequest, ListEventsRequest, StreamEventsRequest,
    VerifyAndNormalizeRequest, VerifyAndNormalizeView,
};
use prost_types::value::Kind;
use tokio_stream::StreamExt;

/// The test config with a one-second dedup window, so the stable-id test need not wait a week,
/// and a store of its own that lives as long as the returned directory.
async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "{}\n[store]\npath = {:?}\ndedup_window_seconds = 1\n",
        test_config_toml(1024 * 1024),
        dir.path().display().to_string()
    );
    (TestServer::start_in(&toml, dir.path()).await, dir)
}

async fn get(server: &mut TestServer, id: &str, view: EventView) -> Event {
    server
        .client
        .get_event(GetEventRequest {
            id: id.to_owned(),
            view: view as i32,
        })
        .await
        .expect("get event")
        .into_inner()
        .event
        .expect("an event")
}

async fn normalize(server: &mut TestServer, request: VerifyAndNormalizeRequest) -> (Event, bool) {
    let response = server
        .client
        .verify_and_normalize(request)
        .await
        .expect("accepted")
        .into_inner();
    (response.event.expect("an event"), response.duplicate)
}

/// The one stored event with this sequence, read from a stream opened after it.
async fn streamed(server: &mut TestServer, sequence: u64) -> Event {
    let mut stream = server
        .client
        .stream_events(StreamEventsRequest {
            start: Some(Start::AfterSequence(sequence - 1)),
            ..Default::default()
        })
        .await
        .expect("stream")
        .into_inner();
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .expect("no error");
        if let Some(Message::Event(event)) = message.message {
            assert_eq!(event.sequence, sequence);
            return event;
        }
    }
}

const PAYLOAD: &str = r#"{"cents": 9007199254740993, "big": 12345678901234567891, "precise": 1.000000000000000000001, "s": "\u00e9"}"#;

#[tokio::test]
async fn integers_beyond_2_53_round_trip_exactly_through_every_rpc() {
    let (mut server, _store) = server().await;
    let body = format!(
        r#"{{"source":"com.abowire.billing","event":"invoice.updated","accountId":"acc_1",
            "payload":{PAYLOAD},"previousPayload" : {{"cents": 9007199254740992}}}}"#
    );
    let request = token_request("abowire", "token", ABOWIRE_TOKEN, body.as_bytes());
    let (event, duplicate) = normalize(&mut server, request).await;
    assert!(!duplicate);
    assert_eq!(event.data_json, PAYLOAD);
    assert_eq!(event.previous_data_json, r#"{"cents": 9007199254740992}"#);
    // `data` is the documented lossy convenience.
    let data = event.data.as_ref().expect("data");
    assert_eq!(
        data.fields["cents"].kind,
        Some(Kind::NumberValue(9007199254740992.0))
    );
    assert!(
        event.delivery.is_none(),
        "VerifyAndNormalize carries no delivery"
    );

    let listed = get(&mut server, &event.id, EventView::Basic).await;
    assert_eq!(listed.data_json, PAYLOAD);
    assert_eq!(listed.previous_data_json, event.previous_data_json);
    assert!(
        listed.delivery.is_none(),
        "the basic view carries no delivery"
    );
    let streamed = streamed(&mut server, event.sequence).await;
    assert_eq!(streamed.data_json, PAYLOAD);
    assert!(streamed.delivery.is_none(), "streams carry no delivery");

    // Different integers that are one double are different events, not duplicates.
    let other = body.replace("9007199254740993", "9007199254740992");
    let request = token_request("abowire", "token", ABOWIRE_TOKEN, other.as_bytes());
    let (second, duplicate) = normalize(&mut server, request).await;
    assert!(!duplicate, "{second:?}");
    assert_ne!(second.id, event.id);

    // The Mobile Manager body is its payload.
    let mm = br#"  {"OrderId":"7d5b2f8e-3c41-4a9b-b1e2-6f0a9c8d4e21","State":1,"Big":9007199254740993} "#;
    let request = token_request("mm", "key", MM_TOKEN, mm);
    let (event, _) = normalize(&mut server, request).await;
    assert_eq!(event.data_json.as_bytes(), mm.trim_ascii());
    assert_eq!(event.previous_data_json, "");
    server.shutdown().await;
}

#[tokio::test]
async fn the_basic_answer_leaves_out_the_payloads_and_stores_them_all() {
    let (mut server, _store) = server().await;
    let body = format!(
        r#"{{"source":"com.abowire.billing","event":"invoice.updated","accountId":"acc_1",
            "payload":{PAYLOAD},"previousPayload":{{"cents": 1}}}}"#
    );
    let mut request = token_request("abowire", "token", ABOWIRE_TOKEN, body.as_bytes());
    request.view = VerifyAndNormalizeView::Basic as i32;
    let (basic, duplicate) = normalize(&mut server, request.clone()).await;
    assert!(!duplicate);
    assert!(basic.sequence > 0 && !basic.id.is_empty(), "{basic:?}");
    assert_eq!(basic.r#type, "invoice.updated");
    assert!(basic.subject.is_some() && basic.received_at.is_some());
    assert!(basic.data.is_none() && basic.previous_data.is_none());
    assert_eq!(
        (basic.data_json.as_str(), basic.previous_data_json.as_str()),
        ("", "")
    );
    assert!(basic.detail.is_none(), "{:?}", basic.detail);

    // Stored whole, and a redelivery asking for the full event gets it, as first stored.
    let stored = get(&mut server, &basic.id, EventView::Basic).await;
    assert_eq!(stored.data_json, PAYLOAD);
    assert!(stored.detail.is_some());
    request.view = VerifyAndNormalizeView::Full as i32;
    let (full, duplicate) = normalize(&mut server, request.clone()).await;
    assert!(duplicate);
    assert_eq!(full, stored);

    // A view this server does not know is refused before anything is stored.
    let other = body.replace("acc_1", "acc_2");
    let mut request = token_request("abowire", "token", ABOWIRE_TOKEN, other.as_bytes());
    request.view = 7;
    let status = server
        .client
        .verify_and_normalize(request)
        .await
        .expect_err("an unknown view");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("view"), "{}", status.message());
    let listed = server
        .client
        .list_events(ListEventsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .events;
    assert_eq!(listed.len(), 1, "nothing stored: {listed:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_full_view_returns_a_delivery_that_verifies_again() {
    let (mut server, _store) = server().await;
    let body = gigs_event(7, "subscription.activated");
    let timestamp = chrono::Utc::now().timestamp();
    let mut request = gigs_request(&body, GIGS_SECRET, "msg_full_view", timestamp);
    request.remote_addr = "203.0.113.9:4431".into();
    request.headers.push(header("x-unrelated", "dropped"));
    let (event, _) = normalize(&mut server, request).await;

    let full = get(&mut server, &event.id, EventView::Full).await;
    let delivery = full
        .delivery
        .clone()
        .expect("the full view has the delivery");
    assert_eq!(delivery.body, body);
    assert_eq!(delivery.request_path, "/webhooks/gigs");
    assert_eq!(delivery.remote_addr, "203.0.113.9");
    let names: Vec<&str> = delivery.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "content-type",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature"
        ]
    );
    // Apart from the delivery, the full view is the stored event.
    let mut without = full.clone();
    without.delivery = None;
    assert_eq!(without, get(&mut server, &event.id, EventView::Basic).await);

    // Re-verified exactly as an operator would: the kept headers and body, through the
    // pipeline, with the original signature.
    let again = VerifyAndNormalizeRequest {
        source: "gigs".into(),
        headers: delivery.headers.clone(),
        body: delivery.body.clone(),
        request_uri: delivery.request_path.clone(),
        dry_run: true,
        ..Default::default()
    };
    let (renormalized, _) = normalize(&mut server, again.clone()).await;
    assert_eq!(renormalized.id, event.id);
    assert_eq!(renormalized.data_json, event.data_json);
    // And a single changed byte fails, so the check above means something.
    let mut tampered = again;
    tampered.body[10] ^= 1;
    let status = server
        .client
        .verify_and_normalize(tampered)
        .await
        .expect_err("tampered body refused");
    assert_eq!(reason_of(&status).0, "SIGNATURE_MISMATCH");

    let status = server
        .client
        .get_event(GetEventRequest {
            id: event.id.clone(),
            view: 7,
        })
        .await
        .expect_err("unknown view refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("view"), "{}", status.message());
    server.shutdown().await;
}

#[tokio::test]
async fn a_kept_delivery_holds_no_token() {
    let (mut server, _store) = server().await;
    let encoded = "abowire-t0ken%2Fwith%2Bchars";
    let body = format!(
        r#"{{"id":"5f0c9a3e","eventArn":"arn:abowire:api-key:revoke","action":"api-key:revoke",
            "userId":"usr_1","timestamp":"2026-12-02T10:00:00Z","origin":"o",
            "destination":"https://hooks.example.com/webhooks/abowire?token={encoded}",
            "payload":{{"id":"key_1","note":"{ABOWIRE_TOKEN}"}}}}"#
    );
    let request = token_request("abowire", "token", ABOWIRE_TOKEN, body.as_bytes());
    assert!(request.request_uri.contains(encoded));
    let (event, _) = normalize(&mut server, request).await;
    let delivery = get(&mut server, &event.id, EventView::Full)
        .await
        .delivery
        .expect("delivery");
    let text = String::from_utf8(delivery.body).expect("utf-8");
    assert!(
        !text.contains(ABOWIRE_TOKEN) && !text.contains(encoded),
        "{text}"
    );
    assert!(text.contains("?token=REDACTED"), "{text}");
    assert_eq!(delivery.request_path, "/webhooks/abowire");
    server.shutdown().await;
}

#[tokio::test]
async fn a_gigs_id_is_a_duplicate_past_the_dedup_window_and_never_renamed() {
    let (mut server, _store) = server().await;
    let body = gigs_event(42, "sim.retired");
    let request = || {
        gigs_request(
            &body,
            GIGS_SECRET,
            "msg_stable",
            chrono::Utc::now().timestamp(),
        )
    };
    let (first, duplicate) = normalize(&mut server, request()).await;
    assert!(!duplicate);
    // Past the one-second window: the server's own clock has to move.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (again, duplicate) = normalize(&mut server, request()).await;
    assert!(duplicate, "a retained provider id is a duplicate");
    assert_eq!((again.id, again.sequence), (first.id, first.sequence));
    server.shutdown().await;
}
