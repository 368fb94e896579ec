//! HTTP answers for refusals: the status from the shared error table (one match on
//! [`ErrorClass`]), `Retry-After` where retrying helps, and a JSON body with the same reason
//! code gRPC puts in its `ErrorInfo`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{ErrorClass, Reason};
use crate::pipeline::PipelineError;

/// The HTTP status for each class of refusal: the HTTP column of the shared error table.
pub fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorClass::InvalidArgument | ErrorClass::OutOfRange => StatusCode::BAD_REQUEST,
        ErrorClass::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorClass::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorClass::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorClass::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        // Only streams end this way; an HTTP request that meets it was in conflict with state.
        ErrorClass::Aborted => StatusCode::CONFLICT,
        ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Whether a provider should retry, and so is told when.
fn retryable(class: ErrorClass) -> bool {
    matches!(class, ErrorClass::Unavailable | ErrorClass::RateLimited)
}

/// A refusal, ready to be sent.
#[derive(Debug, Clone)]
pub struct HttpError {
    reason: Reason,
    message: String,
    retry_after_seconds: Option<u64>,
    allow: Option<&'static str>,
    /// What the sender sent that was refused (bounded), for the server's log only: echoing it
    /// back would reflect sender-controlled text into the answer.
    sent: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    reason: &'static str,
    message: &'a str,
}

impl HttpError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        HttpError {
            reason,
            message: message.into(),
            retry_after_seconds: None,
            allow: None,
            sent: None,
        }
    }

    /// The refusal for a pipeline error. Messages of store and internal failures are replaced:
    /// they may carry file paths or SQLite text, which a provider has no use for.
    pub fn from_pipeline(error: &PipelineError) -> Self {
        let reason = error.reason();
        HttpError::new(reason, reason.public_message(error))
    }

    /// Sets `Retry-After`, sent when the class says retrying helps (429, 503).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// Sets `Allow` (for 405).
    pub fn allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }

    /// Records the refused value for the log (never sent).
    pub fn sent(mut self, value: String) -> Self {
        self.sent = Some(value);
        self
    }

    /// The refused value, for the log line.
    pub fn sent_value(&self) -> Option<&str> {
        self.sent.as_deref()
    }

    pub fn reason(&self) -> Reason {
        self.reason
    }

    pub fn status(&self) -> StatusCode {
        status_of(self.reason.class())
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                reason: self.reason.as_str(),
                message: &self.message,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after_seconds
            && retryable(self.reason.class())
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(methods) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(methods));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogError;

    #[test]
    fn every_reason_has_the_documented_status() {
        for (reason, status) in [
            (Reason::SignatureMismatch, 401),
            (Reason::AddressNotAllowed, 401),
            (Reason::UnknownSource, 404),
            (Reason::UnknownPath, 404),
            (Reason::MalformedPayload, 400),
            (Reason::PayloadTooLarge, 413),
            (Reason::UnsupportedMediaType, 415),
            (Reason::MethodNotAllowed, 405),
            (Reason::RateLimited, 429),
            (Reason::StoreUnavailable, 503),
            (Reason::RequestTimeout, 503),
            (Reason::Internal, 500),
        ] {
            assert_eq!(status_of(reason.class()).as_u16(), status, "{reason}");
        }
    }

    #[test]
    fn store_detail_is_not_sent() {
        let error = PipelineError::Store(LogError::Unavailable {
            reason: "disk I/O error at /var/lib/hooknorm/events.sqlite3".into(),
        });
        let http = HttpError::from_pipeline(&error).retry_after(7);
        assert!(!http.to_string().contains("/var/lib"), "{http}");
        let response = http.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }

    #[test]
    fn retry_after_only_where_retrying_helps() {
        let response = HttpError::new(Reason::TokenMismatch, "no")
            .retry_after(5)
            .into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
