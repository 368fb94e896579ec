//! The events console: server-rendered pages on the ops listener where an operator sees what
//! arrived, filters it, inspects one event (payload, diff, provider detail, the webhook as
//! received, its CloudEvent, a command to re-send it) and follows new events live.
//!
//! It is a view over what the gRPC API already serves, through the same code: listing is
//! [`crate::log::page::list_page`] (ListEvents), an event is [`EventLog::get`] (GetEvent), the
//! live tail is a [`crate::stream`] subscription (StreamEvents) sent as server-sent events. Who
//! may look is the API keys' business ([`crate::auth`]): a key with the `read` scope, narrowed to
//! its sources everywhere, an event of another source answered as not found.
//!
//! - [`session`]: the key, from `authorization: Bearer` or the login form's cookie.
//! - [`query`]: the filters as they live in the URL, so a view can be shared.
//! - [`pages`]: the layout, the events list and the login and error pages.
//! - [`detail`]: one event: its fields, payload, diff, delivery and re-send command.
//! - [`live`]: the live tail.
//!
//! Everything a provider sent is escaped by the templates (maud escapes every splice); the
//! pages run only the embedded script, under a Content-Security-Policy that allows nothing else.

mod detail;
mod live;
mod pages;
mod query;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{Semaphore, watch};

use crate::auth::{AuthError, Authenticator};
use crate::error::Reason;
use crate::log::page::PageError;
use crate::log::{EventLog, LogError};
use crate::providers::ProviderKind;
use crate::stream::{OpenError, StreamSettings};

/// Where the console is served on the ops listener.
pub const BASE_PATH: &str = "/console";

/// What the console's handlers share; cheap to clone.
#[derive(Clone)]
pub struct Console {
    log: Arc<dyn EventLog>,
    authenticator: Arc<Authenticator>,
    /// Configured sources and their providers, in config order: the filter's choices and the
    /// re-send command's source.
    sources: Arc<Vec<(String, ProviderKind)>>,
    max_event_bytes: usize,
    streams: StreamSettings,
    /// Turns true when the server stops: live tails end (the browser reconnects elsewhere).
    shutdown: watch::Receiver<bool>,
    /// Live tails open at once. A tail holds its ops connection for as long as it is open, and
    /// admission never closes a connection with a request in progress: without a cap, enough
    /// open browser tabs would leave no connection for the kubelet's probes.
    live_tails: Arc<Semaphore>,
}

/// The share of the ops listener's connections live tails may hold: half, so the probes and
/// metrics always have the other half.
pub fn max_live_tails(ops_max_connections: usize) -> usize {
    (ops_max_connections / 2).max(1)
}

impl Console {
    pub fn new(
        log: Arc<dyn EventLog>,
        authenticator: Arc<Authenticator>,
        sources: Vec<(String, ProviderKind)>,
        max_event_bytes: usize,
        streams: StreamSettings,
        shutdown: watch::Receiver<bool>,
        max_live_tails: usize,
    ) -> Console {
        Console {
            log,
            authenticator,
            sources: Arc::new(sources),
            max_event_bytes,
            streams,
            shutdown,
            live_tails: Arc::new(Semaphore::new(max_live_tails)),
        }
    }
}

impl Console {
    /// The name the header shows beside "Log out": none without keys (`auth = "none"`), where
    /// there is nobody to log out.
    fn key_name<'p>(&self, viewer: &'p crate::auth::Principal) -> Option<&'p str> {
        (!self.authenticator.is_open()).then_some(viewer.name.as_str())
    }
}

/// The console's routes, under [`BASE_PATH`]; every page but the login form and the assets
/// needs a read key.
pub fn router(console: Console) -> Router {
    let pages = Router::new()
        .route("/console", get(pages::list))
        .route("/console/events/{id}", get(detail::detail))
        .route("/console/live", get(live::live))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            session::authenticate,
        ));
    Router::new()
        .merge(pages)
        .route(
            "/console/login",
            get(session::login_form).post(session::login),
        )
        .route("/console/logout", axum::routing::post(session::logout))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .layer(middleware::from_fn(security_headers))
        .with_state(console)
}

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// Only the console's own script, stylesheet and event stream; no frames, no plugins, forms
/// post only here. Pages hold other people's data: never cached, never framed, never referred.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ] {
        headers.insert(name, value);
    }
    response
}

/// Why a console request was refused; each says which [`Reason`] it is, and the status comes
/// from the shared table.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Query(#[from] query::QueryError),
    #[error("no stored event with id `{id}`")]
    NotFound { id: String },
    #[error(transparent)]
    Page(#[from] PageError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cross-site form posts are refused")]
    CrossSite,
    #[error("too many live tails are open; retry later")]
    TooManyTails,
}

impl ConsoleError {
    pub fn reason(&self) -> Reason {
        match self {
            ConsoleError::Auth(error) => error.reason(),
            ConsoleError::Query(_) => Reason::InvalidRequest,
            ConsoleError::NotFound { .. } => Reason::EventNotFound,
            ConsoleError::Page(error) => error.reason(),
            ConsoleError::Log(error) => error.reason(),
            ConsoleError::Open(error) => error.reason(),
            ConsoleError::CrossSite => Reason::PermissionDenied,
            ConsoleError::TooManyTails => Reason::RateLimited,
        }
    }

    /// The status from the shared reason table.
    pub fn status(&self) -> StatusCode {
        crate::http::status_of(self.reason())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let reason = self.reason();
        if reason.is_server_fault() {
            tracing::warn!(%reason, error = %self, "console request failed");
        } else {
            tracing::info!(%reason, error = %self, "console request refused");
        }
        // Store and internal failures keep their detail in the log.
        let message = reason.public_message(&self);
        (self.status(), pages::error_page(reason, &message)).into_response()
    }
}

#[cfg(test)]
mod tests;
