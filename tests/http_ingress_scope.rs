//! What the ingest limits and the content-type check apply to, over real sockets: requests that
//! are refused anyway (404 unknown source or path, 405 wrong method) spend neither a rate token
//! nor a concurrency slot, and a request with several `Content-Type` headers is refused with 415.

mod common;

use common::http::*;
use common::*;

/// Requests refused before any webhook is processed, each with its expected answer.
fn stray_requests() -> Vec<(&'static str, &'static str, u16, &'static str)> {
    vec![
        ("POST", "/webhooks/nope", 404, "UNKNOWN_SOURCE"),
        ("POST", "/webhooks/%FF", 404, "UNKNOWN_SOURCE"),
        ("POST", "/hooks/mm", 404, "UNKNOWN_PATH"),
        ("GET", "/webhooks/mm", 405, "METHOD_NOT_ALLOWED"),
        ("DELETE", "/webhooks/nope", 405, "METHOD_NOT_ALLOWED"),
    ]
}

async fn assert_strays_answered(addr: std::net::SocketAddr, what: &str) {
    let json = vec![("content-type".to_owned(), "application/json".to_owned())];
    for (method, path, status, reason) in stray_requests() {
        let answer = send(addr, method, path, &json, b"{}".to_vec()).await;
        assert_refused(&answer, status, reason, &format!("{what}: {method} {path}"));
    }
}

#[tokio::test]
async fn refused_requests_spend_no_rate_token() {
    let toml = test_config_toml(MIB) + "\n[http]\nrate_limit_per_second = 1\n";
    let server = TestServer::start_with(&toml).await;
    let addr = server.http_addr;
    // Several times the whole budget of one second, all refused for their own reason...
    for _ in 0..3 {
        assert_strays_answered(addr, "rate 1/s").await;
    }
    // ...and the one token is still there for a real delivery.
    let order = fixture("mobile_manager/order.complete.json");
    let request = token_request("mm", "key", MM_TOKEN, &order);
    assert_accepted(&post_webhook(addr, &request).await, "after the strays");
    let answer = post_webhook(addr, &request).await;
    assert_refused(
        &answer,
        429,
        "RATE_LIMITED",
        "second delivery in the second",
    );
    server.shutdown().await;
}

/// A processing slot is taken only once a body is in, so an upload in flight (a slow sender)
/// holds none: with one slot, other senders are still verified and stored, and strays get their
/// own answers.
#[tokio::test]
async fn an_upload_in_flight_holds_no_concurrency_slot() {
    let toml = test_config_toml(MIB) + "\n[http]\nmax_concurrency = 1\n";
    let server = TestServer::start_with(&toml).await;
    let addr = server.http_addr;
    let body = fixture("abowire/api-key.revoke.json");
    let mut slow = RawUpload::start(
        addr,
        &abowire_uri(),
        &[
            "content-type: application/json",
            &format!("content-length: {}", body.len()),
        ],
    )
    .await;
    slow.write(&body[..10]).await.expect("part written");
    // Verified (and refused) rather than shed with 429: the one slot is free.
    let probe = token_request("abowire", "token", "wrong", &body);
    let answer = post_webhook(addr, &probe).await;
    assert_refused(
        &answer,
        401,
        "TOKEN_MISMATCH",
        "while an upload is in flight",
    );
    let order = fixture("mobile_manager/order.complete.json");
    let request = token_request("mm", "key", MM_TOKEN, &order);
    assert_accepted(
        &post_webhook(addr, &request).await,
        "while an upload is in flight",
    );
    assert_strays_answered(addr, "upload in flight").await;
    slow.write(&body[10..]).await.expect("rest written");
    assert_eq!(slow.answer().await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn several_content_types_are_refused_with_415() {
    let server = TestServer::start().await;
    let order = fixture("mobile_manager/order.complete.json");
    for types in [
        ["application/json", "text/plain"],
        ["text/plain", "application/json"],
        ["application/json", "application/json"],
    ] {
        let mut request = token_request("mm", "key", MM_TOKEN, &order);
        request.headers.clear();
        for content_type in types {
            request.headers.push(header("content-type", content_type));
        }
        let answer = post_webhook(server.http_addr, &request).await;
        assert_refused(
            &answer,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            &format!("{types:?}"),
        );
    }
    // One is fine.
    let request = token_request("mm", "key", MM_TOKEN, &order);
    assert_accepted(&post_webhook(server.http_addr, &request).await, "one type");
    server.shutdown().await;
}
