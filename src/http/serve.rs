//! The HTTP listeners' connections (the ingress and the ops listener): an accept loop over
//! hyper-util's server builder (HTTP/1.1 only). Every connection is accepted at once and admitted
//! by the listener's [`Admission`], which closes the connections that wait too long for a
//! request or are chosen to make room (see [`crate::listen`]); this loop tells admission when a
//! request starts (its head is in) and when its answer is done. Shutdown stops accepting, asks
//! every connection to close after its request in flight, and waits for them; dropping the
//! future aborts the rest. With TLS, a connection's handshake starts once its first bytes are in,
//! and admission judges it like a connection waiting for its request until it is done.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::auth::tls::ReloadingTls;
use crate::listen::{
    Active, Admission, Admit, Admitted, CloseReason, Connection, SWEEP_INTERVAL, hold,
};

/// The most a connection buffers while reading (hyper's default is ~400 KiB): it bounds what a
/// request head may take, and so what a client sending one slowly costs. Provider heads are a
/// few hundred bytes; a longer head is refused (431).
pub const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets every
/// open connection finish its request in flight. Handlers see the peer address
/// (`ConnectInfo<SocketAddr>`). With `tls`, connections are TLS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    admission: Arc<Admission>,
    tls: Option<ReloadingTls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        // Admission enforces the wait for a head, with a deadline that shrinks under pressure.
        .header_read_timeout(None)
        .max_buf_size(READ_BUFFER_BYTES);
    let builder = Arc::new(builder);
    let (closing_tx, closing_rx) = watch::channel(false);
    // Owned here, so if the caller stops waiting (grace period over) the connections go too.
    let mut connections = JoinSet::new();
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = sweep.tick() => {
                admission.sweep();
                while connections.try_join_next().is_some() {}
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Finished tasks keep their memory until joined.
                    while connections.try_join_next().is_some() {}
                    let admitted = match admission.admit(&stream, peer) {
                        Admit::Serve(admitted) => admitted,
                        Admit::Hold { until, held } => {
                            let mut closing = closing_rx.clone();
                            let stop = async move {
                                drop(closing.wait_for(|closing| *closing).await);
                            };
                            connections.spawn(hold(stream, until, held, stop));
                            continue;
                        }
                        Admit::Refused => continue, // dropping the stream closes it
                    };
                    connections.spawn(connection(
                        stream,
                        peer,
                        app.clone(),
                        builder.clone(),
                        admitted,
                        closing_rx.clone(),
                        tls.clone(),
                    ));
                }
                Err(error) => admission.accept_failed(error).await,
            },
        }
    }
    // Closing the socket now: new connections are refused from here on.
    drop(listener);
    let _ = closing_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection until the client closes it, admission closes it, or shutdown asks it
/// to close after its request in flight.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    admitted: Admitted,
    mut closing: watch::Receiver<bool>,
    tls: Option<ReloadingTls>,
) {
    // Without TCP_NODELAY small answers wait on delayed ACKs (tens of ms).
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set tcp_nodelay");
    }
    let Admitted {
        connection,
        mut closed,
    } = admitted;
    if !first_bytes(&stream, peer, &connection, &mut closed, &mut closing).await {
        return;
    }
    let Some(tls) = tls else {
        return serve_connection(stream, peer, app, builder, connection, closed, closing).await;
    };
    // The handshake reads at once: from here the connection is judged by the deadlines, like one
    // whose request head is slow (a hello trickled in must not wait for the handshake's own 10 s).
    connection.polled();
    let handshake = tokio::select! {
        handshake = tls.handshake(stream) => handshake,
        reason = &mut closed => return closed_by_admission(peer, reason),
        () = async { drop(closing.wait_for(|closing| *closing).await) } => return,
    };
    match handshake {
        Ok(stream) => {
            serve_connection(stream, peer, app, builder, connection, closed, closing).await
        }
        Err(error) => crate::auth::tls::handshake_failed(&error, peer),
    }
}

/// Serves one connection's requests, over TCP or TLS.
async fn serve_connection(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    peer: SocketAddr,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    connection: Arc<Connection>,
    mut closed: oneshot::Receiver<CloseReason>,
    mut closing: watch::Receiver<bool>,
) {
    let mut first_read = Some(connection.clone());
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // The head is in; admission judges the upload until the handler has the body.
        let active = connection.start_request();
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(connection.progress());
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(Body::new)).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                Body::new(AnswerBody {
                    body,
                    _active: active,
                })
            }))
        }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    // hyper reads as soon as it is first polled: a head that is in is served in that poll.
    let serving = std::future::poll_fn(|cx| {
        let poll = connection.as_mut().poll(cx);
        if let Some(registration) = first_read.take() {
            registration.polled();
        }
        poll
    });
    let result = tokio::select! {
        result = serving => result,
        reason = &mut closed => return closed_by_admission(peer, reason),
        () = async { drop(closing.wait_for(|closing| *closing).await) } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    // Clients that hang up are routine, and the client's business.
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "http connection ended with an error");
    }
}

/// Waits for a connection's first bytes: until then it costs its task and nothing more (hyper,
/// and its 8 KiB read buffer, come with them), which is what most of a flood of idle
/// connections never gets past. False when it must close first (admission closed it, or the
/// server is shutting down: it has no request in flight to finish).
async fn first_bytes(
    stream: &TcpStream,
    peer: SocketAddr,
    connection: &Connection,
    closed: &mut oneshot::Receiver<CloseReason>,
    closing: &mut watch::Receiver<bool>,
) -> bool {
    let mut first = true;
    let arrived = async {
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            // Readiness can be spurious (a new socket starts out "ready"): look without taking.
            let mut byte = [MaybeUninit::<u8>::uninit(); 1];
            let peeked =
                stream.try_io(Interest::READABLE, || SockRef::from(stream).peek(&mut byte));
            match peeked {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                // Bytes, the end, or an error: hyper takes it from here.
                _ => return,
            }
            // Nothing in yet when first looked at: from now it is judged by the deadline.
            if std::mem::take(&mut first) {
                connection.polled();
            }
        }
    };
    tokio::select! {
        () = arrived => true,
        reason = closed => {
            closed_by_admission(peer, reason);
            false
        }
        () = async { drop(closing.wait_for(|closing| *closing).await) } => false,
    }
}

/// Admission has logged why (rate-limited); dropping the connection closes the socket.
fn closed_by_admission(peer: SocketAddr, reason: Result<CloseReason, oneshot::error::RecvError>) {
    let reason = reason.map_or("unknown", CloseReason::as_str);
    tracing::debug!(%peer, reason, "http connection closed by admission");
}

/// An answer's body, holding the request's [`Active`] guard: hyper drops it once the body is
/// written, and from then the connection waits for its next request.
struct AnswerBody {
    body: Body,
    _active: Active,
}

impl hyper::body::Body for AnswerBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
