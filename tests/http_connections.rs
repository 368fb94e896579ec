//! The HTTP listener's connection admission over real sockets: a half-sent request head and an
//! idle keep-alive connection are closed after `http.header_read_timeout_seconds`; at
//! `http.max_connections` a new connection is served at once and a waiting one closed instead
//! (only when every connection is busy is the new one refused); an address holding
//! `http.max_waiting_per_address` waiting connections has its next ones refused; near the cap the
//! deadline shrinks to `http.header_read_timeout_min_seconds`; and each close is logged,
//! rate-limited, with its reason.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::http::*;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

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

/// Whether the server has closed `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A connection from `source` (any 127.0.0.0/8 address is this machine).
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::from(source), 0))
        .expect("bind source");
    socket.connect(addr).await.expect("connects")
}

fn request(addr: SocketAddr) -> String {
    format!("GET /nowhere HTTP/1.1\r\nhost: {addr}\r\n\r\n")
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
    // No webhook was answered: closed without a word.
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
    // The listener is unaffected.
    assert_eq!(get(server.http_addr, "/nowhere").await.status, 404);
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
        .write_all(request(server.http_addr).as_bytes())
        .await
        .expect("written");
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 404, "{answer:?}");
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
async fn at_the_cap_a_new_connection_closes_a_waiting_one() {
    let toml = test_config_toml(MIB) + "\n[http]\nmax_connections = 2\n";
    let server = TestServer::start_with(&toml).await;
    let addr = server.http_addr;
    // Both connection slots, held by a client that says nothing.
    let mut idle = connect_from([127, 0, 0, 2], addr).await;
    let _idle_too = connect_from([127, 0, 0, 2], addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Another client's connection is served at once, and the idle client pays for it, with
    // its oldest connection.
    let mut next = connect_from([127, 0, 0, 3], addr).await;
    next.write_all(request(addr).as_bytes())
        .await
        .expect("written");
    assert_eq!(read_answer(&mut next).await.status, 404);
    assert!(closed_within(&mut idle, Duration::from_secs(10)).await);
    // A newcomer from the address holding the most waiting connections is refused instead:
    // it costs the server nothing.
    if let Ok(mut refused) = common::flood::connect_from(IpAddr::from([127, 0, 0, 2]), addr).await {
        assert!(closed_within(&mut refused, Duration::from_secs(10)).await);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_new_one_is_refused() {
    let toml = test_config_toml(MIB) + "\n[http]\nmax_connections = 1\n";
    let server = TestServer::start_with(&toml).await;
    let addr = server.http_addr;
    let body = fixture("abowire/api-key.revoke.json");
    // The only connection, busy: its head is in and its body is on the way.
    let mut busy = RawUpload::start(
        addr,
        &abowire_uri(),
        &[
            "content-type: application/json",
            &format!("content-length: {}", body.len()),
        ],
    )
    .await;
    busy.write(&body[..10]).await.expect("part written");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = TcpStream::connect(addr).await.expect("kernel accepts");
    assert!(closed_within(&mut refused, Duration::from_secs(10)).await);
    // The busy one is never cut off for it.
    busy.write(&body[10..]).await.expect("rest written");
    assert_eq!(busy.answer().await.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn an_address_at_its_cap_has_its_next_connections_refused() {
    let toml = test_config_toml(MIB) + "\n[http]\nmax_waiting_per_address = 2\n";
    let server = TestServer::start_with(&toml).await;
    let addr = server.http_addr;
    let mut first = connect_from([127, 0, 0, 2], addr).await;
    let mut second = connect_from([127, 0, 0, 2], addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Reset at once: perhaps before `connect` even returns.
    if let Ok(mut third) = common::flood::connect_from(IpAddr::from([127, 0, 0, 2]), addr).await {
        assert!(closed_within(&mut third, Duration::from_secs(10)).await);
    }
    // Nobody else is touched: not its waiting ones, not another address.
    assert!(!closed_within(&mut first, Duration::from_millis(300)).await);
    let mut elsewhere = connect_from([127, 0, 0, 3], addr).await;
    elsewhere
        .write_all(request(addr).as_bytes())
        .await
        .expect("written");
    assert_eq!(read_answer(&mut elsewhere).await.status, 404);
    // Once one of its connections has a request in progress, the address may open another.
    second
        .write_all(request(addr).as_bytes())
        .await
        .expect("written");
    assert_eq!(read_answer(&mut second).await.status, 404);
    drop(second);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = connect_from([127, 0, 0, 2], addr).await;
    fourth
        .write_all(request(addr).as_bytes())
        .await
        .expect("written");
    assert_eq!(read_answer(&mut fourth).await.status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn near_the_cap_waiting_connections_get_the_shorter_deadline() {
    let toml = test_config_toml(MIB)
        + "\n[http]\nmax_connections = 4\nheader_read_timeout_seconds = 60\n\
           header_read_timeout_min_seconds = 1\n";
    let server = TestServer::start_with(&toml).await;
    let addr = server.http_addr;
    // One connection alone is far from the cap: it keeps the full minute.
    let mut alone = TcpStream::connect(addr).await.expect("connects");
    assert!(!closed_within(&mut alone, Duration::from_millis(2500)).await);
    // Four: at the cap the deadline is 1 s, which the first one is already past.
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(TcpStream::connect(addr).await.expect("connects"));
    }
    assert!(closed_within(&mut alone, Duration::from_secs(5)).await);
    // Three of four open: the deadline is back up to half a minute.
    for stream in &mut others {
        assert!(!closed_within(stream, Duration::from_millis(1500)).await);
    }
    server.shutdown().await;
}

#[test]
fn closes_are_logged_with_their_reason_once_per_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(dir.path(), "[http]\nmax_waiting_per_address = 2\n");
    let running = serve_binary(env!("CARGO_BIN_EXE_hooknorm"), &config);
    let addr: SocketAddr = running.http_addr.parse().expect("http addr");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut held = Vec::new();
        for _ in 0..12 {
            // A refused one may be reset before `connect` even returns.
            held.push(common::flood::connect_from(IpAddr::from([127, 0, 0, 2]), addr).await);
        }
        // The ten refused ones are closed by now: a request on a fresh connection is answered
        // after them.
        assert_eq!(get(addr, "/nowhere").await.status, 404);
    });
    std::thread::sleep(Duration::from_millis(300));
    let lines: Vec<serde_json::Value> = running
        .log_lines()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|line: &serde_json::Value| line["message"] == "closed connections early")
        .collect();
    // Ten closes within the interval: one line now, the rest counted in the next one.
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["listener"], "http", "{line}");
    assert_eq!(line["reason"], "address_cap", "{line}");
    assert_eq!(line["count"], 1, "{line}");
    assert_eq!(line["peer"], "127.0.0.2", "{line}");
}
