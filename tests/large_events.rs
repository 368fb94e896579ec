//! Events near the size limits, over real gRPC: an event that would inflate past
//! `limits.max_event_bytes` is refused before it is stored, and ListEvents pages of large events
//! stay sendable (short pages with a token) while every event is still reachable.

mod common;

use common::{MM_TOKEN, TestServer, reason_of, test_config_toml, token_request};
use hooknorm::proto::v1::ListEventsRequest;

/// A Mobile Manager order whose `Extra` field is `filler`.
fn order(n: u32, filler: &str) -> Vec<u8> {
    format!(
        r#"{{"OrderId":"7d5b2f8e-3c41-4a9b-b1e2-{n:012x}","State":1,"Type":0,"Extra":{filler}}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn an_event_that_inflates_past_the_limit_is_refused_and_not_stored() {
    let mut server = TestServer::start().await;
    // ~900 KB of JSON under the 1 MiB body limit, ~5 MB as a protobuf `ListValue`.
    let ones = format!("[{}1]", "1,".repeat(450_000));
    let body = order(1, &ones);
    assert!(body.len() < 1024 * 1024);
    let status = server
        .client
        .verify_and_normalize(token_request("mm", "key", MM_TOKEN, &body))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(reason_of(&status).0, "PAYLOAD_TOO_LARGE");
    assert!(
        status.message().contains("normalized event is"),
        "{}",
        status.message()
    );
    let listed = server
        .client
        .list_events(ListEventsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.events.is_empty(), "nothing stored");
    // And the server goes on storing ordinary events.
    let ok = server
        .client
        .verify_and_normalize(token_request("mm", "key", MM_TOKEN, &order(2, "1")))
        .await
        .expect("stored")
        .into_inner();
    assert_eq!(ok.event.expect("event").sequence, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn list_pages_of_large_events_are_short_but_complete() {
    let mut server = TestServer::start_with(&test_config_toml(1024 * 1024)).await;
    let text = format!("\"{}\"", "x".repeat(700_000));
    let total = 12u32;
    for n in 0..total {
        server
            .client
            .verify_and_normalize(token_request("mm", "key", MM_TOKEN, &order(n, &text)))
            .await
            .expect("stored");
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        // The test client keeps tonic's default 4 MiB receive limit, as most clients do.
        let page = server
            .client
            .list_events(ListEventsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("a page fits a default client")
            .into_inner();
        pages += 1;
        assert!(!page.events.is_empty());
        seen.extend(page.events.iter().map(|event| event.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert!(pages > 1, "12 x 700 KB cannot fit one page");
    let want: Vec<u64> = (1..=u64::from(total)).rev().collect();
    assert_eq!(seen, want, "newest first, each once");
    server.shutdown().await;
}
