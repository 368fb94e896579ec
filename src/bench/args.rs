//! The `bench` command line: which scenarios to run, and their settings.

use std::path::PathBuf;
use std::time::Duration;

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
    /// nats-server core pub/sub to `--subscribers` connections at `--fanout-rate`: the fan-out's
    /// yardstick (also run after `fanout` when a NATS server is given).
    NatsFanout,
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
    /// Subscribers sharing one HTTP/2 connection in the fan-out scenario (1: a connection each,
    /// as subscribers on other machines would have).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=200))]
    pub streams_per_connection: u64,
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
