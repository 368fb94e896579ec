//! The tonic service: converts `hooknorm.v1` requests into domain calls and domain errors into
//! `tonic::Status` with a `google.rpc.ErrorInfo`, whose code comes from the shared reason table
//! ([`Reason::spec`]). No decisions are made here beyond conversion: who may call is
//! [`auth`]'s layer in front of the service and the domain's [`Principal`] it hands on.
//!
//! [`Principal`]: crate::auth::Principal

pub mod auth;
mod convert;
mod decode_errors;
pub mod health;
mod stream_body;
mod stream_events;

/// The webhook a `VerifyAndNormalize` request carries (benches feed the pipeline with it too).
pub use convert::raw_webhook;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use chrono::Utc;
use prost::Message as _;
use tokio::sync::{Semaphore, watch};
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auth::{AuthError, Authenticator};
use crate::error::{ERROR_DOMAIN, GrpcCode, Reason, log_refusal};
use crate::log::LogError;
use crate::log::page::{self, PageError};
use crate::pipeline::{Pipeline, PipelineError};
use crate::proto::v1::normalizer_service_server::{NormalizerService, NormalizerServiceServer};
use crate::proto::v1::stream_events_response::Message;
use crate::proto::v1::{
    Event, EventsSkipped, GetEventRequest, GetEventResponse, Heartbeat, ListEventsRequest,
    ListEventsResponse, StreamEventsRequest, StreamEventsResponse, VerifyAndNormalizeRequest,
    VerifyAndNormalizeResponse,
};
use crate::stream::{OpenError, StartError, StreamEnd, StreamItem, StreamSettings, Subscription};

pub use auth::{Authenticated, Caller};
pub use convert::RequestError;
pub use decode_errors::DecodeErrorsAsReasons;
pub use stream_events::{STREAM_EVENTS_PATH, StreamEventsRoute};

/// `hooknorm.v1.NormalizerService` over a [`Pipeline`].
#[derive(Debug, Clone)]
pub struct NormalizerGrpc {
    pipeline: Pipeline,
    streams: StreamSettings,
    shutdown: watch::Receiver<bool>,
    /// One permit per `VerifyAndNormalize` call being processed (`grpc.max_concurrency`).
    processing: Arc<Semaphore>,
}

impl NormalizerGrpc {
    /// `shutdown` turning true ends every open stream with a resume cursor; `processing` holds
    /// a permit for each `VerifyAndNormalize` call that may be processed at once.
    pub fn new(
        pipeline: Pipeline,
        streams: StreamSettings,
        shutdown: watch::Receiver<bool>,
        processing: Arc<Semaphore>,
    ) -> Self {
        NormalizerGrpc {
            pipeline,
            streams,
            shutdown,
            processing,
        }
    }

    /// The tonic server for this service. Messages somewhat over the body limit still reach the
    /// pipeline (which names the size); larger ones are refused while decoding, without being
    /// buffered, and get the same `PAYLOAD_TOO_LARGE`. Outgoing messages may be as large as the
    /// largest stored event or a full ListEvents page, whichever is larger. StreamEvents is
    /// served from pre-encoded frames ([`StreamEventsRoute`]). Every method, that route
    /// included, is behind [`Authenticated`].
    pub fn into_server(
        self,
        authenticator: Arc<Authenticator>,
    ) -> Authenticated<StreamEventsRoute<DecodeErrorsAsReasons<NormalizerServiceServer<Self>>>>
    {
        let max_body = self.pipeline.max_body_bytes();
        let decode_limit = max_body
            .saturating_mul(2)
            .max(max_body.saturating_add(1 << 20));
        let encode_limit = page::max_page_bytes(self.pipeline.max_event_bytes())
            .saturating_add(MESSAGE_OVERHEAD_BYTES);
        let server = NormalizerServiceServer::new(self.clone())
            .max_decoding_message_size(decode_limit)
            .max_encoding_message_size(encode_limit);
        let route = StreamEventsRoute::new(
            DecodeErrorsAsReasons::new(server, max_body),
            self,
            decode_limit,
            encode_limit,
        );
        Authenticated::new(route, authenticator)
    }

    /// Converts a StreamEvents request, narrows its filter to the caller's sources and opens
    /// its subscription.
    async fn open_stream(
        &self,
        caller: Result<Caller, AuthError>,
        request: StreamEventsRequest,
    ) -> Result<Subscription, Status> {
        let caller = caller.map_err(|error| auth_status(&error))?;
        let mut filter = convert::filter(request.filter).map_err(invalid_request)?;
        caller
            .principal
            .restrict(&mut filter)
            .map_err(|error| auth_status(&error))?;
        let start = convert::start(request.start).map_err(invalid_request)?;
        crate::stream::open(
            self.pipeline.log().clone(),
            filter,
            start,
            self.streams,
            self.shutdown.clone(),
        )
        .await
        .map_err(|error| open_status(&error))
    }
}

/// Room for a response's own fields around its events (an event's sequence, a page token).
const MESSAGE_OVERHEAD_BYTES: usize = 64 * 1024;

type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl NormalizerService for NormalizerGrpc {
    async fn verify_and_normalize(
        &self,
        request: Request<VerifyAndNormalizeRequest>,
    ) -> Result<Response<VerifyAndNormalizeResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let dry_run = request.dry_run;
        let source = request.source.clone();
        let peer = caller.as_ref().ok().and_then(|caller| caller.peer);
        let refuse = |reason, error: &dyn std::fmt::Display| {
            log_refusal(&source, reason, peer.map(|peer| peer.ip()), error);
        };
        let caller = caller
            .inspect_err(|error| refuse(error.reason(), error))
            .map_err(|error| auth_status(&error))?;
        let (claimed, payloads) = convert::claimed_origin(&request)
            .and_then(|claimed| Ok((claimed, convert::answer_payloads(request.view)?)))
            .inspect_err(|error| refuse(Reason::InvalidRequest, error))
            .map_err(invalid_request)?;
        let origin = caller
            .principal
            .check_source(&source)
            .and_then(|()| {
                let peer = peer.map(|peer| peer.ip());
                caller.principal.origin(claimed, peer, Utc::now(), dry_run)
            })
            .inspect_err(|error| refuse(error.reason(), error))
            .map_err(|error| auth_status(&error))?;
        // Shed at once rather than queued: a caller that is told to retry is better off than
        // one waiting behind a stalled store.
        let Ok(_permit) = self.processing.clone().try_acquire_owned() else {
            let message = "too many webhooks in flight; retry later";
            refuse(Reason::RateLimited, &message);
            return Err(status(Reason::RateLimited, message.into(), HashMap::new()));
        };
        let webhook = convert::raw_webhook(request, origin);
        let peer = webhook.remote_addr;
        match self.pipeline.process(webhook, dry_run).await {
            Ok(mut outcome) => {
                if !payloads {
                    crate::event::strip_payloads(&mut outcome.event);
                }
                Ok(Response::new(VerifyAndNormalizeResponse {
                    event: Some(outcome.event),
                    duplicate: outcome.duplicate,
                }))
            }
            Err(error) => {
                log_refusal(&source, error.reason(), peer, &error);
                Err(pipeline_status(&source, &error))
            }
        }
    }

    type StreamEventsStream = EventStream;

    /// Reached only when this service is mounted without [`StreamEventsRoute`] (which
    /// `into_server` puts in front): decodes each stored event for tonic to encode again.
    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let caller = Caller::of(&request);
        let subscription = self.open_stream(caller, request.into_inner()).await?;
        let stream = ReceiverStream::new(subscription).map(|queued| match queued {
            Ok(queued) => match queued.item {
                StreamItem::Event(event) => Event::decode(event.bytes)
                    .map(|event| StreamEventsResponse {
                        message: Some(Message::Event(event)),
                    })
                    .map_err(|error| {
                        log_status(&LogError::Corrupt {
                            sequence: event.sequence,
                            reason: error.to_string(),
                        })
                    }),
                StreamItem::Heartbeat { head, at } => Ok(StreamEventsResponse {
                    message: Some(Message::Heartbeat(Heartbeat {
                        head_sequence: head,
                        sent_at: Some(crate::event::timestamp(at)),
                    })),
                }),
                StreamItem::Skipped { after, through } => Ok(StreamEventsResponse {
                    message: Some(Message::EventsSkipped(EventsSkipped {
                        after_sequence: after,
                        last_skipped_sequence: through,
                    })),
                }),
            },
            Err(end) => Err(stream_end_status(&end)),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_events(
        &self,
        request: Request<ListEventsRequest>,
    ) -> Result<Response<ListEventsResponse>, Status> {
        let caller = Caller::of(&request).map_err(|error| auth_status(&error))?;
        let request = request.into_inner();
        let mut filter = convert::filter(request.filter).map_err(invalid_request)?;
        caller
            .principal
            .restrict(&mut filter)
            .map_err(|error| auth_status(&error))?;
        let page = page::list_page(
            self.pipeline.log().as_ref(),
            &filter,
            request.page_size,
            &request.page_token,
            self.pipeline.max_event_bytes(),
        )
        .await
        .map_err(|error| page_status(&error))?;
        Ok(Response::new(ListEventsResponse {
            events: page.events,
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_event(
        &self,
        request: Request<GetEventRequest>,
    ) -> Result<Response<GetEventResponse>, Status> {
        let caller = Caller::of(&request).map_err(|error| auth_status(&error))?;
        let GetEventRequest { id, view } = request.into_inner();
        if id.is_empty() {
            return Err(invalid_request(RequestError::MissingId));
        }
        let view = convert::view(view).map_err(invalid_request)?;
        match self.pipeline.log().get(&id, view).await {
            // A foreign event is answered as missing: its existence is not the caller's to know.
            Ok(Some(event)) if caller.principal.may_use(&event.source) => {
                Ok(Response::new(GetEventResponse { event: Some(event) }))
            }
            Ok(_) => Err(status(
                Reason::EventNotFound,
                format!("no stored event with id `{id}`"),
                HashMap::from([("id".to_owned(), id)]),
            )),
            Err(error) => Err(log_status(&error)),
        }
    }
}

/// The gRPC status for a pipeline error: code from the shared table, ErrorInfo with the reason.
pub fn pipeline_status(source: &str, error: &PipelineError) -> Status {
    let mut metadata = HashMap::new();
    metadata.insert("source".to_owned(), source.to_owned());
    let reason = error.reason();
    status(reason, reason.public_message(error), metadata)
}

/// A failed read of the log: logged here, since no refusal log covers reads.
fn log_status(error: &LogError) -> Status {
    let reason = error.reason();
    tracing::warn!(%error, "event log read failed");
    status(reason, reason.public_message(error), HashMap::new())
}

fn page_status(error: &PageError) -> Status {
    match error {
        PageError::Log(error) => log_status(error),
        PageError::PageSize | PageError::PageToken => {
            status(error.reason(), error.to_string(), HashMap::new())
        }
    }
}

/// A refused subscription; a cursor past the head says where the head is.
fn open_status(error: &OpenError) -> Status {
    let metadata = match error {
        OpenError::Start(StartError::CursorAhead { head, .. }) => {
            HashMap::from([("head_sequence".to_owned(), head.to_string())])
        }
        OpenError::Start(StartError::Log(_)) | OpenError::ShuttingDown => HashMap::new(),
    };
    status(error.reason(), error.to_string(), metadata)
}

/// Every stream end carries `resume_after_sequence` so clients reconnect without loss.
fn stream_end_status(end: &StreamEnd) -> Status {
    let reason = match end {
        StreamEnd::TooSlow { .. } => Reason::SubscriberTooSlow,
        StreamEnd::ShuttingDown { .. } => Reason::ShuttingDown,
        StreamEnd::Log { error, .. } => error.reason(),
    };
    let metadata = HashMap::from([(
        "resume_after_sequence".to_owned(),
        end.resume_after().to_string(),
    )]);
    let message = match end {
        StreamEnd::Log { .. } => reason.public_message(end),
        // Says where to resume; carries no internal detail.
        StreamEnd::TooSlow { .. } | StreamEnd::ShuttingDown { .. } => end.to_string(),
    };
    status(reason, message, metadata)
}

/// A caller refused by the auth layer's rules, from inside a handler.
fn auth_status(error: &AuthError) -> Status {
    status(error.reason(), error.to_string(), HashMap::new())
}

fn invalid_request(error: RequestError) -> Status {
    status(Reason::InvalidRequest, error.to_string(), HashMap::new())
}

/// The one place a [`Reason`] becomes a `tonic::Status`: the code from the shared table, the
/// reason in an `ErrorInfo`.
fn status(reason: Reason, message: String, metadata: HashMap<String, String>) -> Status {
    Status::with_error_details(
        Code::from(reason.spec().grpc),
        message,
        ErrorDetails::with_error_info(reason.as_str(), ERROR_DOMAIN, metadata),
    )
}

impl From<GrpcCode> for Code {
    fn from(code: GrpcCode) -> Code {
        match code {
            GrpcCode::InvalidArgument => Code::InvalidArgument,
            GrpcCode::NotFound => Code::NotFound,
            GrpcCode::ResourceExhausted => Code::ResourceExhausted,
            GrpcCode::Aborted => Code::Aborted,
            GrpcCode::PermissionDenied => Code::PermissionDenied,
            GrpcCode::OutOfRange => Code::OutOfRange,
            GrpcCode::Unimplemented => Code::Unimplemented,
            GrpcCode::Internal => Code::Internal,
            GrpcCode::Unavailable => Code::Unavailable,
            GrpcCode::Unauthenticated => Code::Unauthenticated,
        }
    }
}

#[cfg(test)]
mod tests;
