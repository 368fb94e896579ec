//! The two ways of driving a target: closed loop (a fixed number of requests in flight, each
//! worker sending its next request as soon as the previous one is answered: the maximum rate)
//! and open loop (requests started on a fixed schedule whatever the answers do: latency at a
//! given load, free of coordinated omission).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::latency::Latencies;

/// One kind of request against one target; `n` numbers the request within the run.
pub trait Caller: Send + 'static {
    fn call(&mut self, n: u64) -> impl Future<Output = Result<(), String>> + Send;
}

/// When a run ends.
#[derive(Debug, Clone, Copy)]
pub enum Bound {
    /// After this many requests (in total, over all workers).
    Requests(u64),
    /// After this long.
    Duration(Duration),
}

impl Bound {
    /// An `n`th of this bound, for a run split into `n` phases.
    pub fn divided(self, n: u32) -> Bound {
        let n = n.max(1);
        match self {
            Bound::Requests(requests) => Bound::Requests((requests / u64::from(n)).max(1)),
            Bound::Duration(duration) => Bound::Duration(duration / n),
        }
    }
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct RunResult {
    /// Answered successfully.
    pub ok: u64,
    /// Failed (transport error, refusal, unexpected answer).
    pub errors: u64,
    /// The first failure, to show why.
    pub first_error: Option<String>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    pub latencies: Latencies,
}

impl RunResult {
    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.ok as f64 / seconds
        } else {
            0.0
        }
    }

    /// Runs made one after another: their counts and their times add up.
    pub fn sequential(runs: Vec<RunResult>) -> RunResult {
        let mut total = RunResult::default();
        for run in runs {
            total.elapsed += run.elapsed;
            total.absorb(run);
        }
        total
    }

    /// Adds `other`'s counts and latencies (not its elapsed time) to these.
    pub fn absorb(&mut self, other: RunResult) {
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.merge(other.latencies);
    }

    fn record(&mut self, outcome: Result<(), String>, latency: Duration) {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                self.latencies.record(latency);
            }
            Err(error) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(error);
                }
            }
        }
    }
}

/// Runs one worker per caller (the concurrency), each with one request in flight, until `bound`.
pub async fn closed_loop<C: Caller>(callers: Vec<C>, bound: Bound) -> RunResult {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = match bound {
        Bound::Duration(duration) => Some(started + duration),
        Bound::Requests(_) => None,
    };
    let limit = match bound {
        Bound::Requests(requests) => requests,
        Bound::Duration(_) => u64::MAX,
    };
    let workers: Vec<_> = callers
        .into_iter()
        .map(|mut caller| {
            let next = next.clone();
            tokio::spawn(async move {
                let mut result = RunResult::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= limit || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                        break;
                    }
                    let sent = Instant::now();
                    let outcome = caller.call(n).await;
                    result.record(outcome, sent.elapsed());
                }
                result
            })
        })
        .collect();
    let mut total = RunResult::default();
    for worker in workers {
        match worker.await {
            Ok(result) => total.absorb(result),
            Err(error) => total.record(Err(format!("worker failed: {error}")), Duration::ZERO),
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// Starts `rate` requests per second for `duration`, each on its own task with its own clone of
/// `caller`, whatever the earlier ones are doing. Latency is from each request's start.
pub async fn open_loop<C: Caller + Clone>(caller: C, rate: f64, duration: Duration) -> RunResult {
    let total = (rate * duration.as_secs_f64()).ceil().max(1.0) as u64;
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or_default());
    for n in 0..total {
        // The timer wheel has millisecond resolution: requests due within the same millisecond
        // start together, as they would from a bursty provider.
        tokio::time::sleep_until(started + period.mul_f64(n as f64)).await;
        let mut caller = caller.clone();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = caller.call(n).await;
            (outcome, sent.elapsed())
        }));
    }
    let mut result = RunResult::default();
    for task in tasks {
        match task.await {
            Ok((outcome, latency)) => result.record(outcome, latency),
            Err(error) => {
                result.record(Err(format!("request task failed: {error}")), Duration::ZERO)
            }
        }
    }
    result.elapsed = started.elapsed();
    result
}
