//! The gRPC listener's connections, as the incoming stream tonic serves: each accepted
//! connection is admitted ([`Admission`]) and held here until the client has sent the HTTP/2
//! connection preface, and only then handed to tonic. hyper's HTTP/2 server has no deadline for
//! the preface, so without this gate a client that connects and says nothing would hold a
//! connection (and a descriptor) forever. Handed-over connections count against the cap until
//! they close, but are never closed here: HTTP/2 keep-alive and tonic handle them from then on.
//!
//! Past the gate, the client's frames are watched for HTTP/2 rapid reset (see [`rapid_reset`]):
//! a connection resetting streams faster than its budget is closed, and its address refused for
//! a while.
//!
//! With TLS the handshake comes between admission and the gate ([`Upgrade`]): the gate and the
//! watch read the decrypted HTTP/2, and a client that stalls mid-handshake is judged by the same
//! deadline as one that never sends its preface.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use crate::auth::tls::ReloadingTls;

use super::rapid_reset::ResetWatch;
use super::{Active, Admission, Admit, Admitted, CloseReason, SWEEP_INTERVAL, hold};

/// How the gRPC listener treats clients that reset streams, from `[grpc]`.
#[derive(Debug, Clone, Copy)]
pub struct ResetLimits {
    /// Stream resets a connection may send per second (and at once).
    pub per_second: u32,
    /// How long its address is refused after a connection is closed for it.
    pub penalty: Duration,
}

/// What every HTTP/2 connection starts with (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The connections tonic serves; dropping it (tonic stopped accepting) stops the accept loop
/// and closes the listening socket and every connection still at the gate. The accept loop runs
/// inside this stream, polled by tonic's own accept loop, rather than as a task of its own, so
/// that accepting (and refusing) a flood takes no turn on the runtime's workers away from the
/// requests they serve.
pub struct Incoming<S> {
    ready: mpsc::Receiver<GrpcStream<S>>,
    accepting: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl<S: Send + 'static> Incoming<S> {
    /// Starts accepting on `listener`, turning each admitted connection into an `S` with
    /// `upgrade`; `tcp_keepalive` is set on every connection so that dead peers are found.
    pub fn new<U: Upgrade<Stream = S>>(
        listener: TcpListener,
        admission: Arc<Admission>,
        tcp_keepalive: Duration,
        resets: ResetLimits,
        upgrade: U,
    ) -> Self {
        let (tx, ready) = mpsc::channel(64);
        let accepting = Box::pin(accept_loop(
            listener,
            admission,
            Gate {
                tcp_keepalive,
                resets,
                upgrade,
                ready: tx,
            },
        ));
        Incoming { ready, accepting }
    }
}

/// How an admitted connection becomes the stream the gate reads: as it is, or after a TLS
/// handshake.
pub trait Upgrade: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn upgrade(&self, stream: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// The socket under the stream, for its options.
    fn socket(stream: &Self::Stream) -> &TcpStream;
}

/// Cleartext HTTP/2.
#[derive(Debug, Clone, Copy)]
pub struct Plain;

impl Upgrade for Plain {
    type Stream = TcpStream;

    async fn upgrade(&self, stream: TcpStream) -> io::Result<TcpStream> {
        Ok(stream)
    }

    fn socket(stream: &TcpStream) -> &TcpStream {
        stream
    }
}

impl Upgrade for ReloadingTls {
    type Stream = TlsStream<TcpStream>;

    async fn upgrade(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.handshake(stream).await
    }

    fn socket(stream: &TlsStream<TcpStream>) -> &TcpStream {
        stream.get_ref().0
    }
}

impl<S> Stream for Incoming<S> {
    type Item = io::Result<GrpcStream<S>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Never done: it accepts until this stream is dropped.
        let _ = this.accepting.as_mut().poll(cx);
        this.ready.poll_recv(cx).map(|stream| stream.map(Ok))
    }
}

/// What every gate shares.
struct Gate<U: Upgrade> {
    tcp_keepalive: Duration,
    resets: ResetLimits,
    upgrade: U,
    ready: mpsc::Sender<GrpcStream<U::Stream>>,
}

impl<U: Upgrade> Clone for Gate<U> {
    fn clone(&self) -> Self {
        Gate {
            tcp_keepalive: self.tcp_keepalive,
            resets: self.resets,
            upgrade: self.upgrade.clone(),
            ready: self.ready.clone(),
        }
    }
}

async fn accept_loop<U: Upgrade>(
    listener: TcpListener,
    admission: Arc<Admission>,
    gate_with: Gate<U>,
) {
    // Owned here: dropping this loop aborts every gate too.
    let mut gates = JoinSet::new();
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                admission.sweep();
                while gates.try_join_next().is_some() {}
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    while gates.try_join_next().is_some() {}
                    let admitted = match admission.admit(&stream, peer) {
                        Admit::Serve(admitted) => admitted,
                        Admit::Hold { until, held } => {
                            // Dropping this loop (tonic stopped) drops the holds too.
                            gates.spawn(hold(stream, until, held, std::future::pending()));
                            continue;
                        }
                        Admit::Refused => continue, // dropping the stream closes it
                    };
                    gates.spawn(gate(stream, peer, admitted, admission.clone(), gate_with.clone()));
                }
                Err(error) => admission.accept_failed(error).await,
            },
        }
    }
}

/// Without TCP_NODELAY small unary responses wait on delayed ACKs (tens of ms).
fn configure(stream: &TcpStream, tcp_keepalive: Duration) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set tcp_nodelay");
    }
    let keepalive = socket2::TcpKeepalive::new().with_time(tcp_keepalive);
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(%error, "cannot set tcp keepalive");
    }
}

/// Waits for the preface, after the TLS handshake if there is one (the sweep closes the
/// connection if it takes too long), then hands the connection over, preface included. Socket
/// options wait for the preface too: most of a flood never gets that far, and costs no system
/// call more than it must.
async fn gate<U: Upgrade>(
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    admission: Arc<Admission>,
    gate: Gate<U>,
) {
    let Gate {
        tcp_keepalive,
        resets,
        upgrade,
        ready,
    } = gate;
    let Admitted { connection, closed } = admitted;
    let opening = async {
        let mut stream = upgrade.upgrade(stream).await?;
        let mut preface = [0u8; PREFACE.len()];
        stream.read_exact(&mut preface).await?;
        Ok::<_, io::Error>((stream, preface))
    };
    tokio::pin!(opening);
    let mut first_read = true;
    // A client sends its first bytes (the preface, or its TLS hello) at once: whatever the first
    // read finds, from then the connection is judged by the deadline.
    let opened = std::future::poll_fn(|cx| {
        let poll = opening.as_mut().poll(cx);
        if std::mem::take(&mut first_read) {
            connection.polled();
        }
        poll
    });
    let (stream, preface) = tokio::select! {
        opened = opened => match opened {
            Ok((stream, preface)) if &preface == PREFACE => (stream, preface),
            Ok(_) => {
                admission.record(CloseReason::Protocol, peer.ip());
                return;
            }
            // The client left, or its handshake failed: its business, worth a debug line.
            Err(error) => {
                tracing::debug!(%error, %peer, "grpc connection ended before its preface");
                return;
            }
        },
        _ = closed => return,
    };
    let active = connection.activate();
    configure(U::socket(&stream), tcp_keepalive);
    let stream = GrpcStream {
        stream,
        preface,
        replayed: 0,
        resets: ResetWatch::new(resets.per_second, std::time::Instant::now()),
        watch: Watch {
            admission,
            peer,
            penalty: resets.penalty,
        },
        _active: active,
    };
    // Fails only when tonic has stopped accepting; the connection closes with it.
    let _ = ready.send(stream).await;
}

/// A connection past the gate: reads give the preface back first, then the socket's bytes,
/// whose frames are counted for rapid reset. Counts against the listener's cap until dropped.
pub struct GrpcStream<S> {
    stream: S,
    preface: [u8; PREFACE.len()],
    replayed: usize,
    resets: ResetWatch,
    watch: Watch,
    _active: Active,
}

/// Where a rapid reset is reported.
struct Watch {
    admission: Arc<Admission>,
    peer: SocketAddr,
    penalty: Duration,
}

impl<S: AsyncRead + Unpin> AsyncRead for GrpcStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replayed < this.preface.len() {
            let rest = &this.preface[this.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replayed += n;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if !this
            .resets
            .feed(&buf.filled()[before..], std::time::Instant::now())
        {
            let peer = this.watch.peer.ip();
            this.watch.admission.record(CloseReason::RapidReset, peer);
            this.watch.admission.penalize(peer, this.watch.penalty);
            // hyper closes the connection on a read error.
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "too many stream resets",
            )));
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GrpcStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for GrpcStream<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> S::ConnectInfo {
        self.stream.connect_info()
    }
}
