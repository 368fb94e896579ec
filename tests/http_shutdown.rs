//! Shutdown as the HTTP ingress's clients see it, over real sockets: during the drain delay
//! readiness (`/readyz` and gRPC health) already says "shutting down" while the listeners keep
//! serving, and a webhook that meets a closed event log is told to retry (503 `SHUTTING_DOWN`).

mod common;

use std::sync::{Arc, Mutex};

use common::http::*;
use common::*;
use hooknorm::log::EventLog;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// gRPC health of the whole server, asked on a new connection (so the listener must accept).
async fn grpc_health_on_new_connection(addr: std::net::SocketAddr) -> i32 {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("grpc listener accepts");
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status
}

#[tokio::test]
async fn readiness_drops_at_once_and_listeners_serve_through_the_drain() {
    let toml = test_config_toml(MIB).replace(
        "shutdown_grace_seconds = 5",
        "shutdown_grace_seconds = 5\ndrain_seconds = 4",
    );
    let server = TestServer::start_with(&toml).await;
    let (addr, ops, grpc_addr) = (server.http_addr, server.ops_addr, server.addr);
    assert_eq!(get(ops, "/readyz").await.status, 200);

    let stopping = tokio::spawn(server.shutdown());
    // Every request below is on a new connection: the listeners still accept.
    let ready = readyz_becomes(ops, 503).await;
    assert_eq!(ready.json["reason"], "shutting_down");
    assert_eq!(
        grpc_health_on_new_connection(grpc_addr).await,
        ServingStatus::NotServing as i32
    );
    let request = gigs_event_request(5, "subscription.renewed");
    let (_, _, duplicate) = assert_accepted(&post_webhook(addr, &request).await, "during drain");
    assert!(!duplicate);
    assert!(
        !stopping.is_finished(),
        "the drain ended before the checks; raise drain_seconds"
    );

    // Then the listeners close and the server stops.
    stopping.await.expect("server stops");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(tokio::net::TcpStream::connect(ops).await.is_err());
    assert!(tokio::net::TcpStream::connect(grpc_addr).await.is_err());
}

#[tokio::test]
async fn a_webhook_meeting_a_closed_log_gets_503_shutting_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let captured: Arc<Mutex<Option<Arc<dyn EventLog>>>> = Arc::default();
    let slot = captured.clone();
    let server = TestServer::start_wrapping_log(&test_config_toml(MIB), dir.path(), move |log| {
        *slot.lock().expect("not poisoned") = Some(log.clone());
        log
    })
    .await;
    let log = captured
        .lock()
        .expect("not poisoned")
        .take()
        .expect("log captured");
    // The log closes under a running listener, as it does when the grace period runs out.
    log.close().await;
    let request = gigs_event_request(9, "subscription.renewed");
    let answer = post_webhook(server.http_addr, &request).await;
    assert_refused(&answer, 503, "SHUTTING_DOWN", "log closed");
    assert_eq!(answer.header("retry-after"), Some("300"));
    server.shutdown().await;
}
