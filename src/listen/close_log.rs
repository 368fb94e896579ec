//! Logging of the connections a listener closes itself, rate-limited: under a flood there is one
//! line per reason per [`INTERVAL`], counting what it stands for, instead of one per connection.
//! The first close for a reason is logged at once; the rest of the interval's are added up and
//! logged when it is over (by [`CloseLog::flush`], which the listener calls on its sweep), so a
//! flood that stops is still reported in full.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::registry::CloseReason;

/// At most one line per reason per listener this often.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// One listener's close log.
#[derive(Debug)]
pub struct CloseLog {
    listener: &'static str,
    windows: Mutex<HashMap<CloseReason, Window>>,
}

#[derive(Debug)]
struct Window {
    logged_at: Instant,
    /// Closes since the last line, and the address of the latest.
    pending: u64,
    last_peer: Option<IpAddr>,
}

/// A line to write: the reason, how many closes it stands for, the latest one's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub reason: CloseReason,
    pub count: u64,
    pub peer: Option<IpAddr>,
}

impl CloseLog {
    pub fn new(listener: &'static str) -> Self {
        CloseLog {
            listener,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one close, and logs it now if the reason has not been logged this interval.
    pub fn record(&self, reason: CloseReason, peer: Option<IpAddr>) {
        if let Some(line) = self.record_at(reason, peer, Instant::now()) {
            self.write(line);
        }
    }

    /// Logs every reason whose interval is over with closes not yet logged.
    pub fn flush(&self) {
        for line in self.flush_at(Instant::now()) {
            self.write(line);
        }
    }

    fn record_at(&self, reason: CloseReason, peer: Option<IpAddr>, now: Instant) -> Option<Line> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        match windows.get_mut(&reason) {
            Some(window) if now.saturating_duration_since(window.logged_at) < INTERVAL => {
                window.pending += 1;
                window.last_peer = peer;
                None
            }
            Some(window) => {
                let count = window.pending + 1;
                window.logged_at = now;
                window.pending = 0;
                Some(Line {
                    reason,
                    count,
                    peer,
                })
            }
            None => {
                windows.insert(
                    reason,
                    Window {
                        logged_at: now,
                        pending: 0,
                        last_peer: None,
                    },
                );
                Some(Line {
                    reason,
                    count: 1,
                    peer,
                })
            }
        }
    }

    fn flush_at(&self, now: Instant) -> Vec<Line> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lines = Vec::new();
        for (reason, window) in windows.iter_mut() {
            if window.pending > 0 && now.saturating_duration_since(window.logged_at) >= INTERVAL {
                lines.push(Line {
                    reason: *reason,
                    count: window.pending,
                    peer: window.last_peer.take(),
                });
                window.pending = 0;
                window.logged_at = now;
            }
        }
        lines.sort_by_key(|line| line.reason);
        lines
    }

    /// Pressure (caps, a full listener, no file descriptors) is a warning; a client that never
    /// sent a request or spoke another protocol is worth knowing; idle keep-alive connections
    /// timing out are routine.
    fn write(&self, line: Line) {
        let listener = self.listener;
        let reason = line.reason.as_str();
        let count = line.count;
        let peer = line
            .peer
            .map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
        match line.reason {
            CloseReason::ConnectionCap
            | CloseReason::AddressCap
            | CloseReason::Full
            | CloseReason::OutOfFiles
            | CloseReason::RapidReset
            | CloseReason::Penalized => {
                tracing::warn!(listener, reason, count, peer = %peer, "closed connections early");
            }
            CloseReason::FirstRequestTimeout
            | CloseReason::UploadTimeout
            | CloseReason::Protocol => {
                tracing::info!(listener, reason, count, peer = %peer, "closed connections early");
            }
            CloseReason::IdleTimeout => {
                tracing::debug!(listener, reason, count, peer = %peer, "closed connections early");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_interval_counting_the_rest() {
        let log = CloseLog::new("http");
        let start = Instant::now();
        let a = Some(IpAddr::from([192, 0, 2, 1]));
        let b = Some(IpAddr::from([192, 0, 2, 2]));
        let cap = CloseReason::ConnectionCap;
        let first = log.record_at(cap, a, start).expect("first is logged");
        assert_eq!(first.count, 1);
        // Another reason has its own window.
        assert!(log.record_at(CloseReason::AddressCap, a, start).is_some());
        for _ in 0..99 {
            assert!(
                log.record_at(cap, b, start + Duration::from_secs(1))
                    .is_none()
            );
        }
        assert!(log.flush_at(start + Duration::from_secs(9)).is_empty());
        let lines = log.flush_at(start + INTERVAL);
        assert_eq!(
            lines,
            [Line {
                reason: cap,
                count: 99,
                peer: b
            }]
        );
        // The next close waits out the new interval, and is counted in the line after it.
        assert!(log.record_at(cap, a, start + INTERVAL).is_none());
        let line = log
            .record_at(cap, a, start + 2 * INTERVAL)
            .expect("interval over");
        assert_eq!(line.count, 2);
        // Nothing pending: nothing to flush.
        assert!(log.flush_at(start + 4 * INTERVAL).is_empty());
    }
}
