//! The events console over real sockets: it is served on the ops listener and nowhere on the
//! public ingress, and an open live tail ends promptly when the server stops (its connection
//! does not hold the shutdown for the grace period). The pages themselves are tested as a value
//! in `src/console/tests.rs` and in a browser in `tests/browser/`.

mod common;

use std::time::{Duration, Instant};

use common::http::*;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn bearer() -> Vec<(String, String)> {
    vec![("authorization".to_owned(), format!("Bearer {TEST_API_KEY}"))]
}

#[tokio::test]
async fn the_console_is_on_the_ops_listener_only() {
    let server = TestServer::start().await;
    let order = fixture("mobile_manager/order.complete.json");
    let answer = post_webhook(
        server.http_addr,
        &token_request("mm", "key", MM_TOKEN, &order),
    )
    .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let id = answer.json["id"].as_str().unwrap_or_default().to_owned();

    let ingress = send(server.http_addr, "GET", "/console", &bearer(), Vec::new()).await;
    assert_refused(&ingress, 404, "UNKNOWN_PATH", "the console on the ingress");

    let page = send(server.ops_addr, "GET", "/console", &bearer(), Vec::new()).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(String::from_utf8_lossy(&page.body).contains("order.completed"));

    let path = format!("/console/events/{}", id.replace(':', "%3A"));
    let detail = send(server.ops_addr, "GET", &path, &bearer(), Vec::new()).await;
    assert_eq!(detail.status, 200);
    let anonymous = send(server.ops_addr, "GET", &path, &[], Vec::new()).await;
    assert_eq!(anonymous.status, 401);
    assert!(!String::from_utf8_lossy(&anonymous.body).contains("order.completed"));
    server.shutdown().await;
}

#[tokio::test]
async fn an_open_live_tail_ends_when_the_server_stops() {
    // A grace period far longer than the test allows: the tail must end on the stop signal.
    let toml =
        test_config_toml(MIB).replace("shutdown_grace_seconds = 5", "shutdown_grace_seconds = 60");
    let server = TestServer::start_with(&toml).await;
    let mut stream = TcpStream::connect(server.ops_addr).await.expect("connects");
    let request = format!(
        "GET /console/live HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {TEST_API_KEY}\r\n\r\n",
        server.ops_addr
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains("event: ready") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("the tail answers")
            .expect("reads");
        assert!(
            read > 0,
            "closed early: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..read]);
    }
    let started = Instant::now();
    let stopping = tokio::spawn(server.shutdown());
    // The stream's last message says it ended, then the connection closes.
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("the tail ends in time")
            .unwrap_or(0);
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..read]);
    }
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the server stops in time")
        .expect("joins");
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.contains("event: end\ndata: server is shutting down"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
