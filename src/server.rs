//! `hooknorm serve`: opens the event log, binds the listeners (gRPC, the HTTP webhook ingress,
//! and the ops listener for the probes, metrics and the events console), gives each its connection admission (see
//! [`crate::listen`]; the caps are fitted to the open-file limit here), wires health and
//! reflection around the service, keeps readiness current, runs retention, and shuts every
//! listener down gracefully on one signal.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server as TonicServer;

use crate::auth::Authenticator;
use crate::auth::tls::{self, TlsError, TlsFiles, TlsReloader};
use crate::config::{Config, StoreBackend};
use crate::grpc::{NormalizerGrpc, health};
use crate::http::{HttpSettings, HttpState};
use crate::listen::Admission;
use crate::listen::grpc::{Incoming, Plain, ResetLimits};
use crate::log::nats::{NatsEventLog, NatsOpenError};
use crate::log::sqlite::SqliteEventLog;
use crate::log::{EventLog, LogError};
use crate::pipeline::Pipeline;
use crate::providers::ProviderKind;
use crate::readiness::{HEALTH_REFRESH, Readiness};
use crate::stream::StreamSettings;

mod admissions;
use admissions::Admissions;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the event log: {0}")]
    Log(#[from] LogError),
    #[error("cannot open the event log on nats: {0}")]
    Nats(#[from] NatsOpenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("grpc server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("http server failed: {0}")]
    Http(std::io::Error),
    #[error("reflection service cannot load the descriptor set: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("a start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot load the {listener} listener's tls files: {source}")]
    Tls {
        listener: &'static str,
        source: TlsError,
    },
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
        StoreBackend::Nats => Ok(Arc::new(NatsEventLog::open(&store).await?)),
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
    http_listener: TcpListener,
    http_addr: SocketAddr,
    http: HttpSettings,
    ops_listener: TcpListener,
    ops_addr: SocketAddr,
    admissions: Admissions,
    grpc_resets: ResetLimits,
    /// `grpc.max_concurrency`.
    grpc_max_concurrency: usize,
    drain: Duration,
    shutdown_grace: Duration,
    /// Who may call the gRPC API and read the events console.
    auth: Arc<Authenticator>,
    /// The configured sources and their providers in config order, for the console.
    console_sources: Vec<(String, ProviderKind)>,
    /// `ops.max_connections`, which bounds the console's live tails.
    ops_max_connections: usize,
    /// Each listener's TLS, when configured; `serve` keeps them current.
    grpc_tls: Option<TlsReloader>,
    http_tls: Option<TlsReloader>,
    tls_reload_interval: Duration,
    /// See [`Server::lower_accept_priority`].
    accept_niceness: Option<i32>,
}

impl Server {
    /// Opens the event log and binds the gRPC and HTTP listeners.
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        let log = open_log(config).await?;
        Self::bind_with_log(config, log).await
    }

    /// As [`Server::bind`], with an already opened event log.
    pub async fn bind_with_log(
        config: &Config,
        log: Arc<dyn EventLog>,
    ) -> Result<Server, ServerError> {
        let pipeline = Pipeline::new(config, log);
        let http = HttpSettings::from_config(&config.http, config.limits.max_body_bytes);
        let admissions = Admissions::new(config, &http);
        // In config order, so the start-up log reads like the file.
        let mut sources: Vec<_> = pipeline.sources().collect();
        sources.sort_by_key(|source| {
            config
                .sources
                .iter()
                .position(|configured| configured.name == source.name)
        });
        for source in sources {
            tracing::info!(
                source = %source.name,
                provider = source.provider.name(),
                scheme = source.verifier.scheme_name(),
                "source configured"
            );
            // Every `none` source is worth an operator's glance: an allowlist narrows who can
            // post, but anyone behind those addresses (or spoofing a trusted proxy hop) still can.
            if source.verifier.is_unauthenticated() {
                tracing::warn!(
                    source = %source.name,
                    "source accepts unauthenticated webhooks from any address (scheme none, no allowlist)"
                );
            } else if source.verifier.is_scheme_none() {
                tracing::warn!(
                    source = %source.name,
                    "source accepts unauthenticated webhooks from its allowed_cidrs (scheme none)"
                );
            }
        }
        if config.auth.authenticator.is_open() {
            tracing::warn!(
                "grpc api accepts any caller that reaches it: ingest, read and forwarded fields (auth none)"
            );
        }
        let grpc_tls = load_tls(config.tls.grpc.clone(), tls::GRPC_ALPN, "grpc").await?;
        let http_tls = load_tls(config.tls.http.clone(), tls::HTTP_ALPN, "http").await?;
        let (grpc_listener, grpc_addr) = bind(config.server.grpc_listen).await?;
        let (http_listener, http_addr) = bind(config.server.http_listen).await?;
        let (ops_listener, ops_addr) = bind(config.server.ops_listen).await?;
        Ok(Server {
            pipeline,
            streams: StreamSettings {
                buffer: config.streams.buffer,
                buffer_bytes: config.streams.buffer_bytes,
                heartbeat: Duration::from_secs(config.streams.heartbeat_seconds),
                slow_subscriber_timeout: Duration::from_secs(
                    config.streams.slow_subscriber_timeout_seconds,
                ),
                ..StreamSettings::default()
            },
            retention_interval: Duration::from_secs(config.store.retention_interval_seconds),
            grpc_listener,
            grpc_addr,
            http_listener,
            http_addr,
            http,
            ops_listener,
            ops_addr,
            admissions,
            grpc_max_concurrency: config.grpc.max_concurrency,
            grpc_resets: ResetLimits {
                per_second: config.grpc.max_stream_resets_per_second,
                penalty: Duration::from_secs(config.grpc.reset_penalty_seconds),
            },
            drain: Duration::from_secs(config.server.drain_seconds),
            shutdown_grace: Duration::from_secs(config.server.shutdown_grace_seconds),
            auth: Arc::new(config.auth.authenticator.clone()),
            console_sources: config
                .sources
                .iter()
                .map(|source| (source.name.clone(), source.provider))
                .collect(),
            ops_max_connections: config.ops.max_connections,
            grpc_tls,
            http_tls,
            tls_reload_interval: config.tls.reload_interval,
            accept_niceness: None,
        })
    }

    /// Has `serve` lower the priority of the thread it runs on, which accepts for every
    /// listener, by `niceness` (see [`crate::listen::priority`]): for a process whose runtime
    /// workers are threads of their own, as the binary's are.
    pub fn lower_accept_priority(mut self, niceness: i32) -> Server {
        self.accept_niceness = Some(niceness);
        self
    }

    /// The address gRPC is listening on.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The address the HTTP ingress is listening on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address the probes (`/healthz`, `/readyz`) are listening on.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// Serves every listener until `shutdown` resolves; then turns unready at once, keeps
    /// serving for the drain delay (so load balancers see the probes fail and stop routing here
    /// before connections are refused), then stops accepting, ends streams with their resume
    /// cursors, lets in-flight requests on every listener finish for up to the grace period, and
    /// closes the log.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
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
        // Shutdown in two steps: `draining` turns readiness (HTTP and gRPC health) off at once;
        // `stop`, one drain delay later, is the one cancellation signal for everything else:
        // listeners stop accepting, streams end.
        let (draining_tx, draining_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let readiness = Readiness::new(log.clone(), draining_rx);
        let mut published = readiness.subscribe();
        let app = crate::http::router(HttpState::new(self.pipeline.clone(), self.http));
        let console = crate::console::Console::new(
            log.clone(),
            self.auth.clone(),
            self.console_sources,
            self.pipeline.max_event_bytes(),
            self.streams,
            stop_rx.clone(),
            crate::console::max_live_tails(self.ops_max_connections),
        );
        let ops_app = crate::http::ops_router(readiness.clone(), Some(console));
        let service = NormalizerGrpc::new(
            self.pipeline,
            self.streams,
            stop_rx.clone(),
            Arc::new(tokio::sync::Semaphore::new(self.grpc_max_concurrency)),
        );
        let router = TonicServer::builder()
            .trace_fn(crate::telemetry::context::grpc_span)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service.into_server(self.auth));
        let reloads: Vec<_> = [&self.grpc_tls, &self.http_tls]
            .into_iter()
            .flatten()
            .map(|reloader| reloader.spawn(self.tls_reload_interval))
            .collect();
        let (grpc_listener, admission, resets) =
            (self.grpc_listener, self.admissions.grpc, self.grpc_resets);
        let grpc: Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
            match &self.grpc_tls {
                Some(reloader) => Box::pin(router.serve_with_incoming_shutdown(
                    Incoming::new(
                        grpc_listener,
                        admission,
                        TCP_KEEPALIVE,
                        resets,
                        reloader.tls(),
                    ),
                    stopped(stop_rx.clone()),
                )),
                None => Box::pin(router.serve_with_incoming_shutdown(
                    Incoming::new(grpc_listener, admission, TCP_KEEPALIVE, resets, Plain),
                    stopped(stop_rx.clone()),
                )),
            };
        let http = crate::http::serve(
            self.http_listener,
            app,
            self.admissions.http,
            self.http_tls.as_ref().map(TlsReloader::tls),
            stopped(stop_rx.clone()),
        );
        let ops = serve_ops(
            self.ops_listener,
            ops_app,
            self.admissions.ops,
            stopped(stop_rx),
        );
        let grpc = async { grpc.await.map_err(ServerError::from) };
        let http = async { http.await.map_err(ServerError::Http) };
        // Any listener failing stops the server: part of a server would look healthy to one
        // kind of probe and be dead to another.
        let serving = async { tokio::try_join!(grpc, http, ops).map(|_| ()) };
        tokio::pin!(serving);
        // Every listener was bound in `bind`, so connections queue from here on.
        readiness.mark_listening();
        let _ = readiness.check().await;
        // From here this thread accepts; the ops thread started above keeps its priority.
        if let Some(niceness) = self.accept_niceness
            && let Err(error) = crate::listen::priority::lower_this_thread(niceness)
        {
            tracing::warn!(%error, niceness, "cannot lower the accepting thread's priority");
        }
        health::apply_readiness(&health_reporter, &mut published).await;
        let health_forwarding = health::spawn_readiness_forwarding(health_reporter, published);
        let refresh = readiness.spawn_refresh(HEALTH_REFRESH);
        tracing::info!(addr = %self.grpc_addr, "grpc listening");
        tracing::info!(addr = %self.http_addr, "http listening");
        tracing::info!(addr = %self.ops_addr, "ops listening");
        let result = tokio::select! {
            result = &mut serving => result,
            () = shutdown => {
                tracing::info!(
                    drain_seconds = self.drain.as_secs(),
                    grace_seconds = self.shutdown_grace.as_secs(),
                    "shutting down"
                );
                let _ = draining_tx.send(true);
                let _ = readiness.check().await;
                // Still serving (polling `serving` is what accepts): webhooks routed here while
                // the endpoint is being removed are taken, not refused at connect.
                match tokio::time::timeout(self.drain, &mut serving).await {
                    Ok(result) => result,
                    Err(_) => {
                        if !self.drain.is_zero() {
                            tracing::info!("drain over, listeners stop accepting");
                        }
                        // Streams see this and end with their resume cursor; requests in flight
                        // on either listener finish.
                        let _ = stop_tx.send(true);
                        match tokio::time::timeout(self.shutdown_grace, &mut serving).await {
                            Ok(result) => result,
                            Err(_) => {
                                tracing::warn!("grace period over, closing remaining connections");
                                Ok(())
                            }
                        }
                    }
                }
            }
        };
        refresh.abort();
        health_forwarding.abort();
        reloads.iter().for_each(|reload| reload.abort());
        retention.abort();
        log.close().await;
        tracing::info!("stopped");
        result
    }
}

/// Serves the ops listener on a thread and runtime of its own, started at once, so that the
/// probes never wait behind the public listeners' work, however much of it a flood makes: the
/// kernel shares the CPU between threads, where tokio would queue probe connections behind
/// every other task. Started before the accepting thread lowers its priority, which it would
/// otherwise inherit.
fn serve_ops(
    listener: TcpListener,
    app: axum::Router,
    admission: Arc<Admission>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = Result<(), ServerError>> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let spawned = listener.into_std().and_then(|listener| {
        std::thread::Builder::new()
            .name("hooknorm-ops".into())
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| {
                        runtime.block_on(async {
                            let listener = TcpListener::from_std(listener)?;
                            crate::http::serve(listener, app, admission, None, shutdown).await
                        })
                    });
                let _ = done_tx.send(served);
            })
    });
    async move {
        spawned.map_err(ServerError::Http)?;
        match done_rx.await {
            Ok(served) => served.map_err(ServerError::Http),
            Err(_) => Err(ServerError::Http(std::io::Error::other(
                "ops listener thread ended without an answer",
            ))),
        }
    }
}

/// TCP keep-alive on gRPC connections, so that dead peers are found.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Loads a listener's TLS files off the async workers, if it has any.
async fn load_tls(
    files: Option<TlsFiles>,
    alpn: &'static [&'static [u8]],
    listener: &'static str,
) -> Result<Option<TlsReloader>, ServerError> {
    let Some(files) = files else {
        return Ok(None);
    };
    let loaded =
        tokio::task::spawn_blocking(move || TlsReloader::load(files, alpn, listener)).await?;
    loaded
        .map(Some)
        .map_err(|source| ServerError::Tls { listener, source })
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let listener =
        crate::listen::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Resolves once the stop signal is raised (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed by this call, not when
/// the future is first polled: a signal that arrives as soon as the server says it listens must
/// already be a graceful shutdown, not the default action (termination). Call it inside the
/// runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            let (mut terminate, mut interrupt) = match (terminate, interrupt) {
                (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
                (Err(error), _) | (_, Err(error)) => {
                    tracing::error!(%error, "cannot listen for sigterm and sigint");
                    return std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
                _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
        tracing::info!(signal = "ctrl-c", "shutdown requested");
    }
}
