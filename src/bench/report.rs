//! The bench report: one row per scenario, the ratios between scenarios of the same run, and
//! each target met or missed; rendered as a table or as JSON.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use super::drive::RunResult;
use super::latency::LatencySummary;

/// One scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    /// Successful requests (events delivered, for stream scenarios).
    pub ok: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Successful requests (or deliveries) per second.
    pub per_second: f64,
    pub latency: Option<LatencySummary>,
    /// Spawn to `grpc listening`.
    pub startup_ms: Option<f64>,
    /// Server RSS after start-up, before load.
    pub idle_rss_mib: Option<f64>,
    /// Server peak RSS (`VmHWM`) at the end of the scenario.
    pub peak_rss_mib: Option<f64>,
    pub first_error: Option<String>,
    pub note: String,
}

impl ScenarioReport {
    pub fn new(name: &str, result: RunResult, note: String) -> ScenarioReport {
        ScenarioReport {
            scenario: name.to_owned(),
            ok: result.ok,
            errors: result.errors,
            seconds: result.elapsed.as_secs_f64(),
            per_second: result.throughput(),
            first_error: result.first_error.clone(),
            latency: result.latencies.summary(),
            startup_ms: None,
            idle_rss_mib: None,
            peak_rss_mib: None,
            note,
        }
    }

    pub fn with_server(mut self, startup: Duration, idle: Option<f64>, peak: Option<f64>) -> Self {
        self.startup_ms = Some(startup.as_secs_f64() * 1000.0);
        self.idle_rss_mib = idle;
        self.peak_rss_mib = peak;
        self
    }
}

/// A figure set against its target.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub value: f64,
    pub target: String,
    pub met: bool,
}

/// The whole run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub scenarios: Vec<ScenarioReport>,
    pub checks: Vec<Check>,
}

impl Report {
    fn row(&self, name: &str) -> Option<&ScenarioReport> {
        self.scenarios.iter().find(|row| row.scenario == name)
    }

    fn check(&mut self, what: &str, value: Option<f64>, target: &str, met: impl Fn(f64) -> bool) {
        if let Some(value) = value.filter(|value| value.is_finite()) {
            self.checks.push(Check {
                what: what.to_owned(),
                value,
                target: target.to_owned(),
                met: met(value),
            });
        }
    }

    /// Sets the figures of this run against the targets (those whose scenarios ran).
    pub fn check_targets(&mut self) {
        let rate = |row: Option<&ScenarioReport>| row.map(|row| row.per_second);
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
        let echo = rate(self.row("echo"));
        let durable = rate(self.row("unary durable"));
        let dry_run = rate(self.row("unary dry_run"));
        let http = rate(self.row("http ingress"));
        let p99 = |row: Option<&ScenarioReport>| row.and_then(|row| row.latency).map(|l| l.p99_ms);
        let fixed_p99 = p99(self.row("fixed-rate"));
        let fanout_p99 = p99(self.row("fan-out"));
        let fanout_rss = self.row("fan-out").and_then(|row| row.peak_rss_mib);
        let catchup = rate(self.row("catch-up"));
        let idle = self
            .scenarios
            .iter()
            .filter(|row| row.scenario != "echo")
            .filter_map(|row| row.idle_rss_mib)
            .reduce(f64::max);
        let startup = self
            .scenarios
            .iter()
            .filter(|row| row.scenario != "echo")
            .filter_map(|row| row.startup_ms)
            .reduce(f64::max);
        self.check("dry_run / echo", ratio(dry_run, echo), ">= 0.8", |v| {
            v >= 0.8
        });
        self.check("durable / echo", ratio(durable, echo), ">= 0.5", |v| {
            v >= 0.5
        });
        self.check("durable events/s", durable, ">= 15000", |v| v >= 15_000.0);
        self.check("http / durable grpc", ratio(http, durable), ">= 0.8", |v| {
            v >= 0.8
        });
        self.check("fixed-rate p99 ms", fixed_p99, "<= 5", |v| v <= 5.0);
        self.check("fan-out p99 ms", fanout_p99, "<= 50", |v| v <= 50.0);
        self.check("fan-out peak rss MiB", fanout_rss, "<= 256", |v| v <= 256.0);
        self.check("catch-up events/s", catchup, ">= 100000", |v| {
            v >= 100_000.0
        });
        self.check("idle rss MiB (worst)", idle, "<= 30", |v| v <= 30.0);
        self.check("start-up ms (worst)", startup, "<= 300", |v| v <= 300.0);
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let opt = |value: Option<f64>, digits: usize| {
            value.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
        };
        let _ = writeln!(
            out,
            "{:<14} {:>9} {:>6} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  note",
            "scenario",
            "ok",
            "errors",
            "per s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "start ms",
            "idle MiB",
            "peak MiB"
        );
        for row in &self.scenarios {
            let latency = |pick: fn(&LatencySummary) -> f64| opt(row.latency.as_ref().map(pick), 2);
            let _ = writeln!(
                out,
                "{:<14} {:>9} {:>6} {:>10.0} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  {}",
                row.scenario,
                row.ok,
                row.errors,
                row.per_second,
                latency(|l| l.p50_ms),
                latency(|l| l.p90_ms),
                latency(|l| l.p99_ms),
                latency(|l| l.max_ms),
                opt(row.startup_ms, 0),
                opt(row.idle_rss_mib, 1),
                opt(row.peak_rss_mib, 1),
                row.note
            );
            if let Some(error) = &row.first_error {
                let _ = writeln!(out, "{:<14} first error: {error}", "");
            }
        }
        if !self.checks.is_empty() {
            let _ = writeln!(
                out,
                "\n{:<24} {:>12} {:>10}  met",
                "target", "value", "wants"
            );
            for check in &self.checks {
                let _ = writeln!(
                    out,
                    "{:<24} {:>12.2} {:>10}  {}",
                    check.what,
                    check.value,
                    check.target,
                    if check.met { "yes" } else { "NO" }
                );
            }
        }
        out
    }
}
