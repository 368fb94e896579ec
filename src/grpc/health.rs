//! The gRPC health service kept in step with [`Readiness`](crate::readiness::Readiness): its
//! published answers are forwarded to tonic's `HealthReporter`, for the whole server (`""`, as
//! `grpc_health_probe` and Kubernetes gRPC probes ask) and for `hooknorm.v1.NormalizerService`.

use tokio::sync::watch;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::NormalizerGrpc;
use crate::proto::v1::normalizer_service_server::NormalizerServiceServer;

/// Applies the readiness published now, if any, and marks it seen. Awaited once at start-up so
/// the first answer is in place before the listeners accept.
pub async fn apply_readiness(reporter: &HealthReporter, ready: &mut watch::Receiver<Option<bool>>) {
    let current = *ready.borrow_and_update();
    let Some(ready) = current else {
        return;
    };
    let status = if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    reporter.set_service_status("", status).await;
    reporter
        .set_service_status(
            <NormalizerServiceServer<NormalizerGrpc> as NamedService>::NAME,
            status,
        )
        .await;
}

/// Forwards every later change until readiness is gone. The watch keeps only the latest value,
/// so a burst of changes ends on the last one.
pub fn spawn_readiness_forwarding(
    reporter: HealthReporter,
    mut ready: watch::Receiver<Option<bool>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while ready.changed().await.is_ok() {
            apply_readiness(&reporter, &mut ready).await;
        }
    })
}
