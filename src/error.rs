//! The reasons a webhook or request is refused, the one table that maps each to its gRPC code,
//! HTTP status and retryability, and the one log line every refused webhook gets.
//!
//! Domain errors (`VerifyError`, `NormalizeError`, `LogError`, `PipelineError`, `PageError`)
//! each say which [`Reason`] they are; transports look the reason up in [`Reason::spec`] and
//! never decide a status of their own. No transport type appears here: the gRPC code is a
//! [`GrpcCode`], which `grpc` converts to `tonic::Code` in one `From`.

use std::fmt;
use std::net::IpAddr;

/// Defines [`Reason`] and [`Reason::ALL`] from one list, so `ALL` cannot miss a variant.
macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident,)*) => {
        /// A stable, machine-readable refusal reason: the `google.rpc.ErrorInfo.reason` on gRPC
        /// and the `reason` field of the HTTP error body. Public API: never rename a variant's
        /// string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, so tests can walk the table.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];
        }
    };
}

reasons! {
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
    /// gRPC: no API key (`authorization: Bearer …`) and no client certificate that maps to one.
    MissingApiKey,
    /// gRPC: the presented API key matches no configured key.
    UnknownApiKey,
    /// The caller's key lacks the scope the method needs (`ingest` or `read`).
    PermissionDenied,
    /// The caller's key is limited to sources that do not include one it asked for.
    SourceNotAllowed,
    /// A forwarder's `received_at` is further from now than `auth.received_at_skew_seconds`.
    ReceivedAtOutOfRange,
    Internal,
}

/// The gRPC status codes hooknorm answers with, numbered as gRPC numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    InvalidArgument = 3,
    NotFound = 5,
    ResourceExhausted = 8,
    Aborted = 10,
    PermissionDenied = 7,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// How every transport answers one [`Reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonSpec {
    /// The string clients match on.
    pub name: &'static str,
    pub grpc: GrpcCode,
    /// The HTTP status code.
    pub http: u16,
    /// Whether trying again later can succeed; HTTP then sends `Retry-After`.
    pub retryable: bool,
}

/// `ErrorInfo.domain` for every hooknorm error.
pub const ERROR_DOMAIN: &str = "hooknorm";

const fn row(name: &'static str, grpc: GrpcCode, http: u16, retryable: bool) -> ReasonSpec {
    ReasonSpec {
        name,
        grpc,
        http,
        retryable,
    }
}

impl Reason {
    /// The table: the one place a reason's name, gRPC code, HTTP status and retryability are
    /// decided. README's "Error reasons" table is checked against it.
    pub const fn spec(self) -> ReasonSpec {
        use GrpcCode::*;
        match self {
            Reason::UnknownSource => row("UNKNOWN_SOURCE", NotFound, 404, false),
            Reason::MissingSignature => row("MISSING_SIGNATURE", Unauthenticated, 401, false),
            Reason::MalformedSignature => row("MALFORMED_SIGNATURE", Unauthenticated, 401, false),
            Reason::SignatureMismatch => row("SIGNATURE_MISMATCH", Unauthenticated, 401, false),
            Reason::TimestampOutOfTolerance => {
                row("TIMESTAMP_OUT_OF_TOLERANCE", Unauthenticated, 401, false)
            }
            Reason::MissingToken => row("MISSING_TOKEN", Unauthenticated, 401, false),
            Reason::TokenMismatch => row("TOKEN_MISMATCH", Unauthenticated, 401, false),
            Reason::AddressNotAllowed => row("ADDRESS_NOT_ALLOWED", Unauthenticated, 401, false),
            Reason::MalformedPayload => row("MALFORMED_PAYLOAD", InvalidArgument, 400, false),
            // Not RESOURCE_EXHAUSTED, which reads as a quota worth retrying: this body never fits.
            Reason::PayloadTooLarge => row("PAYLOAD_TOO_LARGE", InvalidArgument, 413, false),
            Reason::InvalidRequest => row("INVALID_REQUEST", InvalidArgument, 400, false),
            Reason::EventNotFound => row("EVENT_NOT_FOUND", NotFound, 404, false),
            Reason::StoreUnavailable => row("STORE_UNAVAILABLE", Unavailable, 503, true),
            Reason::ShuttingDown => row("SHUTTING_DOWN", Unavailable, 503, true),
            // Streams only; an HTTP request meeting it would be in conflict with state.
            Reason::SubscriberTooSlow => row("SUBSCRIBER_TOO_SLOW", Aborted, 409, false),
            Reason::CursorOutOfRange => row("CURSOR_OUT_OF_RANGE", OutOfRange, 400, false),
            // The gRPC codes of the HTTP-only reasons are never sent; they say what each means.
            Reason::UnsupportedMediaType => {
                row("UNSUPPORTED_MEDIA_TYPE", InvalidArgument, 415, false)
            }
            Reason::MethodNotAllowed => row("METHOD_NOT_ALLOWED", Unimplemented, 405, false),
            Reason::UnknownPath => row("UNKNOWN_PATH", NotFound, 404, false),
            Reason::RateLimited => row("RATE_LIMITED", ResourceExhausted, 429, true),
            Reason::RequestTimeout => row("REQUEST_TIMEOUT", Unavailable, 503, true),
            // gRPC only today (the HTTP ingress authenticates providers by their own schemes);
            // the HTTP statuses say what each would be.
            Reason::MissingApiKey => row("MISSING_API_KEY", Unauthenticated, 401, false),
            Reason::UnknownApiKey => row("UNKNOWN_API_KEY", Unauthenticated, 401, false),
            Reason::PermissionDenied => row("PERMISSION_DENIED", PermissionDenied, 403, false),
            Reason::SourceNotAllowed => row("SOURCE_NOT_ALLOWED", PermissionDenied, 403, false),
            // The request is well formed but its claim does not hold now: FAILED_PRECONDITION
            // would invite a retry of the same request, INVALID_ARGUMENT says fix it.
            Reason::ReceivedAtOutOfRange => {
                row("RECEIVED_AT_OUT_OF_RANGE", InvalidArgument, 400, false)
            }
            Reason::Internal => row("INTERNAL", Internal, 500, false),
        }
    }

    /// The reason string clients match on.
    pub const fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The server, not the sender, is why the request failed (a 5xx): worth a warning.
    pub const fn is_server_fault(self) -> bool {
        self.spec().http >= 500
    }

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

/// Logs and counts a refused webhook: every transport calls this exactly once per refusal,
/// whichever layer refused it, so each refusal is one line with the same fields. `source` is the name the sender
/// asked for (empty when unknown), `peer` the client address as far as it is known, `error`
/// the full text, which may say more than the answer does (a store error's detail). Server
/// faults are warnings; the sender's mistakes are info.
pub fn log_refusal(source: &str, reason: Reason, peer: Option<IpAddr>, error: &dyn fmt::Display) {
    if let Some(metrics) = crate::metrics::get() {
        metrics.webhook(source, crate::metrics::WebhookOutcome::Refused(reason));
    }
    // On the webhook's span, also for refusals before the pipeline (a no-op on other spans).
    tracing::Span::current().record("reason", reason.as_str());
    let source = SenderText(source);
    let peer = Peer(peer);
    if reason.is_server_fault() {
        tracing::warn!(%source, %reason, %peer, %error, "webhook refused");
    } else {
        tracing::info!(%source, %reason, %peer, %error, "webhook refused");
    }
}

/// Text the sender chose (a source name from a URL or a request), bounded and escaped so it
/// cannot forge log lines.
struct SenderText<'a>(&'a str);

impl fmt::Display for SenderText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars().take(64) {
            fmt::Display::fmt(&c.escape_debug(), f)?;
        }
        Ok(())
    }
}

struct Peer(Option<IpAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => fmt::Display::fmt(&addr, f),
            None => f.write_str("unknown"),
        }
    }
}

#[cfg(test)]
pub(crate) mod log_capture;
#[cfg(test)]
mod tests;
