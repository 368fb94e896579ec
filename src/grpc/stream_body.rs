//! StreamEvents' response body: each queued item as a gRPC message, the subscription's end as
//! the trailers.
//!
//! tonic's own body copies every message into a buffer of the stream's own, so each event was
//! copied once per subscriber. Here an event alone on the wire goes to the connection as the
//! message the writer built around the stored bytes ([`EncodedEvent::message`]), shared by
//! every subscriber; only when several messages are ready at once are they copied together
//! into one frame of up to 32 KiB, as tonic does, so a subscriber catching up costs one write
//! per frame rather than one per event. Dropping a [`Queued`] item as soon as its bytes are handed on returns its
//! share of the subscriber's budget, as before.
//!
//! [`EncodedEvent::message`]: crate::log::EncodedEvent::message

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame};
use prost::Message;
use tonic::Status;

use crate::log::{MESSAGE_HEADER_BYTES, write_message_header};
use crate::proto::v1::stream_events_response::Message as ResponseMessage;
use crate::proto::v1::{EventsSkipped, Heartbeat, StreamEventsResponse};
use crate::stream::{Queued, StreamEnd, StreamItem, Subscription};

/// Messages ready together are put in one frame until it holds this much (tonic's own
/// threshold): large enough that a burst costs few writes, small enough to interleave streams.
const BATCH_BYTES: usize = 32 * 1024;

/// The body of one StreamEvents response.
pub struct StreamBody {
    subscription: Subscription,
    /// The largest message this stream may send (the server's `max_encoding_message_size`).
    max_message_bytes: usize,
    /// An item that did not fit in the last batch: the next frame starts with it.
    held: Option<Queued>,
    /// How the stream ends, when that was received while a batch was being filled.
    end: Option<Status>,
    /// The trailers were sent.
    ended: bool,
}

impl StreamBody {
    pub fn new(subscription: Subscription, max_message_bytes: usize) -> StreamBody {
        StreamBody {
            subscription,
            max_message_bytes,
            held: None,
            end: None,
            ended: false,
        }
    }

    /// The next ready item without waiting; an end is kept for the next frame.
    fn poll_ready_item(&mut self, cx: &mut Context<'_>) -> Option<Queued> {
        match self.subscription.poll_recv(cx) {
            Poll::Pending => None,
            Poll::Ready(Some(Ok(queued))) => Some(queued),
            Poll::Ready(Some(Err(end))) => {
                self.end = Some(end_status(Some(&end)));
                None
            }
            Poll::Ready(None) => {
                self.end = Some(end_status(None));
                None
            }
        }
    }

    /// `item` as one message of its own.
    fn message(&self, item: &StreamItem) -> Result<Bytes, Status> {
        match item {
            StreamItem::Event(event) => {
                self.check_len(event.message_len())?;
                Ok(event.message())
            }
            other => {
                let mut message = BytesMut::new();
                self.write(other, &mut message)?;
                Ok(message.freeze())
            }
        }
    }

    /// Appends `item`'s message to a batch.
    fn write(&self, item: &StreamItem, dst: &mut BytesMut) -> Result<(), Status> {
        let response = match item {
            StreamItem::Event(event) => {
                self.check_len(event.message_len())?;
                event.write_message(dst);
                return Ok(());
            }
            StreamItem::Heartbeat { head, at } => ResponseMessage::Heartbeat(Heartbeat {
                head_sequence: *head,
                sent_at: Some(crate::event::timestamp(*at)),
            }),
            StreamItem::Skipped { after, through } => {
                ResponseMessage::EventsSkipped(EventsSkipped {
                    after_sequence: *after,
                    last_skipped_sequence: *through,
                })
            }
        };
        let response = StreamEventsResponse {
            message: Some(response),
        };
        let len = response.encoded_len();
        self.check_len(MESSAGE_HEADER_BYTES + len)?;
        dst.reserve(MESSAGE_HEADER_BYTES + len);
        write_message_header(len, dst);
        response
            .encode(dst)
            .map_err(|error| Status::internal(format!("cannot encode stream message: {error}")))
    }

    /// Refuses a message (`message_len` bytes, header included) over the encoding limit.
    fn check_len(&self, message_len: usize) -> Result<(), Status> {
        let payload = message_len.saturating_sub(MESSAGE_HEADER_BYTES);
        if payload > self.max_message_bytes {
            return Err(Status::out_of_range(format!(
                "stream message of {payload} bytes is over the limit of {} bytes",
                self.max_message_bytes
            )));
        }
        Ok(())
    }

    /// The trailers for `status`, after which the body is done.
    fn trailers(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.ended = true;
        let mut trailers = HeaderMap::new();
        Poll::Ready(Some(
            status
                .add_header(&mut trailers)
                .map(|()| Frame::trailers(trailers)),
        ))
    }

    /// `first` and whatever else is ready, as one frame. A batch is never reallocated: a
    /// message that does not fit waits for the next frame.
    fn next_frame(&mut self, cx: &mut Context<'_>, first: Queued) -> Result<Bytes, Status> {
        let Some(mut next) = self.poll_ready_item(cx) else {
            return self.message(&first.item);
        };
        let capacity = BATCH_BYTES.max(len_of(&first.item) + len_of(&next.item));
        let mut batch = BytesMut::with_capacity(capacity);
        self.write(&first.item, &mut batch)?;
        drop(first);
        loop {
            if batch.len() + len_of(&next.item) > capacity {
                self.held = Some(next);
                break;
            }
            self.write(&next.item, &mut batch)?;
            drop(next);
            match self.poll_ready_item(cx) {
                Some(queued) => next = queued,
                None => break,
            }
        }
        Ok(batch.freeze())
    }
}

/// About how long `item`'s message is: exact for an event, an upper bound for the rest.
fn len_of(item: &StreamItem) -> usize {
    match item {
        StreamItem::Event(event) => event.message_len(),
        StreamItem::Heartbeat { .. } | StreamItem::Skipped { .. } => 64,
    }
}

/// The status a subscription ended with: OK when its producer finished, the end's otherwise.
fn end_status(end: Option<&StreamEnd>) -> Status {
    end.map_or_else(|| Status::ok(""), super::stream_end_status)
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let first = if let Some(held) = this.held.take() {
            held
        } else if let Some(status) = this.end.take() {
            return this.trailers(status);
        } else {
            match ready!(this.subscription.poll_recv(cx)) {
                Some(Ok(queued)) => queued,
                Some(Err(end)) => return this.trailers(end_status(Some(&end))),
                None => return this.trailers(end_status(None)),
            }
        };
        match this.next_frame(cx, first) {
            Ok(frame) => Poll::Ready(Some(Ok(Frame::data(frame)))),
            Err(status) => this.trailers(status),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests;
