//! `hooknorm serve`: binds the listeners, wires health and reflection around the service, and
//! shuts down gracefully when told to.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server as TonicServer;

use crate::config::{Config, ConfigError};
use crate::grpc::NormalizerGrpc;
use crate::pipeline::Pipeline;
use crate::proto::v1::normalizer_service_server::NormalizerServiceServer;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("grpc server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("reflection service cannot load the descriptor set: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// A bound, not yet serving, hooknorm server. Binding first lets callers (tests, start-up logs)
/// learn the real port when the config asks for port 0.
pub struct Server {
    pipeline: Pipeline,
    grpc_listener: TcpListener,
    grpc_addr: SocketAddr,
    shutdown_grace: Duration,
}

impl Server {
    /// Validates the sources and binds the gRPC listener.
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        let pipeline = Pipeline::from_config(config)?;
        for source in pipeline.sources() {
            tracing::info!(
                source = %source.name,
                provider = source.provider.name(),
                scheme = source.verifier.scheme_name(),
                "source configured"
            );
            if source.verifier.is_unauthenticated() {
                tracing::warn!(
                    source = %source.name,
                    "source accepts unauthenticated webhooks (scheme none, no allowlist)"
                );
            }
        }
        let addr = config.server.grpc_listen;
        let grpc_listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let grpc_addr = grpc_listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Server {
            pipeline,
            grpc_listener,
            grpc_addr,
            shutdown_grace: Duration::from_secs(config.server.shutdown_grace_seconds),
        })
    }

    /// The address gRPC is listening on.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish for up to the
    /// configured grace period.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<NormalizerServiceServer<NormalizerGrpc>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let router = TonicServer::builder()
            .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(NormalizerGrpc::new(self.pipeline).into_server());
        tracing::info!(addr = %self.grpc_addr, "grpc listening");
        let serving = router.serve_with_incoming_shutdown(
            TcpListenerStream::new(self.grpc_listener),
            async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            },
        );
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => return result.map_err(ServerError::from),
            () = shutdown => {}
        }
        tracing::info!(
            grace_seconds = self.shutdown_grace.as_secs(),
            "shutting down"
        );
        health_reporter
            .set_not_serving::<NormalizerServiceServer<NormalizerGrpc>>()
            .await;
        let _ = stop_tx.send(true);
        match tokio::time::timeout(self.shutdown_grace, serving).await {
            Ok(result) => result?,
            Err(_) => tracing::warn!("grace period over, closing remaining connections"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for sigterm");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutdown requested"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutdown requested"),
    }
}
