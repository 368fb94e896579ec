//! HTTP answers for refusals, and the one place the ingress logs them.
//!
//! An [`HttpError`] answers with the status from the shared reason table ([`Reason::spec`]),
//! `Retry-After` where the table says retrying helps, and a JSON body with the same reason code
//! gRPC puts in its `ErrorInfo`. Whichever layer refused (routing, limits, the request's
//! content type or size, the pipeline), the answer passes through [`refusal_log`], which logs
//! it once with [`log_refusal`].

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::HttpState;
use super::client_ip::client_ip;
use crate::error::{Reason, log_refusal};
use crate::pipeline::PipelineError;

/// The HTTP status of a reason, from the shared table.
pub fn status_of(reason: Reason) -> StatusCode {
    StatusCode::from_u16(reason.spec().http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A refusal, ready to be sent.
#[derive(Debug, Clone)]
pub struct HttpError {
    reason: Reason,
    message: String,
    /// For the server's log instead of `message`: a store error's detail, or what the sender
    /// sent that was refused (echoing that back would reflect sender-controlled text).
    detail: Option<String>,
    retry_after_seconds: Option<u64>,
    allow: Option<&'static str>,
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

/// Carried from an [`HttpError`]'s response to [`refusal_log`].
#[derive(Debug, Clone)]
struct Refused {
    reason: Reason,
    error: String,
}

/// The client address, resolved once per request by [`refusal_log`] for allowlists and the log.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl HttpError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        HttpError {
            reason,
            message: message.into(),
            detail: None,
            retry_after_seconds: None,
            allow: None,
        }
    }

    /// The refusal for a pipeline error. Messages of store and internal failures are replaced:
    /// they may carry file paths or SQLite text, which a provider has no use for, and which
    /// only the log gets.
    pub fn from_pipeline(error: &PipelineError) -> Self {
        let reason = error.reason();
        let mut refusal = HttpError::new(reason, reason.public_message(error));
        refusal.detail = Some(error.to_string());
        refusal
    }

    /// Sets `Retry-After`, sent only where the reason table says retrying helps (429, 503).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// Sets `Allow` (for 405).
    pub fn allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }

    /// Records the refused value for the log (never sent), bounded.
    pub fn sent(mut self, value: &str) -> Self {
        let value: String = value.chars().take(64).collect();
        self.detail = Some(format!("{}; sent {value:?}", self.message));
        self
    }

    /// Records the cause for the log (never sent).
    pub fn cause(mut self, cause: &dyn std::fmt::Display) -> Self {
        self.detail = Some(format!("{}: {cause}", self.message));
        self
    }

    pub fn reason(&self) -> Reason {
        self.reason
    }

    pub fn status(&self) -> StatusCode {
        status_of(self.reason)
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
            && self.reason.spec().retryable
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(methods) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(methods));
        }
        response.extensions_mut().insert(Refused {
            reason: self.reason,
            error: self.detail.unwrap_or(self.message),
        });
        response
    }
}

/// Middleware around every route: resolves the client address (see [`client_ip`]) once, and
/// logs the request's refusal, if it got one, whichever layer inside refused it, and counts
/// every answer by status.
pub async fn refusal_log(
    State(state): State<HttpState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let client = client_ip(peer, request.headers(), &state.trusted_proxies);
    request.extensions_mut().insert(ClientAddr(client));
    // Cheap to keep (shared bytes); the source is read from it only for a refusal.
    let uri = request.uri().clone();
    let mut response = next.run(request).await;
    if let Some(metrics) = crate::metrics::get() {
        metrics.http_response(response.status().as_u16());
    }
    if let Some(refused) = response.extensions_mut().remove::<Refused>() {
        let source = uri.path().strip_prefix("/webhooks/").unwrap_or_default();
        log_refusal(source, refused.reason, client, &refused.error);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogError;

    #[test]
    fn every_reason_has_a_valid_http_status() {
        for reason in Reason::ALL {
            assert_eq!(status_of(*reason).as_u16(), reason.spec().http, "{reason}");
        }
    }

    #[test]
    fn store_detail_is_logged_not_sent() {
        let error = PipelineError::Store(LogError::Unavailable {
            reason: "disk I/O error at /var/lib/hooknorm/events.sqlite3".into(),
        });
        let http = HttpError::from_pipeline(&error).retry_after(7);
        assert!(!http.to_string().contains("/var/lib"), "{http}");
        let response = http.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let refused = response.extensions().get::<Refused>().unwrap();
        assert!(refused.error.contains("/var/lib"), "{refused:?}");
    }

    #[test]
    fn retry_after_only_where_retrying_helps() {
        let response = HttpError::new(Reason::TokenMismatch, "no")
            .retry_after(5)
            .into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
