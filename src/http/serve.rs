//! The HTTP listener's connections: an accept loop over hyper-util's server builder (HTTP/1.1
//! only, with a timer), so every connection is bounded in time (a request head must arrive
//! within the header-read timeout, which also ends idle keep-alive connections) and in number
//! (at most `max_connections` open at once). Shutdown stops accepting, asks every connection to
//! close after its request in flight, and waits for them; dropping the future aborts the rest.
//! With TLS, each connection's handshake runs in its own task ([`ReloadingTls::handshake`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::auth::tls::ReloadingTls;

/// How connections are bounded, from `[http]`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// A request head must be complete this long after the connection starts waiting for it.
    pub header_read_timeout: Duration,
    /// Connections open at once; more wait in the accept queue.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets every
/// open connection finish its request in flight. Handlers see the peer address
/// (`ConnectInfo<SocketAddr>`). With `tls`, connections are TLS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<ReloadingTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    // Owned here, so if the caller stops waiting (grace period over) the connections go too.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: past the cap, connections wait in the kernel's queue, not in memory.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next() => continue,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
        };
        connections.spawn(connection(
            stream,
            peer,
            app.clone(),
            builder.clone(),
            permit,
            closing_rx.clone(),
            tls.clone(),
        ));
    }
    // Closing the socket now: new connections are refused from here on.
    drop(listener);
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection until the client closes it, a limit ends it, or shutdown asks it to
/// close after its request in flight.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    slot: OwnedSemaphorePermit,
    closing: watch::Receiver<bool>,
    tls: Option<ReloadingTls>,
) {
    // Without TCP_NODELAY small answers wait on delayed ACKs (tens of ms).
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set tcp_nodelay");
    }
    match tls {
        None => serve_connection(stream, peer, app, builder, slot, closing).await,
        Some(tls) => match tls.handshake(stream).await {
            Ok(stream) => serve_connection(stream, peer, app, builder, slot, closing).await,
            Err(error) => crate::auth::tls::handshake_failed(&error, peer),
        },
    }
}

/// Serves one connection's requests, over TCP or TLS.
async fn serve_connection(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    peer: SocketAddr,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    _slot: OwnedSemaphorePermit,
    mut closing: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request.map(Body::new))
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async { drop(closing.wait_for(|closing| *closing).await) } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    // Timeouts and clients that hang up are routine, and the client's business.
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "http connection ended with an error");
    }
}

/// Per-connection accept errors are the client's; anything else (out of file descriptors) is
/// ours, and retrying at once would spin, so wait a moment.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "http accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
