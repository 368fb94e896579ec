//! Trace export end to end, through a real OTLP receiver (the collector's own gRPC service from
//! `opentelemetry-proto`) and the real binary configured the standard way (`OTEL_*`): a signed
//! Gigs webhook posted over HTTP gives a `webhook` span with its attributes, its child spans and
//! a link to the webhook's `traceparent`; a VerifyAndNormalize call carrying the caller's
//! `traceparent` is that caller's child; subscribers receive the webhook's `traceparent`; and
//! neither the log nor any exported span carries a configured secret or token.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{abowire_uri, post_webhook};
use common::stream::{connect, earliest, open_stream};
use common::*;
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{EventFilter, VerifyAndNormalizeRequest};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

const PROVIDER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PROVIDER_SPAN: &str = "00f067aa0ba902b7";
const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

/// What the receiver was sent: every span, and each batch's resource attributes.
#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    resources: Vec<Vec<KeyValue>>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = self.0.lock().expect("lock");
        for resource_spans in request.into_inner().resource_spans {
            if let Some(resource) = resource_spans.resource {
                received.resources.push(resource.attributes);
            }
            for scope in resource_spans.scope_spans {
                received.spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_receiver() -> (SocketAddr, Receiver) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let receiver = Receiver::default();
    let service = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .expect("receiver serves");
    });
    (addr, receiver)
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref())
        .and_then(|value| value.value.as_ref())
}

fn string_attribute<'a>(span: &'a Span, key: &str) -> &'a str {
    match attribute(span, key) {
        Some(Value::StringValue(value)) => value,
        other => panic!("span {} has no string {key}: {other:?}", span.name),
    }
}

fn int_attribute(span: &Span, key: &str) -> i64 {
    match attribute(span, key) {
        Some(Value::IntValue(value)) => *value,
        other => panic!("span {} has no integer {key}: {other:?}", span.name),
    }
}

fn children<'a>(spans: &'a [Span], parent: &Span, name: &str) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|span| span.parent_span_id == parent.span_id && span.name == name)
        .collect()
}

fn with_traceparent(
    mut request: VerifyAndNormalizeRequest,
    value: &str,
) -> VerifyAndNormalizeRequest {
    request.headers.push(header("traceparent", value));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_traced_linked_and_parented_and_no_secret_leaks() {
    let (receiver_addr, receiver) = start_receiver().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(dir.path(), "");
    let mut command = serve_command(BIN, Some(&config));
    command
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{receiver_addr}"),
        )
        .env("OTEL_SERVICE_NAME", "hooknorm-under-test")
        .env("OTEL_TRACES_SAMPLER", "parentbased_always_on")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        // Every log line hooknorm writes, for the secret search.
        .env("HOOKNORM_LOG_LEVEL", "hooknorm=trace,info");
    let mut running = spawn_serve(command);
    let http: SocketAddr = running.http_addr.parse().expect("http addr");

    // A signed Gigs webhook over HTTP, carrying the provider's trace context.
    let provider_traceparent = format!("00-{PROVIDER_TRACE}-{PROVIDER_SPAN}-01");
    let gigs = with_traceparent(
        gigs_event_request(1, "subscription.activated"),
        &provider_traceparent,
    );
    let answer = post_webhook(http, &gigs).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    // A token in the query string, and a wrong one, so both paths see a token.
    let abowire = fixture_request(
        "abowire/api-key.revoke.json",
        &common::http::fixture("abowire/api-key.revoke.json"),
    );
    assert_eq!(abowire.request_uri, abowire_uri());
    assert_eq!(post_webhook(http, &abowire).await.status, 200);
    let mut wrong = abowire.clone();
    wrong.request_uri = wrong.request_uri.replace("token=", "token=x");
    assert_eq!(post_webhook(http, &wrong).await.status, 401);
    // Refused before the pipeline: its span still says why.
    let mut unknown = gigs.clone();
    unknown.request_uri = "/webhooks/nope".into();
    assert_eq!(post_webhook(http, &unknown).await.status, 404);

    // VerifyAndNormalize from a backend that is itself traced.
    let mut client = connect(&running.addr).await;
    let caller_traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let mut request = tonic::Request::new(gigs_event_request(2, "subscription.ended"));
    request.metadata_mut().insert(
        "traceparent",
        caller_traceparent.parse().expect("metadata value"),
    );
    client
        .verify_and_normalize(request)
        .await
        .expect("accepted");

    // Subscribers get the webhook's traceparent, to continue its trace.
    let mut stream = open_stream(&mut client, EventFilter::default(), earliest()).await;
    let first = loop {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("a message");
        if let Some(Message::Event(event)) = message.message {
            break event;
        }
    };
    assert_eq!(first.traceparent, provider_traceparent);
    drop(stream);
    drop(client);

    // A graceful stop exports what is still queued.
    running.sigterm();
    let logs = running.log_lines_until_exit(Duration::from_secs(30));
    assert!(running.wait_exit(Duration::from_secs(10)).success());
    let received = std::mem::take(&mut *receiver.0.lock().expect("lock"));
    let spans = received.spans;

    // The resource, as the standard variables said.
    let resource = format!("{:?}", received.resources);
    assert!(resource.contains("hooknorm-under-test"), "{resource}");
    assert!(resource.contains("deployment.environment"), "{resource}");

    // The HTTP webhook: its span, attributes, link and children.
    let webhooks: Vec<&Span> = spans.iter().filter(|span| span.name == "webhook").collect();
    let http_webhook = webhooks
        .iter()
        .find(|span| {
            span.links.iter().any(|link| {
                hex(&link.trace_id) == PROVIDER_TRACE && hex(&link.span_id) == PROVIDER_SPAN
            })
        })
        .unwrap_or_else(|| panic!("no webhook span linked to the provider's trace: {webhooks:#?}"));
    assert_ne!(
        hex(&http_webhook.trace_id),
        PROVIDER_TRACE,
        "a link, not a parent"
    );
    assert_eq!(string_attribute(http_webhook, "source"), "gigs");
    assert_eq!(string_attribute(http_webhook, "provider"), "gigs");
    assert_eq!(
        string_attribute(http_webhook, "type"),
        "subscription.activated"
    );
    assert_eq!(string_attribute(http_webhook, "reason"), "OK");
    assert_eq!(int_attribute(http_webhook, "sequence"), 1);
    assert_eq!(
        attribute(http_webhook, "duplicate"),
        Some(&Value::BoolValue(false))
    );
    // One span per webhook: the transport's own, a root (the provider's trace is only linked).
    assert!(http_webhook.parent_span_id.is_empty(), "{http_webhook:#?}");
    assert_eq!(string_attribute(http_webhook, "transport"), "http");
    assert_eq!(string_attribute(http_webhook, "path"), "/webhooks/gigs");
    assert_eq!(children(&spans, http_webhook, "verify").len(), 1);
    assert_eq!(children(&spans, http_webhook, "normalize").len(), 1);
    let append = children(&spans, http_webhook, "append");
    assert_eq!(append.len(), 1, "{spans:#?}");
    let append = append[0];
    assert!(int_attribute(append, "batch_size") >= 1);
    assert!(int_attribute(append, "queued_us") >= 0);
    let commit = spans
        .iter()
        .find(|span| {
            span.name == "commit"
                && append
                    .links
                    .iter()
                    .any(|link| link.span_id == span.span_id && link.trace_id == span.trace_id)
        })
        .unwrap_or_else(|| panic!("append links to no commit span: {append:#?}"));
    assert_eq!(
        int_attribute(commit, "batch_size"),
        int_attribute(append, "batch_size")
    );

    // The refused webhook's span says why.
    assert!(
        webhooks
            .iter()
            .any(|span| attribute(span, "reason")
                == Some(&Value::StringValue("TOKEN_MISMATCH".into()))),
        "{webhooks:#?}"
    );
    let unknown = webhooks
        .iter()
        .find(|span| attribute(span, "path") == Some(&Value::StringValue("/webhooks/nope".into())))
        .unwrap_or_else(|| panic!("no span for the unknown source: {webhooks:#?}"));
    assert_eq!(string_attribute(unknown, "reason"), "UNKNOWN_SOURCE");

    // The gRPC call: its webhook span is the caller's child.
    let grpc = spans
        .iter()
        .find(|span| span.name == "webhook" && hex(&span.parent_span_id) == CALLER_SPAN)
        .unwrap_or_else(|| panic!("no webhook span under the caller's: {spans:#?}"));
    assert_eq!(hex(&grpc.trace_id), CALLER_TRACE);
    assert_eq!(string_attribute(grpc, "transport"), "grpc");
    assert_eq!(
        string_attribute(grpc, "path"),
        "/hooknorm.v1.NormalizerService/VerifyAndNormalize"
    );
    assert_eq!(string_attribute(grpc, "type"), "subscription.ended");
    assert_eq!(string_attribute(grpc, "source"), "gigs");
    assert_eq!(children(&spans, grpc, "verify").len(), 1, "{spans:#?}");

    // No configured secret, token or its encoded form in any log line or exported span.
    let exported = format!("{spans:#?}");
    let log = logs.join("\n") + &running.startup_log.join("\n");
    assert!(
        log.contains("webhook refused"),
        "the log was captured: {log}"
    );
    let encoded_token = abowire_uri().rsplit('=').next().expect("token").to_owned();
    for secret in [
        GIGS_SECRET,
        GIGS_SECRET.trim_start_matches("whsec_"),
        GIGS_SECRET_NEW.trim_start_matches("whsec_"),
        ABOWIRE_TOKEN,
        encoded_token.as_str(),
        "other-token",
        MM_TOKEN,
        "s3cret",
        TEST_API_KEY,
    ] {
        assert!(
            !exported.contains(secret),
            "an exported span carries {secret:?}"
        );
        assert!(!log.contains(secret), "the log carries {secret:?}");
    }
}
