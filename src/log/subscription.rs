//! The receiving side of the live feed, as every backend hands it out: a [`LiveSubscription`]
//! yields [`Live`] items (committed events, lag reports, the end), whatever carries them
//! underneath (a tokio broadcast ring for SQLite, a broker consumer for a replicated log).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio_stream::{Stream, StreamExt};

use super::EncodedEvent;
use crate::proto::v1::Event;

/// A just-committed event as the live feed carries it: the event, for filters to look at, and
/// its encoding, for subscribers to send.
#[derive(Debug, Clone)]
pub struct CommittedEvent {
    pub event: Event,
    pub encoded: EncodedEvent,
}

impl CommittedEvent {
    /// What the event costs while it is held in memory: its encoding, and about as much again
    /// for the decoded copy filters look at.
    pub fn held_bytes(&self) -> u64 {
        2 * self.encoded.bytes.len() as u64 + 256
    }
}

/// One committed event on the live feed. A feed may be bounded in bytes as well as in count:
/// past its byte budget an event travels as its sequence alone, and a subscriber that needs it
/// reads it from the log, so a slow subscriber never makes the server hold more than the budget
/// of events for it.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    Full(Arc<CommittedEvent>),
    Elided { sequence: u64 },
}

impl LiveEvent {
    pub fn sequence(&self) -> u64 {
        match self {
            LiveEvent::Full(committed) => committed.encoded.sequence,
            LiveEvent::Elided { sequence } => *sequence,
        }
    }
}

/// What a live subscription yields next.
#[derive(Debug, Clone)]
pub enum Live {
    /// The next committed event, in sequence order.
    Event(LiveEvent),
    /// The subscription fell behind and `missed` events went by without it; it may go on with
    /// newer ones, but the missed ones are only in the log, from the subscriber's cursor.
    Lagged { missed: u64 },
    /// The feed has ended (the log closed); every later call says so again.
    Closed,
}

/// A subscription to the events a log commits from now on (see [`super::EventLog`]'s contract
/// for what it carries). Cheap to drop: dropping it is how a subscriber leaves the feed.
pub struct LiveSubscription {
    items: Pin<Box<dyn Stream<Item = Live> + Send>>,
    /// Set once the stream has ended, so it is never polled past its end.
    closed: bool,
}

impl LiveSubscription {
    /// A subscription over a backend's stream of items; the stream ending means [`Live::Closed`].
    pub fn new(items: impl Stream<Item = Live> + Send + 'static) -> LiveSubscription {
        LiveSubscription {
            items: Box::pin(items),
            closed: false,
        }
    }

    /// The next item, waiting for one. Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self) -> Live {
        if self.closed {
            return Live::Closed;
        }
        match self.items.next().await {
            Some(item) => self.seen(item),
            None => self.end(),
        }
    }

    /// The next item if one is ready now, without waiting: a subscriber drains what has
    /// arrived with this rather than one wake-up per event.
    pub fn try_next(&mut self) -> Option<Live> {
        if self.closed {
            return Some(Live::Closed);
        }
        let mut context = Context::from_waker(Waker::noop());
        match self.items.as_mut().poll_next(&mut context) {
            Poll::Ready(Some(item)) => Some(self.seen(item)),
            Poll::Ready(None) => Some(self.end()),
            Poll::Pending => None,
        }
    }

    fn seen(&mut self, item: Live) -> Live {
        if matches!(item, Live::Closed) {
            self.closed = true;
        }
        item
    }

    fn end(&mut self) -> Live {
        self.closed = true;
        Live::Closed
    }
}

impl std::fmt::Debug for LiveSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSubscription")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elided(sequence: u64) -> Live {
        Live::Event(LiveEvent::Elided { sequence })
    }

    fn sequence(item: Option<Live>) -> Option<u64> {
        match item {
            Some(Live::Event(event)) => Some(event.sequence()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn the_end_of_the_stream_is_closed_for_good() {
        let mut subscription = LiveSubscription::new(tokio_stream::iter([elided(1), elided(2)]));
        assert_eq!(sequence(Some(subscription.next().await)), Some(1));
        assert_eq!(sequence(subscription.try_next()), Some(2));
        assert!(matches!(subscription.try_next(), Some(Live::Closed)));
        assert!(matches!(subscription.next().await, Live::Closed));
    }

    #[tokio::test]
    async fn try_next_waits_for_nothing() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut subscription = LiveSubscription::new(
            tokio_stream::wrappers::UnboundedReceiverStream::new(receiver),
        );
        assert!(subscription.try_next().is_none());
        sender.send(elided(7)).unwrap();
        assert_eq!(sequence(subscription.try_next()), Some(7));
        drop(sender);
        assert!(matches!(subscription.next().await, Live::Closed));
    }
}
