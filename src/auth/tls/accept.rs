//! TLS handshakes on accepted connections. Each listener's accept loop admits a connection
//! first ([`crate::listen`]) and runs its handshake in the connection's own task, so a client
//! that stalls mid-handshake holds no one else up and is judged by admission's deadlines like
//! any connection that has not sent a request yet; the handshake has a deadline of its own too.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::ReloadingTls;

/// How long a client has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// A failed handshake is the client's business (a scanner, a plain-text client, an untrusted
/// certificate): worth a debug line, not a warning.
pub fn handshake_failed(error: &io::Error, peer: SocketAddr) {
    tracing::debug!(%error, %peer, "tls handshake failed");
}
