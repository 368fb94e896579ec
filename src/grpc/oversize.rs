//! Gives bodies too large even to decode the same `PAYLOAD_TOO_LARGE` answer as bodies just over
//! the limit.
//!
//! tonic refuses a message over the decoding limit before our handler runs, with a bare
//! `OUT_OF_RANGE`. This wrapper rewrites exactly that answer into the shared error table's status
//! and `ErrorInfo`, so clients match one reason whatever the size.

use std::collections::HashMap;
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tower::Service;

use crate::error::{Reason, log_refusal};

/// The decoding-limit message tonic uses; matched so no other OUT_OF_RANGE is rewritten.
const TONIC_TOO_LARGE: &str = "decoded message length too large";

/// Wraps a tonic service; see the module docs.
#[derive(Debug, Clone)]
pub struct OversizeAsPayloadTooLarge<S> {
    inner: S,
    max_body_bytes: usize,
}

impl<S> OversizeAsPayloadTooLarge<S> {
    pub fn new(inner: S, max_body_bytes: usize) -> Self {
        OversizeAsPayloadTooLarge {
            inner,
            max_body_bytes,
        }
    }
}

impl<S: NamedService> NamedService for OversizeAsPayloadTooLarge<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for OversizeAsPayloadTooLarge<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let limit = self.max_body_bytes;
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let Some(status) = tonic::Status::from_header_map(response.headers()) else {
                return Ok(response);
            };
            if status.code() != tonic::Code::OutOfRange
                || !status.message().contains(TONIC_TOO_LARGE)
            {
                return Ok(response);
            }
            // Refused before decoding: neither the source nor the sender's address is known.
            log_refusal("", Reason::PayloadTooLarge, None, &status.message());
            Ok(super::status(
                Reason::PayloadTooLarge,
                format!("body is over the limit of {limit} bytes"),
                HashMap::new(),
            )
            .into_http())
        })
    }
}
