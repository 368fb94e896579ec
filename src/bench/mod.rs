//! `hooknorm bench`: a load generator for a real `hooknorm serve` child process. It sends
//! distinct, correctly signed webhooks of a chosen size at a chosen concurrency (closed loop) or
//! rate (open loop), and reports throughput, latency percentiles and the server's memory; a bare
//! tonic echo service, run the same way, gives the framework's own limit on the same machine so
//! the figures can be read as ratios. Scenarios: unary gRPC (durable and dry run), echo, the
//! HTTP ingress, latency at half the maximum rate, stream fan-out and catch-up, the cost of API
//! keys and TLS ([`auth`]) and of trace export and metrics ([`telemetry`]); with a NATS server,
//! the NATS backend beside raw JetStream publishes, three replicas and a fresh replica's
//! catch-up ([`nats`]), and the broker's own core pub/sub beside the fan-out ([`nats_fanout`]).
//! The long soak ([`soak`]) runs only when asked for by name. The command line is [`args`].

mod args;
mod auth;
pub mod callers;
pub mod child;
pub mod drive;
pub mod echo_server;
pub mod latency;
pub mod mix;
pub mod nats;
mod nats_fanout;
pub mod payload;
pub mod report;
pub mod soak;
pub mod streams;
pub mod telemetry;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use args::{BenchArgs, Scenario, parse_duration};
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
        let nats_given = self.args.nats_url.is_some() || self.args.nats_server.is_some();
        let wants_nats = |scenario| {
            self.args.scenario == scenario || (self.args.scenario == Scenario::All && nats_given)
        };
        if wants(Scenario::Fanout) {
            report.scenarios.push(streams::fanout(self).await?);
        }
        // Beside the fan-out, in the same run, whenever there is a NATS server to ask.
        if wants_nats(Scenario::NatsFanout)
            || (self.args.scenario == Scenario::Fanout && nats_given)
        {
            let (url, server) = (
                self.args.nats_url.as_deref(),
                self.args.nats_server.as_deref(),
            );
            let target = nats::NatsTarget::new(url, server)?;
            report
                .scenarios
                .push(nats_fanout::core_fanout(self, &target).await?);
        }
        if wants(Scenario::Catchup) {
            report.scenarios.push(streams::catchup(self).await?);
        }
        if wants(Scenario::Telemetry) {
            report.scenarios.extend(telemetry::off_and_on(self).await?);
        }
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
