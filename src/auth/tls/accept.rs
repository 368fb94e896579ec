//! TLS handshakes on accepted connections: one at a time for the HTTP listener (which owns its
//! accept loop), and as a stream of finished handshakes for the gRPC server, which takes any
//! stream of connections.
//!
//! Every handshake runs in its own task with a deadline, so a client that stalls mid-handshake
//! holds no one else up, and at most [`MAX_HANDSHAKES`] run at once.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use super::ReloadingTls;

/// How long a client has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once on one listener; more connections wait in the accept queue.
const MAX_HANDSHAKES: usize = 256;

impl ReloadingTls {
    /// Completes the server side of a handshake on `stream` with the current configuration.
    pub async fn handshake(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let acceptor = TlsAcceptor::from(self.current());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "tls handshake timed out",
            )),
        }
    }
}

/// Finished TLS connections, as tonic's `serve_with_incoming` takes them.
pub type TlsIncoming = ReceiverStream<io::Result<TlsStream<TcpStream>>>;

/// Accepts on `listener` and yields each connection once its handshake is done. The accept task
/// ends, closing the listener, when the stream is dropped (the server stopped accepting).
pub fn tls_incoming(listener: TcpListener, tls: ReloadingTls) -> TlsIncoming {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        loop {
            let permit = tokio::select! {
                () = tx.closed() => break,
                permit = handshakes.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break, // never closed
                },
            };
            let (stream, peer) = tokio::select! {
                () = tx.closed() => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        accept_failed(error).await;
                        continue;
                    }
                },
            };
            // Without TCP_NODELAY small unary responses wait on delayed ACKs (tens of ms).
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set tcp_nodelay");
            }
            let tls = tls.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let handshake = tls.handshake(stream).await;
                drop(permit);
                match handshake {
                    Ok(stream) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Err(error) => handshake_failed(&error, peer),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A failed handshake is the client's business (a scanner, a plain-text client, an untrusted
/// certificate): worth a debug line, not a warning.
pub fn handshake_failed(error: &io::Error, peer: SocketAddr) {
    tracing::debug!(%error, %peer, "tls handshake failed");
}

/// As the HTTP listener does: per-connection errors are the client's; anything else (out of file
/// descriptors) is ours, and retrying at once would spin.
async fn accept_failed(error: io::Error) {
    if matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "grpc accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
