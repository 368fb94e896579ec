//! Connection floods for the flood tests, over loopback: many client addresses (all of
//! 127.0.0.0/8 is this machine), connections that trickle a request head or say nothing, and
//! reconnect whenever the server closes them, as a persistent attacker would; plus the open-file
//! limit they need and latency percentiles.
//!
//! A flood of 10,000 connections needs as many descriptors, and a container may cap a process
//! at fewer than two floods need even for root (no CAP_SYS_RESOURCE), so each flood runs in a
//! worker process of its own ([`FloodProcess`]): the test binary again, running only its
//! `flood_worker` test, which does nothing unless given a job. Workers run at the idle CPU
//! priority, standing in for attackers on other machines.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// Raises this process's open-file limit to `wanted` (hard limit included, which needs root or
/// CAP_SYS_RESOURCE); children (a served binary) inherit it. Returns why not, if it cannot.
pub fn raise_open_files(wanted: u64) -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|current| current >= wanted) {
        return Ok(());
    }
    let maximum = limit.maximum.map(|hard| hard.max(wanted));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(wanted),
            maximum,
        },
    )
    .map_err(|error| {
        format!(
            "cannot raise the open-file limit from {:?}/{:?} to {wanted}: {error} (run as root)",
            limit.current, limit.maximum
        )
    })
}

/// A connection to `addr` from `source`.
pub async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// `127.0.<third>.<fourth>`.
pub fn loopback(third: u8, fourth: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, third, fourth))
}

/// What a flooding connection does once connected.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Sends `head` one byte per second and never finishes it.
    Trickle(Arc<[u8]>),
    /// Sends nothing.
    Silent,
    /// Speaks HTTP/2 and opens gRPC streams only to reset them at once, as fast as it can (the
    /// HTTP/2 rapid-reset attack, CVE-2023-44487); `closed` then counts the streams.
    RapidReset,
}

/// A running flood; stops (and closes its connections) when dropped.
pub struct Flood {
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
    /// Connections tried, including reconnections.
    pub attempts: Arc<AtomicU64>,
    /// Connections the server refused: reset before `connect` returned.
    pub refused: Arc<AtomicU64>,
    /// Connections the server closed after `connect` returned.
    pub closed: Arc<AtomicU64>,
}

impl Flood {
    /// `count` connections from `sources` (round robin) to `addr`, each behaving as told, started
    /// over `ramp`; a connection the server closes is reopened `reconnect_after` later (give or
    /// take half of it, at random).
    pub fn start(
        addr: SocketAddr,
        sources: &[IpAddr],
        count: usize,
        behaviour: Behaviour,
        ramp: Duration,
        reconnect_after: Duration,
    ) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for index in 0..count {
            let source = sources[index % sources.len()];
            let delay = ramp.mul_f64(index as f64 / count as f64);
            let stop = stop.clone();
            let counters = (attempts.clone(), refused.clone(), closed.clone());
            let behaviour = behaviour.clone();
            tasks.spawn(async move {
                let (attempts, refused, closed) = counters;
                tokio::time::sleep(delay).await;
                while !stop.load(Ordering::Relaxed) {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    match connect_from(source, addr).await {
                        Ok(stream) if matches!(behaviour, Behaviour::RapidReset) => {
                            let streams = rapid_reset(stream, addr, &stop).await;
                            closed.fetch_add(streams, Ordering::Relaxed);
                        }
                        Ok(stream) => {
                            hold(stream, &behaviour, &stop).await;
                            closed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // Independent attackers: each waits its own while, so that the server's
                    // batches of closes do not line the whole flood up into bursts.
                    let jitter = 0.5 + rand::random::<f64>();
                    tokio::time::sleep(reconnect_after.mul_f64(jitter)).await;
                }
            });
        }
        Flood {
            stop,
            tasks,
            attempts,
            refused,
            closed,
        }
    }

    /// Stops every connection and waits for them to close.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Opens `VerifyAndNormalize` streams and resets each at once, until the server closes the
/// connection (or the flood stops); returns how many it reset.
async fn rapid_reset(stream: TcpStream, addr: SocketAddr, stop: &AtomicBool) -> u64 {
    let Ok((mut client, connection)) = h2::client::handshake(stream).await else {
        return 0;
    };
    let driving = tokio::spawn(connection);
    let uri = format!("http://{addr}/hooknorm.v1.NormalizerService/VerifyAndNormalize");
    let mut reset = 0;
    while !stop.load(Ordering::Relaxed) {
        client = match client.ready().await {
            Ok(client) => client,
            Err(_) => break, // GOAWAY, or closed
        };
        let request = ::http::Request::post(uri.as_str())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request builds");
        match client.send_request(request, false) {
            Ok((_response, mut stream)) => {
                stream.send_reset(h2::Reason::CANCEL);
                reset += 1;
            }
            Err(_) => break,
        }
        // Yield now and then, or this connection's own driver would never run.
        if reset % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
    driving.abort();
    reset
}

/// Behaves until the server closes the connection (or the flood stops).
async fn hold(stream: TcpStream, behaviour: &Behaviour, stop: &AtomicBool) {
    let (mut reader, mut writer) = stream.into_split();
    let mut sink = [0u8; 64];
    let closed = async {
        // Whatever the server sends before closing, the flood ignores.
        while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let behave = async {
        match behaviour {
            Behaviour::Silent | Behaviour::RapidReset => std::future::pending::<()>().await,
            Behaviour::Trickle(head) => {
                for byte in head.iter().cycle() {
                    if stop.load(Ordering::Relaxed) || writer.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    };
    tokio::select! {
        () = closed => {}
        () = behave => {}
    }
}

/// A request head that never ends: a request line, then a header line, one byte a second.
pub fn endless_head(addr: SocketAddr) -> String {
    format!(
        "POST /webhooks/gigs HTTP/1.1\r\nhost: {addr}\r\nx-padding: {}",
        "a".repeat(4096)
    )
}

/// The environment variable that carries a worker's job.
const JOB_VAR: &str = "HOOKNORM_FLOOD_JOB";

/// One flood, as a worker process runs it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FloodJob {
    pub target: SocketAddr,
    pub sources: Vec<IpAddr>,
    /// Connections (for a rapid reset, attacking connections at once).
    pub count: usize,
    /// `None`: silent connections; else the head to trickle.
    pub trickle: Option<String>,
    /// HTTP/2 rapid reset (gRPC streams opened and reset as fast as can be) instead.
    #[serde(default)]
    pub rapid_reset: bool,
    pub ramp_ms: u64,
    pub reconnect_ms: u64,
}

/// `chrt`, if it is here and may set the idle policy.
fn idle_scheduler() -> Option<&'static str> {
    static CHRT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let works = *CHRT.get_or_init(|| {
        Command::new("chrt")
            .args(["--idle", "0", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    works.then_some("chrt")
}

/// A flood running in a worker process; stopped (and its connections closed) by
/// [`FloodProcess::finish`] or when dropped.
pub struct FloodProcess {
    child: Child,
}

/// What a worker reports when stopped (see [`Flood`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct FloodCounts {
    pub attempts: u64,
    pub refused: u64,
    pub closed: u64,
}

impl FloodProcess {
    /// Starts `job` in a worker: this test binary, running only its `flood_worker` test.
    pub fn start(job: &FloodJob) -> FloodProcess {
        let exe = std::env::current_exe().expect("test binary path");
        // SCHED_IDLE (see `worker_main`): `chrt` is util-linux, on any Linux with a shell; an
        // unprivileged process may lower its own policy. Without it, the worker only renices.
        let mut command = match idle_scheduler() {
            Some(chrt) => {
                let mut command = Command::new(chrt);
                command.args(["--idle", "0"]).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let child = command
            .args([
                "flood_worker",
                "--exact",
                "--ignored",
                "--nocapture",
                "--quiet",
            ])
            .env(JOB_VAR, serde_json::to_string(job).expect("job serializes"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("flood worker starts");
        FloodProcess { child }
    }

    /// Stops the flood and returns its counts.
    pub fn finish(mut self) -> FloodCounts {
        drop(self.child.stdin.take());
        let mut output = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut output);
        }
        let _ = self.child.wait();
        let mut counts = FloodCounts::default();
        for line in output.lines() {
            if let Some(rest) = line.strip_prefix("flood-worker: ") {
                for pair in rest.split_whitespace() {
                    let (name, value) = pair.split_once('=').unwrap_or_default();
                    let value = value.parse().unwrap_or(0);
                    match name {
                        "attempts" => counts.attempts = value,
                        "refused" => counts.refused = value,
                        "closed" => counts.closed = value,
                        _ => {}
                    }
                }
            }
        }
        counts
    }
}

impl Drop for FloodProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of a test binary's `flood_worker` test: runs the job from the environment, if any,
/// until its stdin closes, then prints its counts.
pub fn worker_main() {
    let Ok(job) = std::env::var(JOB_VAR) else {
        return; // run by hand or by `--ignored`: nothing to do
    };
    let job: FloodJob = serde_json::from_str(&job).expect("job parses");
    raise_open_files(job.count as u64 + 512).expect("open-file limit for the flood");
    // A real attacker is on other machines: its CPU is not the server's. Here it shares the
    // server's cores, so it runs only when they would otherwise idle (SCHED_IDLE, set by
    // `chrt` at spawn, else the lowest priority): the server still pays its own share of the
    // work for every connection (accepting it, closing it), and a measuring client is never
    // kept waiting behind the attacker's own time slices. Under SCHED_IDLE the nice value is
    // ignored, so lowering it too costs nothing.
    if let Err(error) = rustix::process::setpriority_process(None, 19) {
        eprintln!("flood worker: cannot lower its priority: {error}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let flood = runtime.block_on(async {
        let behaviour = match &job.trickle {
            _ if job.rapid_reset => Behaviour::RapidReset,
            Some(head) => Behaviour::Trickle(head.as_bytes().into()),
            None => Behaviour::Silent,
        };
        Flood::start(
            job.target,
            &job.sources,
            job.count,
            behaviour,
            Duration::from_millis(job.ramp_ms),
            Duration::from_millis(job.reconnect_ms),
        )
    });
    // Until the parent closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    let [attempts, refused, closed] =
        [&flood.attempts, &flood.refused, &flood.closed].map(|n| n.load(Ordering::Relaxed));
    runtime.block_on(flood.stop());
    println!("flood-worker: attempts={attempts} refused={refused} closed={closed}");
}

/// How many times a flood is measured before its latencies count as too slow: the machine is
/// shared, so one burst from another job can land in one measured window alone; a server that
/// the flood really slows fails every attempt.
pub const ATTEMPTS: usize = 3;

/// Runs `attempt` (numbered from 1) until one misses no timing bar, at most [`ATTEMPTS`] times,
/// and fails with every attempt's misses; an attempt that returns `None` could not measure (and
/// said why), which ends the test.
pub fn within_attempts(what: &str, mut attempt: impl FnMut(usize) -> Option<Vec<String>>) {
    let mut misses = Vec::new();
    for n in 1..=ATTEMPTS {
        let Some(missed) = attempt(n) else {
            return;
        };
        if missed.is_empty() {
            return;
        }
        misses.push(format!("attempt {n}: {}", missed.join(", ")));
    }
    panic!("{what}: too slow in every attempt: {}", misses.join("; "));
}

/// Connections the kernel dropped because a listener's accept queue was full, machine-wide
/// (`TcpExt: ListenOverflows`); a dropped handshake costs its client a 1 s retransmit.
pub fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, value)| value.parse().ok())
}

/// Latencies, for percentiles.
#[derive(Debug, Default, Clone)]
pub struct Latencies(pub Vec<Duration>);

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        self.0.push(latency);
    }

    /// The nearest-rank percentile `p` (0-100).
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn max(&self) -> Duration {
        self.0.iter().max().copied().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}
