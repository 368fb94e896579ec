//! The penalty box: addresses one of whose connections was closed for abuse (HTTP/2 rapid
//! reset) are refused for a while, so that reconnecting buys no fresh allowance. A refused
//! connection closed at once is back at once, and every round costs the server an accept and a
//! close; so a penalized address's next few connections are instead held open, unread, until the
//! penalty is over (a tarpit: the client waits on them, at the cost of a descriptor and a few
//! hundred bytes each), and only those beyond that are closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::registry::address_key;

/// Connections held per penalized address, and in all; more are closed at once. Each holds a
/// descriptor, so the total is small beside any listener's cap.
pub const HELD_PER_ADDRESS: usize = 16;
pub const HELD_IN_ALL: usize = 256;

/// The penalized addresses of one listener.
#[derive(Debug, Default)]
pub struct PenaltyBox {
    addresses: Arc<Mutex<Penalties>>,
}

#[derive(Debug, Default)]
struct Penalties {
    by_address: HashMap<IpAddr, Penalty>,
    held: usize,
}

#[derive(Debug)]
struct Penalty {
    until: Instant,
    held: usize,
}

/// What to do with a new connection.
#[derive(Debug)]
pub enum Verdict {
    /// Not penalized.
    Free,
    /// Hold it, unread, until `until`; dropping the guard releases its place.
    Hold { until: Instant, held: Held },
    /// Close it at once.
    Refuse,
}

/// A connection held for a penalty (see [`Verdict::Hold`]).
#[derive(Debug)]
pub struct Held {
    addresses: Arc<Mutex<Penalties>>,
    key: IpAddr,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut penalties = lock(&self.addresses);
        penalties.held = penalties.held.saturating_sub(1);
        if let Some(penalty) = penalties.by_address.get_mut(&self.key) {
            penalty.held = penalty.held.saturating_sub(1);
        }
    }
}

impl PenaltyBox {
    /// Penalizes `peer`'s address (IPv6: its /64) for `duration`.
    pub fn penalize(&self, peer: IpAddr, duration: Duration, now: Instant) {
        if duration.is_zero() {
            return;
        }
        let until = now + duration;
        lock(&self.addresses)
            .by_address
            .entry(address_key(peer))
            .and_modify(|penalty| penalty.until = penalty.until.max(until))
            .or_insert(Penalty { until, held: 0 });
    }

    /// The verdict for a new connection from `peer`.
    pub fn check(&self, peer: IpAddr, now: Instant) -> Verdict {
        let mut guard = lock(&self.addresses);
        let penalties = &mut *guard;
        if penalties.by_address.is_empty() {
            return Verdict::Free;
        }
        let key = address_key(peer);
        let room = penalties.held < HELD_IN_ALL;
        match penalties.by_address.get_mut(&key) {
            Some(penalty) if penalty.until > now && penalty.held < HELD_PER_ADDRESS && room => {
                penalty.held += 1;
                penalties.held += 1;
                Verdict::Hold {
                    until: penalty.until,
                    held: Held {
                        addresses: self.addresses.clone(),
                        key,
                    },
                }
            }
            Some(penalty) if penalty.until > now => Verdict::Refuse,
            _ => Verdict::Free,
        }
    }

    /// Forgets penalties that are over and hold nothing.
    pub fn sweep(&self, now: Instant) {
        lock(&self.addresses)
            .by_address
            .retain(|_, penalty| penalty.until > now || penalty.held > 0);
    }
}

/// Held for a few map operations only, never across an await.
fn lock(addresses: &Mutex<Penalties>) -> MutexGuard<'_, Penalties> {
    addresses.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_penalized_address_is_held_then_refused_until_the_penalty_ends() {
        let start = Instant::now();
        let penalties = PenaltyBox::default();
        let peer: IpAddr = [198, 51, 100, 7].into();
        assert!(matches!(penalties.check(peer, start), Verdict::Free));
        penalties.penalize(peer, Duration::from_secs(10), start);
        let mut held = Vec::new();
        for _ in 0..HELD_PER_ADDRESS {
            match penalties.check(peer, start) {
                Verdict::Hold { until, held: guard } => {
                    assert_eq!(until, start + Duration::from_secs(10));
                    held.push(guard);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(penalties.check(peer, start), Verdict::Refuse));
        // A place freed is a place to hold again.
        held.pop();
        assert!(matches!(penalties.check(peer, start), Verdict::Hold { .. }));
        // Another address is free.
        let other: IpAddr = [198, 51, 100, 8].into();
        assert!(matches!(penalties.check(other, start), Verdict::Free));
        // Over: free again, and forgotten once nothing is held.
        let later = start + Duration::from_secs(10);
        assert!(matches!(penalties.check(peer, later), Verdict::Free));
        penalties.sweep(later);
        assert!(!lock(&penalties.addresses).by_address.is_empty());
        drop(held);
        penalties.sweep(later);
        let penalties = lock(&penalties.addresses);
        assert!(penalties.by_address.is_empty());
        assert_eq!(penalties.held, 0);
    }
}
