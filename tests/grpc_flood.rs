//! The gRPC listener under floods, against the real binary with its default limits, over
//! loopback: a normal client calling `VerifyAndNormalize` (dry run) one call after another must
//! keep its p99 within twice its unloaded p99 while, beside it, (a) 10,000 connections from 100
//! addresses never finish the HTTP/2 preface (5,000 sending nothing, 5,000 trickling half of it
//! one byte a second; each reopened about a second after the server closes it), or (b) clients open
//! streams and reset them at once as fast as they can (HTTP/2 rapid reset, CVE-2023-44487),
//! reconnecting as soon as they are closed.
//!
//! The attacker shares this machine's two cores with the server and the client, which a real
//! attacker does not; so the floods run in worker processes at the idle CPU priority (see
//! `common::flood`), and the unloaded p99 is the largest of three: with no flood before, with
//! the same flood aimed at a closed port (the attacker's own work, the server untouched), and
//! with no flood after. A burst from another job, or the attacker's own load, then counts
//! against the reference as well as against the flood, and a flood is measured up to three times
//! before it counts as slowing the client. The tests run one at a time.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::flood::*;
use common::*;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

/// One at a time: they measure latency.
static SERIAL: Mutex<()> = Mutex::new(());

/// Calls per measured phase.
const CALLS: usize = 2000;

/// Not a test: the body of a flood worker process (see `common::flood`).
#[test]
#[ignore = "a flood worker process, started by the flood tests themselves"]
fn flood_worker() {
    worker_main();
}

/// The normal client's latencies around a flood.
struct Phases {
    /// No flood.
    before: Latencies,
    /// The same flood aimed at a closed port of this machine: what the attacker's own work
    /// costs the client here, with the server untouched (a real attacker's is elsewhere).
    decoy: Latencies,
    /// The flood aimed at the server.
    loaded: Latencies,
    /// No flood again.
    after: Latencies,
    counts: FloodCounts,
}

impl Phases {
    /// The client's unloaded p99: the largest of the phases without the flood on the server,
    /// so that neither a burst from another job nor the attacker's own work on this machine
    /// counts against the server.
    fn unloaded_p99(&self) -> Duration {
        [&self.before, &self.decoy, &self.after]
            .iter()
            .map(|phase| phase.percentile(99.0))
            .max()
            .unwrap_or_default()
    }
}

/// Serves the binary and measures a normal client: without a flood, beside `jobs` aimed at a
/// closed port, beside them aimed at the gRPC listener (each job's target is set), and without
/// again. `None` where the open-file limit cannot be raised.
fn measure(jobs: &[FloodJob]) -> Option<Phases> {
    if let Err(why) = raise_open_files(10_000 + 4096) {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(dir.path(), "");
    let running = serve_binary(BIN, &config);
    let grpc: SocketAddr = running.addr.parse().expect("grpc addr");
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        listener.local_addr().expect("local addr")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut client = runtime.block_on(async {
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .expect("uri")
            .connect()
            .await
            .expect("client connects");
        common::stream::authenticated(channel)
    });
    runtime.block_on(calls(&mut client, CALLS / 4)); // warm-up
    let before = runtime.block_on(calls(&mut client, CALLS));
    let mut flooded = |target: SocketAddr| {
        let floods: Vec<_> = jobs
            .iter()
            .map(|job| {
                FloodProcess::start(&FloodJob {
                    target,
                    ..job.clone()
                })
            })
            .collect();
        let ramp = jobs.iter().map(|job| job.ramp_ms).max().unwrap_or(0);
        std::thread::sleep(Duration::from_millis(ramp) + Duration::from_secs(2));
        let latencies = runtime.block_on(calls(&mut client, CALLS));
        let counts = floods.into_iter().map(FloodProcess::finish).fold(
            FloodCounts::default(),
            |sum, counts| FloodCounts {
                attempts: sum.attempts + counts.attempts,
                refused: sum.refused + counts.refused,
                closed: sum.closed + counts.closed,
            },
        );
        std::thread::sleep(Duration::from_secs(1));
        (latencies, counts)
    };
    let (decoy, _) = flooded(SocketAddr::new(grpc.ip(), closed_port.port()));
    let (loaded, counts) = flooded(grpc);
    let after = runtime.block_on(calls(&mut client, CALLS));
    drop(running);
    Some(Phases {
        before,
        decoy,
        loaded,
        after,
        counts,
    })
}

/// `count` dry-run calls one after another; every one must succeed.
async fn calls(client: &mut common::stream::Client, count: usize) -> Latencies {
    let mut latencies = Latencies::default();
    for n in 0..count {
        let mut request = gigs_event_request(n as u64, "subscription.renewed");
        request.dry_run = true;
        let began = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            client.verify_and_normalize(request),
        )
        .await
        .expect("answered within 10 s");
        answer.expect("the call succeeds");
        latencies.record(began.elapsed());
    }
    latencies
}

/// Measures `jobs` beside a normal client until one attempt keeps the client's p99 within twice
/// its unloaded p99, or fails with every attempt's figures.
fn check(what: &str, jobs: &[FloodJob]) {
    within_attempts(what, |attempt| {
        let phases = measure(jobs)?;
        let unloaded = phases.unloaded_p99();
        let loaded = phases.loaded.percentile(99.0);
        eprintln!(
            "{what}, attempt {attempt}: normal client p99 {:?} with no flood, {:?} beside it aimed \
             elsewhere, {loaded:?} beside it aimed at the server (p50 {:?}, max {:?}), {:?} with \
             no flood again; the flood: {:?}",
            phases.before.percentile(99.0),
            phases.decoy.percentile(99.0),
            phases.loaded.percentile(50.0),
            phases.loaded.max(),
            phases.after.percentile(99.0),
            phases.counts,
        );
        let missed = (loaded > unloaded * 2)
            .then(|| format!("p99 {loaded:?} beside the flood, {unloaded:?} without"));
        Some(missed.into_iter().collect())
    });
}

#[test]
fn connections_that_never_finish_the_preface_do_not_slow_other_clients() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let sources: Vec<IpAddr> = (1..=100).map(|n| loopback(3, n)).collect();
    let flood = |trickle: Option<&str>| FloodJob {
        target: SocketAddr::from(([127, 0, 0, 1], 0)),
        sources: sources.clone(),
        count: 5_000,
        trickle: trickle.map(str::to_owned),
        rapid_reset: false,
        ramp_ms: 3000,
        reconnect_ms: 1000,
    };
    let jobs = [flood(None), flood(Some("PRI * HTTP/2.0\r\n"))];
    check("10,000 connections without the preface", &jobs);
}

#[test]
fn a_rapid_reset_flood_does_not_slow_other_clients() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // 16 attacking connections at once from 16 addresses, each reconnecting as soon as it is
    // closed: the per-connection budget and the per-address penalty both have work to do.
    let job = FloodJob {
        target: SocketAddr::from(([127, 0, 0, 1], 0)),
        sources: (1..=16).map(|n| loopback(4, n)).collect(),
        count: 16,
        trickle: None,
        rapid_reset: true,
        ramp_ms: 100,
        reconnect_ms: 0,
    };
    check("rapid reset from 16 addresses", &[job]);
}
