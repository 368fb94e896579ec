//! Gives requests refused while decoding, before any handler runs, an answer from the shared
//! error table like every other refusal.
//!
//! tonic refuses a message over the decoding limit with a bare `OUT_OF_RANGE`: it becomes
//! `PAYLOAD_TOO_LARGE`, the answer bodies just over the limit get, so clients match one reason
//! whatever the size. A message that is not valid protobuf (a string field holding bytes that
//! are not UTF-8, a truncated field) gets a bare `INTERNAL` from tonic, which reads as the
//! server's fault and invites a retry of the same bytes: it becomes `INVALID_REQUEST`.

use std::collections::HashMap;
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tower::Service;

use crate::error::{Reason, log_refusal};

/// The decoding-limit message tonic uses; matched so no other OUT_OF_RANGE is rewritten.
const TONIC_TOO_LARGE: &str = "decoded message length too large";

/// How prost's decode errors start (tonic sends them as INTERNAL); matched so no other
/// INTERNAL is rewritten.
const PROST_UNDECODABLE: &str = "failed to decode Protobuf message";

/// The request's answer when `status` is tonic's for a message that is not valid protobuf;
/// `None` for any other status.
pub fn undecodable(status: &tonic::Status) -> Option<tonic::Status> {
    let detail = status.message().strip_prefix(PROST_UNDECODABLE)?;
    (status.code() == tonic::Code::Internal).then(|| {
        super::status(
            Reason::InvalidRequest,
            format!(
                "request is not a valid protobuf message{}",
                detail.chars().take(200).collect::<String>()
            ),
            HashMap::new(),
        )
    })
}

/// Wraps a tonic service; see the module docs.
#[derive(Debug, Clone)]
pub struct DecodeErrorsAsReasons<S> {
    inner: S,
    max_body_bytes: usize,
}

impl<S> DecodeErrorsAsReasons<S> {
    pub fn new(inner: S, max_body_bytes: usize) -> Self {
        DecodeErrorsAsReasons {
            inner,
            max_body_bytes,
        }
    }
}

impl<S: NamedService> NamedService for DecodeErrorsAsReasons<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for DecodeErrorsAsReasons<S>
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
            // Refused before decoding: neither the source nor the sender's address is known.
            if let Some(answer) = undecodable(&status) {
                log_refusal("", Reason::InvalidRequest, None, &status.message());
                return Ok(answer.into_http());
            }
            if status.code() != tonic::Code::OutOfRange
                || !status.message().contains(TONIC_TOO_LARGE)
            {
                return Ok(response);
            }
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

#[cfg(test)]
mod tests {
    use tonic_types::StatusExt;

    use super::*;

    #[test]
    fn prost_decode_errors_become_invalid_request_and_nothing_else_does() {
        // What tonic answers a header value that is not UTF-8 (found by tests/robustness).
        let decode = tonic::Status::internal(
            "failed to decode Protobuf message: Header.value: \
             VerifyAndNormalizeRequest.headers: invalid string value: data is not UTF-8 encoded",
        );
        let answer = undecodable(&decode).expect("rewritten");
        assert_eq!(answer.code(), tonic::Code::InvalidArgument);
        let info = answer.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "INVALID_REQUEST");
        assert!(
            answer.message().contains("not UTF-8"),
            "{}",
            answer.message()
        );

        for other in [
            tonic::Status::internal("internal error"),
            tonic::Status::unavailable("failed to decode Protobuf message: x"),
        ] {
            assert!(undecodable(&other).is_none(), "{other:?}");
        }
    }
}
