//! W3C trace context in and out of hooknorm's spans. Every function here is a no-op, and costs
//! one atomic load, until trace export is enabled.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns context handling on; called once trace export is installed.
pub(super) fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The gRPC method whose calls are webhooks.
const VERIFY_AND_NORMALIZE: &str = "/hooknorm.v1.NormalizerService/VerifyAndNormalize";

/// The span of one gRPC call (a [`webhook_span`] for `VerifyAndNormalize`), a child of the
/// caller's span when its metadata carries a valid `traceparent` (the caller is a backend of
/// ours, so its trace is ours too). Fits tonic's `trace_fn`.
pub fn grpc_span<B>(request: &http::Request<B>) -> Span {
    let path = request.uri().path();
    let span = if path == VERIFY_AND_NORMALIZE {
        webhook_span("grpc", path, None)
    } else {
        tracing::info_span!("grpc", path)
    };
    if enabled() {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
        if parent.span().span_context().is_valid() {
            // Fails only for a span that is already started elsewhere; this one is new.
            let _ = span.set_parent(parent);
        }
    }
    span
}

/// The one span of one webhook, whichever transport brought it: `transport` (`http` or
/// `grpc`), the request `path` (never the query: it can hold a token) and, when the path names
/// it, `source`. The pipeline records `source`, `provider`, `type` (canonical), `sequence`,
/// `duplicate`, `dry_run` and `reason` (`OK` or the refusal reason) on it as they become known,
/// and a refusal anywhere on the way records its reason (see `error::log_refusal`); every
/// field is declared here, since a span takes no field it was not made with.
pub fn webhook_span(transport: &'static str, path: &str, source: Option<&str>) -> Span {
    tracing::info_span!(
        "webhook",
        transport,
        path,
        source,
        provider = tracing::field::Empty,
        r#type = tracing::field::Empty,
        sequence = tracing::field::Empty,
        duplicate = tracing::field::Empty,
        reason = tracing::field::Empty,
        dry_run = tracing::field::Empty,
    )
}

/// Links `span` to the trace a webhook's `traceparent` header names. A link, not a parent: the
/// provider is another trust domain, and a parent would let it choose our trace ids and
/// sampling, and hang our spans under a trace we cannot see.
pub fn link_traceparent(span: &Span, traceparent: &str) {
    if !enabled() {
        return;
    }
    if let Some(context) = parse_traceparent(traceparent) {
        span.add_link(context);
    }
}

/// The span context a `traceparent` value names, if it is valid.
fn parse_traceparent(traceparent: &str) -> Option<SpanContext> {
    let carrier = OneHeader(traceparent);
    let context = TraceContextPropagator::new().extract(&carrier);
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// A carrier holding only a `traceparent`.
struct OneHeader<'a>(&'a str);

impl Extractor for OneHeader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_names_its_trace_and_span() {
        let context =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_sampled());
        assert!(context.is_remote());
    }

    #[test]
    fn invalid_traceparents_name_nothing() {
        for value in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "not a traceparent",
        ] {
            assert!(parse_traceparent(value).is_none(), "{value}");
        }
    }
}
