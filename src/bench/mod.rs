//! `hooknorm bench`: a load generator for a real `hooknorm serve` child process. It sends
//! distinct, correctly signed webhooks of a chosen size at a chosen concurrency (closed loop) or
//! rate (open loop), and reports throughput, latency percentiles and the server's memory; a bare
//! tonic echo service, run the same way, gives the framework's own limit on the same machine so
//! the figures can be read as ratios. Scenarios: unary gRPC (durable and dry run), echo, the
//! HTTP ingress, latency at half the maximum rate, stream fan-out and catch-up, the cost of API
//! keys and TLS ([`auth`]) and of trace export and metrics ([`telemetry`]); with a NATS server,
//! the NATS backend beside raw JetStream publishes, three replicas and a fresh replica's
//! catch-up ([`nats`]). The long soak ([`soak`]) runs only when asked for by name.

mod auth;
pub mod callers;
pub mod child;
pub mod drive;
pub mod echo_server;
pub mod latency;
pub mod mix;
pub mod nats;
pub mod payload;
pub mod report;
pub mod soak;
pub mod streams;
pub mod telemetry;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use callers::{EchoCaller, HttpCaller, UnaryCaller};
use child::{ChildProcess, Security, memory_mib};
use drive::{Bound, RunResult};
use payload::Payloads;
use report::{Report, ScenarioReport};

/// The fixed-rate scenario's default rate: the figure, twice Convoy's default
/// per-instance ingest cap (1,000/s).
const FIXED_RATE: f64 = 2_000.0;

/// Why a bench run could not be carried out (failed requests are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Child(String),
    #[error("{0}")]
    Client(String),
    #[error("bench config: {0}")]
    Config(#[from] crate::config::ConfigError),
}

/// Which scenarios to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Every scenario below, in order.
    All,
    /// `VerifyAndNormalize`, durable then dry run.
    Unary,
    /// Durable `VerifyAndNormalize` without auth, with an API key, and with the key over TLS:
    /// three servers loaded in turns, so other load on the machine falls on all three alike.
    Auth,
    /// The bare tonic echo service.
    Echo,
    /// `POST /webhooks/{source}` over kept-alive HTTP/1.1.
    Http,
    /// Durable `VerifyAndNormalize` at a fixed rate (default: half the measured maximum).
    FixedRate,
    /// Stream subscribers while appending at a fixed rate.
    Fanout,
    /// One subscriber replaying a stored log from the earliest event.
    Catchup,
    /// Durable `VerifyAndNormalize` with spans exported (100%) and metrics on, beside both
    /// off, interleaved.
    Telemetry,
    /// The NATS backend through one replica, beside raw JetStream publishes (needs
    /// `--nats-url` or `--nats-server`; part of `all` only then).
    Nats,
    /// Three NATS replicas on one stream, the load spread over them.
    NatsReplicas,
    /// A fresh NATS replica catching up with `--catchup-events` stored events.
    NatsCatchup,
    /// Durable `VerifyAndNormalize` at a fixed rate for `--soak-duration` with retention on,
    /// sampling the server every `--sample-every` (not part of `all`).
    Soak,
}

/// The `bench` command line.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// Provider whose webhooks to send.
    #[arg(long, default_value = "gigs", value_parser = ["gigs"])]
    pub provider: String,
    /// Webhook body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Requests in flight (closed-loop scenarios).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Rate for fixed-rate, requests/s [default: 2000, twice Convoy's default per-instance cap;
    /// for the soak: half the durable maximum].
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long each load phase runs (`10s`, `500ms`, `2m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Requests per load phase instead of --duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Stream subscribers in the fan-out scenario.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Appends per second in the fan-out scenario.
    #[arg(long, default_value_t = 1000.0)]
    pub fanout_rate: f64,
    /// How long the fan-out scenario appends.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub fanout_duration: Duration,
    /// Events stored before the catch-up subscriber starts.
    #[arg(long, default_value_t = 200_000)]
    pub catchup_events: u64,
    /// Runs of the chosen scenarios; with more than one, each figure and each ratio is
    /// reported as the median over the runs (ratios are taken within each run first).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub runs: u32,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A NATS server (with JetStream) for the nats scenarios.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// A nats-server binary the bench starts for the nats scenarios (single node, temporary
    /// store), when no --nats-url is given.
    #[arg(long)]
    pub nats_server: Option<PathBuf>,
    /// How long the soak runs.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub soak_duration: Duration,
    /// How often the soak samples the server.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub sample_every: Duration,
    /// The soak server's `store.retention_max_age_seconds`.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub soak_retention: Duration,
    /// Where the soak writes its samples as CSV.
    #[arg(long)]
    pub soak_csv: Option<PathBuf>,
}

/// Parses `10s`, `1.5s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit `{unit}` (ms, s, m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|error| format!("`{text}`: {error}"))
}

/// Everything a scenario needs.
struct Bench {
    args: BenchArgs,
    exe: PathBuf,
    payloads: Arc<Payloads>,
}

/// Runs the chosen scenarios and returns the rendered report (a table, or JSON).
pub async fn run(args: BenchArgs) -> Result<String, BenchError> {
    let exe = std::env::current_exe().map_err(|source| BenchError::Io {
        what: "cannot find the hooknorm executable".into(),
        source,
    })?;
    let unused = Path::new("unused");
    let config = crate::config::Config::from_toml(&child::server_config_toml(
        unused,
        Security::Open,
        unused,
    ))?;
    let source = config
        .sources
        .first()
        .cloned()
        .ok_or_else(|| BenchError::Child("bench config has no source".into()))?;
    let bench = Bench {
        payloads: Arc::new(Payloads::new(source, args.size)),
        exe,
        args,
    };
    let mut runs = Vec::new();
    for run in 1..=bench.args.runs {
        if bench.args.runs > 1 {
            tracing::info!(run, of = bench.args.runs, "bench run");
        }
        runs.push(bench.run_once().await?);
    }
    let report = Report::median_of(runs);
    Ok(if bench.args.json {
        report.to_json()
    } else {
        report.to_table()
    })
}

/// The rows of the unary scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unary {
    /// Stored, answered with the whole event.
    Durable,
    /// Stored, answered without the payloads (`VERIFY_AND_NORMALIZE_VIEW_BASIC`).
    DurableBasicView,
    /// Verified and normalized, nothing stored.
    DryRun,
}

impl Unary {
    fn row(self) -> &'static str {
        match self {
            Unary::Durable => "unary durable",
            Unary::DurableBasicView => report::DURABLE_BASIC_VIEW,
            Unary::DryRun => "unary dry_run",
        }
    }
}

impl Bench {
    /// One pass over the chosen scenarios, with this run's figures set against the targets.
    async fn run_once(&self) -> Result<Report, BenchError> {
        let wants =
            |scenario| self.args.scenario == Scenario::All || self.args.scenario == scenario;
        let mut report = Report::default();
        if wants(Scenario::Unary) {
            report.scenarios.push(self.unary(Unary::Durable).await?);
            report
                .scenarios
                .push(self.unary(Unary::DurableBasicView).await?);
            report.scenarios.push(self.unary(Unary::DryRun).await?);
        }
        if wants(Scenario::Auth) {
            report.scenarios.extend(auth::interleaved(self).await?);
        }
        if wants(Scenario::Echo) {
            report.scenarios.push(self.echo().await?);
        }
        if wants(Scenario::Http) {
            report.scenarios.push(self.http().await?);
        }
        if wants(Scenario::FixedRate) {
            report.scenarios.push(self.fixed_rate().await?);
        }
        if wants(Scenario::Fanout) {
            report.scenarios.push(streams::fanout(self).await?);
        }
        if wants(Scenario::Catchup) {
            report.scenarios.push(streams::catchup(self).await?);
        }
        if wants(Scenario::Telemetry) {
            report.scenarios.extend(telemetry::off_and_on(self).await?);
        }
        let nats_given = self.args.nats_url.is_some() || self.args.nats_server.is_some();
        let wants_nats = |scenario| {
            self.args.scenario == scenario || (self.args.scenario == Scenario::All && nats_given)
        };
        if [
            Scenario::Nats,
            Scenario::NatsReplicas,
            Scenario::NatsCatchup,
        ]
        .into_iter()
        .any(wants_nats)
        {
            let target = nats::NatsTarget::new(
                self.args.nats_url.as_deref(),
                self.args.nats_server.as_deref(),
            )?;
            if wants_nats(Scenario::Nats) {
                report
                    .scenarios
                    .extend(nats::durable_and_raw(self, &target).await?);
            }
            if wants_nats(Scenario::NatsReplicas) {
                report
                    .scenarios
                    .push(nats::three_replicas(self, &target).await?);
            }
            if wants_nats(Scenario::NatsCatchup) {
                report.scenarios.push(nats::catchup(self, &target).await?);
            }
        }
        if self.args.scenario == Scenario::Soak {
            soak::soak(self, &mut report).await?;
        }
        report.check_targets();
        Ok(report)
    }

    fn bound(&self) -> Bound {
        match self.args.requests {
            Some(requests) => Bound::Requests(requests),
            None => Bound::Duration(self.args.duration),
        }
    }

    fn concurrency(&self) -> usize {
        self.args.concurrency.max(1)
    }

    async fn unary(&self, unary: Unary) -> Result<ScenarioReport, BenchError> {
        let name = unary.row();
        let server = Server::start(&self.exe, name).await?;
        let channel = callers::channel(&server.child.grpc_addr)
            .await
            .map_err(BenchError::Client)?;
        let dry_run = unary == Unary::DryRun;
        let callers = (0..self.concurrency())
            .map(|_| {
                let caller = UnaryCaller::new(channel.clone(), self.payloads.clone(), dry_run, 0);
                match unary {
                    Unary::DurableBasicView => caller.basic_view(),
                    Unary::Durable | Unary::DryRun => caller,
                }
            })
            .collect();
        let result = drive::closed_loop(callers, self.bound()).await;
        Ok(server.finish(name, result, self.load_note()).await)
    }

    async fn echo(&self) -> Result<ScenarioReport, BenchError> {
        let child = spawn(self.exe.clone(), |exe| ChildProcess::echo(&exe)).await?;
        let server = Server::measure(child).await;
        let channel = callers::channel(&server.child.grpc_addr)
            .await
            .map_err(BenchError::Client)?;
        let callers = (0..self.concurrency())
            .map(|_| EchoCaller::new(channel.clone(), self.payloads.clone()))
            .collect();
        let result = drive::closed_loop(callers, self.bound()).await;
        Ok(server.finish("echo", result, self.load_note()).await)
    }

    async fn http(&self) -> Result<ScenarioReport, BenchError> {
        let server = Server::start(&self.exe, "http").await?;
        let addr = server.child.http_addr.clone().unwrap_or_default();
        let callers = (0..self.concurrency())
            .map(|_| HttpCaller::new(&addr, self.payloads.clone()))
            .collect();
        let result = drive::closed_loop(callers, self.bound()).await;
        let note = format!("{}, one keep-alive connection per worker", self.load_note());
        Ok(server.finish("http ingress", result, note).await)
    }

    async fn fixed_rate(&self) -> Result<ScenarioReport, BenchError> {
        let server = Server::start(&self.exe, "fixed-rate").await?;
        let channel = callers::channel(&server.child.grpc_addr)
            .await
            .map_err(BenchError::Client)?;
        let (rate, how) = match self.args.rate {
            Some(rate) => (rate.max(1.0), "as asked"),
            None => (FIXED_RATE, "twice Convoy's default per-instance cap"),
        };
        let duration = match self.args.requests {
            Some(requests) => Duration::from_secs_f64(requests as f64 / rate),
            None => self.args.duration,
        };
        // Ids past any the calibration run used.
        let caller = UnaryCaller::new(channel, self.payloads.clone(), false, 1 << 40);
        let result = drive::open_loop(caller, rate, duration).await;
        let note = format!("open loop at {rate:.0}/s ({how}), durable");
        Ok(server.finish("fixed-rate", result, note).await)
    }

    /// The rate to load at, and how it was chosen: `--rate`, else half the maximum measured
    /// first on `channel`'s server (its ids below 2^40).
    async fn rate_or_half_max(&self, channel: &tonic::transport::Channel) -> (f64, String) {
        let (rate, how) = match self.args.rate {
            Some(rate) => (rate, "as asked".to_owned()),
            None => {
                let callers = (0..self.concurrency())
                    .map(|_| UnaryCaller::new(channel.clone(), self.payloads.clone(), false, 0))
                    .collect();
                let bound = match self.bound() {
                    Bound::Duration(duration) => {
                        Bound::Duration(duration.min(Duration::from_secs(5)))
                    }
                    requests => requests,
                };
                let max = drive::closed_loop(callers, bound).await.throughput();
                (max / 2.0, format!("50% of {max:.0}/s measured first"))
            }
        };
        (rate.max(1.0), how)
    }

    fn load_note(&self) -> String {
        format!(
            "{} in flight, {} B bodies",
            self.concurrency(),
            self.args.size
        )
    }
}

/// A scenario's server and what was measured before any load.
struct Server {
    child: ChildProcess,
    idle_rss_mib: Option<f64>,
}

impl Server {
    async fn start(exe: &Path, tag: &str) -> Result<Server, BenchError> {
        Self::start_secured(exe, tag, Security::Open).await
    }

    async fn start_secured(
        exe: &Path,
        tag: &str,
        security: Security,
    ) -> Result<Server, BenchError> {
        let tag = tag.replace(' ', "-");
        let child = spawn(exe.to_owned(), move |exe| {
            ChildProcess::serve(&exe, &tag, security)
        })
        .await?;
        Ok(Server::measure(child).await)
    }

    async fn measure(child: ChildProcess) -> Server {
        let idle_rss_mib = memory_mib(child.pid(), "VmRSS").await;
        Server {
            child,
            idle_rss_mib,
        }
    }

    /// The scenario's row: the run's figures and the server's start-up and memory; the server is
    /// stopped afterwards.
    async fn finish(self, name: &str, result: RunResult, note: String) -> ScenarioReport {
        let peak_rss_mib = memory_mib(self.child.pid(), "VmHWM").await;
        let row = ScenarioReport::new(name, result, note).with_server(
            self.child.startup,
            self.idle_rss_mib,
            peak_rss_mib,
        );
        let child = self.child;
        let _ = tokio::task::spawn_blocking(move || drop(child)).await;
        row
    }
}

/// Starts a child off the async workers (it blocks until the child reports its address).
async fn spawn(
    exe: PathBuf,
    start: impl FnOnce(PathBuf) -> Result<ChildProcess, BenchError> + Send + 'static,
) -> Result<ChildProcess, BenchError> {
    tokio::task::spawn_blocking(move || start(exe))
        .await
        .map_err(|error| BenchError::Child(format!("start task failed: {error}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
