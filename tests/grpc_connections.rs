//! The gRPC listener's connection admission over real sockets: a connection that does not send
//! the HTTP/2 preface within `grpc.preface_timeout_seconds`, or sends something else, is
//! closed; at `grpc.max_connections` an established client is never closed for a newcomer; a
//! connection resetting streams as soon as it opens them, past
//! `grpc.max_stream_resets_per_second`, is closed and its address refused for
//! `grpc.reset_penalty_seconds`, while a client cancelling calls keeps its connection.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::flood::{connect_from, loopback};
use common::http::MIB;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::transport::Channel;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the server has closed `stream` (EOF or reset) within `within`; whatever it sent
/// before (an HTTP/2 GOAWAY, say) is skipped.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 1024];
    let reading = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, reading).await.is_ok()
}

/// A dry-run call on its own connection from `source`; whether it succeeded.
async fn call_from(source: IpAddr, addr: SocketAddr) -> bool {
    let Ok(stream) = connect_from(source, addr).await else {
        return false;
    };
    // A connector handing out this one stream: one connection, one call.
    let slot = Arc::new(Mutex::new(Some(stream)));
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let stream = slot.lock().expect("not poisoned").take();
        async move {
            stream
                .map(hyper_util::rt::TokioIo::new)
                .ok_or_else(|| std::io::Error::other("one connection only"))
        }
    });
    let Ok(channel) = Channel::from_static("http://hooknorm.test")
        .connect_with_connector(connector)
        .await
    else {
        return false;
    };
    let mut request = gigs_event_request(1, "subscription.renewed");
    request.dry_run = true;
    let mut client = common::stream::authenticated(channel);
    let call = client.verify_and_normalize(request);
    matches!(
        tokio::time::timeout(Duration::from_secs(5), call).await,
        Ok(Ok(_))
    )
}

#[tokio::test]
async fn a_connection_without_the_preface_is_closed_after_the_deadline() {
    let toml = test_config_toml(MIB) + "\n[grpc]\npreface_timeout_seconds = 1\n";
    let server = TestServer::start_with(&toml).await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connects");
    let mut half = TcpStream::connect(server.addr).await.expect("connects");
    half.write_all(&PREFACE[..10]).await.expect("written");
    for stream in [&mut silent, &mut half] {
        assert!(closed_within(stream, Duration::from_secs(10)).await);
    }
    // Something else than HTTP/2 is closed as soon as it is seen.
    let mut http1 = TcpStream::connect(server.addr).await.expect("connects");
    http1
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("written");
    assert!(closed_within(&mut http1, Duration::from_millis(500)).await);
    // The server's own client is unaffected.
    let mut client = server.client.clone();
    let mut request = gigs_event_request(1, "subscription.renewed");
    request.dry_run = true;
    client.verify_and_normalize(request).await.expect("served");
    server.shutdown().await;
}

#[tokio::test]
async fn at_the_cap_an_established_client_is_never_closed_for_a_newcomer() {
    // TestServer's own client holds one connection; two more slots, taken by an address that
    // never sends the preface.
    let toml = test_config_toml(MIB) + "\n[grpc]\nmax_connections = 3\n";
    let server = TestServer::start_with(&toml).await;
    let mut pending = connect_from(loopback(0, 2), server.addr)
        .await
        .expect("connects");
    let _pending_too = connect_from(loopback(0, 2), server.addr)
        .await
        .expect("connects");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A newcomer from elsewhere takes the slot of its oldest...
    assert!(call_from(loopback(0, 3), server.addr).await);
    assert!(closed_within(&mut pending, Duration::from_secs(5)).await);
    // ...and the established client kept its connection throughout.
    let mut client = server.client.clone();
    let mut request = gigs_event_request(2, "subscription.renewed");
    request.dry_run = true;
    client.verify_and_normalize(request).await.expect("served");
    server.shutdown().await;
}

#[tokio::test]
async fn resetting_streams_past_the_budget_closes_the_connection_and_refuses_the_address() {
    let toml = test_config_toml(MIB) + "\n[grpc]\nreset_penalty_seconds = 2\n";
    let server = TestServer::start_with(&toml).await;
    let attacker = loopback(0, 4);
    let stream = connect_from(attacker, server.addr).await.expect("connects");
    let (mut client, connection) = h2::client::handshake(stream).await.expect("handshake");
    let driving = tokio::spawn(connection);
    let uri = format!(
        "http://{}/hooknorm.v1.NormalizerService/VerifyAndNormalize",
        server.addr
    );
    let mut reset = 0;
    for _ in 0..1000 {
        client = match client.ready().await {
            Ok(client) => client,
            Err(_) => break,
        };
        let request = ::http::Request::post(uri.as_str())
            .header("content-type", "application/grpc")
            .body(())
            .expect("request");
        let Ok((_, mut stream)) = client.send_request(request, false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        reset += 1;
        tokio::task::yield_now().await;
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), driving).await;
    assert!(
        ended.is_ok(),
        "the connection is still open after {reset} resets"
    );
    assert!(reset < 1000, "{reset}");
    // Its address is refused for the penalty; another's is not.
    assert!(!call_from(attacker, server.addr).await);
    assert!(call_from(loopback(0, 5), server.addr).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(call_from(attacker, server.addr).await);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_cancelling_calls_keeps_its_connection() {
    let server = TestServer::start().await;
    let mut client = common::stream::connect(&server.addr.to_string()).await;
    // 50 subscriptions, all cancelled (reset) at once a while after they were made: a client
    // going away, or its deadlines passing. Never counted, however many.
    let mut streams = Vec::new();
    for _ in 0..50 {
        let request = hooknorm::proto::v1::StreamEventsRequest::default();
        streams.push(client.stream_events(request).await.expect("stream opens"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(streams);
    // A few cancelled as soon as made: within the budget.
    for _ in 0..5 {
        let request = hooknorm::proto::v1::StreamEventsRequest::default();
        drop(client.stream_events(request).await.expect("stream opens"));
    }
    let mut request = gigs_event_request(3, "subscription.renewed");
    request.dry_run = true;
    client
        .verify_and_normalize(request)
        .await
        .expect("the same connection still serves");
    server.shutdown().await;
}
