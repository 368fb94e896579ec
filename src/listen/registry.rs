//! The bookkeeping behind connection admission, with no I/O: which connections are open, which
//! of them are waiting (read from, no request in progress) and since when, and therefore which
//! one to close when a limit is reached. A connection the server has not read from yet is
//! "fresh" and never closed: whatever it sent is unread, and under load the server's own lag in
//! getting to it must not count against it. Every decision is made here, under one lock held by the caller, so
//! it can be tested with made-up instants.
//!
//! Waiting connections are kept in the order they started waiting, globally and per address, and
//! addresses by how many waiting connections they hold: choosing a victim is a lookup, never a
//! scan, whatever the number of connections.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A listener's connection limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once. At the cap a new connection closes a waiting one to make room,
    /// or is itself closed when every open connection has a request in progress.
    pub max_connections: usize,
    /// Connections without a request in progress one address (IPv6: one /64) may hold; past
    /// it, a new connection from it is closed at once. Exempt addresses (trusted proxies) have
    /// no such cap.
    pub max_waiting_per_address: usize,
    /// How long a connection may wait for a request while the listener is at most half full.
    pub wait_timeout: Duration,
    /// How long it may wait at the cap; between half full and the cap the deadline shrinks
    /// linearly from `wait_timeout` to this.
    pub wait_timeout_min: Duration,
}

impl Limits {
    /// The deadline for waiting connections with `open` connections open.
    pub fn wait_deadline(&self, open: usize) -> Duration {
        let cap = self.max_connections.max(1) as f64;
        let pressure = ((open as f64 / cap - 0.5) * 2.0).clamp(0.0, 1.0);
        let span = self.wait_timeout.saturating_sub(self.wait_timeout_min);
        self.wait_timeout.saturating_sub(span.mul_f64(pressure))
    }
}

/// Why the server closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CloseReason {
    /// The listener was at its cap and this connection's address held the most waiting ones:
    /// it made room for a new one, or was the new one, refused.
    ConnectionCap,
    /// Its address already held the most waiting connections it may: the new connection was
    /// closed at once.
    AddressCap,
    /// The listener was at its cap with a request in progress on every connection: the new
    /// connection was closed at once.
    Full,
    /// It never completed a first request (head, or HTTP/2 preface) within the deadline.
    FirstRequestTimeout,
    /// It sat idle between requests past the deadline.
    IdleTimeout,
    /// Its request's body was still arriving past the deadline (only under pressure can it be
    /// shorter than the request's own timeout).
    UploadTimeout,
    /// The process ran out of file descriptors; this waiting connection gave its own back.
    OutOfFiles,
    /// It did not speak the listener's protocol (gRPC: no HTTP/2 preface).
    Protocol,
    /// It reset gRPC streams faster than `grpc.max_stream_resets_per_second` (HTTP/2 rapid
    /// reset).
    RapidReset,
    /// Its address was refused for a while after one of its connections was closed for abuse.
    Penalized,
}

impl CloseReason {
    pub const ALL: [CloseReason; 10] = [
        CloseReason::ConnectionCap,
        CloseReason::AddressCap,
        CloseReason::Full,
        CloseReason::FirstRequestTimeout,
        CloseReason::IdleTimeout,
        CloseReason::UploadTimeout,
        CloseReason::OutOfFiles,
        CloseReason::Protocol,
        CloseReason::RapidReset,
        CloseReason::Penalized,
    ];

    /// The word in the log's `reason` field.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ConnectionCap => "connection_cap",
            CloseReason::AddressCap => "address_cap",
            CloseReason::Full => "listener_full",
            CloseReason::FirstRequestTimeout => "first_request_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::UploadTimeout => "upload_timeout",
            CloseReason::OutOfFiles => "out_of_files",
            CloseReason::Protocol => "protocol",
            CloseReason::RapidReset => "rapid_reset",
            CloseReason::Penalized => "penalized",
        }
    }
}

/// A connection's id within its listener.
pub type ConnId = u64;

/// A connection the registry has let go of, to be closed by the caller (with `token`, whatever
/// the caller keeps per connection to reach it).
#[derive(Debug)]
pub struct Victim<T> {
    pub id: ConnId,
    pub peer: IpAddr,
    pub reason: CloseReason,
    pub token: T,
}

/// What [`Registry::admit`] decided.
#[derive(Debug)]
pub struct Admission<T> {
    /// The new connection's id, or why it must be closed at once instead.
    pub id: Result<ConnId, CloseReason>,
    /// A connection closed to make room for it.
    pub victim: Option<Victim<T>>,
}

/// Addresses are limited as a whole, IPv6 ones by /64 (what one host or subscriber gets), and an
/// IPv4-mapped IPv6 peer counts as its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PeerKey(IpAddr);

/// The address `peer` is limited as (IPv6: its /64).
pub fn address_key(peer: IpAddr) -> IpAddr {
    PeerKey::of(peer).0
}

impl PeerKey {
    fn of(peer: IpAddr) -> PeerKey {
        match peer.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                PeerKey(IpAddr::V6(prefix.into()))
            }
            v4 => PeerKey(v4),
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Accepted, but the server has not read from it yet: whatever it sent is still unread, so
    /// it is not judged (under load the server's own lag must not count against a sender).
    Fresh,
    /// No complete request on it: waiting for a head (or idle between requests), or, with
    /// `uploading`, reading a request's body. A candidate for closing, at `order` in the
    /// incomplete orders.
    Incomplete { order: u64, uploading: bool },
    /// A complete request is being processed or answered (or, for gRPC, the connection is past
    /// its preface): never closed here.
    Busy,
}

#[derive(Debug)]
struct Entry<T> {
    peer: IpAddr,
    key: PeerKey,
    state: State,
    /// When it started waiting.
    since: Instant,
    served: bool,
    token: T,
}

/// The open connections of one listener.
#[derive(Debug)]
pub struct Registry<T> {
    limits: Limits,
    next_id: ConnId,
    next_order: u64,
    entries: HashMap<ConnId, Entry<T>>,
    /// Connections without a complete request (fresh or incomplete), per address: what the
    /// per-address cap counts.
    unserved: HashMap<PeerKey, usize>,
    /// Incomplete connections, oldest first.
    waiting: BTreeMap<u64, ConnId>,
    /// Each address's incomplete connections, oldest first.
    by_peer: HashMap<PeerKey, BTreeSet<u64>>,
    /// Addresses by (incomplete count, oldest first): the last is the one to take from at the
    /// cap.
    heaviest: BTreeSet<(usize, Reverse<u64>, PeerKey)>,
}

impl<T> Registry<T> {
    pub fn new(limits: Limits) -> Self {
        Registry {
            limits,
            next_id: 0,
            next_order: 0,
            entries: HashMap::new(),
            unserved: HashMap::new(),
            waiting: BTreeMap::new(),
            by_peer: HashMap::new(),
            heaviest: BTreeSet::new(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.entries.len()
    }

    /// Connections without a complete request now that have been read from: the candidates
    /// for closing.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The deadline for waiting connections now.
    pub fn wait_deadline(&self) -> Duration {
        self.limits.wait_deadline(self.open())
    }

    /// A new connection from `peer`, fresh until [`Registry::polled`]. Refused when its
    /// address (unless `exempt`) already holds its cap of connections without a request in
    /// progress: refusing costs the server nothing, where closing an older one would cost it
    /// that one's work too. At the listener's cap the address holding the most waiting
    /// connections gives one up, so a sender with one connection never pays for a flood of
    /// many: its oldest, or the newcomer itself when that is where it comes from. When no
    /// connection is waiting, the newcomer is refused.
    pub fn admit(&mut self, peer: IpAddr, exempt: bool, now: Instant, token: T) -> Admission<T> {
        let key = PeerKey::of(peer);
        if !exempt
            && self.unserved.get(&key).copied().unwrap_or(0) >= self.limits.max_waiting_per_address
        {
            return Admission {
                id: Err(CloseReason::AddressCap),
                victim: None,
            };
        }
        let mut victim = None;
        if self.entries.len() >= self.limits.max_connections {
            // One connection must go: from the address holding the most waiting ones, the
            // newcomer's included. When that is the newcomer's own (a tie counts), it goes
            // itself, costing nothing; a trusted proxy's newcomer carries a request, so never.
            let mine = self.by_peer.get(&key).map_or(0, BTreeSet::len) + 1;
            let heaviest = self.heaviest.last().map(|&(count, _, _)| count);
            if heaviest.is_some_and(|count| mine >= count) && !exempt {
                return Admission {
                    id: Err(CloseReason::ConnectionCap),
                    victim: None,
                };
            }
            victim = self.heaviest_victim(CloseReason::ConnectionCap);
            if victim.is_none() {
                return Admission {
                    id: Err(CloseReason::Full),
                    victim: None,
                };
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                peer,
                key,
                state: State::Fresh,
                since: now,
                served: false,
                token,
            },
        );
        *self.unserved.entry(key).or_default() += 1;
        Admission { id: Ok(id), victim }
    }

    /// The server has read from fresh connection `id` without a request coming of it: from now
    /// it waits, and may be closed.
    pub fn polled(&mut self, id: ConnId, now: Instant) {
        if self
            .entries
            .get(&id)
            .is_some_and(|entry| entry.state == State::Fresh)
        {
            self.enter_incomplete(id, now, false);
        }
    }

    /// A request's head is in on `id`; its body is being read from `now`, and until
    /// [`Registry::activate`] the connection is still a candidate for closing (a body trickled
    /// in holds a connection as surely as a head). False when it was already let go of.
    pub fn start_request(&mut self, id: ConnId, now: Instant) -> bool {
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        entry.served = true;
        if entry.state == State::Busy {
            return true; // never with HTTP/1.1, which serves one request at a time
        }
        self.leave_incomplete(id);
        self.enter_incomplete(id, now, true);
        true
    }

    /// `id` has a complete request (its body is in; for gRPC, its preface): it is no longer a
    /// candidate for closing. False when it was already let go of.
    pub fn activate(&mut self, id: ConnId) -> bool {
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        entry.served = true;
        let (key, state) = (entry.key, entry.state);
        if state == State::Busy {
            return true;
        }
        entry.state = State::Busy;
        if let State::Incomplete { order, .. } = state {
            self.waiting.remove(&order);
            self.update_peer(key, |orders| {
                orders.remove(&order);
            });
        }
        self.count_unserved(key, false);
        true
    }

    /// The request on `id` is answered; it waits for the next one from `now`.
    pub fn wait(&mut self, id: ConnId, now: Instant) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        match entry.state {
            State::Busy => {
                let key = entry.key;
                self.count_unserved(key, true);
                self.enter_incomplete(id, now, false);
            }
            // Answered without its body read (refused early): waiting again.
            State::Incomplete {
                uploading: true, ..
            } => {
                self.leave_incomplete(id);
                self.enter_incomplete(id, now, false);
            }
            State::Fresh | State::Incomplete { .. } => {}
        }
    }

    /// `id` has closed (by its client, or on its way out after being let go of).
    pub fn remove(&mut self, id: ConnId) {
        if self.activate(id) {
            self.entries.remove(&id);
        }
    }

    /// Lets go of every connection that has waited past the deadline.
    pub fn expire(&mut self, now: Instant) -> Vec<Victim<T>> {
        let deadline = self.wait_deadline();
        let mut victims = Vec::new();
        while let Some((_, &id)) = self.waiting.first_key_value() {
            let Some(entry) = self.entries.get(&id) else {
                break; // never: every waiting id has an entry
            };
            if now.saturating_duration_since(entry.since) < deadline {
                break;
            }
            let reason = match entry.state {
                State::Incomplete {
                    uploading: true, ..
                } => CloseReason::UploadTimeout,
                _ if entry.served => CloseReason::IdleTimeout,
                _ => CloseReason::FirstRequestTimeout,
            };
            if let Some(victim) = self.let_go(id, reason) {
                victims.push(victim);
            }
        }
        victims
    }

    /// Lets go of one waiting connection (the one [`Registry::admit`] would pick at the cap), to
    /// free its file descriptor.
    pub fn evict_one(&mut self, reason: CloseReason) -> Option<Victim<T>> {
        self.heaviest_victim(reason)
    }

    /// Enters a connection into the incomplete orders, as of `now`.
    fn enter_incomplete(&mut self, id: ConnId, now: Instant, uploading: bool) {
        let order = self.next_order;
        self.next_order += 1;
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.state = State::Incomplete { order, uploading };
        entry.since = now;
        let key = entry.key;
        self.waiting.insert(order, id);
        self.update_peer(key, |orders| {
            orders.insert(order);
        });
    }

    /// Takes a connection out of the incomplete orders (its state is the caller's to set).
    fn leave_incomplete(&mut self, id: ConnId) {
        let Some(entry) = self.entries.get(&id) else {
            return;
        };
        if let State::Incomplete { order, .. } = entry.state {
            let key = entry.key;
            self.waiting.remove(&order);
            self.update_peer(key, |orders| {
                orders.remove(&order);
            });
        }
    }

    fn count_unserved(&mut self, key: PeerKey, up: bool) {
        let count = self.unserved.entry(key).or_default();
        if up {
            *count += 1;
        } else {
            *count = count.saturating_sub(1);
        }
        if *count == 0 {
            self.unserved.remove(&key);
        }
    }

    fn heaviest_victim(&mut self, reason: CloseReason) -> Option<Victim<T>> {
        let &(_, Reverse(order), _) = self.heaviest.last()?;
        let id = *self.waiting.get(&order)?;
        self.let_go(id, reason)
    }

    fn let_go(&mut self, id: ConnId, reason: CloseReason) -> Option<Victim<T>> {
        self.activate(id);
        let entry = self.entries.remove(&id)?;
        Some(Victim {
            id,
            peer: entry.peer,
            reason,
            token: entry.token,
        })
    }

    /// Changes one address's waiting set, keeping its place in `heaviest` in step.
    fn update_peer(&mut self, key: PeerKey, change: impl FnOnce(&mut BTreeSet<u64>)) {
        let orders = self.by_peer.entry(key).or_default();
        if let Some(&oldest) = orders.first() {
            self.heaviest.remove(&(orders.len(), Reverse(oldest), key));
        }
        change(orders);
        match orders.first() {
            Some(&oldest) => {
                self.heaviest.insert((orders.len(), Reverse(oldest), key));
            }
            None => {
                self.by_peer.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests;
