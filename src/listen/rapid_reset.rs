//! HTTP/2 rapid reset (CVE-2023-44487), seen from the bytes a gRPC client sends: a client that
//! opens streams and resets them at once costs the server a request each (hyper hands every
//! stream to the service) and itself nothing. h2 counts only resets of streams not yet
//! accepted, at most 20, then sends GOAWAY; a client that reconnects is back at once. So the
//! connection's incoming frames are watched here: resets of streams opened less than
//! [`RAPID`] before are spent from a budget, and a connection that overdraws it is closed (its
//! address refused for a while, by the caller). A client cancelling a call (its deadline
//! passed, its user left) resets a stream that has been open for longer, and is not counted.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// `HEADERS` and `RST_STREAM`, RFC 9113 sections 6.2 and 6.4.
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;

/// A reset this soon after its stream was opened is a rapid one: no call is cancelled for a
/// reason within a tenth of a second of being made, unless made to be cancelled.
pub const RAPID: Duration = Duration::from_millis(100);

/// How many recently opened streams are remembered, to age their resets.
const REMEMBERED: usize = 64;

/// Finds where each HTTP/2 frame begins in a connection's byte stream (after the preface), and
/// gives its type and stream id; payloads are skipped, never buffered.
#[derive(Debug, Default)]
pub struct FrameScanner {
    header: [u8; 9],
    /// Bytes of `header` read so far.
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: usize,
}

impl FrameScanner {
    /// Reads the next bytes of the connection, calling `frame(type, stream id)` for every frame
    /// that begins in them.
    pub fn feed(&mut self, mut bytes: &[u8], mut frame: impl FnMut(u8, u32)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (self.header.len() - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == self.header.len() {
                let [a, b, c, kind, _flags, s1, s2, s3, s4] = self.header;
                self.skip = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                self.have = 0;
                frame(kind, u32::from_be_bytes([s1 & 0x7f, s2, s3, s4]));
            }
        }
    }
}

/// One connection's watch: the streams it opened lately, and its budget of rapid resets.
#[derive(Debug)]
pub struct ResetWatch {
    scanner: FrameScanner,
    opened: VecDeque<(u32, Instant)>,
    newest: u32,
    budget: ResetBudget,
}

impl ResetWatch {
    pub fn new(per_second: u32, now: Instant) -> Self {
        ResetWatch {
            scanner: FrameScanner::default(),
            opened: VecDeque::with_capacity(REMEMBERED),
            newest: 0,
            budget: ResetBudget::new(per_second, now),
        }
    }

    /// Reads the next bytes the client sent; false once it has reset more streams rapidly
    /// than its budget allows.
    pub fn feed(&mut self, bytes: &[u8], now: Instant) -> bool {
        let mut rapid = 0;
        let (opened, newest) = (&mut self.opened, &mut self.newest);
        self.scanner.feed(bytes, |kind, stream| match kind {
            // A new stream (a later HEADERS on a known one carries trailers).
            HEADERS if stream > *newest => {
                *newest = stream;
                if opened.len() == REMEMBERED {
                    opened.pop_front();
                }
                opened.push_back((stream, now));
            }
            RST_STREAM => {
                let young = opened
                    .iter()
                    .rev()
                    .find(|(id, _)| *id == stream)
                    .is_some_and(|(_, at)| now.saturating_duration_since(*at) < RAPID);
                if young {
                    rapid += 1;
                }
            }
            _ => {}
        });
        rapid == 0 || self.budget.spend(rapid, now)
    }
}

/// A token bucket of stream resets: `per_second`, with a burst of as many.
#[derive(Debug)]
pub struct ResetBudget {
    per_second: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl ResetBudget {
    pub fn new(per_second: u32, now: Instant) -> Self {
        let per_second = f64::from(per_second);
        ResetBudget {
            per_second,
            tokens: per_second,
            refilled_at: now,
        }
    }

    /// Spends `resets`; false once the budget is overdrawn.
    pub fn spend(&mut self, resets: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.per_second);
        self.refilled_at = now;
        self.tokens -= f64::from(resets);
        self.tokens >= 0.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(kind: u8, payload: usize) -> Vec<u8> {
        let length = u32::try_from(payload).unwrap().to_be_bytes();
        let mut frame = vec![length[1], length[2], length[3], kind, 0, 0, 0, 0, 1];
        frame.resize(9 + payload, 0xAB);
        frame
    }

    fn frame_on(kind: u8, stream: u32, payload: usize) -> Vec<u8> {
        let mut frame = frame(kind, payload);
        frame[5..9].copy_from_slice(&stream.to_be_bytes());
        frame
    }

    #[test]
    fn frames_are_found_however_the_bytes_are_split() {
        let mut bytes = Vec::new();
        bytes.extend(frame_on(HEADERS, 1, 40));
        bytes.extend(frame_on(RST_STREAM, 1, 4));
        bytes.extend(frame_on(0x0, 3, 70_000)); // DATA, whose payload may hold 0x03 bytes...
        bytes[80] = RST_STREAM; // ...which are no frames
        bytes.extend(frame_on(RST_STREAM, 3, 4));
        bytes.extend(frame_on(0x4, 0, 0)); // SETTINGS, empty
        for chunk in [1, 2, 7, 9, 10, 4096, bytes.len()] {
            let mut scanner = FrameScanner::default();
            let mut frames = Vec::new();
            for part in bytes.chunks(chunk) {
                scanner.feed(part, |kind, stream| frames.push((kind, stream)));
            }
            let want = [
                (HEADERS, 1),
                (RST_STREAM, 1),
                (0x0, 3),
                (RST_STREAM, 3),
                (0x4, 0),
            ];
            assert_eq!(frames, want, "in chunks of {chunk}");
        }
    }

    #[test]
    fn only_resets_of_young_streams_are_spent() {
        let start = Instant::now();
        let mut watch = ResetWatch::new(2, start);
        let open = |id| frame_on(HEADERS, id, 10);
        let reset = |id| frame_on(RST_STREAM, id, 4);
        // Calls cancelled long after they were made: never counted.
        for id in (1..40).step_by(2) {
            assert!(watch.feed(&open(id), start));
        }
        let later = start + Duration::from_secs(1);
        for id in (1..40).step_by(2) {
            assert!(watch.feed(&reset(id), later));
        }
        // Opened and reset at once: two are within the budget, the third is not.
        let mut rapid = Vec::new();
        for id in [41, 43, 45] {
            rapid.extend(open(id));
            rapid.extend(reset(id));
        }
        assert!(!watch.feed(&rapid, later));
    }

    #[test]
    fn the_budget_allows_a_burst_then_its_rate() {
        let start = Instant::now();
        let mut budget = ResetBudget::new(100, start);
        assert!(budget.spend(100, start));
        assert!(!budget.spend(1, start));
        // Overdrawn, it recovers at its rate.
        assert!(budget.spend(50, start + Duration::from_secs(1)));
        assert!(budget.spend(100, start + Duration::from_secs(60)));
    }
}
