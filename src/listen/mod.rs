//! Connection admission for the listeners, before any protocol runs: every connection is
//! accepted at once (never left in the kernel's queue, where it would wait behind idle ones
//! and time out unanswered), registered, and closed by the server when it waits too long for a
//! request or when room is needed. See [`registry`] for who is closed first, [`close_log`] for
//! how closes are logged, [`fd_limit`] for the open-file limit the caps need, [`grpc`] for the
//! gRPC listener's HTTP/2 preface gate and [`rapid_reset`] for its watch on stream resets, and
//! [`penalty`] for the addresses caught, and [`priority`] for the accepting thread's CPU share;
//! the HTTP listeners' accept loop is `crate::http::serve`.
//!
//! "Waiting" means no request is in progress on the connection: just opened, sending a request
//! head slowly, or idle between requests (HTTP keep-alive); for gRPC, not yet past the HTTP/2
//! preface. A connection counts as waiting only once the server has read from it: a sender's
//! head is in its first packet, so a connection read from and still without a request has not
//! sent one. A request whose body is still arriving is judged like a waiting connection (a
//! body trickled in holds a connection as surely as a head); once its body is in, a request is
//! never cut off here, and its own deadline (`http.request_timeout_seconds`) covers it.

pub mod close_log;
pub mod fd_limit;
pub mod grpc;
pub mod penalty;
pub mod priority;
pub mod rapid_reset;
pub mod registry;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::verify::IpAllowlist;
use close_log::CloseLog;
use penalty::{Held, PenaltyBox, Verdict};
use registry::{ConnId, Registry, Victim};

pub use registry::{CloseReason, Limits};

/// How often waiting connections are checked against the deadline (and the close log flushed).
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// Connections the kernel holds completed but not yet accepted. Accepting is never paused, so
/// this only absorbs bursts; Linux caps it at `net.core.somaxconn` (4096 by default since 5.4).
const BACKLOG: u32 = 4096;

/// Binds a listener with a deeper accept queue than tokio's default (1024).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind` does: a restart may rebind while old connections are in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Holds a penalized address's connection open, unread, until `until` (or until `stop`), then
/// closes it with a reset.
pub async fn hold(stream: TcpStream, until: Instant, held: Held, stop: impl Future<Output = ()>) {
    tokio::select! {
        () = tokio::time::sleep_until(until.into()) => {}
        () = stop => {}
    }
    let _ = stream.set_zero_linger();
    drop((stream, held));
}

/// One listener's open connections and limits; shared by its accept loop and its connections.
#[derive(Debug)]
pub struct Admission {
    listener: &'static str,
    /// Peers free of the per-address cap: trusted proxies, which carry many clients.
    exempt: Option<IpAllowlist>,
    registry: Mutex<Registry<oneshot::Sender<CloseReason>>>,
    /// Addresses refused for a while, for what one of their connections did.
    penalties: PenaltyBox,
    log: CloseLog,
}

/// What becomes of a just-accepted connection.
#[derive(Debug)]
pub enum Admit {
    /// Serve it.
    Serve(Admitted),
    /// Its address is penalized: hold it, unread, until `until` (see [`penalty`]), then close it
    /// ([`hold`]).
    Hold { until: Instant, held: Held },
    /// Refused: dropping it closes it (with a reset, already set).
    Refused,
}

/// An admitted connection: its registration, and the signal that the server closes it.
#[derive(Debug)]
pub struct Admitted {
    pub connection: Arc<Connection>,
    /// Resolves, with the reason, when the connection must close now (it was chosen to make
    /// room or timed out).
    pub closed: oneshot::Receiver<CloseReason>,
}

impl Admission {
    /// `listener` names it in logs (`http`, `ops`, `grpc`); `exempt` peers have no per-address
    /// cap.
    pub fn new(
        listener: &'static str,
        limits: Limits,
        exempt: Option<IpAllowlist>,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            listener,
            exempt,
            registry: Mutex::new(Registry::new(limits)),
            penalties: PenaltyBox::default(),
            log: CloseLog::new(listener),
        })
    }

    pub fn limits(&self) -> Limits {
        *self.registry().limits()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.registry().open()
    }

    /// Registers a just-accepted connection, closing another to make room if need be (see
    /// [`Registry::admit`]). When it is refused, the caller drops it, which closes it with a
    /// reset, set here (no FIN exchange, no TIME_WAIT: a flood's refused connections cost as
    /// little as can be).
    pub fn admit(self: &Arc<Self>, stream: &TcpStream, peer: SocketAddr) -> Admit {
        let peer = peer.ip();
        let now = Instant::now();
        match self.penalties.check(peer, now) {
            Verdict::Free => {}
            Verdict::Hold { until, held } => {
                self.log.record(CloseReason::Penalized, Some(peer));
                return Admit::Hold { until, held };
            }
            Verdict::Refuse => {
                let _ = stream.set_zero_linger();
                self.log.record(CloseReason::Penalized, Some(peer));
                return Admit::Refused;
            }
        }
        let (close, closed) = oneshot::channel();
        let exempt = self.exempt.as_ref().is_some_and(|list| list.contains(peer));
        let admission = self.registry().admit(peer, exempt, now, close);
        self.close(admission.victim.into_iter().collect());
        match admission.id {
            Ok(id) => Admit::Serve(Admitted {
                connection: Arc::new(Connection {
                    id,
                    admission: self.clone(),
                }),
                closed,
            }),
            Err(reason) => {
                let _ = stream.set_zero_linger();
                self.log.record(reason, Some(peer));
                Admit::Refused
            }
        }
    }

    /// Closes the connections that have waited past the deadline, ends penalties that are
    /// over, and flushes the close log.
    pub fn sweep(&self) {
        let now = Instant::now();
        let victims = self.registry().expire(now);
        self.close(victims);
        self.penalties.sweep(now);
        self.log.flush();
    }

    /// Refuses new connections from `peer`'s address for `duration` (a connection of its closed
    /// for abuse: reconnecting must not buy it a fresh allowance).
    pub fn penalize(&self, peer: IpAddr, duration: Duration) {
        self.penalties.penalize(peer, duration, Instant::now());
    }

    /// Records a close decided outside the registry (a connection that spoke another protocol).
    pub fn record(&self, reason: CloseReason, peer: IpAddr) {
        self.log.record(reason, Some(peer));
    }

    /// Handles an accept error. A client's own (it reset before we accepted) is ignored. Out of
    /// file descriptors, the oldest waiting connection gives its own back and accepting resumes
    /// shortly (the caps are sized to fit the limit, so this takes something else holding
    /// descriptors). Anything else is logged and retried after a pause, since retrying at
    /// once would spin.
    pub async fn accept_failed(&self, error: io::Error) {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        ) {
            return;
        }
        if fd_limit::is_out_of_files(&error) {
            let victim = self.registry().evict_one(CloseReason::OutOfFiles);
            match victim {
                Some(victim) => self.close(vec![victim]),
                None => self.log.record(CloseReason::OutOfFiles, None),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            return;
        }
        tracing::error!(listener = self.listener, %error, "accept failed");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    fn close(&self, victims: Vec<Victim<oneshot::Sender<CloseReason>>>) {
        for victim in victims {
            // The task may have ended meanwhile; then there is nothing left to close.
            let _ = victim.token.send(victim.reason);
            self.log.record(victim.reason, Some(victim.peer));
        }
    }

    /// Held for a few map operations only, never across an await.
    fn registry(&self) -> MutexGuard<'_, Registry<oneshot::Sender<CloseReason>>> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An open connection's registration; dropping it (the connection ended) deregisters it.
#[derive(Debug)]
pub struct Connection {
    id: ConnId,
    admission: Arc<Admission>,
}

impl Connection {
    /// The server has read from the connection (a first read, whatever it gave): from now it
    /// is judged by the deadline and may be closed to make room.
    pub fn polled(&self) {
        self.admission.registry().polled(self.id, Instant::now());
    }

    /// A request's head is in; its body is read next. Until [`RequestProgress::body_received`]
    /// the connection stays a candidate for closing (a trickled body holds a connection as
    /// surely as a trickled head); once the returned guard is dropped (the answer is written)
    /// it waits for the next request.
    pub fn start_request(self: &Arc<Self>) -> Active {
        self.admission
            .registry()
            .start_request(self.id, Instant::now());
        Active {
            connection: self.clone(),
        }
    }

    /// The connection has a complete request (for gRPC: its preface): no longer a candidate
    /// for closing, until the returned guard is dropped.
    pub fn activate(self: &Arc<Self>) -> Active {
        self.admission.registry().activate(self.id);
        Active {
            connection: self.clone(),
        }
    }

    /// For the request's handler: see [`RequestProgress`].
    pub fn progress(self: &Arc<Self>) -> RequestProgress {
        RequestProgress(self.clone())
    }
}

/// Given to a request's handler (as a request extension) to say when the body is in: from then
/// the request is processed, and its connection is never closed to make room.
#[derive(Debug, Clone)]
pub struct RequestProgress(Arc<Connection>);

impl RequestProgress {
    pub fn body_received(&self) {
        self.0.admission.registry().activate(self.0.id);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.admission.registry().remove(self.id);
    }
}

/// A request in progress on a connection (see [`Connection::start_request`]).
#[derive(Debug)]
pub struct Active {
    connection: Arc<Connection>,
}

impl Drop for Active {
    fn drop(&mut self) {
        let connection = &self.connection;
        connection
            .admission
            .registry()
            .wait(connection.id, Instant::now());
    }
}
