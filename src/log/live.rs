//! The SQLite backend's live feed: committed events go out on a broadcast ring shared by every
//! subscriber, bounded in count (the ring's capacity) and in bytes (this budget), and each
//! subscriber receives them through a [`LiveSubscription`] over its broadcast receiver.
//!
//! The ring keeps an event until every subscriber has seen it, so its memory is the unread tail
//! of the slowest subscriber. The publisher tracks the bytes of that tail (`Sender::len()` says
//! how long it is; a running sum of what was sent says what it weighs) and, past the budget,
//! publishes an event as its sequence alone ([`LiveEvent::Elided`]). A subscriber that meets one
//! reads from the log instead, so however large the events and however slow the subscriber, the
//! feed holds at most about the budget.
//!
//! Past half the budget the feed says it is under pressure ([`LiveFeed::pressure`]): a
//! subscriber blocked on its own full buffer then leaves the feed and reads the log once it has
//! room, so a paused subscriber gives up its unread tail long before that tail would make the
//! feed elide events for everyone. Below it, a briefly full buffer costs no trip to the log.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{broadcast, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::{CommittedEvent, Live, LiveEvent, LiveSubscription};

/// The publisher of committed events.
pub struct LiveFeed {
    sender: broadcast::Sender<LiveEvent>,
    max_bytes: u64,
    /// Running totals of the bytes published, one per event sent (oldest first), as far back as
    /// the ring can still hold: the weight of the newest `n` is `last - totals[len - 1 - n]`.
    totals: VecDeque<u64>,
    capacity: usize,
    /// Whether the unread tail is over half the budget; changed only when it flips.
    pressure: watch::Sender<bool>,
}

impl LiveFeed {
    /// A feed whose ring holds `capacity` events and about `max_bytes` of them.
    pub fn new(capacity: usize, max_bytes: usize) -> LiveFeed {
        let capacity = capacity.max(1);
        let (sender, _) = broadcast::channel(capacity);
        let mut totals = VecDeque::with_capacity(capacity + 1);
        totals.push_back(0);
        LiveFeed {
            sender,
            max_bytes: max_bytes as u64,
            totals,
            capacity,
            pressure: watch::Sender::new(false),
        }
    }

    /// Whether the feed is over half its byte budget of unread events, as of the last publish.
    pub fn pressure(&self) -> watch::Receiver<bool> {
        self.pressure.subscribe()
    }

    fn set_pressure(&self, over: bool) {
        self.pressure.send_if_modified(|current| {
            let changed = *current != over;
            *current = over;
            changed
        });
    }

    /// A handle for subscribing that does not keep the feed open: once the publisher is gone
    /// (the writer stopped), subscriptions end and new ones are refused.
    pub fn subscriptions(&self) -> Subscriptions {
        Subscriptions(self.sender.downgrade())
    }

    /// A raw receiver, for tests of what is published.
    #[cfg(test)]
    fn receiver(&self) -> broadcast::Receiver<LiveEvent> {
        self.sender.subscribe()
    }

    /// Bytes held for the events not yet seen by every subscriber.
    fn unread_bytes(&self) -> u64 {
        let unread = self.sender.len().min(self.totals.len() - 1);
        let newest = self.totals.back().copied().unwrap_or(0);
        let before = self
            .totals
            .get(self.totals.len() - 1 - unread)
            .copied()
            .unwrap_or(0);
        newest - before
    }

    /// Publishes one committed event, whole if the budget allows, else by sequence.
    pub fn publish(&mut self, committed: Arc<CommittedEvent>) {
        if self.sender.receiver_count() == 0 {
            // Nobody listens: nothing is kept either.
            self.set_pressure(false);
            return;
        }
        let cost = committed.held_bytes();
        let unread = self.unread_bytes();
        let (event, weight) = if unread + cost <= self.max_bytes {
            (LiveEvent::Full(committed), cost)
        } else {
            let sequence = committed.encoded.sequence;
            (LiveEvent::Elided { sequence }, 0)
        };
        self.set_pressure(2 * (unread + weight) > self.max_bytes);
        let total = self.totals.back().copied().unwrap_or(0) + weight;
        self.totals.push_back(total);
        if self.totals.len() > self.capacity + 1 {
            self.totals.pop_front();
        }
        // A subscriber may have left since the count above; the event is durable either way.
        let _ = self.sender.send(event);
    }
}

/// Opens subscriptions to a [`LiveFeed`] for as long as it publishes.
#[derive(Debug, Clone)]
pub struct Subscriptions(broadcast::WeakSender<LiveEvent>);

impl Subscriptions {
    /// A subscription to what is published from now on, or `None` once the feed has ended.
    pub fn subscribe(&self) -> Option<LiveSubscription> {
        // The strong sender lives only for this call: the writer's alone keeps the feed open.
        let receiver = self.0.upgrade()?.subscribe();
        let items = BroadcastStream::new(receiver).map(|item| match item {
            Ok(event) => Live::Event(event),
            Err(BroadcastStreamRecvError::Lagged(missed)) => Live::Lagged { missed },
        });
        Some(LiveSubscription::new(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EncodedEvent;
    use crate::proto::v1::Event;

    fn committed(sequence: u64, size: usize) -> Arc<CommittedEvent> {
        Arc::new(CommittedEvent {
            event: Event {
                sequence,
                ..Event::default()
            },
            encoded: EncodedEvent::new(sequence, vec![0; size].into()),
        })
    }

    #[test]
    fn an_unread_tail_past_the_budget_is_published_by_sequence() {
        // Room for about four 1 KiB events (2 KiB + 256 each).
        let mut feed = LiveFeed::new(64, 10 * 1024);
        let mut slow = feed.receiver();
        for sequence in 1..=8 {
            feed.publish(committed(sequence, 1024));
        }
        let mut full = Vec::new();
        let mut elided = Vec::new();
        while let Ok(event) = slow.try_recv() {
            match event {
                LiveEvent::Full(c) => full.push(c.encoded.sequence),
                LiveEvent::Elided { sequence } => elided.push(sequence),
            }
        }
        assert_eq!(full, [1, 2, 3, 4]);
        assert_eq!(elided, [5, 6, 7, 8]);

        // Once read, the budget is free again.
        feed.publish(committed(9, 1024));
        assert!(matches!(slow.try_recv(), Ok(LiveEvent::Full(_))));
    }

    #[test]
    fn pressure_rises_past_half_the_budget_and_falls_once_read() {
        // 2,304 bytes per 1 KiB event; half of 10 KiB is passed by the third unread one.
        let mut feed = LiveFeed::new(64, 10 * 1024);
        let pressure = feed.pressure();
        let mut slow = feed.receiver();
        feed.publish(committed(1, 1024));
        feed.publish(committed(2, 1024));
        assert!(!*pressure.borrow(), "4.5 KiB unread of 10 KiB");
        feed.publish(committed(3, 1024));
        assert!(*pressure.borrow(), "6.75 KiB unread of 10 KiB");
        while slow.try_recv().is_ok() {}
        feed.publish(committed(4, 1024));
        assert!(!*pressure.borrow(), "one event unread again");
        // The slow receiver leaving takes its tail with it.
        for sequence in 5..=7 {
            feed.publish(committed(sequence, 1024));
        }
        assert!(*pressure.borrow());
        drop(slow);
        let _other = feed.receiver();
        feed.publish(committed(8, 1024));
        assert!(!*pressure.borrow());
    }

    #[test]
    fn an_event_larger_than_the_budget_goes_by_sequence_and_nothing_is_kept_unheard() {
        let mut feed = LiveFeed::new(8, 4096);
        feed.publish(committed(1, 1 << 20));
        let mut subscriber = feed.receiver();
        feed.publish(committed(2, 1 << 20));
        assert!(matches!(
            subscriber.try_recv(),
            Ok(LiveEvent::Elided { sequence: 2 })
        ));
        // Evicted by the ring's own capacity: the running totals stay in step.
        for sequence in 3..40 {
            feed.publish(committed(sequence, 10));
        }
        assert!(feed.totals.len() <= 9);
    }

    #[tokio::test]
    async fn subscriptions_report_lag_and_end_with_the_feed() {
        let mut feed = LiveFeed::new(4, 1 << 20);
        let subscriptions = feed.subscriptions();
        let mut subscription = subscriptions.subscribe().unwrap();
        for sequence in 1..=6 {
            feed.publish(committed(sequence, 10));
        }
        // The ring held four: the first two went by, and the subscription is told.
        assert!(matches!(
            subscription.next().await,
            Live::Lagged { missed: 2 }
        ));
        for sequence in 3..=6 {
            match subscription.next().await {
                Live::Event(event) => assert_eq!(event.sequence(), sequence),
                other => panic!("expected event {sequence}, got {other:?}"),
            }
        }
        assert!(subscription.try_next().is_none());
        feed.publish(committed(7, 10));
        drop(feed);
        // What was published before the feed ended still arrives, then the end.
        assert!(matches!(subscription.next().await, Live::Event(_)));
        assert!(matches!(subscription.next().await, Live::Closed));
        assert!(subscriptions.subscribe().is_none());
    }
}
