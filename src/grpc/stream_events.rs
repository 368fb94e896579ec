//! StreamEvents over pre-encoded frames: each event goes on the wire as the bytes the log
//! stored, shared by every subscriber, instead of a decoded `Event` that tonic re-encodes once
//! per subscriber.
//!
//! [`StreamEventsRoute`] sits in front of the generated server and takes only
//! `/hooknorm.v1.NormalizerService/StreamEvents`; every other method passes through untouched.
//! The route answers with `tonic::server::Grpc` over [`FrameCodec`], whose encoder writes a
//! `hooknorm.v1.StreamEventsResponse` by hand: an event is field 1 of the response's oneof, so
//! its encoding is a one-byte tag, a length prefix and the stored `Event` bytes, exactly what
//! prost would have produced. Requests decode with prost as usual.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BufMut;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, StdError};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstDecoder;
use tower::Service;

use super::NormalizerGrpc;
use crate::proto::v1::stream_events_response::Message as ResponseMessage;
use crate::proto::v1::{EventsSkipped, Heartbeat, StreamEventsRequest, StreamEventsResponse};
use crate::stream::{Queued, StreamItem};

/// The one method this route serves.
pub const STREAM_EVENTS_PATH: &str = "/hooknorm.v1.NormalizerService/StreamEvents";

/// `StreamEventsResponse.event`'s field number.
const EVENT_FIELD: u32 = 1;

/// Serves StreamEvents from pre-encoded frames and passes everything else to `inner`.
#[derive(Debug, Clone)]
pub struct StreamEventsRoute<S> {
    inner: S,
    service: NormalizerGrpc,
    max_decoding_message_size: usize,
    max_encoding_message_size: usize,
}

impl<S> StreamEventsRoute<S> {
    /// The limits are the generated server's, so both paths refuse the same sizes.
    pub fn new(
        inner: S,
        service: NormalizerGrpc,
        max_decoding_message_size: usize,
        max_encoding_message_size: usize,
    ) -> Self {
        StreamEventsRoute {
            inner,
            service,
            max_decoding_message_size,
            max_encoding_message_size,
        }
    }
}

impl<S: NamedService> NamedService for StreamEventsRoute<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for StreamEventsRoute<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != STREAM_EVENTS_PATH {
            return Box::pin(self.inner.call(request));
        }
        let handler = StreamEventsHandler(self.service.clone());
        let mut grpc = Grpc::new(FrameCodec)
            .max_decoding_message_size(self.max_decoding_message_size)
            .max_encoding_message_size(self.max_encoding_message_size);
        Box::pin(async move { Ok(grpc.server_streaming(handler, request).await) })
    }
}

/// The subscription as tonic polls it.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Queued, Status>> + Send>>;

/// Opens the subscription; the frames are encoded by [`FrameCodec`].
struct StreamEventsHandler(NormalizerGrpc);

impl ServerStreamingService<StreamEventsRequest> for StreamEventsHandler {
    type Response = Queued;
    type ResponseStream = FrameStream;
    type Future = BoxFuture<Response<FrameStream>, Status>;

    fn call(&mut self, request: Request<StreamEventsRequest>) -> Self::Future {
        let service = self.0.clone();
        let caller = super::Caller::of(&request);
        Box::pin(async move {
            let subscription = service.open_stream(caller, request.into_inner()).await?;
            let frames = ReceiverStream::new(subscription)
                .map(|queued| queued.map_err(|end| super::stream_end_status(&end)));
            Ok(Response::new(Box::pin(frames) as FrameStream))
        })
    }
}

/// Prost-decoded requests, hand-encoded [`StreamEventsResponse`] frames.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameCodec;

impl Codec for FrameCodec {
    type Encode = Queued;
    type Decode = StreamEventsRequest;
    type Encoder = FrameEncoder;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        FrameEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(ProstDecoder::default())
    }
}

/// Writes one `StreamEventsResponse` per queued item; dropping the item afterwards returns its
/// bytes to the subscriber's budget.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameEncoder;

impl Encoder for FrameEncoder {
    type Item = Queued;
    type Error = Status;

    fn encode(&mut self, queued: Queued, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        write_frame(&queued.item, dst)
    }
}

/// The encoding of `StreamEventsResponse { message: <item> }`.
pub fn write_frame(item: &StreamItem, dst: &mut impl BufMut) -> Result<(), Status> {
    let message = match item {
        StreamItem::Event(event) => {
            encode_key(EVENT_FIELD, WireType::LengthDelimited, dst);
            encode_varint(event.bytes.len() as u64, dst);
            dst.put_slice(&event.bytes);
            return Ok(());
        }
        StreamItem::Heartbeat { head, at } => ResponseMessage::Heartbeat(Heartbeat {
            head_sequence: *head,
            sent_at: Some(crate::event::timestamp(*at)),
        }),
        StreamItem::Skipped { after, through } => ResponseMessage::EventsSkipped(EventsSkipped {
            after_sequence: *after,
            last_skipped_sequence: *through,
        }),
    };
    StreamEventsResponse {
        message: Some(message),
    }
    .encode(dst)
    .map_err(|error| Status::internal(format!("cannot encode stream message: {error}")))
}

/// [`ProstDecoder`] for the request, behind a name of our own: a request that is not valid
/// protobuf is `INVALID_REQUEST`, as on the unary methods.
#[derive(Debug)]
pub struct RequestDecoder(ProstDecoder<StreamEventsRequest>);

impl Decoder for RequestDecoder {
    type Item = StreamEventsRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        self.0
            .decode(src)
            .map_err(|status| super::decode_errors::undecodable(&status).unwrap_or(status))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::log::EncodedEvent;
    use crate::proto::v1::{Event, ResourceRef};

    fn frame(item: &StreamItem) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(write_frame(item, &mut out).is_ok());
        out
    }

    #[test]
    fn event_frame_is_what_prost_encodes() {
        let event = Event {
            id: "evt_1".to_owned(),
            source: "gigs".to_owned(),
            r#type: "subscription.activated".to_owned(),
            subject: Some(ResourceRef {
                kind: "subscription".to_owned(),
                id: "sub_1".to_owned(),
            }),
            sequence: 42,
            ..Event::default()
        };
        let encoded = EncodedEvent::encode(&event);
        let expected = StreamEventsResponse {
            message: Some(ResponseMessage::Event(event.clone())),
        }
        .encode_to_vec();
        let frame = frame(&StreamItem::Event(encoded));
        assert_eq!(frame, expected);
        let decoded = StreamEventsResponse::decode(frame.as_slice()).unwrap();
        assert_eq!(decoded.message, Some(ResponseMessage::Event(event)));
    }

    #[test]
    fn large_event_frame_has_a_multi_byte_length() {
        let event = Event {
            id: "x".repeat(100_000),
            sequence: 7,
            ..Event::default()
        };
        let frame = frame(&StreamItem::Event(EncodedEvent {
            sequence: 7,
            bytes: Bytes::from(event.encode_to_vec()),
        }));
        let decoded = StreamEventsResponse::decode(frame.as_slice()).unwrap();
        assert_eq!(decoded.message, Some(ResponseMessage::Event(event)));
    }

    #[test]
    fn skipped_frame_is_what_prost_encodes() {
        let frame = frame(&StreamItem::Skipped {
            after: 3,
            through: 12,
        });
        let expected = StreamEventsResponse {
            message: Some(ResponseMessage::EventsSkipped(EventsSkipped {
                after_sequence: 3,
                last_skipped_sequence: 12,
            })),
        }
        .encode_to_vec();
        assert_eq!(frame, expected);
    }

    #[test]
    fn heartbeat_frame_is_what_prost_encodes() {
        let at = Utc.timestamp_opt(1_700_000_000, 5).unwrap();
        let frame = frame(&StreamItem::Heartbeat { head: 9, at });
        let expected = StreamEventsResponse {
            message: Some(ResponseMessage::Heartbeat(Heartbeat {
                head_sequence: 9,
                sent_at: Some(crate::event::timestamp(at)),
            })),
        }
        .encode_to_vec();
        assert_eq!(frame, expected);
    }
}
