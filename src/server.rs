//! `hooknorm serve`: opens the event log, binds the listeners, wires health and reflection around
//! the service, runs retention, and shuts down gracefully when told to.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server as TonicServer;
use tonic::transport::server::TcpIncoming;

use crate::config::{Config, ConfigError, StoreBackend};
use crate::grpc::NormalizerGrpc;
use crate::log::sqlite::SqliteEventLog;
use crate::log::{EventLog, LogError};
use crate::pipeline::Pipeline;
use crate::proto::v1::normalizer_service_server::NormalizerServiceServer;
use crate::stream::StreamSettings;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the event log: {0}")]
    Log(#[from] LogError),
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

/// Opens the configured event log backend (blocking work, done off the async workers).
pub async fn open_log(config: &Config) -> Result<Arc<dyn EventLog>, ServerError> {
    let store = config.store.clone();
    match store.backend {
        StoreBackend::Sqlite => {
            let log = tokio::task::spawn_blocking(move || SqliteEventLog::open(&store))
                .await
                .map_err(|error| LogError::Unavailable {
                    reason: format!("open task failed: {error}"),
                })??;
            Ok(Arc::new(log))
        }
    }
}

/// A bound, not yet serving, hooknorm server. Binding first lets callers (tests, start-up logs)
/// learn the real port when the config asks for port 0.
pub struct Server {
    pipeline: Pipeline,
    streams: StreamSettings,
    retention_interval: Duration,
    grpc_listener: TcpListener,
    grpc_addr: SocketAddr,
    shutdown_grace: Duration,
}

impl Server {
    /// Validates the sources, opens the event log and binds the gRPC listener.
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        let log = open_log(config).await?;
        Self::bind_with_log(config, log).await
    }

    /// As [`Server::bind`], with an already opened event log.
    pub async fn bind_with_log(
        config: &Config,
        log: Arc<dyn EventLog>,
    ) -> Result<Server, ServerError> {
        let pipeline = Pipeline::new(config, log)?;
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
            streams: StreamSettings {
                buffer: config.streams.buffer,
                heartbeat: Duration::from_secs(config.streams.heartbeat_seconds),
                slow_subscriber_timeout: Duration::from_secs(
                    config.streams.slow_subscriber_timeout_seconds,
                ),
                ..StreamSettings::default()
            },
            retention_interval: Duration::from_secs(config.store.retention_interval_seconds),
            grpc_listener,
            grpc_addr,
            shutdown_grace: Duration::from_secs(config.server.shutdown_grace_seconds),
        })
    }

    /// The address gRPC is listening on.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Serves until `shutdown` resolves; then ends streams with their resume cursors, lets
    /// in-flight requests finish for up to the grace period, and closes the log.
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

        let log = self.pipeline.log().clone();
        let retention = crate::log::spawn_retention(&log, self.retention_interval);
        let (stop_tx, stop_rx) = watch::channel(false);
        let service = NormalizerGrpc::new(self.pipeline, self.streams, stop_rx.clone());
        let router = TonicServer::builder()
            .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service.into_server());
        tracing::info!(addr = %self.grpc_addr, "grpc listening");
        let mut listener_stop = stop_rx;
        let serving = router.serve_with_incoming_shutdown(
            // Without TCP_NODELAY small unary responses wait on delayed ACKs (tens of ms).
            TcpIncoming::from(self.grpc_listener)
                .with_nodelay(Some(true))
                .with_keepalive(Some(Duration::from_secs(60))),
            async move {
                let _ = listener_stop.wait_for(|stop| *stop).await;
            },
        );
        tokio::pin!(serving);
        let result = tokio::select! {
            result = &mut serving => result.map_err(ServerError::from),
            () = shutdown => {
                tracing::info!(grace_seconds = self.shutdown_grace.as_secs(), "shutting down");
                health_reporter
                    .set_not_serving::<NormalizerServiceServer<NormalizerGrpc>>()
                    .await;
                // Streams see this and end with their resume cursor; unary calls in flight finish.
                let _ = stop_tx.send(true);
                match tokio::time::timeout(self.shutdown_grace, &mut serving).await {
                    Ok(result) => result.map_err(ServerError::from),
                    Err(_) => {
                        tracing::warn!("grace period over, closing remaining connections");
                        Ok(())
                    }
                }
            }
        };
        retention.abort();
        log.close().await;
        tracing::info!("stopped");
        result
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
