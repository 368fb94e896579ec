//! The tonic service: converts `hooknorm.v1` requests into domain calls and domain errors into
//! `tonic::Status` with a `google.rpc.ErrorInfo`. No decisions are made here beyond conversion.

mod convert;
pub mod health;
mod oversize;
mod stream_events;

use std::collections::HashMap;
use std::pin::Pin;

use prost::Message as _;
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{ERROR_DOMAIN, ErrorClass, Reason};
use crate::log::LogError;
use crate::pipeline::{Pipeline, PipelineError};
use crate::proto::v1::normalizer_service_server::{NormalizerService, NormalizerServiceServer};
use crate::proto::v1::stream_events_response::Message;
use crate::proto::v1::{
    Event, EventsSkipped, GetEventRequest, GetEventResponse, Heartbeat, ListEventsRequest,
    ListEventsResponse, StreamEventsRequest, StreamEventsResponse, VerifyAndNormalizeRequest,
    VerifyAndNormalizeResponse,
};
use crate::stream::{StartError, StreamEnd, StreamItem, StreamSettings, Subscription};

pub use convert::RequestError;
pub use oversize::OversizeAsPayloadTooLarge;
pub use stream_events::{FrameCodec, STREAM_EVENTS_PATH, StreamEventsRoute};

/// `hooknorm.v1.NormalizerService` over a [`Pipeline`].
#[derive(Debug, Clone)]
pub struct NormalizerGrpc {
    pipeline: Pipeline,
    streams: StreamSettings,
    shutdown: watch::Receiver<bool>,
}

impl NormalizerGrpc {
    /// `shutdown` turning true ends every open stream with a resume cursor.
    pub fn new(
        pipeline: Pipeline,
        streams: StreamSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        NormalizerGrpc {
            pipeline,
            streams,
            shutdown,
        }
    }

    /// The tonic server for this service. Messages somewhat over the body limit still reach the
    /// pipeline (which names the size); larger ones are refused while decoding, without being
    /// buffered, and get the same `PAYLOAD_TOO_LARGE`. Outgoing messages may be as large as the
    /// largest stored event or a full ListEvents page, whichever is larger. StreamEvents is
    /// served from pre-encoded frames ([`StreamEventsRoute`]).
    pub fn into_server(
        self,
    ) -> StreamEventsRoute<OversizeAsPayloadTooLarge<NormalizerServiceServer<Self>>> {
        let max_body = self.pipeline.max_body_bytes();
        let decode_limit = max_body
            .saturating_mul(2)
            .max(max_body.saturating_add(1 << 20));
        let encode_limit =
            list_page_bytes(self.pipeline.max_event_bytes()).saturating_add(MESSAGE_OVERHEAD_BYTES);
        let server = NormalizerServiceServer::new(self.clone())
            .max_decoding_message_size(decode_limit)
            .max_encoding_message_size(encode_limit);
        StreamEventsRoute::new(
            OversizeAsPayloadTooLarge::new(server, max_body),
            self,
            decode_limit,
            encode_limit,
        )
    }

    /// Validates a StreamEvents request and starts its subscription.
    async fn open_stream(&self, request: StreamEventsRequest) -> Result<Subscription, Status> {
        let filter = convert::filter(request.filter).map_err(invalid_request)?;
        let start = convert::start(request.start).map_err(invalid_request)?;
        if *self.shutdown.borrow() {
            return Err(status(
                Reason::ShuttingDown,
                "server is shutting down".into(),
                HashMap::new(),
            ));
        }
        crate::stream::check_start(self.pipeline.log().as_ref(), start)
            .await
            .map_err(|error| match error {
                StartError::CursorAhead { head, .. } => status(
                    Reason::CursorOutOfRange,
                    error.to_string(),
                    HashMap::from([("head_sequence".to_owned(), head.to_string())]),
                ),
                StartError::Log(error) => log_status(&error),
            })?;
        Ok(crate::stream::subscribe(
            self.pipeline.log().clone(),
            filter,
            start,
            self.streams,
            self.shutdown.clone(),
        ))
    }
}

/// Room for a response's own fields around its events (an event's sequence, a page token).
const MESSAGE_OVERHEAD_BYTES: usize = 64 * 1024;

/// A ListEvents page stops before its events pass this many bytes, so a page of large events
/// stays under the 4 MiB gRPC clients accept by default (AIP-158 allows short pages); it holds
/// at least one event, so it is never less than the largest event.
const LIST_PAGE_BYTES: usize = crate::config::DEFAULT_MAX_EVENT_BYTES;

fn list_page_bytes(max_event_bytes: usize) -> usize {
    LIST_PAGE_BYTES.max(max_event_bytes)
}

impl NormalizerGrpc {
    /// Up to `page_size` matching events before `before`, newest first, stopping early where the
    /// page would pass its byte budget; and whether more follow. Read in small chunks, so a page
    /// of large events never holds more than a chunk beyond what it returns.
    async fn read_page(
        &self,
        filter: &crate::log::EventFilter,
        before: Option<u64>,
        page_size: usize,
    ) -> Result<(Vec<crate::proto::v1::Event>, bool), LogError> {
        let budget = list_page_bytes(self.pipeline.max_event_bytes());
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let mut cursor = before;
        loop {
            // One extra row tells whether another page exists without a second query.
            let wanted = (page_size + 1 - events.len()).min(LIST_READ_CHUNK);
            let chunk = self.pipeline.log().list(filter, cursor, wanted).await?;
            let exhausted = chunk.len() < wanted;
            for event in chunk {
                let size = prost::encoding::message::encoded_len(1, &event);
                if events.len() == page_size || (!events.is_empty() && bytes + size > budget) {
                    return Ok((events, true));
                }
                bytes += size;
                cursor = Some(event.sequence);
                events.push(event);
            }
            if exhausted {
                return Ok((events, false));
            }
        }
    }
}

/// Events read per query while filling a ListEvents page.
const LIST_READ_CHUNK: usize = 32;

type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl NormalizerService for NormalizerGrpc {
    async fn verify_and_normalize(
        &self,
        request: Request<VerifyAndNormalizeRequest>,
    ) -> Result<Response<VerifyAndNormalizeResponse>, Status> {
        let request = request.into_inner();
        let dry_run = request.dry_run;
        let webhook = convert::raw_webhook(request).map_err(invalid_request)?;
        let source = webhook.source.clone();
        match self.pipeline.process(webhook, dry_run).await {
            Ok(outcome) => Ok(Response::new(VerifyAndNormalizeResponse {
                event: Some(outcome.event),
                duplicate: outcome.duplicate,
            })),
            Err(error) => Err(pipeline_status(&source, &error)),
        }
    }

    type StreamEventsStream = EventStream;

    /// Reached only when this service is mounted without [`StreamEventsRoute`] (which
    /// `into_server` puts in front): decodes each stored event for tonic to encode again.
    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let subscription = self.open_stream(request.into_inner()).await?;
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
        let request = request.into_inner();
        let filter = convert::filter(request.filter).map_err(invalid_request)?;
        let page_size = convert::page_size(request.page_size).map_err(invalid_request)?;
        let before =
            convert::parse_page_token(&request.page_token, &filter).map_err(invalid_request)?;
        let (events, more) = self
            .read_page(&filter, before, page_size)
            .await
            .map_err(|error| log_status(&error))?;
        let next_page_token = match events.last() {
            Some(last) if more => convert::page_token(last.sequence, &filter),
            _ => String::new(),
        };
        Ok(Response::new(ListEventsResponse {
            events,
            next_page_token,
        }))
    }

    async fn get_event(
        &self,
        request: Request<GetEventRequest>,
    ) -> Result<Response<GetEventResponse>, Status> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(invalid_request(RequestError::MissingId));
        }
        match self.pipeline.log().get(&id).await {
            Ok(Some(event)) => Ok(Response::new(GetEventResponse { event: Some(event) })),
            Ok(None) => Err(status(
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

fn log_status(error: &LogError) -> Status {
    let reason = match error {
        LogError::Unavailable { .. } => Reason::StoreUnavailable,
        LogError::Closed => Reason::ShuttingDown,
        LogError::Corrupt { .. } => Reason::Internal,
    };
    tracing::warn!(%error, "event log read failed");
    status(reason, reason.public_message(error), HashMap::new())
}

/// Every stream end carries `resume_after_sequence` so clients reconnect without loss.
fn stream_end_status(end: &StreamEnd) -> Status {
    let reason = match end {
        StreamEnd::TooSlow { .. } => Reason::SubscriberTooSlow,
        StreamEnd::ShuttingDown { .. } => Reason::ShuttingDown,
        StreamEnd::Log { error, .. } => match error {
            LogError::Corrupt { .. } => Reason::Internal,
            _ => Reason::StoreUnavailable,
        },
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

fn invalid_request(error: RequestError) -> Status {
    status(Reason::InvalidRequest, error.to_string(), HashMap::new())
}

fn status(reason: Reason, message: String, metadata: HashMap<String, String>) -> Status {
    let code = match reason.class() {
        ErrorClass::NotFound => Code::NotFound,
        ErrorClass::Unauthenticated => Code::Unauthenticated,
        // PAYLOAD_TOO_LARGE has always been INVALID_ARGUMENT on gRPC; clients rely on it.
        ErrorClass::InvalidArgument | ErrorClass::TooLarge | ErrorClass::UnsupportedMediaType => {
            Code::InvalidArgument
        }
        ErrorClass::MethodNotAllowed => Code::Unimplemented,
        ErrorClass::RateLimited => Code::ResourceExhausted,
        ErrorClass::Unavailable => Code::Unavailable,
        ErrorClass::Aborted => Code::Aborted,
        ErrorClass::OutOfRange => Code::OutOfRange,
        ErrorClass::Internal => Code::Internal,
    };
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason.as_str(), ERROR_DOMAIN, metadata),
    )
}
