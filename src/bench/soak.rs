//! The soak: durable `VerifyAndNormalize` at a fixed rate (default half the measured maximum)
//! for a long time against one server with retention on, sampling the server every
//! `--sample-every`: its RSS, open file descriptors and store size on disk, and the window's
//! latency. After a warm-up (the retention window plus two retention passes, by when retention
//! deletes as much as arrives) each series is fitted with a straight line; a leak or a store that outgrows
//! its retention shows as a rise over the run. The samples go to a CSV (`--soak-csv`) that
//! `scripts/plot-soak` draws.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::callers::{self, UnaryCaller};
use super::child::{ChildProcess, Security, memory_mib, sqlite_store};
use super::drive::{self, RunResult};
use super::report::Report;
use super::{Bench, BenchError, Server, spawn};

/// The soak's row in the report.
pub const ROW: &str = "soak";

/// The most a series may rise over the run after warm-up, as a share of its mean there.
const MAX_RISE: f64 = 0.10;

/// Latency is noisier than memory on a shared machine: the most its p99 may rise.
const MAX_P99_RISE: f64 = 0.50;

/// One sample: the window of load that ended at `at_s`, and the server right after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the load began.
    pub at_s: f64,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rss_mib: f64,
    pub open_fds: f64,
    pub disk_mib: f64,
    /// The server's CPU time (user + system) per 1,000 answered webhooks in the window: rises
    /// if the server itself does more per webhook as the run goes on.
    pub cpu_ms_per_k: f64,
    /// The machine's IO pressure (`/proc/pressure/io`, share of the last 10 s in which some
    /// task waited on IO), to tell other work's fsyncs from the server's own slowing down.
    pub io_pressure_pct: f64,
}

/// A series the soak watches: its name, how it is read from a sample, and its limit.
struct Series {
    name: &'static str,
    read: fn(&Sample) -> f64,
    limit: &'static str,
    meets: fn(f64) -> bool,
}

const SERIES: [Series; 4] = [
    Series {
        name: "rss",
        read: |s| s.rss_mib,
        limit: "<= 10%",
        meets: |percent| percent <= MAX_RISE * 100.0,
    },
    Series {
        name: "fds",
        read: |s| s.open_fds,
        limit: "<= 10%",
        meets: |percent| percent <= MAX_RISE * 100.0,
    },
    Series {
        name: "disk",
        read: |s| s.disk_mib,
        limit: "<= 10%",
        meets: |percent| percent <= MAX_RISE * 100.0,
    },
    Series {
        name: "p99",
        read: |s| s.p99_ms,
        limit: "<= 50%",
        meets: |percent| percent <= MAX_P99_RISE * 100.0,
    },
];

/// A series' straight-line fit after warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    pub mean: f64,
    /// The fitted line's change from the first sample after warm-up to the last.
    pub rise: f64,
}

impl Trend {
    /// Least squares over `(x, y)` points; `None` with fewer than two distinct `x`.
    pub fn fit(points: &[(f64, f64)]) -> Option<Trend> {
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        if sxx.is_nan() || sxx <= 0.0 {
            return None;
        }
        let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean)).sum();
        let (first, last) = (points.first()?.0, points.last()?.0);
        Some(Trend {
            mean,
            rise: sxy / sxx * (last - first),
        })
    }

    /// The rise as a share of the mean (0 for a series that stays at zero).
    pub fn relative_rise(&self) -> f64 {
        if self.mean.abs() > f64::EPSILON {
            self.rise / self.mean
        } else {
            0.0
        }
    }
}

/// Each watched series' name and trend over the samples taken at or after `warm_up_s`.
pub fn trends(samples: &[Sample], warm_up_s: f64) -> Vec<(&'static str, Option<Trend>)> {
    let settled: Vec<&Sample> = samples.iter().filter(|s| s.at_s >= warm_up_s).collect();
    SERIES
        .iter()
        .map(|series| {
            let points: Vec<(f64, f64)> =
                settled.iter().map(|s| (s.at_s, (series.read)(s))).collect();
            (series.name, Trend::fit(&points))
        })
        .collect()
}

/// The samples as CSV, one row each.
pub fn to_csv(samples: &[Sample]) -> String {
    let mut out = String::from(
        "seconds,ok,errors,p50_ms,p99_ms,rss_mib,open_fds,disk_mib,cpu_ms_per_k,io_pressure_pct\n",
    );
    for s in samples {
        let _ = writeln!(
            out,
            "{:.1},{},{},{:.3},{:.3},{:.2},{},{:.2},{:.1},{:.2}",
            s.at_s,
            s.ok,
            s.errors,
            s.p50_ms,
            s.p99_ms,
            s.rss_mib,
            s.open_fds,
            s.disk_mib,
            s.cpu_ms_per_k,
            s.io_pressure_pct
        );
    }
    out
}

/// Runs the soak and adds its row, and one target per watched series, to `report`.
pub(super) async fn soak(bench: &Bench, report: &mut Report) -> Result<(), BenchError> {
    let retention = bench.args.soak_retention.as_secs().max(1);
    let child = spawn(bench.exe.clone(), move |exe| {
        // Dedup keys are kept as long as events here: with the default window (7 days) they
        // would grow for a week, beyond any soak's reach.
        ChildProcess::serve_with(&exe, ROW, Security::Open, &|store: &Path| {
            format!(
                "{}retention_max_age_seconds = {retention}\ndedup_window_seconds = {retention}\n",
                sqlite_store(store)
            )
        })
    })
    .await?;
    let server = Server::measure(child).await;
    let channel = callers::channel(&server.child.grpc_addr)
        .await
        .map_err(BenchError::Client)?;
    let (rate, how) = bench.rate_or_half_max(&channel).await;
    let store = server.child.store_dir();
    let pid = server.child.pid();
    let every = bench.args.sample_every.max(Duration::from_secs(1));
    let windows = (bench.args.soak_duration.as_secs_f64() / every.as_secs_f64()).ceil() as u64;
    let began = tokio::time::Instant::now();
    let mut samples = Vec::new();
    let mut total = RunResult::default();
    let mut cpu_before = cpu_ms(pid).await;
    for window in 0..windows.max(1) {
        // Ids past the calibration run's, and each window's past the one before.
        let first = (1 << 40) + (window << 32);
        let caller = UnaryCaller::new(channel.clone(), bench.payloads.clone(), false, first);
        let result = drive::open_loop(caller, rate, every).await;
        let latency = result.latencies.clone().summary();
        let cpu_now = cpu_ms(pid).await;
        let cpu_ms_per_k = (cpu_now - cpu_before) * 1000.0 / result.ok.max(1) as f64;
        cpu_before = cpu_now;
        let sample = Sample {
            at_s: began.elapsed().as_secs_f64(),
            ok: result.ok,
            errors: result.errors,
            p50_ms: latency.map_or(0.0, |l| l.p50_ms),
            p99_ms: latency.map_or(0.0, |l| l.p99_ms),
            rss_mib: memory_mib(pid, "VmRSS").await.unwrap_or(0.0),
            open_fds: open_fds(pid).await,
            disk_mib: match &store {
                Some(dir) => disk_mib(dir).await,
                None => 0.0,
            },
            cpu_ms_per_k,
            io_pressure_pct: io_pressure_pct().await,
        };
        tracing::info!(
            seconds = sample.at_s.round(),
            ok = sample.ok,
            errors = sample.errors,
            p99_ms = sample.p99_ms,
            rss_mib = sample.rss_mib,
            open_fds = sample.open_fds,
            disk_mib = sample.disk_mib,
            cpu_ms_per_k = sample.cpu_ms_per_k,
            io_pressure_pct = sample.io_pressure_pct,
            "soak sample"
        );
        samples.push(sample);
        total.elapsed += result.elapsed;
        total.absorb(result);
    }
    if let Some(path) = &bench.args.soak_csv {
        tokio::fs::write(path, to_csv(&samples))
            .await
            .map_err(|source| BenchError::Io {
                what: format!("cannot write {}", path.display()),
                source,
            })?;
    }
    // Retention runs every `store.retention_interval_seconds` (60 by default).
    let warm_up_s = (retention + 120) as f64;
    let fitted = trends(&samples, warm_up_s);
    let mut note = format!(
        "open loop at {rate:.0}/s ({how}), durable, retention {retention} s, {} samples \
         every {} s; after {warm_up_s:.0} s:",
        samples.len(),
        every.as_secs()
    );
    for (name, trend) in &fitted {
        match trend {
            Some(trend) => {
                let _ = write!(
                    note,
                    " {name} {:+.1}% of {:.1}",
                    trend.relative_rise() * 100.0,
                    trend.mean
                );
            }
            None => {
                let _ = write!(note, " {name} -");
            }
        }
    }
    report.scenarios.push(server.finish(ROW, total, note).await);
    for (series, (_, trend)) in SERIES.iter().zip(fitted) {
        report.check_value(
            &format!("soak {} rise", series.name),
            trend.map(|t| t.relative_rise() * 100.0),
            series.limit,
            series.meets,
        );
    }
    Ok(())
}

/// How many descriptors the process has open (0 where `/proc` cannot say).
async fn open_fds(pid: u32) -> f64 {
    let Ok(mut entries) = tokio::fs::read_dir(format!("/proc/{pid}/fd")).await else {
        return 0.0;
    };
    let mut count = 0u32;
    while let Ok(Some(_)) = entries.next_entry().await {
        count += 1;
    }
    f64::from(count)
}

/// The process's CPU time so far (user + system), in ms (0 where `/proc` cannot say).
pub async fn cpu_ms(pid: u32) -> f64 {
    let Ok(stat) = tokio::fs::read_to_string(format!("/proc/{pid}/stat")).await else {
        return 0.0;
    };
    // After the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let ticks: Vec<f64> = fields
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse().ok())
        .collect();
    // Clock ticks are 1/100 s on Linux (`getconf CLK_TCK`).
    ticks.iter().sum::<f64>() * 10.0
}

/// `/proc/pressure/io`'s `some avg10`, in percent (0 where the kernel has no PSI).
async fn io_pressure_pct() -> f64 {
    let Ok(pressure) = tokio::fs::read_to_string("/proc/pressure/io").await else {
        return 0.0;
    };
    pressure
        .lines()
        .find(|line| line.starts_with("some "))
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix("avg10="))
        })
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

/// The bytes of the files directly in `dir` (the database, its WAL and shared memory), in MiB.
async fn disk_mib(dir: &Path) -> f64 {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return 0.0;
    };
    let mut bytes = 0u64;
    while let Ok(Some(entry)) = entries.next_entry().await {
        if let Ok(meta) = entry.metadata().await {
            bytes += meta.len();
        }
    }
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: f64, rss_mib: f64) -> Sample {
        Sample {
            at_s,
            ok: 10,
            errors: 0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            rss_mib,
            open_fds: 20.0,
            disk_mib: 5.0,
            cpu_ms_per_k: 80.0,
            io_pressure_pct: 1.5,
        }
    }

    #[test]
    fn a_steady_climb_is_fitted_and_a_flat_series_is_not() {
        let climbing: Vec<Sample> = (0..10)
            .map(|n| sample(f64::from(n) * 10.0, 100.0 + f64::from(n)))
            .collect();
        let fitted = trends(&climbing, 0.0);
        let (name, trend) = fitted[0];
        assert_eq!(name, "rss");
        let trend = trend.expect("fits");
        assert!((trend.rise - 9.0).abs() < 1e-9, "{trend:?}");
        assert!((trend.mean - 104.5).abs() < 1e-9);
        let (_, fds) = fitted[1];
        assert_eq!(fds.expect("fits").rise, 0.0);
    }

    #[test]
    fn warm_up_samples_are_left_out() {
        // A big start-up climb, then flat: only the flat part is judged.
        let mut samples: Vec<Sample> = (0..5)
            .map(|n| sample(f64::from(n) * 10.0, f64::from(n) * 50.0))
            .collect();
        samples.extend((5..15).map(|n| sample(f64::from(n) * 10.0, 250.0)));
        let (_, trend) = trends(&samples, 50.0)[0];
        assert_eq!(trend.expect("fits").relative_rise(), 0.0);
        let (_, trend) = trends(&samples, 0.0)[0];
        assert!(trend.expect("fits").relative_rise() > 0.5);
    }

    #[test]
    fn too_few_samples_fit_nothing() {
        assert_eq!(Trend::fit(&[]), None);
        assert_eq!(Trend::fit(&[(1.0, 2.0)]), None);
        assert_eq!(trends(&[sample(1.0, 1.0)], 0.0)[0].1, None);
    }

    #[test]
    fn csv_has_a_header_and_a_row_per_sample() {
        let csv = to_csv(&[sample(10.0, 64.0), sample(20.0, 65.5)]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("seconds,ok,errors"));
        assert_eq!(lines[2], "20.0,10,0,1.000,2.000,65.50,20,5.00,80.0,1.50");
    }
}
