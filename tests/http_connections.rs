//! The HTTP listener's connection limits over real sockets: a half-sent request head and an idle
//! keep-alive connection are closed after `http.header_read_timeout_seconds`, and no more than
//! `http.max_connections` connections are served at once.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::http::*;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; returns what it sent. Panics if it is still
/// open after `within` (a bound far above the configured timeouts, not a measurement).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let reading = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(within, reading)
        .await
        .expect("the server closes the connection");
    received
}

fn healthz_request(addr: SocketAddr) -> String {
    format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n")
}

#[tokio::test]
async fn a_half_sent_request_head_is_cut_off() {
    let toml = test_config_toml(MIB) + "\n[http]\nheader_read_timeout_seconds = 1\n";
    let server = TestServer::start_with(&toml).await;
    let mut stream = TcpStream::connect(server.http_addr)
        .await
        .expect("connects");
    // Slowloris: a request line and one header, then nothing.
    let half = format!(
        "POST /webhooks/gigs HTTP/1.1\r\nhost: {}\r\n",
        server.http_addr
    );
    stream.write_all(half.as_bytes()).await.expect("written");
    let received = read_until_closed(&mut stream, Duration::from_secs(15)).await;
    // No webhook was answered: at most a timeout status, never a 2xx.
    let text = String::from_utf8_lossy(&received);
    assert!(!text.contains(" 200 "), "{text}");
    // The server is unaffected.
    assert_eq!(get(server.http_addr, "/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let toml = test_config_toml(MIB) + "\n[http]\nheader_read_timeout_seconds = 1\n";
    let server = TestServer::start_with(&toml).await;
    let mut stream = TcpStream::connect(server.http_addr)
        .await
        .expect("connects");
    stream
        .write_all(healthz_request(server.http_addr).as_bytes())
        .await
        .expect("written");
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // Kept alive after the answer, then idle: closed without another byte from the server.
    assert!(
        !answer
            .header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close")),
        "{answer:?}"
    );
    let rest = read_until_closed(&mut stream, Duration::from_secs(15)).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    server.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_one() {
    let toml = test_config_toml(MIB) + "\n[http]\nmax_connections = 1\n";
    let server = TestServer::start_with(&toml).await;
    let addr = server.http_addr;
    // The only connection slot, held by a client that says nothing.
    let idle = TcpStream::connect(addr).await.expect("connects");
    // The kernel completes the next handshake, but the server does not serve it yet.
    let mut waiting = TcpStream::connect(addr).await.expect("connects");
    waiting
        .write_all(healthz_request(addr).as_bytes())
        .await
        .expect("written");
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut byte)).await;
    assert!(early.is_err(), "answered past the cap: {early:?}");
    // Once the slot is free, it is served.
    drop(idle);
    let answer = read_answer(&mut waiting).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    server.shutdown().await;
}
