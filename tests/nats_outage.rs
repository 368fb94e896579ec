//! NATS going away under load, for a real `hooknorm serve` on the NATS backend: while the server
//! is down webhooks get 503 `STORE_UNAVAILABLE` with `Retry-After` (never a 200 for an event
//! that is not stored), `/readyz` says not ready and streams end with their resume cursor; once
//! it is back, everything resumes without a restart and nothing acknowledged is lost.

mod common;
mod nats_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http::{assert_accepted, post_webhook, readyz_becomes};
use common::stream::{connect, list_all, open_stream, resume_after, stream_end};
use common::*;
use hooknorm::proto::v1::EventFilter;
use nats_support::NatsServer;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

/// What the senders saw: acknowledged ids with their sequences, and webhooks refused with 503.
#[derive(Default)]
struct Seen {
    acknowledged: HashMap<String, u64>,
    refused: Vec<u64>,
}

/// Sends distinct webhooks until `stop`, recording each answer; any answer but 200 or 503
/// `STORE_UNAVAILABLE` with `Retry-After` fails the test.
async fn sender(addr: SocketAddr, first: u64, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    for n in first.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let answer = post_webhook(addr, &gigs_event_request(n, "sim.updated")).await;
        match answer.status {
            200 => {
                let (id, sequence, _) = assert_accepted(&answer, "while nats is up");
                seen.lock().expect("lock").acknowledged.insert(id, sequence);
            }
            503 => {
                assert_eq!(answer.reason(), "STORE_UNAVAILABLE", "{:?}", answer.json);
                assert!(
                    answer.header("retry-after").is_some(),
                    "503 without Retry-After"
                );
                seen.lock().expect("lock").refused.push(n);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            status => panic!("webhook {n}: unexpected {status}: {:?}", answer.json),
        }
    }
}

/// The whole server's gRPC health status (1 SERVING, 2 NOT_SERVING).
async fn health(addr: &str) -> i32 {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connects");
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_refuses_with_503_and_everything_resumes_when_it_returns() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let stream = nats_support::unique("OUTAGE");
    let extra = format!(
        "[store]\nbackend = \"nats\"\n\n[store.nats]\nservers = [\"{}\"]\nstream = \"{stream}\"\n\
         subject_prefix = \"hn.outage\"\nappend_timeout_seconds = 2\n\n\
         [streams]\nheartbeat_seconds = 1\n",
        nats.url()
    );
    let running = serve_binary(BIN, &binary_config(dir.path(), &extra));
    let http: SocketAddr = running.http_addr.parse().expect("addr");
    let ops: SocketAddr = running.ops_addr.parse().expect("addr");
    readyz_becomes(ops, 200).await;

    let mut client = connect(&running.addr).await;
    let mut subscription = open_stream(
        &mut client,
        EventFilter::default(),
        common::stream::earliest(),
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let senders: Vec<_> = (0..4u64)
        .map(|index| tokio::spawn(sender(http, index * 1_000_000, stop.clone(), seen.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_outage = seen.lock().expect("lock").acknowledged.len();
    assert!(before_outage > 0, "nothing acknowledged before the outage");

    nats.kill();
    // Down: not ready (HTTP and gRPC health), and the stream ends with its resume cursor.
    readyz_becomes(ops, 503).await;
    assert_eq!(health(&running.addr).await, 2, "grpc health NOT_SERVING");
    let ended = stream_end(&mut subscription, Duration::from_secs(30)).await;
    let cursor = resume_after(&ended);
    let refused_at = Instant::now();
    while seen.lock().expect("lock").refused.is_empty() {
        assert!(
            refused_at.elapsed() < Duration::from_secs(10),
            "no 503 while nats is down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acknowledged_while_down = seen.lock().expect("lock").acknowledged.len();
    tokio::time::sleep(Duration::from_millis(500)).await;

    nats.run();
    readyz_becomes(ops, 200).await;
    assert_eq!(health(&running.addr).await, 1, "grpc health SERVING");
    // Acknowledgements resume without a restart.
    let resumed_at = Instant::now();
    while seen.lock().expect("lock").acknowledged.len() < acknowledged_while_down + 20 {
        assert!(
            resumed_at.elapsed() < Duration::from_secs(20),
            "appends did not resume"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.expect("sender");
    }

    // The senders retry what was refused: stored now, or stored before (as a duplicate).
    let refused = std::mem::take(&mut seen.lock().expect("lock").refused);
    let mut seen = std::mem::take(&mut *seen.lock().expect("lock"));
    for n in &refused {
        let answer = post_webhook(http, &gigs_event_request(*n, "sim.updated")).await;
        let (id, sequence, _) = assert_accepted(&answer, "a retry after the outage");
        if let Some(first) = seen.acknowledged.insert(id.clone(), sequence) {
            assert_eq!(first, sequence, "{id} moved");
        }
    }
    let mut stored: HashMap<String, u64> = HashMap::new();
    for event in list_all(&mut client).await {
        assert!(
            stored.insert(event.id.clone(), event.sequence).is_none(),
            "stored twice"
        );
    }
    for (id, sequence) in &seen.acknowledged {
        assert_eq!(
            stored.get(id),
            Some(sequence),
            "acknowledged {id} lost or moved"
        );
    }
    assert_eq!(
        stored.len(),
        seen.acknowledged.len(),
        "stored events nobody acknowledged"
    );

    // The subscriber resumes from its cursor and misses nothing.
    let mut resumed = open_stream(
        &mut client,
        EventFilter::default(),
        common::stream::after(cursor),
    )
    .await;
    let newer = stored
        .values()
        .filter(|sequence| **sequence > cursor)
        .count();
    let sequences = common::stream::next_sequences(&mut resumed, newer).await;
    let mut expected: Vec<u64> = stored.values().copied().filter(|s| *s > cursor).collect();
    expected.sort_unstable();
    assert_eq!(sequences, expected);
    eprintln!(
        "{} acknowledged ({before_outage} before the outage), {} refused with 503 and retried",
        seen.acknowledged.len(),
        refused.len()
    );
}
