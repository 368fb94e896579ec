//! The public HTTP ingress under connection floods, against the real binary with its default
//! connection limits, over loopback: 10,000 connections trickling a request head at one byte a
//! second plus 10,000 that say nothing (each reopened about a second after the server closes
//! it), from one address and then spread over 100, while a sender on another address posts
//! signed webhooks at 50/s and the kubelet's probe asks `/healthz` on the ops listener every
//! 100 ms. Every webhook must be answered 200 with p99 <= 1 s, probes within 100 ms (p99; none
//! near the kubelet's 1 s timeout), and the server's memory must stay under
//! [`MEMORY_BOUND_MIB`] above idle. And bodies uploaded at one byte a second are cut off at
//! `http.request_timeout_seconds`, their connections closed, with no sender starved meanwhile.
//!
//! The latency bars are measured up to [`ATTEMPTS`] times (the machine is shared); every other
//! property must hold in every attempt. The suite sends for 10 s per flood; the full 30 s run with
//! `cargo test --test http_flood -- --ignored full_window` (~90 s). The tests run one at a
//! time (they would measure each other otherwise); each flood runs in a worker process needing
//! ~10,500 open files, a limit the tests raise themselves where it is lower (as root); where
//! they cannot, they say so and skip. `HOOKNORM_FLOOD_SECONDS` sets the sending window, and
//! `HOOKNORM_FLOOD_CONNECTIONS` the size of each flood (0: the same measurement unflooded).

mod clients;
#[path = "../common/mod.rs"]
mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clients::{Sent, probe, send_webhooks};
use common::flood::*;
use common::http::*;
use common::*;
use hooknorm::config::DEFAULT_MAX_CONNECTIONS;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

/// The flood tests measure latency: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const TRICKLING: usize = 10_000;
const SILENT: usize = 10_000;

/// `HOOKNORM_FLOOD_CONNECTIONS=0` runs the same measurement without a flood, for comparison.
fn flood_size(default: usize) -> usize {
    std::env::var("HOOKNORM_FLOOD_CONNECTIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
const WEBHOOKS_PER_SECOND: u64 = 50;
/// What the server may grow by over its idle size: the ingress's connection cap at the
/// measured worst case per connection (24 KiB, a 16 KiB head read buffer nearly full; see
/// BENCHMARKS.md), plus 32 MiB for everything else a busy server holds (stored webhooks in
/// flight, the log's writer, allocator slack).
const MEMORY_BOUND_MIB: u64 = (DEFAULT_MAX_CONNECTIONS as u64 * 24) / 1024 + 32;

/// The sending window, 30 s, for the `#[ignore]`d full-length runs; the suite's runs
/// send for [`IN_SUITE_WINDOW`] (same floods, same rate: the property shows within seconds, and
/// the suite must stay short). `HOOKNORM_FLOOD_SECONDS` overrides both.
const FULL_WINDOW: Duration = Duration::from_secs(30);
const IN_SUITE_WINDOW: Duration = Duration::from_secs(10);

fn sending_window(default: Duration) -> Duration {
    std::env::var("HOOKNORM_FLOOD_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .map_or(default, Duration::from_secs)
}

/// What a flood run saw.
#[derive(Debug)]
struct Outcome {
    window: Duration,
    webhooks: Latencies,
    /// Connecting alone, for every webhook that connected: a slow webhook with a slow connect
    /// waited in the kernel, not in the server.
    connects: Latencies,
    /// Webhooks not answered 200, with what happened instead.
    failures: Vec<String>,
    probes: Latencies,
    probe_failures: Vec<String>,
    idle_rss_mib: f64,
    peak_rss_mib: f64,
    flood: FloodCounts,
    /// Handshakes the kernel dropped for a full accept queue during the run (machine-wide).
    listen_overflows: Option<u64>,
    server_warnings: Vec<String>,
}

/// Floods the ingress from `flood_sources` while `sender` posts webhooks and a probe asks
/// `/healthz`; `None` (with a message) when the open-file limit cannot be raised.
fn run(flood_sources: Vec<IpAddr>, sender: IpAddr, window: Duration) -> Option<Outcome> {
    // Per process: a flood worker's connections, or the server's caps.
    if let Err(why) = raise_open_files(TRICKLING.max(SILENT) as u64 + 4096) {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(dir.path(), "");
    let running = serve_binary(BIN, &config);
    let http: SocketAddr = running.http_addr.parse().expect("http addr");
    let ops: SocketAddr = running.ops_addr.parse().expect("ops addr");
    let window = sending_window(window);
    let idle_rss_mib = running.memory_kib("VmRSS") as f64 / 1024.0;
    let overflows_before = listen_overflows();

    // Each flood in a worker process of its own; the sender, the probe and the memory sampler
    // each on a thread of their own, so that nothing delays the measuring clients' scheduling.
    let ramp = Duration::from_secs(3);
    let job = |count, trickle| FloodJob {
        target: http,
        sources: flood_sources.clone(),
        count,
        trickle,
        rapid_reset: false,
        ramp_ms: ramp.as_millis() as u64,
        reconnect_ms: 1000,
    };
    let trickle = FloodProcess::start(&job(flood_size(TRICKLING), Some(endless_head(http))));
    let silent = FloodProcess::start(&job(flood_size(SILENT), None));
    // Fully under way before the measured window starts.
    std::thread::sleep(ramp + Duration::from_secs(2));

    let started = Instant::now();
    let sending = std::thread::spawn(move || send_webhooks(http, sender, window));
    let probing = std::thread::spawn(move || probe(ops, window));
    let pid = running.child.id();
    let sampling = std::thread::spawn(move || {
        let mut peak = 0u64;
        while started.elapsed() < window {
            if let Some(kib) = rss_kib(pid) {
                peak = peak.max(kib);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        peak
    });
    let sent = sending.join().expect("sender thread");
    let (probes, probe_failures) = probing.join().expect("probe thread");
    let peak_sampled = sampling.join().expect("sampler thread");
    let peak_kib = peak_sampled.max(running.memory_kib("VmHWM"));
    let (trickle, silent) = (trickle.finish(), silent.finish());
    let listen_overflows = overflows_before
        .zip(listen_overflows())
        .map(|(before, after)| after.saturating_sub(before));
    // For the failure messages: what the server warned about, besides the flood itself.
    let server_warnings: Vec<String> = running
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("\"WARN\"") || line.contains("\"ERROR\""))
        .filter(|line| !line.contains("closed connections early"))
        .take(10)
        .collect();
    let flood = FloodCounts {
        attempts: trickle.attempts + silent.attempts,
        refused: trickle.refused + silent.refused,
        closed: trickle.closed + silent.closed,
    };
    Some(Outcome {
        window,
        webhooks: sent.latencies,
        connects: sent.connects,
        failures: sent.failures,
        probes,
        probe_failures,
        idle_rss_mib,
        peak_rss_mib: peak_kib as f64 / 1024.0,
        flood,
        listen_overflows,
        server_warnings,
    })
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|value| value.trim().parse().ok())
}

fn report(what: &str, outcome: &Outcome) {
    let window = outcome.window;
    eprintln!(
        "{what}, {window:?}: {} webhooks answered 200, {} not; p50 {:?}, p99 {:?}, max {:?} \
         (connecting alone: p99 {:?}, max {:?}); {} probes, p50 {:?}, p99 {:?}, max {:?}; \
         server RSS idle {:.1} MiB, peak {:.1} MiB; the flood tried {} connections, {} refused \
         at once, {} closed later; full accept queues dropped {:?} handshakes",
        outcome.webhooks.len(),
        outcome.failures.len(),
        outcome.webhooks.percentile(50.0),
        outcome.webhooks.percentile(99.0),
        outcome.webhooks.max(),
        outcome.connects.percentile(99.0),
        outcome.connects.max(),
        outcome.probes.len(),
        outcome.probes.percentile(50.0),
        outcome.probes.percentile(99.0),
        outcome.probes.max(),
        outcome.idle_rss_mib,
        outcome.peak_rss_mib,
        outcome.flood.attempts,
        outcome.flood.refused,
        outcome.flood.closed,
        outcome.listen_overflows,
    );
}

/// What no amount of machine noise excuses: every one fails the test at once.
fn assert_properties(what: &str, outcome: &Outcome) {
    // The flood really was one: every connection tried, and pushed back by the server.
    let (flood, size) = (outcome.flood, flood_size(TRICKLING) + flood_size(SILENT));
    assert!(flood.attempts >= size as u64, "{what}: {flood:?}");
    assert!(
        flood.refused + flood.closed >= size as u64,
        "{what}: the flood was not pushed back: {flood:?}"
    );
    let first: Vec<_> = outcome.failures.iter().take(5).collect();
    assert!(
        outcome.failures.is_empty(),
        "{what}: {} webhooks not answered 200, e.g. {first:?}; the server warned {:#?}",
        outcome.failures.len(),
        outcome.server_warnings
    );
    assert_eq!(
        outcome.webhooks.len() as u64,
        WEBHOOKS_PER_SECOND * outcome.window.as_secs()
    );
    assert!(
        outcome.probe_failures.is_empty(),
        "{what}: probes failed: {:?}",
        outcome.probe_failures
    );
    assert!(
        outcome.peak_rss_mib <= outcome.idle_rss_mib + MEMORY_BOUND_MIB as f64,
        "{what}: server RSS peaked at {:.1} MiB, idle {:.1} MiB, bound +{MEMORY_BOUND_MIB} MiB",
        outcome.peak_rss_mib,
        outcome.idle_rss_mib
    );
}

/// The latency bars a run missed, if any. Every probe answers within 100 ms on a quiet machine
/// (the slowest is ~25 ms); the bar is the 99th percentile so that one burst cannot fail it,
/// and no probe may come near the kubelet's shortest timeout (1 s).
fn latency_misses(outcome: &Outcome) -> Vec<String> {
    let bars = [
        ("webhook p99", outcome.webhooks.percentile(99.0), 1000),
        ("probe p99", outcome.probes.percentile(99.0), 100),
        ("slowest probe", outcome.probes.max(), 1000),
    ];
    bars.into_iter()
        .filter(|(_, took, bar_ms)| *took > Duration::from_millis(*bar_ms))
        .map(|(what, took, bar_ms)| format!("{what} {took:?} (bar {bar_ms} ms)"))
        .collect()
}

/// Runs `measure` until one attempt meets every latency bar, asserting the other properties of
/// every attempt; fails with every attempt's misses.
fn check(what: &str, measure: impl Fn() -> Option<Outcome>) {
    within_attempts(what, |attempt| {
        let outcome = measure()?;
        let what = format!("{what} (attempt {attempt})");
        report(&what, &outcome);
        assert_properties(&what, &outcome);
        Some(latency_misses(&outcome))
    });
}

/// Not a test: the body of a flood worker process (see `common::flood`).
#[test]
#[ignore = "a flood worker process, started by the flood tests themselves"]
fn flood_worker() {
    worker_main();
}

fn one_address(window: Duration) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    check("one flooding address", || {
        run(vec![loopback(0, 2)], loopback(0, 3), window)
    });
}

fn hundred_addresses(window: Duration) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let sources: Vec<IpAddr> = (1..=100).map(|n| loopback(1, n)).collect();
    check("100 flooding addresses", || {
        run(sources.clone(), loopback(0, 3), window)
    });
}

#[test]
fn a_flood_from_one_address_starves_neither_webhooks_nor_probes() {
    one_address(IN_SUITE_WINDOW);
}

#[test]
fn a_flood_from_100_addresses_starves_neither_webhooks_nor_probes() {
    hundred_addresses(IN_SUITE_WINDOW);
}

/// The full 30 s: `cargo test --test http_flood -- --ignored full_window`.
#[test]
#[ignore = "30 s of sending each; the suite runs the same floods for 10 s"]
fn full_window_a_flood_from_one_address() {
    one_address(FULL_WINDOW);
}

/// The full 30 s: `cargo test --test http_flood -- --ignored full_window`.
#[test]
#[ignore = "30 s of sending each; the suite runs the same floods for 10 s"]
fn full_window_a_flood_from_100_addresses() {
    hundred_addresses(FULL_WINDOW);
}

/// Uploads trickled in at one byte a second, from 10 addresses: more of them than there are
/// processing slots (`http.max_concurrency`, 256).
const TRICKLED_BODIES: usize = 400;

#[test]
fn bodies_trickled_in_are_cut_off_at_the_deadline_and_starve_no_one() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    within_attempts("trickled bodies", |attempt| {
        Some(trickled_bodies_beside_webhooks(attempt))
    });
}

/// One run of [`TRICKLED_BODIES`] uploads beside a webhook sender, asserting what must always
/// hold; returns the timing bars it missed.
fn trickled_bodies_beside_webhooks(attempt: usize) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(dir.path(), "");
    let running = serve_binary(BIN, &config);
    let http: SocketAddr = running.http_addr.parse().expect("http addr");
    // The default `http.request_timeout_seconds`.
    let deadline = Duration::from_secs(4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let uploads: Vec<_> = runtime.block_on(async {
        (0..TRICKLED_BODIES)
            .map(|n| {
                let source = loopback(2, 1 + (n % 10) as u8);
                tokio::spawn(trickle_body(http, source))
            })
            .collect()
    });
    // Meanwhile, a sender's webhooks: every one answered, none shed for want of a slot.
    let Sent {
        latencies: webhooks,
        failures,
        ..
    } = send_webhooks(http, loopback(0, 3), Duration::from_secs(8));
    let held: Vec<(Duration, Option<u16>)> = runtime.block_on(async {
        let mut held = Vec::new();
        for upload in uploads {
            held.push(upload.await.expect("upload task"));
        }
        held
    });
    let longest = held.iter().map(|(took, _)| *took).max().unwrap_or_default();
    let answered_503 = held
        .iter()
        .filter(|(_, status)| *status == Some(503))
        .count();
    let p99 = webhooks.percentile(99.0);
    eprintln!(
        "attempt {attempt}: {TRICKLED_BODIES} bodies trickled in: the longest held its connection \
         {longest:?}, {answered_503} answered 503; beside them {} webhooks answered 200 (p99 \
         {p99:?}), {} not",
        webhooks.len(),
        failures.len()
    );
    assert_eq!(answered_503, TRICKLED_BODIES, "{held:?}");
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(5)]
    );
    let mut missed = Vec::new();
    if longest > deadline + Duration::from_secs(2) {
        missed.push(format!("an upload held its connection for {longest:?}"));
    }
    if p99 > Duration::from_secs(1) {
        missed.push(format!("webhook p99 {p99:?}"));
    }
    missed
}

/// Posts a valid Abowire head with a 1,000-byte body, then sends the body one byte a second;
/// returns how long the server kept the connection, and the status it answered, if any.
async fn trickle_body(http: SocketAddr, source: IpAddr) -> (Duration, Option<u16>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(stream) = connect_from(source, http).await else {
        return (Duration::ZERO, None);
    };
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {http}\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n\r\n",
        abowire_uri()
    );
    let started = Instant::now();
    if writer.write_all(head.as_bytes()).await.is_err() {
        return (started.elapsed(), None);
    }
    let trickle = async {
        loop {
            if writer.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let answer = async {
        let mut received = Vec::new();
        let mut chunk = [0u8; 1024];
        while let Ok(n @ 1..) = reader.read(&mut chunk).await {
            received.extend_from_slice(&chunk[..n]);
        }
        received
    };
    tokio::pin!(answer);
    let received = tokio::select! {
        received = &mut answer => received,
        // The server may close before the next byte is due: the answer is still to be read.
        () = trickle => tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .unwrap_or_default(),
    };
    let status = String::from_utf8_lossy(&received)
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok());
    (started.elapsed(), status)
}
