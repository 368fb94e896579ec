//! The HTTP ingress: providers post webhooks straight to `POST /webhooks/{source}`, which runs
//! exactly the pipeline `VerifyAndNormalize` runs. This module only converts (HTTP request ->
//! [`RawWebhook`](crate::webhook::RawWebhook), outcome or error -> HTTP answer) and applies the
//! ingest limits; it decides nothing about webhooks itself. Every refusal, whichever layer
//! makes it, is logged once on its way out ([`errors::refusal_log`]).
//!
//! The probes, `/healthz` and `/readyz`, `/metrics` and the events console ([`crate::console`])
//! are a separate app ([`ops_router`]) on a listener of their own, so that no flood of the
//! public ingress can fail them, and nothing but webhooks is served to the public. Both listeners are served by
//! [`serve`], with connection admission from [`crate::listen`].

pub(crate) mod client_ip;
mod errors;
mod limits;
mod metrics;
mod probes;
pub(crate) mod request;
mod serve;
mod trace;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::Semaphore;
use tower::timeout::TimeoutLayer;
use tower::{BoxError, ServiceBuilder};

use crate::config::{HttpConfig, OpsConfig};
use crate::error::Reason;
use crate::listen::Limits;
use crate::pipeline::{Pipeline, PipelineError};
use crate::readiness::Readiness;
use crate::verify::IpAllowlist;

pub use client_ip::client_ip;
pub use errors::{HttpError, status_of};
pub use limits::RateLimiter;
pub use serve::{READ_BUFFER_BYTES, serve};

/// The ingress's settings, from `[http]`.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Peers whose forwarding headers are believed for allowlists.
    pub trusted_proxies: IpAllowlist,
    /// Webhooks processed at once (once their body is in); more are refused with 429.
    pub max_concurrency: usize,
    /// Bytes all webhook bodies in flight (uploading or processed) may hold together; a body
    /// that finds them spent is refused with 429.
    pub body_budget_bytes: usize,
    /// Webhooks accepted per second (burst: one second's worth); `None` for no limit.
    pub rate_limit_per_second: Option<u32>,
    /// Longest a webhook may take, upload included.
    pub request_timeout: Duration,
    /// `Retry-After` on 429 and 503.
    pub retry_after_seconds: u64,
    /// How connections are bounded in time and number.
    pub connections: Limits,
}

impl HttpSettings {
    /// The budget of body bytes is what `max_concurrency` bodies of `max_body_bytes` hold: the
    /// bound on body memory the concurrency limit alone gave when it covered uploads too.
    pub fn from_config(config: &HttpConfig, max_body_bytes: usize) -> Self {
        HttpSettings {
            trusted_proxies: config.trusted_proxies.clone(),
            max_concurrency: config.max_concurrency,
            body_budget_bytes: config.max_concurrency.saturating_mul(max_body_bytes),
            rate_limit_per_second: config.rate_limit_per_second,
            request_timeout: Duration::from_secs(config.request_timeout_seconds),
            retry_after_seconds: config.retry_after_seconds,
            connections: Limits {
                max_connections: config.max_connections,
                max_waiting_per_address: config.max_waiting_per_address,
                wait_timeout: Duration::from_secs(config.header_read_timeout_seconds),
                wait_timeout_min: Duration::from_secs(config.header_read_timeout_min_seconds),
            },
        }
    }
}

/// The ops listener's connection limits, from `[ops]`: no per-address cap (the kubelet probes
/// from one address) and a fixed deadline; at the cap, a new probe still gets in by closing the
/// oldest waiting connection.
pub fn ops_limits(config: &OpsConfig) -> Limits {
    let timeout = Duration::from_secs(config.header_read_timeout_seconds);
    Limits {
        max_connections: config.max_connections,
        max_waiting_per_address: config.max_connections,
        wait_timeout: timeout,
        wait_timeout_min: timeout,
    }
}

/// What the handlers share; cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pipeline: Pipeline,
    /// Source names, so an unknown one is refused before its body is read.
    sources: Arc<HashSet<String>>,
    trusted_proxies: Arc<IpAllowlist>,
    rate_limiter: Option<Arc<RateLimiter>>,
    /// Permits to process a webhook whose body is in.
    processing: Arc<Semaphore>,
    /// Permits for body bytes, one per byte.
    bodies: Arc<Semaphore>,
    request_timeout: Duration,
    retry_after_seconds: u64,
}

impl HttpState {
    pub fn new(pipeline: Pipeline, settings: HttpSettings) -> Self {
        HttpState {
            sources: Arc::new(pipeline.sources().map(|s| s.name.clone()).collect()),
            pipeline,
            trusted_proxies: Arc::new(settings.trusted_proxies),
            rate_limiter: settings
                .rate_limit_per_second
                .map(|rate| Arc::new(RateLimiter::new(rate))),
            processing: Arc::new(Semaphore::new(settings.max_concurrency)),
            bodies: Arc::new(Semaphore::new(
                settings.body_budget_bytes.min(Semaphore::MAX_PERMITS),
            )),
            request_timeout: settings.request_timeout,
            retry_after_seconds: settings.retry_after_seconds,
        }
    }
}

/// The ingress app; every request runs in an `http` span, and every refusal is logged on its
/// way out. Limits (rate, timeout, then the body budget and the processing slots in
/// [`receive`]) apply only to a `POST` to a configured source: a request refused anyway (404
/// unknown source or path, 405 wrong method) spends neither a rate token nor a slot, so stray
/// traffic cannot crowd out real deliveries. A processing slot is taken only once the body is
/// in, so uploads trickled in cannot hold the slots real deliveries need; what they hold is
/// bounded by the body budget, their connections and `request_timeout`.
pub fn router(state: HttpState) -> Router {
    let retry_after = state.retry_after_seconds;
    let limits = ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(state.clone(), known_source))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::rate_limit,
        ))
        .layer(HandleErrorLayer::new(move |error: BoxError| async move {
            limits::limit_error(&error, retry_after)
        }))
        .layer(TimeoutLayer::new(state.request_timeout));
    Router::new()
        .route(
            "/webhooks/{source}",
            // `route_layer`: the method fallback (405) stays outside the limits.
            post(receive)
                .route_layer(limits)
                .fallback(|| async { method_not_allowed("POST") }),
        )
        .fallback(|| async {
            HttpError::new(
                Reason::UnknownPath,
                "no such path; webhooks go to POST /webhooks/{source}",
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            errors::refusal_log,
        ))
        .layer(trace::TraceLayer)
        .with_state(state)
}

/// The ops app: the probes, the metrics and (when given) the events console, and nothing a
/// webhook sender may reach.
pub fn ops_router(readiness: Readiness, console: Option<crate::console::Console>) -> Router {
    let ops = Router::new()
        .route(
            "/metrics",
            get(metrics::metrics).fallback(|| async { method_not_allowed("GET, HEAD") }),
        )
        .route(
            "/healthz",
            get(probes::healthz).fallback(|| async { method_not_allowed("GET, HEAD") }),
        )
        .route(
            "/readyz",
            get(probes::readyz).fallback(|| async { method_not_allowed("GET, HEAD") }),
        )
        .with_state(readiness);
    let ops = match console {
        Some(console) => ops.merge(crate::console::router(console)),
        None => ops,
    };
    ops.fallback(|| async {
        HttpError::new(
            Reason::UnknownPath,
            "no such path; probes are GET /healthz and GET /readyz, metrics GET /metrics, \
             the events console GET /console",
        )
    })
    .layer(trace::TraceLayer)
}

/// Middleware, outside the limits: refuses an unknown source (404) before it can take a rate
/// token or a concurrency slot, and before its body is read.
async fn known_source(
    State(state): State<HttpState>,
    source: Result<Path<String>, PathRejection>,
    request: Request,
    next: Next,
) -> Response {
    // A path segment that does not even decode names no source.
    let source = source.map_or_else(|_| String::new(), |Path(source)| source);
    if state.sources.contains(&source) {
        return next.run(request).await;
    }
    // It came from the sender, and the answer repeats it: bounded.
    let source_name: String = source.chars().take(64).collect();
    let error = PipelineError::UnknownSource { source_name };
    HttpError::from_pipeline(&error).into_response()
}

/// The answer once a webhook is durably stored (or was already).
#[derive(Debug, Serialize)]
struct Accepted<'a> {
    id: &'a str,
    sequence: u64,
    duplicate: bool,
}

/// `POST /webhooks/{source}`, a configured source within the limits: request -> `RawWebhook`
/// -> the pipeline -> answer.
async fn receive(
    State(state): State<HttpState>,
    Path(source): Path<String>,
    request: Request,
) -> Response {
    // `known_source` has checked the name.
    let max_body_bytes = state.pipeline.max_body_bytes();
    let read = request::raw_webhook(source, request, max_body_bytes, &state.bodies).await;
    // Held until the webhook is processed: its bytes are still in memory until then.
    let (webhook, _body_bytes) = match read {
        Ok(read) => read,
        Err(error) => return error.retry_after(state.retry_after_seconds).into_response(),
    };
    let Ok(_slot) = state.processing.clone().try_acquire_owned() else {
        return HttpError::new(
            Reason::RateLimited,
            "too many webhooks in flight; retry later",
        )
        .retry_after(state.retry_after_seconds)
        .into_response();
    };
    match state.pipeline.process(webhook, false).await {
        Ok(outcome) => {
            let body = Accepted {
                id: &outcome.event.id,
                sequence: outcome.event.sequence,
                duplicate: outcome.duplicate,
            };
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(error) => HttpError::from_pipeline(&error)
            .retry_after(state.retry_after_seconds)
            .into_response(),
    }
}

fn method_not_allowed(allow: &'static str) -> HttpError {
    HttpError::new(
        Reason::MethodNotAllowed,
        format!("method not allowed; use {allow}"),
    )
    .allow(allow)
}

#[cfg(test)]
mod tests;
