//! The cost of observability: durable `VerifyAndNormalize` with every span exported (100%
//! sampling, to a real OTLP receiver in this process) and metrics on, beside the same load with
//! both off, interleaved round by round so that whatever else the machine is doing weighs on
//! both alike. The receiver decodes every export, as a collector would, and counts the spans.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;

use super::callers::{self, UnaryCaller};
use super::child::{ChildProcess, Security, sqlite_store};
use super::drive::{self, RunResult};
use super::report::ScenarioReport;
use super::{Bench, BenchError, Server, spawn};

/// Rounds of one phase off and one on, in alternating order (off-on, on-off, ...) so that a
/// machine getting busier or quieter weighs on both alike; each phase runs a third of the
/// bench's bound (four bounds in all).
const ROUNDS: u32 = 6;

/// Each phase's share of the bound.
const PHASES_PER_BOUND: u32 = 3;

/// The two rows' names, which the ratio target looks up.
pub const OFF: &str = "durable, telemetry off";
pub const ON: &str = "durable, traced + metrics";

/// Counts the spans it is sent.
#[derive(Clone, Default)]
struct CountingReceiver(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for CountingReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the receiver on a loopback port; it serves until the bench exits.
async fn start_receiver() -> Result<(SocketAddr, Arc<AtomicU64>), BenchError> {
    let io = |source| BenchError::Io {
        what: "cannot start the otlp receiver".into(),
        source,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let receiver = CountingReceiver::default();
    let spans = receiver.0.clone();
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "otlp receiver failed");
        }
    });
    Ok((addr, spans))
}

/// The `[telemetry]` section of each phase's server.
fn telemetry_toml(receiver: Option<SocketAddr>) -> String {
    match receiver {
        Some(addr) => format!(
            "[telemetry]\notlp_endpoint = \"http://{addr}\"\nsampler = \"always_on\"\nmetrics = true\n"
        ),
        None => "[telemetry]\nmetrics = false\n".to_owned(),
    }
}

/// The two rows, each the sum of its phases.
pub(super) async fn off_and_on(bench: &Bench) -> Result<Vec<ScenarioReport>, BenchError> {
    let (receiver, spans) = start_receiver().await?;
    let mut off = Vec::new();
    let mut on = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        let (untraced, traced) = if round % 2 == 0 {
            let untraced = phase(bench, None).await?;
            (untraced, phase(bench, Some(receiver)).await?)
        } else {
            let traced = phase(bench, Some(receiver)).await?;
            (phase(bench, None).await?, traced)
        };
        ratios.push(format!(
            "{:.2}",
            traced.throughput() / untraced.throughput().max(f64::MIN_POSITIVE)
        ));
        off.push(untraced);
        on.push(traced);
    }
    let exported = spans.load(Ordering::Relaxed);
    let note = |what: &str| format!("{what}; {}", bench.load_note());
    Ok(vec![
        ScenarioReport::new(
            OFF,
            RunResult::sequential(off),
            note("no export, no metrics"),
        ),
        ScenarioReport::new(
            ON,
            RunResult::sequential(on),
            note(&format!(
                "100% sampled, {exported} spans received over OTLP/gRPC, /metrics on; \
                 on/off by round: {}",
                ratios.join(", ")
            )),
        ),
    ])
}

/// One phase: a fresh server, closed-loop durable appends for its share of the bound.
async fn phase(bench: &Bench, receiver: Option<SocketAddr>) -> Result<RunResult, BenchError> {
    let tag = if receiver.is_some() {
        "traced"
    } else {
        "untraced"
    };
    let telemetry = telemetry_toml(receiver);
    let child = spawn(bench.exe.clone(), move |exe| {
        ChildProcess::serve_with(&exe, tag, Security::Open, &|store: &Path| {
            format!("{}\n{telemetry}", sqlite_store(store))
        })
    })
    .await?;
    let server = Server::measure(child).await;
    let channel = callers::channel(&server.child.grpc_addr)
        .await
        .map_err(BenchError::Client)?;
    let callers = (0..bench.concurrency())
        .map(|_| UnaryCaller::new(channel.clone(), bench.payloads.clone(), false, 0))
        .collect();
    let result = drive::closed_loop(callers, bench.bound().divided(PHASES_PER_BOUND)).await;
    // Each phase's server goes before the next starts.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let child = server.child;
        tokio::task::spawn_blocking(move || drop(child)).await
    })
    .await;
    Ok(result)
}
