//! The newest committed events, kept in memory for catch-up reads.
//!
//! Subscribers that fall off the live feed (a burst they could not keep up with, a feed under
//! pressure) all read the log from cursors close to its head, and they do it at once: with a
//! thousand of them, every recent event was read from SQLite and decompressed a thousand times,
//! and those reads took the CPU the subscribers needed to catch up. The window answers a
//! catch-up read whose cursor it covers with the encodings the writer made, shared by every
//! reader; older cursors still read the file.
//!
//! A read from the window is a read of the log as of the writer's last push: the writer pushes a
//! commit's events before it moves the head, so the window holds every event up to any head a
//! reader has seen, and it trims what retention removed after the delete commits (until then the
//! window is the state before it). The window only ever holds consecutive sequences, so a cursor
//! inside it misses nothing in between.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError, RwLock};

use super::{CommittedEvent, EncodedBatch, EventFilter};

/// The newest committed events, bounded in count and in bytes.
#[derive(Debug)]
pub struct RecentEvents {
    window: RwLock<Window>,
    max_events: usize,
    max_bytes: u64,
}

#[derive(Debug, Default)]
struct Window {
    /// Consecutive sequences, oldest first.
    events: VecDeque<Arc<CommittedEvent>>,
    bytes: u64,
    /// The newest sequence retention removed, as [`EncodedBatch::removed_through`] says it.
    removed_through: u64,
    /// Set when the log closes: reads go to the log itself, which says it is closed.
    closed: bool,
}

impl RecentEvents {
    /// A window of at most `max_events` events and about `max_bytes` (the newest event is kept
    /// whatever its size); `removed_through` is where retention stands when the log opens.
    pub fn new(max_events: usize, max_bytes: usize, removed_through: u64) -> RecentEvents {
        RecentEvents {
            window: RwLock::new(Window {
                removed_through,
                ..Window::default()
            }),
            max_events: max_events.max(1),
            max_bytes: max_bytes as u64,
        }
    }

    /// Adds a commit's events, oldest first. Called before the commit's head is published.
    pub fn push(&self, committed: &[Arc<CommittedEvent>]) {
        let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
        if window.closed {
            return;
        }
        for event in committed {
            let sequence = event.encoded.sequence;
            let follows = window
                .events
                .back()
                .is_none_or(|last| last.encoded.sequence.checked_add(1) == Some(sequence));
            if !follows {
                // Not the next sequence: start again from here, so the window never has a hole
                // that a reader would take for events it need not send.
                window.events.clear();
                window.bytes = 0;
            }
            window.bytes += event.held_bytes();
            window.events.push_back(Arc::clone(event));
        }
        while window.events.len() > 1
            && (window.events.len() > self.max_events || window.bytes > self.max_bytes)
        {
            if let Some(oldest) = window.events.pop_front() {
                window.bytes -= oldest.held_bytes();
            }
        }
    }

    /// Retention removed every event through `through` (the delete has committed).
    pub fn removed_through(&self, through: u64) {
        let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
        window.removed_through = window.removed_through.max(through);
        while window
            .events
            .front()
            .is_some_and(|oldest| oldest.encoded.sequence <= through)
        {
            if let Some(oldest) = window.events.pop_front() {
                window.bytes -= oldest.held_bytes();
            }
        }
    }

    /// Forgets everything; reads go to the log from now on (until the next push, unless
    /// `closed`).
    pub fn clear(&self, closed: bool) {
        let mut window = self.window.write().unwrap_or_else(PoisonError::into_inner);
        window.events.clear();
        window.bytes = 0;
        window.closed |= closed;
    }

    /// Up to `limit` events after `after` that match `filter`, if the window holds every
    /// event after `after`; `None` sends the reader to the log.
    pub fn read_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Option<EncodedBatch> {
        let window = self.window.read().unwrap_or_else(PoisonError::into_inner);
        let first = window.events.front()?.encoded.sequence;
        // Retention trims the window, so `first` is past `removed_through` and a cursor the
        // window covers has lost nothing.
        let skip = after.checked_add(1)?.checked_sub(first)?;
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        let events = window
            .events
            .iter()
            .skip(skip)
            .filter(|committed| filter.matches(&committed.event))
            .take(limit)
            .map(|committed| committed.encoded.clone())
            .collect();
        Some(EncodedBatch {
            removed_through: window.removed_through,
            events,
        })
    }

    #[cfg(test)]
    fn sequences(&self) -> Vec<u64> {
        let window = self.window.read().unwrap_or_else(PoisonError::into_inner);
        window.events.iter().map(|e| e.encoded.sequence).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EncodedEvent;
    use crate::proto::v1::Event;

    fn committed(sequence: u64, source: &str, size: usize) -> Arc<CommittedEvent> {
        Arc::new(CommittedEvent {
            event: Event {
                sequence,
                source: source.to_owned(),
                ..Event::default()
            },
            encoded: EncodedEvent::new(sequence, vec![0; size].into()),
        })
    }

    fn batch(range: std::ops::RangeInclusive<u64>) -> Vec<Arc<CommittedEvent>> {
        range
            .map(|s| committed(s, if s % 2 == 0 { "even" } else { "odd" }, 10))
            .collect()
    }

    fn read(recent: &RecentEvents, after: u64, filter: &EventFilter, limit: usize) -> Vec<u64> {
        let batch = recent.read_after(after, filter, limit).expect("covered");
        batch.events.iter().map(|e| e.sequence).collect()
    }

    #[test]
    fn reads_what_the_window_covers_and_sends_older_cursors_to_the_log() {
        let recent = RecentEvents::new(5, usize::MAX, 0);
        assert!(recent.read_after(0, &EventFilter::default(), 10).is_none());
        recent.push(&batch(1..=4));
        recent.push(&batch(5..=8));
        assert_eq!(recent.sequences(), [4, 5, 6, 7, 8]);
        let all = EventFilter::default();
        // The cursor right before the oldest held event is covered; one further back is not.
        assert_eq!(read(&recent, 3, &all, 10), [4, 5, 6, 7, 8]);
        assert!(recent.read_after(2, &all, 10).is_none());
        assert_eq!(read(&recent, 6, &all, 10), [7, 8]);
        assert_eq!(read(&recent, 4, &all, 2), [5, 6]);
        assert_eq!(read(&recent, 8, &all, 10), Vec::<u64>::new());
        assert_eq!(read(&recent, 100, &all, 10), Vec::<u64>::new());
    }

    #[test]
    fn a_filter_skips_events_and_the_limit_counts_matches() {
        let recent = RecentEvents::new(100, usize::MAX, 0);
        recent.push(&batch(1..=20));
        let even = EventFilter {
            sources: vec!["even".to_owned()],
            ..EventFilter::default()
        };
        assert_eq!(read(&recent, 0, &even, 3), [2, 4, 6]);
        assert_eq!(read(&recent, 6, &even, 100), [8, 10, 12, 14, 16, 18, 20]);
    }

    #[test]
    fn the_byte_bound_keeps_at_least_the_newest_event() {
        // Each 10-byte event holds 276 bytes.
        let recent = RecentEvents::new(100, 600, 0);
        recent.push(&batch(1..=5));
        assert_eq!(recent.sequences(), [4, 5]);
        recent.push(&[committed(6, "big", 10_000)]);
        assert_eq!(recent.sequences(), [6]);
    }

    #[test]
    fn a_jump_in_sequences_starts_the_window_again() {
        let recent = RecentEvents::new(100, usize::MAX, 0);
        recent.push(&batch(1..=3));
        recent.push(&batch(7..=8));
        assert_eq!(recent.sequences(), [7, 8]);
        assert!(recent.read_after(5, &EventFilter::default(), 10).is_none());
    }

    #[test]
    fn retention_trims_the_window_and_is_reported() {
        let recent = RecentEvents::new(100, usize::MAX, 2);
        recent.push(&batch(3..=10));
        recent.removed_through(5);
        assert_eq!(recent.sequences(), [6, 7, 8, 9, 10]);
        let batch = recent
            .read_after(5, &EventFilter::default(), 10)
            .expect("covered");
        assert_eq!(batch.removed_through, 5);
        assert_eq!(batch.events.len(), 5);
        assert!(recent.read_after(4, &EventFilter::default(), 10).is_none());
        // Everything removed: the log answers (with its high-water mark).
        recent.removed_through(10);
        assert!(recent.read_after(9, &EventFilter::default(), 10).is_none());
    }

    #[test]
    fn a_closed_window_answers_nothing_and_keeps_nothing() {
        let recent = RecentEvents::new(100, usize::MAX, 0);
        recent.push(&batch(1..=3));
        recent.clear(true);
        recent.push(&batch(4..=5));
        assert!(recent.read_after(3, &EventFilter::default(), 10).is_none());
    }
}
