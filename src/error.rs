//! The reasons a webhook is refused, and the one table that maps each to a transport status.
//!
//! Domain errors (`VerifyError`, `NormalizeError`, `PipelineError`) each say which [`Reason`] they
//! are; transports look the reason up here and never decide a status of their own. Each
//! transport turns an [`ErrorClass`] into its status in exactly one match: `grpc::status` (the
//! gRPC code) and `http::status_of` (the HTTP status).

use std::fmt;

/// A stable, machine-readable refusal reason: the `google.rpc.ErrorInfo.reason` on gRPC and the
/// `reason` field of the HTTP error body. Public API: never rename a variant's string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    UnknownSource,
    MissingSignature,
    MalformedSignature,
    SignatureMismatch,
    TimestampOutOfTolerance,
    MissingToken,
    TokenMismatch,
    AddressNotAllowed,
    MalformedPayload,
    PayloadTooLarge,
    InvalidRequest,
    EventNotFound,
    StoreUnavailable,
    ShuttingDown,
    SubscriberTooSlow,
    /// A resume cursor past the newest stored event: the store was reset or restored, and
    /// resuming there would silently skip the next events.
    CursorOutOfRange,
    /// HTTP only: the request's `Content-Type` is not JSON.
    UnsupportedMediaType,
    /// HTTP only: a method other than the route's (`POST` for webhooks).
    MethodNotAllowed,
    /// HTTP only: no route at this path.
    UnknownPath,
    /// The configured ingest rate or concurrency limit is exceeded; retry later.
    RateLimited,
    /// The request took longer than the configured timeout; retry later.
    RequestTimeout,
    Internal,
}

/// The transport-neutral class of a failure; `grpc` and `http` each map it in one match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    NotFound,
    Unauthenticated,
    InvalidArgument,
    /// The body is over the configured limit.
    TooLarge,
    /// The body is declared as something other than JSON.
    UnsupportedMediaType,
    /// The resource exists but not for this method.
    MethodNotAllowed,
    /// The sender exceeds the configured rate or concurrency; try again later.
    RateLimited,
    /// Try again later (the store cannot write, the server is stopping, the request timed out).
    Unavailable,
    /// The operation was cut short; the client resumes from its cursor.
    Aborted,
    /// A position past the end of what exists.
    OutOfRange,
    Internal,
}

/// `ErrorInfo.domain` for every hooknorm error.
pub const ERROR_DOMAIN: &str = "hooknorm";

impl Reason {
    /// The reason string clients match on.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownSource => "UNKNOWN_SOURCE",
            Reason::MissingSignature => "MISSING_SIGNATURE",
            Reason::MalformedSignature => "MALFORMED_SIGNATURE",
            Reason::SignatureMismatch => "SIGNATURE_MISMATCH",
            Reason::TimestampOutOfTolerance => "TIMESTAMP_OUT_OF_TOLERANCE",
            Reason::MissingToken => "MISSING_TOKEN",
            Reason::TokenMismatch => "TOKEN_MISMATCH",
            Reason::AddressNotAllowed => "ADDRESS_NOT_ALLOWED",
            Reason::MalformedPayload => "MALFORMED_PAYLOAD",
            Reason::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Reason::InvalidRequest => "INVALID_REQUEST",
            Reason::EventNotFound => "EVENT_NOT_FOUND",
            Reason::StoreUnavailable => "STORE_UNAVAILABLE",
            Reason::ShuttingDown => "SHUTTING_DOWN",
            Reason::SubscriberTooSlow => "SUBSCRIBER_TOO_SLOW",
            Reason::CursorOutOfRange => "CURSOR_OUT_OF_RANGE",
            Reason::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Reason::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Reason::UnknownPath => "UNKNOWN_PATH",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::RequestTimeout => "REQUEST_TIMEOUT",
            Reason::Internal => "INTERNAL",
        }
    }

    /// The status class: the single table every transport follows.
    pub fn class(self) -> ErrorClass {
        match self {
            Reason::UnknownSource | Reason::EventNotFound | Reason::UnknownPath => {
                ErrorClass::NotFound
            }
            Reason::MissingSignature
            | Reason::MalformedSignature
            | Reason::SignatureMismatch
            | Reason::TimestampOutOfTolerance
            | Reason::MissingToken
            | Reason::TokenMismatch
            | Reason::AddressNotAllowed => ErrorClass::Unauthenticated,
            Reason::MalformedPayload | Reason::InvalidRequest => ErrorClass::InvalidArgument,
            Reason::PayloadTooLarge => ErrorClass::TooLarge,
            Reason::UnsupportedMediaType => ErrorClass::UnsupportedMediaType,
            Reason::MethodNotAllowed => ErrorClass::MethodNotAllowed,
            Reason::RateLimited => ErrorClass::RateLimited,
            Reason::StoreUnavailable | Reason::ShuttingDown | Reason::RequestTimeout => {
                ErrorClass::Unavailable
            }
            Reason::SubscriberTooSlow => ErrorClass::Aborted,
            Reason::CursorOutOfRange => ErrorClass::OutOfRange,
            Reason::Internal => ErrorClass::Internal,
        }
    }
}

impl Reason {
    /// The message a client sees for an error with this reason: the error's own text, except
    /// for store and internal failures, whose text may carry file paths or SQLite detail that
    /// only the server log should see.
    pub fn public_message(self, error: &dyn fmt::Display) -> String {
        match self {
            Reason::StoreUnavailable => "the event log is unavailable now; retry later".into(),
            Reason::ShuttingDown => "server is shutting down; retry later".into(),
            Reason::Internal => "internal error".into(),
            _ => error.to_string(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_reasons_are_unauthenticated() {
        for reason in [
            Reason::MissingSignature,
            Reason::MalformedSignature,
            Reason::SignatureMismatch,
            Reason::TimestampOutOfTolerance,
            Reason::MissingToken,
            Reason::TokenMismatch,
            Reason::AddressNotAllowed,
        ] {
            assert_eq!(reason.class(), ErrorClass::Unauthenticated, "{reason}");
        }
        assert_eq!(Reason::UnknownSource.class(), ErrorClass::NotFound);
        assert_eq!(Reason::PayloadTooLarge.class(), ErrorClass::TooLarge);
        assert_eq!(Reason::RateLimited.class(), ErrorClass::RateLimited);
    }
}
