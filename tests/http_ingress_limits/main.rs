//! The HTTP ingress under load and failure, over real sockets: a 100 MiB body is refused with
//! 413 while the server's memory stays flat, a store that cannot write gives 503 and the retried
//! webhook is stored once, the rate, concurrency and time limits answer 429/503 with
//! `Retry-After` (an upload in flight holding no processing slot), and shutdown finishes an
//! upload in flight.

#[path = "../common/mod.rs"]
mod common;
mod failing_log;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::http::*;
use common::*;
use failing_log::{Mode, STALL, Switch, start_failing};
use hooknorm::proto::v1::ListEventsRequest;
use tokio::io::AsyncWriteExt;
use tonic_health::pb::health_check_response::ServingStatus;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

/// Reads `/proc/<pid>/status` field `name` (kB) in bytes.
fn proc_status_bytes(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {status}"));
    kb * 1024
}

/// Streams a 100 MiB body in 64 KiB writes while reading the answer; returns the answer and
/// how much of the body the server let through before refusing.
async fn upload_100_mib(addr: SocketAddr, chunked: bool) -> (RawAnswer, u64) {
    const TOTAL: usize = 100 * MIB;
    const CHUNK: usize = 64 * 1024;
    let uri = abowire_uri();
    let framing = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {TOTAL}")
    };
    let upload = RawUpload::start(addr, &uri, &["content-type: application/json", &framing]).await;
    let (mut reader, mut writer) = upload.stream.into_split();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let writing = tokio::spawn(async move {
        let payload = vec![b'x'; CHUNK];
        let frame = if chunked {
            let mut frame = format!("{CHUNK:x}\r\n").into_bytes();
            frame.extend_from_slice(&payload);
            frame.extend_from_slice(b"\r\n");
            frame
        } else {
            payload
        };
        for _ in 0..TOTAL / CHUNK {
            if writer.write_all(&frame).await.is_err() {
                return;
            }
            counter.fetch_add(CHUNK as u64, Ordering::Relaxed);
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n").await;
        }
    });
    let answer = read_answer(&mut reader).await;
    // Once refused, the server closes the connection, which ends the writer; a writer still
    // blocked would only mean the server stopped reading, which is the point.
    tokio::time::sleep(Duration::from_millis(200)).await;
    writing.abort();
    (answer, sent.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_body_is_refused_with_413_and_memory_stays_flat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hooknorm.toml");
    let toml = format!(
        "{}\n[store]\npath = {:?}\n",
        test_config_toml(MIB),
        dir.path().join("store").display().to_string()
    );
    std::fs::write(&config, toml).expect("config written");
    let running = serve_binary(BIN, &config);
    let pid = running.child.id();
    let addr: SocketAddr = running.http_addr.parse().expect("http addr");

    // Warm up: one accepted webhook and one refused upload, so lazy allocations are done.
    let body = fixture("abowire/api-key.revoke.json");
    let request = token_request("abowire", "token", ABOWIRE_TOKEN, &body);
    assert_accepted(&post_webhook(addr, &request).await, "warm-up");
    let answer = post_webhook(
        addr,
        &token_request("abowire", "token", ABOWIRE_TOKEN, &vec![b'x'; MIB + 1]),
    )
    .await;
    assert_eq!(answer.status, 413);

    let before = proc_status_bytes(pid, "VmRSS");
    for chunked in [false, true] {
        let (answer, sent) = upload_100_mib(addr, chunked).await;
        assert_eq!(answer.status, 413, "chunked {chunked}: {answer:?}");
        assert_eq!(answer.json()["error"]["reason"], "PAYLOAD_TOO_LARGE");
        eprintln!(
            "100 MiB upload (chunked: {chunked}): refused after the client wrote {:.1} MiB",
            sent as f64 / MIB as f64
        );
        assert!(sent < 50 * MIB as u64, "server kept reading: {sent} bytes");
    }
    let after = proc_status_bytes(pid, "VmRSS");
    let peak = proc_status_bytes(pid, "VmHWM");
    eprintln!(
        "server RSS before {:.1} MiB, after {:.1} MiB, peak {:.1} MiB",
        before as f64 / MIB as f64,
        after as f64 / MIB as f64,
        peak as f64 / MIB as f64
    );
    assert!(
        after.saturating_sub(before) < 20 * MIB as u64,
        "RSS grew from {before} to {after}"
    );
    assert!(
        peak.saturating_sub(before) < 20 * MIB as u64,
        "RSS peaked at {peak} from {before}"
    );
    // Still serving.
    let answer = post_webhook(
        addr,
        &token_request(
            "abowire",
            "token",
            ABOWIRE_TOKEN,
            &fixture("abowire/payment.accepted.json"),
        ),
    )
    .await;
    assert_accepted(&answer, "after the uploads");
}

#[tokio::test]
async fn an_unwritable_store_gives_503_and_the_retry_is_stored_once() {
    let switch = Switch::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_failing(&test_config_toml(MIB), dir.path(), &switch).await;
    let (addr, ops) = (server.http_addr, server.ops_addr);
    let request = gigs_event_request(42, "subscription.renewed");
    assert_eq!(get(ops, "/readyz").await.status, 200);

    switch.set(Mode::Refuse);
    for _ in 0..2 {
        let answer = post_webhook(addr, &request).await;
        assert_refused(&answer, 503, "STORE_UNAVAILABLE", "store failing");
        assert_eq!(answer.header("retry-after"), Some("300"));
        let body = String::from_utf8_lossy(&answer.body);
        assert!(
            !body.contains("secret-path") && !body.contains("disk"),
            "{body}"
        );
    }
    // Unready on both probes while it lasts; alive all along.
    let ready = readyz_becomes(ops, 503).await;
    assert_eq!(ready.json["reason"], "store_unavailable");
    assert_eq!(get(ops, "/healthz").await.status, 200);
    for service in ["", "hooknorm.v1.NormalizerService"] {
        assert_eq!(
            grpc_health(&server, service).await,
            ServingStatus::NotServing as i32
        );
    }

    switch.set(Mode::Healthy);
    readyz_becomes(ops, 200).await;
    assert_eq!(
        grpc_health(&server, "").await,
        ServingStatus::Serving as i32
    );
    let (id, sequence, duplicate) = assert_accepted(&post_webhook(addr, &request).await, "retry");
    assert!(!duplicate);
    let again = assert_accepted(&post_webhook(addr, &request).await, "second retry");
    assert_eq!(again, (id.clone(), sequence, true));

    let mut client = server.client.clone();
    let stored = client
        .list_events(ListEventsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .events;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!((&stored[0].id, stored[0].sequence), (&id, sequence));
    server.shutdown().await;
}

/// The risky order: the event is committed but the sender hears a failure (the log reports one
/// after storing, or the request times out while the answer is on its way). The provider
/// retries on 503, and the retry must find the stored event rather than store it again.
#[tokio::test]
async fn a_webhook_stored_before_a_503_is_stored_once_when_retried() {
    let switch = Switch::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = test_config_toml(MIB) + "\n[http]\nrequest_timeout_seconds = 1\n";
    let server = start_failing(&toml, dir.path(), &switch).await;
    let addr = server.http_addr;
    let cases = [
        (Mode::StoreThenFail, 60, "STORE_UNAVAILABLE"),
        (Mode::StoreThenStall, 61, "REQUEST_TIMEOUT"),
    ];
    let mut stored = Vec::new();
    for (mode, n, reason) in cases {
        let request = gigs_event_request(n, "subscription.renewed");
        switch.set(mode);
        let started = Instant::now();
        let answer = post_webhook(addr, &request).await;
        assert_refused(&answer, 503, reason, &format!("{mode:?}"));
        assert_eq!(answer.header("retry-after"), Some("300"), "{mode:?}");
        assert!(
            started.elapsed() < STALL,
            "{mode:?}: answered after the stall"
        );

        switch.set(Mode::Healthy);
        let retry = assert_accepted(&post_webhook(addr, &request).await, "retry");
        assert!(
            retry.2,
            "{mode:?}: the retry stored the event again: {retry:?}"
        );
        stored.push((retry.0, retry.1));
    }

    let mut client = server.client.clone();
    let listed = client
        .list_events(ListEventsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .events;
    let mut listed: Vec<_> = listed.iter().map(|e| (e.id.clone(), e.sequence)).collect();
    listed.sort_by_key(|(_, sequence)| *sequence);
    assert_eq!(listed, stored);
    server.shutdown().await;
}

/// Polls only the gRPC health service (never `/readyz`, which would refresh it itself) until
/// `service` reports `want`, for at most `within`; returns how long it took.
async fn grpc_health_becomes(
    server: &TestServer,
    service: &str,
    want: ServingStatus,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let status = grpc_health(server, service).await;
        if status == want as i32 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "grpc health of {service:?} still {status} after {within:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn grpc_health_follows_the_store_without_readyz() {
    let switch = Switch::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_failing(&test_config_toml(MIB), dir.path(), &switch).await;
    // The periodic refresh is the only thing re-checking the store here: nothing asks /readyz.
    let within = hooknorm::readiness::HEALTH_REFRESH
        + hooknorm::readiness::STORE_CHECK_TTL
        + Duration::from_secs(2);
    assert_eq!(
        grpc_health(&server, "").await,
        ServingStatus::Serving as i32
    );

    switch.set(Mode::Refuse);
    for service in ["", "hooknorm.v1.NormalizerService"] {
        let took = grpc_health_becomes(&server, service, ServingStatus::NotServing, within).await;
        eprintln!("{service:?} not serving after {took:?}");
    }

    switch.set(Mode::Healthy);
    for service in ["", "hooknorm.v1.NormalizerService"] {
        let took = grpc_health_becomes(&server, service, ServingStatus::Serving, within).await;
        eprintln!("{service:?} serving again after {took:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let toml =
        test_config_toml(MIB) + "\n[http]\nrate_limit_per_second = 1\nretry_after_seconds = 2\n";
    let server = TestServer::start_with(&toml).await;
    let addr = server.http_addr;
    let order = fixture("mobile_manager/order.complete.json");
    let request = token_request("mm", "key", MM_TOKEN, &order);
    assert_accepted(&post_webhook(addr, &request).await, "first");
    let answer = post_webhook(addr, &request).await;
    assert_refused(&answer, 429, "RATE_LIMITED", "second in the same second");
    assert_eq!(answer.header("retry-after"), Some("2"));
    // Probes are not rate limited.
    assert_eq!(get(server.ops_addr, "/readyz").await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, duplicate) = assert_accepted(&post_webhook(addr, &request).await, "next second");
    assert!(duplicate);
    server.shutdown().await;
}

#[tokio::test]
async fn the_concurrency_limit_sheds_with_429_and_uploads_hold_no_slot() {
    let switch = Switch::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let toml = test_config_toml(MIB) + "\n[http]\nmax_concurrency = 1\n";
    let server = start_failing(&toml, dir.path(), &switch).await;
    let addr = server.http_addr;
    let body = fixture("abowire/api-key.revoke.json");
    // An upload in flight holds no processing slot: a webhook posted meanwhile is processed.
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
    let order = fixture("mobile_manager/order.complete.json");
    let first = token_request("mm", "key", MM_TOKEN, &order);
    assert_accepted(&post_webhook(addr, &first).await, "beside an upload");
    slow.write(&body[10..]).await.expect("rest written");
    assert_eq!(slow.answer().await.status, 200);

    // A webhook being stored holds the only slot: the next is shed at once.
    switch.set(Mode::StoreThenStall);
    let stalled =
        tokio::spawn(
            async move { post_webhook(addr, &gigs_event_request(77, "sim.retired")).await },
        );
    let probe = token_request("abowire", "token", "wrong", &body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let shed = loop {
        let answer = post_webhook(addr, &probe).await;
        if answer.status == 429 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_refused(&shed, 429, "RATE_LIMITED", "slot busy");
    assert_eq!(shed.header("retry-after"), Some("300"));
    // The stalled one times out (503), and the slot is free again.
    assert_eq!(stalled.await.expect("joins").status, 503);
    switch.set(Mode::Healthy);
    let answer = post_webhook(addr, &probe).await;
    assert_refused(&answer, 401, "TOKEN_MISMATCH", "slot free");
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_upload_times_out_with_503() {
    let toml = test_config_toml(MIB) + "\n[http]\nrequest_timeout_seconds = 1\n";
    let server = TestServer::start_with(&toml).await;
    let mut stalled = RawUpload::start(
        server.http_addr,
        &abowire_uri(),
        &["content-type: application/json", "content-length: 100"],
    )
    .await;
    stalled.write(b"{\"a\":").await.expect("part written");
    let started = Instant::now();
    let answer = stalled.answer().await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.json()["error"]["reason"], "REQUEST_TIMEOUT");
    assert_eq!(answer.header("retry-after").as_deref(), Some("300"));
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_an_upload_in_flight() {
    let server = TestServer::start().await;
    let addr = server.http_addr;
    let body = fixture("abowire/payment.accepted.json");
    let mut upload = RawUpload::start(
        addr,
        &abowire_uri(),
        &[
            "content-type: application/json",
            &format!("content-length: {}", body.len()),
        ],
    )
    .await;
    upload.write(&body[..5]).await.expect("part written");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(server.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // No new connections once shutting down...
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // ...but the one in flight is answered, after its event is stored.
    upload.write(&body[5..]).await.expect("rest written");
    let answer = upload.answer().await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["duplicate"], false);
    stopping.await.expect("server stops");
}
