//! The bench report: one row per scenario, the ratios between scenarios of the same run, and
//! each target met or missed; rendered as a table or as JSON.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use super::drive::RunResult;
use super::latency::LatencySummary;

/// The row of durable calls answered without payloads (`VERIFY_AND_NORMALIZE_VIEW_BASIC`).
pub const DURABLE_BASIC_VIEW: &str = "unary durable, basic view";

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
    /// The figure; over several runs, the median of the per-run figures.
    pub value: f64,
    /// Each run's figure, in run order (one entry for a single run).
    pub per_run: Vec<f64>,
    pub target: String,
    pub met: bool,
    #[serde(skip)]
    meets: fn(f64) -> bool,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// How many runs the figures summarize (medians when more than one).
    pub runs: usize,
    pub scenarios: Vec<ScenarioReport>,
    pub checks: Vec<Check>,
}

impl Default for Report {
    fn default() -> Report {
        Report {
            runs: 1,
            scenarios: Vec::new(),
            checks: Vec::new(),
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

impl ScenarioReport {
    /// Field-wise medians of the same scenario over several runs; errors are added up, so
    /// none is hidden by the median.
    fn median_of(rows: &[&ScenarioReport]) -> Option<ScenarioReport> {
        let first = rows.first()?;
        let pick = |field: fn(&ScenarioReport) -> Option<f64>| {
            median(rows.iter().filter_map(|r| field(r)))
        };
        let latency = |field: fn(&LatencySummary) -> f64| {
            median(rows.iter().filter_map(|r| r.latency.as_ref().map(field)))
        };
        let summary = match (
            latency(|l| l.p50_ms),
            latency(|l| l.p90_ms),
            latency(|l| l.p99_ms),
            latency(|l| l.max_ms),
        ) {
            (Some(p50_ms), Some(p90_ms), Some(p99_ms), Some(max_ms)) => Some(LatencySummary {
                p50_ms,
                p90_ms,
                p99_ms,
                max_ms,
            }),
            _ => None,
        };
        Some(ScenarioReport {
            scenario: first.scenario.clone(),
            ok: pick(|r| Some(r.ok as f64)).map_or(0, |v| v.round() as u64),
            errors: rows.iter().map(|r| r.errors).sum(),
            seconds: pick(|r| Some(r.seconds)).unwrap_or(0.0),
            per_second: pick(|r| Some(r.per_second)).unwrap_or(0.0),
            latency: summary,
            startup_ms: pick(|r| r.startup_ms),
            idle_rss_mib: pick(|r| r.idle_rss_mib),
            peak_rss_mib: pick(|r| r.peak_rss_mib),
            first_error: rows.iter().find_map(|r| r.first_error.clone()),
            note: first.note.clone(),
        })
    }
}

impl Report {
    fn row(&self, name: &str) -> Option<&ScenarioReport> {
        self.scenarios.iter().find(|row| row.scenario == name)
    }

    /// Sets `value` against a target (nothing where there is no figure).
    pub(super) fn check_value(
        &mut self,
        what: &str,
        value: Option<f64>,
        target: &str,
        meets: fn(f64) -> bool,
    ) {
        if let Some(value) = value.filter(|value| value.is_finite()) {
            self.checks.push(Check {
                what: what.to_owned(),
                value,
                per_run: vec![value],
                target: target.to_owned(),
                met: meets(value),
                meets,
            });
        }
    }

    /// One report for several runs of the same scenarios: each scenario's figures are the
    /// medians over the runs, and each target's figure is the median of the per-run figures
    /// (a ratio is taken within a run, then the median), met or missed on that median.
    pub fn median_of(mut runs: Vec<Report>) -> Report {
        if runs.len() <= 1 {
            return runs.pop().unwrap_or_default();
        }
        let Some(first) = runs.first() else {
            return Report::default();
        };
        let scenarios = first
            .scenarios
            .iter()
            .filter_map(|row| {
                let rows: Vec<&ScenarioReport> = runs
                    .iter()
                    .filter_map(|run| run.row(&row.scenario))
                    .collect();
                ScenarioReport::median_of(&rows)
            })
            .collect();
        let checks = first
            .checks
            .iter()
            .filter_map(|check| {
                let per_run: Vec<f64> = runs
                    .iter()
                    .filter_map(|run| run.checks.iter().find(|c| c.what == check.what))
                    .map(|c| c.value)
                    .collect();
                let value = median(per_run.iter().copied())?;
                Some(Check {
                    what: check.what.clone(),
                    value,
                    per_run,
                    target: check.target.clone(),
                    met: (check.meets)(value),
                    meets: check.meets,
                })
            })
            .collect();
        Report {
            runs: runs.len(),
            scenarios,
            checks,
        }
    }

    /// Sets the figures of this run against the targets (those whose scenarios ran).
    pub fn check_targets(&mut self) {
        let rate = |row: Option<&ScenarioReport>| row.map(|row| row.per_second);
        let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
        let echo = rate(self.row("echo"));
        let durable = rate(self.row("unary durable"));
        let durable_basic = rate(self.row(DURABLE_BASIC_VIEW));
        let dry_run = rate(self.row("unary dry_run"));
        let http = rate(self.row("http ingress"));
        let auth_off = rate(self.row("auth off"));
        let auth_key = rate(self.row("auth key"));
        let p99 = |row: Option<&ScenarioReport>| row.and_then(|row| row.latency).map(|l| l.p99_ms);
        let fixed_p99 = p99(self.row("fixed-rate"));
        let fanout_p99 = p99(self.row("fan-out"));
        let fanout_rss = self.row("fan-out").and_then(|row| row.peak_rss_mib);
        let catchup = rate(self.row("catch-up"));
        let traced = ratio(
            rate(self.row(super::telemetry::ON)),
            rate(self.row(super::telemetry::OFF)),
        );
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
        self.check_value("dry_run / echo", ratio(dry_run, echo), ">= 0.8", |v| {
            v >= 0.8
        });
        self.check_value("durable / echo", ratio(durable, echo), ">= 0.5", |v| {
            v >= 0.5
        });
        // The same target for callers that need no payloads back (AIP-157 view).
        self.check_value(
            "durable basic view / echo",
            ratio(durable_basic, echo),
            ">= 0.5",
            |v| v >= 0.5,
        );
        self.check_value("durable events/s", durable, ">= 15000", |v| v >= 15_000.0);
        // The API key check's cost (the TLS row is reported beside it, without a target).
        self.check_value(
            "auth key / auth off",
            ratio(auth_key, auth_off),
            ">= 0.95",
            |v| v >= 0.95,
        );
        self.check_value("http / durable grpc", ratio(http, durable), ">= 0.8", |v| {
            v >= 0.8
        });
        self.check_value("fixed-rate p99 ms", fixed_p99, "<= 5", |v| v <= 5.0);
        self.check_value("fan-out p99 ms", fanout_p99, "<= 50", |v| v <= 50.0);
        self.check_value("fan-out peak rss MiB", fanout_rss, "<= 256", |v| v <= 256.0);
        // The broker's own core pub/sub to as many connections, same machine, same rate.
        let nats_fanout_p99 = p99(self.row("nats core fan-out"));
        self.check_value(
            "fan-out p99 / nats core p99",
            ratio(fanout_p99, nats_fanout_p99),
            "<= 1",
            |v| v <= 1.0,
        );
        self.check_value("catch-up events/s", catchup, ">= 100000", |v| {
            v >= 100_000.0
        });
        self.check_value("traced+metrics / off", traced, ">= 0.9", |v| v >= 0.9);
        let nats = rate(self.row("nats durable (1 replica)"));
        let nats_raw = rate(self.row("nats raw publish"));
        self.check_value(
            "nats durable / raw publish",
            ratio(nats, nats_raw),
            ">= 0.5",
            |v| v >= 0.5,
        );
        self.check_value("idle rss MiB (worst)", idle, "<= 30", |v| v <= 30.0);
        self.check_value("start-up ms (worst)", startup, "<= 300", |v| v <= 300.0);
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        if self.runs > 1 {
            let _ = writeln!(
                out,
                "medians of {} runs (errors: the sum over the runs)\n",
                self.runs
            );
        }
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
                "\n{:<24} {:>12} {:>10}  met  per run",
                "target", "value", "wants"
            );
            for check in &self.checks {
                let per_run = check
                    .per_run
                    .iter()
                    .map(|value| format!("{value:.2}"))
                    .collect::<Vec<_>>()
                    .join(" / ");
                let _ = writeln!(
                    out,
                    "{:<24} {:>12.2} {:>10}  {:<4} {}",
                    check.what,
                    check.value,
                    check.target,
                    if check.met { "yes" } else { "NO" },
                    per_run
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, per_second: f64, p99_ms: f64, errors: u64) -> ScenarioReport {
        ScenarioReport {
            scenario: name.to_owned(),
            ok: per_second as u64,
            errors,
            seconds: 1.0,
            per_second,
            latency: Some(LatencySummary {
                p50_ms: p99_ms / 2.0,
                p90_ms: p99_ms / 1.5,
                p99_ms,
                max_ms: p99_ms * 2.0,
            }),
            startup_ms: Some(10.0),
            idle_rss_mib: Some(10.0),
            peak_rss_mib: Some(per_second / 100.0),
            first_error: None,
            note: String::new(),
        }
    }

    fn run(echo: f64, durable: f64, errors: u64) -> Report {
        let mut report = Report::default();
        report
            .scenarios
            .push(row("unary durable", durable, 4.0, errors));
        report.scenarios.push(row("echo", echo, 2.0, 0));
        report.check_targets();
        report
    }

    #[test]
    fn medians_take_the_middle() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median([]), None);
    }

    #[test]
    fn ratios_are_taken_within_a_run_then_the_median() {
        // Per-run durable/echo: 0.5, 0.25, 0.6; the ratio of the medians would be 0.5/1.0.
        let report = Report::median_of(vec![
            run(1000.0, 500.0, 0),
            run(4000.0, 1000.0, 2),
            run(1000.0, 600.0, 1),
        ]);
        assert_eq!(report.runs, 3);
        let ratio = report
            .checks
            .iter()
            .find(|check| check.what == "durable / echo")
            .expect("ratio check");
        assert_eq!(ratio.per_run, vec![0.5, 0.25, 0.6]);
        assert_eq!(ratio.value, 0.5);
        assert!(ratio.met);
        let durable = report.row("unary durable").expect("durable row");
        assert_eq!(durable.per_second, 600.0);
        assert_eq!(
            durable.errors, 3,
            "errors are summed, never hidden by a median"
        );
        assert!(report.to_table().contains("medians of 3 runs"));
    }

    #[test]
    fn one_run_is_reported_as_it_is() {
        let report = Report::median_of(vec![run(1000.0, 400.0, 0)]);
        assert_eq!(report.runs, 1);
        let ratio = report
            .checks
            .iter()
            .find(|check| check.what == "durable / echo")
            .expect("ratio check");
        assert_eq!(ratio.value, 0.4);
        assert!(!ratio.met);
        assert!(!report.to_table().contains("medians"));
    }
}
