//! The gRPC listener's connections, as the incoming stream tonic serves: each accepted
//! connection is admitted ([`Admission`]) and held here until the client has sent the HTTP/2
//! connection preface, and only then handed to tonic. hyper's HTTP/2 server has no deadline for
//! the preface, so without this gate a client that connects and says nothing would hold a
//! connection (and a descriptor) forever. Handed-over connections count against the cap until
//! they close, but are never closed here: HTTP/2 keep-alive and tonic handle them from then on.
//!
//! The gate reads the cleartext preface; if tonic is ever given TLS, the gate must move behind
//! the handshake.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::{Active, Admission, Admitted, CloseReason, SWEEP_INTERVAL};

/// What every HTTP/2 connection starts with (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The connections tonic serves; dropping it (tonic stopped accepting) stops the accept loop
/// and closes the listening socket and every connection still at the gate.
pub struct Incoming {
    ready: mpsc::Receiver<GrpcStream>,
    accepting: JoinHandle<()>,
}

impl Incoming {
    /// Starts accepting on `listener`; `tcp_keepalive` is set on every connection so that dead
    /// peers are found.
    pub fn new(listener: TcpListener, admission: Arc<Admission>, tcp_keepalive: Duration) -> Self {
        let (tx, ready) = mpsc::channel(64);
        let accepting = tokio::spawn(accept_loop(listener, admission, tcp_keepalive, tx));
        Incoming { ready, accepting }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Stream for Incoming {
    type Item = io::Result<GrpcStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready.poll_recv(cx).map(|stream| stream.map(Ok))
    }
}

async fn accept_loop(
    listener: TcpListener,
    admission: Arc<Admission>,
    tcp_keepalive: Duration,
    ready: mpsc::Sender<GrpcStream>,
) {
    // Owned here: aborting this loop aborts every gate too.
    let mut gates = JoinSet::new();
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = ready.closed() => break,
            _ = sweep.tick() => {
                admission.sweep();
                while gates.try_join_next().is_some() {}
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    while gates.try_join_next().is_some() {}
                    let Some(admitted) = admission.admit(&stream, peer) else {
                        continue; // dropping the stream closes it
                    };
                    configure(&stream, tcp_keepalive);
                    gates.spawn(gate(stream, peer, admitted, admission.clone(), ready.clone()));
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

/// Waits for the preface (the sweep closes the connection if it takes too long), then hands the
/// connection over, preface included.
async fn gate(
    mut stream: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    admission: Arc<Admission>,
    ready: mpsc::Sender<GrpcStream>,
) {
    let Admitted { connection, closed } = admitted;
    let mut preface = [0u8; PREFACE.len()];
    let reading = stream.read_exact(&mut preface);
    tokio::pin!(reading);
    let mut first_read = true;
    // A client sends the preface at once: whatever the first read finds, from then the
    // connection is judged by the deadline.
    let read = std::future::poll_fn(|cx| {
        let poll = reading.as_mut().poll(cx);
        if std::mem::take(&mut first_read) {
            connection.polled();
        }
        poll
    });
    tokio::select! {
        read = read => match read {
            Ok(_) if &preface == PREFACE => {}
            Ok(_) => {
                admission.record(CloseReason::Protocol, peer.ip());
                return;
            }
            Err(_) => return, // the client left
        },
        _ = closed => return,
    }
    let active = connection.activate();
    let stream = GrpcStream {
        stream,
        preface,
        replayed: 0,
        _active: active,
    };
    // Fails only when tonic has stopped accepting; the connection closes with it.
    let _ = ready.send(stream).await;
}

/// A connection past the gate: reads give the preface back first, then the socket's bytes.
/// Counts against the listener's cap until dropped.
pub struct GrpcStream {
    stream: TcpStream,
    preface: [u8; PREFACE.len()],
    replayed: usize,
    _active: Active,
}

impl AsyncRead for GrpcStream {
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
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for GrpcStream {
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

impl Connected for GrpcStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}
