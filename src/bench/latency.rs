//! Latency samples and their summary: a plain `Vec` of microseconds, sorted once at the end
//! (a run holds at most a few million samples, so no histogram is needed).

use std::time::Duration;

use serde::Serialize;

/// Latencies recorded by one worker or subscriber; merged after the run.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    /// Records one latency, saturating at about 71 minutes.
    pub fn record(&mut self, latency: Duration) {
        self.micros
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    /// Appends another worker's samples.
    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// Percentiles and maximum, in milliseconds; `None` without samples.
    pub fn summary(mut self) -> Option<LatencySummary> {
        if self.micros.is_empty() {
            return None;
        }
        self.micros.sort_unstable();
        let at = |quantile: f64| {
            let rank = (quantile * self.micros.len() as f64).ceil() as usize;
            let index = rank.clamp(1, self.micros.len()) - 1;
            f64::from(self.micros[index]) / 1000.0
        };
        Some(LatencySummary {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

/// Latency percentiles of one scenario, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut latencies = Latencies::default();
        for micros in (1..=100).rev() {
            latencies.record(Duration::from_micros(micros * 1000));
        }
        let summary = latencies.summary().expect("has samples");
        assert_eq!(summary.p50_ms, 50.0);
        assert_eq!(summary.p90_ms, 90.0);
        assert_eq!(summary.p99_ms, 99.0);
        assert_eq!(summary.max_ms, 100.0);
        assert!(Latencies::default().summary().is_none());
    }
}
