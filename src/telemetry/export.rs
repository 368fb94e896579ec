//! The span exporter's failures, told to the log at most once a minute: a collector that is
//! down would otherwise log at every batch, and the spans are only dropped, never waited for.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// How often an export failure is logged at most.
const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Wraps an exporter, logging its failures (rate-limited) and counting what was dropped.
#[derive(Debug)]
pub(super) struct WarnOnFailure<E> {
    inner: E,
    /// When a failure was last logged, and how many batches failed since.
    warned: Mutex<(Option<Instant>, u64)>,
}

impl<E> WarnOnFailure<E> {
    pub(super) fn new(inner: E) -> Self {
        WarnOnFailure {
            inner,
            warned: Mutex::new((None, 0)),
        }
    }

    fn failed(&self, error: &dyn std::fmt::Display) {
        let Ok(mut warned) = self.warned.lock() else {
            return;
        };
        let (last, failures) = &mut *warned;
        *failures += 1;
        if last.is_none_or(|last| last.elapsed() >= WARN_INTERVAL) {
            tracing::warn!(%error, failed_batches = *failures, "trace export failed, spans dropped");
            *last = Some(Instant::now());
            *failures = 0;
        }
    }
}

impl<E: SpanExporter> SpanExporter for WarnOnFailure<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        if let Err(error) = &result {
            self.failed(error);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_otlp::WithExportConfig;

    use super::*;

    #[tokio::test]
    async fn an_unreachable_collector_is_one_warning_a_minute() {
        let log = crate::error::log_capture::capture();
        // A real exporter, to a loopback port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .unwrap();
        let exporter = WarnOnFailure::new(exporter);
        for _ in 0..3 {
            assert!(exporter.export(Vec::new()).await.is_err());
        }
        let warnings = log.with_message("trace export failed, spans dropped");
        assert_eq!(warnings.len(), 1, "{:?}", log.lines());
        assert_eq!(warnings[0].fields["failed_batches"], "1");
    }
}
