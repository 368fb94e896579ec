//! A tracing span per HTTP request, as the gRPC listener's `trace_fn` gives each call: every
//! log line a request causes carries its path; a webhook's is its one `webhook` span (see
//! [`crate::telemetry::context::webhook_span`]), anything else's an `http` span. A plain tower
//! layer rather than `middleware::from_fn`, so a request costs no boxed future, and fields are
//! recorded by reference (nothing is copied unless a subscriber takes the span).

use std::task::{Context, Poll};

use axum::http::Request;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::instrument::Instrumented;

/// Wraps a service in [`Trace`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace { inner }
    }
}

/// Runs each request inside a `webhook` or an `http` span.
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Trace<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Only the path: the query can carry a source's token. A URI path is printable ASCII
        // (hyper refuses anything else), so it needs no escaping.
        let path = request.uri().path();
        let span = match path.strip_prefix("/webhooks/") {
            Some(source) => crate::telemetry::context::webhook_span("http", path, Some(source)),
            None => tracing::info_span!("http", method = %request.method(), path),
        };
        let future = span.in_scope(|| self.inner.call(request));
        future.instrument(span)
    }
}
