//! StreamEvents over pre-encoded messages: each event goes on the wire as the bytes the log
//! stored, shared by every subscriber, instead of a decoded `Event` that tonic re-encodes once
//! per subscriber.
//!
//! [`StreamEventsRoute`] sits in front of the generated server and takes only
//! `/hooknorm.v1.NormalizerService/StreamEvents`; every other method passes through untouched.
//! tonic's `Grpc::server_streaming` still decodes the request (limits, compression, errors) and
//! writes the response headers, or the whole answer when the subscription is refused; once a
//! subscription opens, its handler hands it over and the response's body is a
//! [`StreamBody`] over it in place of tonic's, which would copy every message.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, StdError};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstDecoder;
use tower::Service;

use super::NormalizerGrpc;
use super::stream_body::StreamBody;
use crate::proto::v1::StreamEventsRequest;
use crate::stream::Subscription;

/// The one method this route serves.
pub const STREAM_EVENTS_PATH: &str = "/hooknorm.v1.NormalizerService/StreamEvents";

/// Serves StreamEvents from pre-encoded messages and passes everything else to `inner`.
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
        let (opened, subscription) = oneshot::channel();
        let handler = StreamEventsHandler {
            service: self.service.clone(),
            opened: Some(opened),
        };
        let mut grpc = Grpc::new(RequestCodec)
            .max_decoding_message_size(self.max_decoding_message_size)
            .max_encoding_message_size(self.max_encoding_message_size);
        let max_message_bytes = self.max_encoding_message_size;
        Box::pin(async move {
            let response = grpc.server_streaming(handler, request).await;
            // The handler is gone by now: it either handed its subscription over or refused.
            Ok(match subscription.await {
                Ok(subscription) => {
                    let (parts, _empty) = response.into_parts();
                    let body = StreamBody::new(subscription, max_message_bytes);
                    http::Response::from_parts(parts, tonic::body::Body::new(body))
                }
                Err(_refused) => response,
            })
        })
    }
}

/// Opens the subscription and hands it to the route, which answers with its messages; what it
/// gives tonic to encode is empty.
struct StreamEventsHandler {
    service: NormalizerGrpc,
    opened: Option<oneshot::Sender<Subscription>>,
}

/// What tonic is given to encode: nothing, ever.
pub enum NoMessage {}

type NoMessages = tokio_stream::Empty<Result<NoMessage, Status>>;

impl ServerStreamingService<StreamEventsRequest> for StreamEventsHandler {
    type Response = NoMessage;
    type ResponseStream = NoMessages;
    type Future = BoxFuture<Response<NoMessages>, Status>;

    fn call(&mut self, request: Request<StreamEventsRequest>) -> Self::Future {
        let service = self.service.clone();
        let opened = self.opened.take();
        let caller = super::Caller::of(&request);
        Box::pin(async move {
            let subscription = service.open_stream(caller, request.into_inner()).await?;
            if let Some(opened) = opened {
                // The route waits for it; were it gone, so would be the subscription with it.
                let _ = opened.send(subscription);
            }
            Ok(Response::new(tokio_stream::empty()))
        })
    }
}

/// Prost-decoded requests; responses are never encoded by tonic ([`StreamBody`] writes them).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestCodec;

impl Codec for RequestCodec {
    type Encode = NoMessage;
    type Decode = StreamEventsRequest;
    type Encoder = NoEncoder;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        NoEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(ProstDecoder::default())
    }
}

/// The encoder for [`NoMessage`]: there is nothing to call it with.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEncoder;

impl Encoder for NoEncoder {
    type Item = NoMessage;
    type Error = Status;

    fn encode(&mut self, item: NoMessage, _: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {}
    }
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
