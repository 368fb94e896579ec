//! Tracing, set up once at start-up: the log subscriber, and when an OTLP endpoint is configured
//! a `tracing-opentelemetry` layer exporting hooknorm's spans in batches over OTLP/gRPC; and the
//! Prometheus registry ([`crate::metrics`]) when metrics are on. Everything else uses
//! `tracing` as before: spans become OpenTelemetry spans only here.
//!
//! Export never blocks a request: spans are queued for a batch processor on its own thread,
//! and a full queue drops spans rather than waiting. A collector that cannot be reached costs
//! one warning a minute ([`export`]).
//!
//! Trace context crosses two boundaries, one each way ([`context`]): a gRPC caller's
//! `traceparent` metadata is the parent of its call's span (the caller is ours to trust), and a
//! webhook's `traceparent` header is a link from the webhook's span (the provider's trace is
//! another trust domain, which must not decide what we sample or own our root spans).

pub mod context;
mod export;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Config, LogFormat, ParentlessSampler, TelemetryConfig, TraceSampler};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid config key `log.level`: `{0}`")]
    LogLevel(String),
    #[error("cannot build the otlp exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error("cannot install the log subscriber: {0}")]
    Subscriber(String),
}

/// Keeps trace export running; [`Telemetry::shutdown`] flushes what is queued.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued (bounded by the exporter's timeout) and stops export.
    /// Blocking: call it outside the async runtime, while the runtime still runs.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "trace export did not shut down cleanly");
        }
    }
}

/// Installs the global log subscriber (with span export when `telemetry.otlp_endpoint` is set)
/// and the metrics registry (when `telemetry.metrics` is on). Call it inside the tokio runtime:
/// the exporter's gRPC channel runs on it.
pub fn init(config: &Config) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .map_err(|_| TelemetryError::LogLevel(config.log.level.clone()))?;
    // Colour codes only for a person at a terminal, not in files or log collectors.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let fmt = match config.log.format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let provider = match &config.telemetry.otlp_endpoint {
        Some(endpoint) => Some(provider(endpoint, &config.telemetry)?),
        None => None,
    };
    // Only hooknorm's own spans, whatever the log filter lets through: the exporter's own gRPC
    // client (tonic, h2, hyper) would otherwise trace its exports, and those exports again.
    let otel = provider.as_ref().map(|provider| {
        // Only what the spans' own fields say: source locations, thread names, busy and idle
        // times and an OpenTelemetry context attached at every poll cost each request, and no
        // question about a webhook needs them (nothing else here reads that context).
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("hooknorm"))
            .with_location(false)
            .with_target(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_filter(Targets::new().with_target("hooknorm", LevelFilter::INFO))
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .map_err(|error| TelemetryError::Subscriber(error.to_string()))?;
    if provider.is_some() {
        context::enable();
    }
    if config.telemetry.metrics {
        let store_dir = match config.store.backend {
            crate::config::StoreBackend::Sqlite => Some(config.store.path.clone()),
            crate::config::StoreBackend::Nats => None,
        };
        crate::metrics::install(
            config.sources.iter().map(|source| source.name.clone()),
            store_dir,
        );
    }
    Ok(Telemetry { provider })
}

fn provider(
    endpoint: &str,
    telemetry: &TelemetryConfig,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|error| TelemetryError::Exporter {
            endpoint: endpoint.to_owned(),
            reason: error.to_string(),
        })?;
    // The default resource reads `OTEL_RESOURCE_ATTRIBUTES`; the service name is ours.
    let resource = Resource::builder()
        .with_service_name(telemetry.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(export::WarnOnFailure::new(exporter))
        .with_sampler(sampler(telemetry.sampler))
        .with_resource(resource)
        .build())
}

fn sampler(sampler: TraceSampler) -> Sampler {
    match sampler {
        TraceSampler::AlwaysOn => Sampler::AlwaysOn,
        TraceSampler::AlwaysOff => Sampler::AlwaysOff,
        TraceSampler::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
        TraceSampler::ParentBased(root) => Sampler::ParentBased(Box::new(match root {
            ParentlessSampler::AlwaysOn => Sampler::AlwaysOn,
            ParentlessSampler::AlwaysOff => Sampler::AlwaysOff,
            ParentlessSampler::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
        })),
    }
}
