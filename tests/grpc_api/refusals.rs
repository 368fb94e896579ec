//! Every refusal reason, produced by a request that should produce it; hostile bodies and
//! missing fields get specific errors, and the server stays up.

use super::*;

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
