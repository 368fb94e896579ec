//! The tonic service: converts `hooknorm.v1` requests into domain calls and domain errors into
//! `tonic::Status` with a `google.rpc.ErrorInfo`. No decisions are made here beyond conversion.

mod convert;
mod oversize;

use std::collections::HashMap;
use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{ERROR_DOMAIN, ErrorClass, Reason};
use crate::pipeline::{Pipeline, PipelineError};
use crate::proto::v1::normalizer_service_server::{NormalizerService, NormalizerServiceServer};
use crate::proto::v1::{
    StreamEventsRequest, StreamEventsResponse, VerifyAndNormalizeRequest,
    VerifyAndNormalizeResponse,
};

pub use convert::RequestError;
pub use oversize::OversizeAsPayloadTooLarge;

/// Bodies above this size are verified on the blocking pool: hashing a large body takes long
/// enough to stall other requests sharing the async worker.
const INLINE_BODY_LIMIT: usize = 64 * 1024;

/// `hooknorm.v1.NormalizerService` over a [`Pipeline`].
#[derive(Debug, Clone)]
pub struct NormalizerGrpc {
    pipeline: Pipeline,
}

impl NormalizerGrpc {
    pub fn new(pipeline: Pipeline) -> Self {
        NormalizerGrpc { pipeline }
    }

    /// The tonic server for this service. Messages somewhat over the body limit still reach the
    /// pipeline (which names the size); larger ones are refused while decoding, without being
    /// buffered, and get the same `PAYLOAD_TOO_LARGE`.
    pub fn into_server(self) -> OversizeAsPayloadTooLarge<NormalizerServiceServer<Self>> {
        let max_body = self.pipeline.max_body_bytes();
        let decode_limit = max_body
            .saturating_mul(2)
            .max(max_body.saturating_add(1 << 20));
        let server = NormalizerServiceServer::new(self)
            .max_decoding_message_size(decode_limit)
            .max_encoding_message_size(decode_limit.saturating_mul(2));
        OversizeAsPayloadTooLarge::new(server, max_body)
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl NormalizerService for NormalizerGrpc {
    async fn verify_and_normalize(
        &self,
        request: Request<VerifyAndNormalizeRequest>,
    ) -> Result<Response<VerifyAndNormalizeResponse>, Status> {
        let request = request.into_inner();
        let dry_run = request.dry_run;
        let webhook = convert::raw_webhook(request)
            .map_err(|error| status(Reason::InvalidRequest, error.to_string(), HashMap::new()))?;
        let source = webhook.source.clone();
        let outcome = if webhook.body.len() > INLINE_BODY_LIMIT {
            let pipeline = self.pipeline.clone();
            tokio::task::spawn_blocking(move || pipeline.process(webhook))
                .await
                .map_err(|error| {
                    tracing::error!(%error, "verification task failed");
                    status(Reason::Internal, "internal error".into(), HashMap::new())
                })?
        } else {
            self.pipeline.process(webhook)
        };
        match outcome {
            Ok(outcome) => {
                tracing::debug!(
                    source = %source,
                    id = %outcome.event.id,
                    r#type = %outcome.event.r#type,
                    dry_run,
                    "webhook normalized"
                );
                Ok(Response::new(VerifyAndNormalizeResponse {
                    event: Some(outcome.event),
                    duplicate: outcome.duplicate,
                }))
            }
            Err(error) => {
                tracing::info!(source = %source, reason = %error.reason(), %error, "webhook refused");
                Err(pipeline_status(&source, &error))
            }
        }
    }

    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        _request: Request<StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        Err(Status::unimplemented(
            "stream events needs the durable event log, which this build does not have yet",
        ))
    }
}

/// The gRPC status for a pipeline error: code from the shared table, ErrorInfo with the reason.
pub fn pipeline_status(source: &str, error: &PipelineError) -> Status {
    let mut metadata = HashMap::new();
    metadata.insert("source".to_owned(), source.to_owned());
    status(error.reason(), error.to_string(), metadata)
}

fn status(reason: Reason, message: String, metadata: HashMap<String, String>) -> Status {
    let code = match reason.class() {
        ErrorClass::NotFound => Code::NotFound,
        ErrorClass::Unauthenticated => Code::Unauthenticated,
        ErrorClass::InvalidArgument => Code::InvalidArgument,
        ErrorClass::Internal => Code::Internal,
    };
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason.as_str(), ERROR_DOMAIN, metadata),
    )
}
