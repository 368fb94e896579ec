use super::*;

fn limits(max_connections: usize, per_address: usize) -> Limits {
    Limits {
        max_connections,
        max_waiting_per_address: per_address,
        wait_timeout: Duration::from_secs(75),
        wait_timeout_min: Duration::from_secs(5),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Admits a connection and reads from it once (it sent no request).
fn admit(registry: &mut Registry<()>, peer: &str, now: Instant) -> (ConnId, Vec<Victim<()>>) {
    let admission = registry.admit(ip(peer), false, now, ());
    let id = admission.id.expect("admitted");
    registry.polled(id, now);
    (id, admission.victim.into_iter().collect())
}

fn ids(victims: &[Victim<()>]) -> Vec<ConnId> {
    victims.iter().map(|victim| victim.id).collect()
}

#[test]
fn the_deadline_shrinks_from_half_full_to_the_cap() {
    let limits = limits(100, 10);
    assert_eq!(limits.wait_deadline(0), Duration::from_secs(75));
    assert_eq!(limits.wait_deadline(50), Duration::from_secs(75));
    assert_eq!(limits.wait_deadline(75), Duration::from_secs(40));
    assert_eq!(limits.wait_deadline(100), Duration::from_secs(5));
    assert_eq!(limits.wait_deadline(150), Duration::from_secs(5));
}

#[test]
fn at_the_cap_the_busiest_address_gives_up_its_oldest_waiting_connection() {
    let now = Instant::now();
    let mut registry = Registry::new(limits(4, 10));
    let (legit, _) = admit(&mut registry, "192.0.2.1", now);
    let (flood_a, _) = admit(&mut registry, "198.51.100.7", now);
    let (flood_b, _) = admit(&mut registry, "198.51.100.7", now);
    let (_flood_c, _) = admit(&mut registry, "198.51.100.7", now);
    // The legitimate connection is the oldest of all, yet the flooding address pays.
    let (_, victims) = admit(&mut registry, "203.0.113.1", now);
    assert_eq!(ids(&victims), [flood_a]);
    assert_eq!(victims[0].reason, CloseReason::ConnectionCap);
    let (_, victims) = admit(&mut registry, "203.0.113.2", now);
    assert_eq!(ids(&victims), [flood_b]);
    assert_eq!(registry.open(), 4);
    // Equal counts, the newcomer's included: the newcomer goes, at no cost to the others.
    let refused = registry.admit(ip("203.0.113.3"), false, now, ());
    assert_eq!(refused.id, Err(CloseReason::ConnectionCap));
    assert!(refused.victim.is_none());
    // So does a newcomer from the flooding address itself...
    let (flood_d, _) = admit_exempt(&mut registry, "198.51.100.7", now);
    let refused = registry.admit(ip("198.51.100.7"), false, now, ());
    assert_eq!(refused.id, Err(CloseReason::ConnectionCap));
    // ...unless it is a trusted proxy, whose newcomer carries a request: its oldest goes.
    let (_, victims) = admit_exempt(&mut registry, "198.51.100.7", now);
    assert_eq!(ids(&victims), [_flood_c]);
    assert!(registry.open() == 4 && legit < flood_d);
}

/// As [`admit`], from an address exempt from the per-address cap.
fn admit_exempt(
    registry: &mut Registry<()>,
    peer: &str,
    now: Instant,
) -> (ConnId, Vec<Victim<()>>) {
    let admission = registry.admit(ip(peer), true, now, ());
    let id = admission.id.expect("admitted");
    registry.polled(id, now);
    (id, admission.victim.into_iter().collect())
}

#[test]
fn connections_with_a_request_in_progress_are_never_chosen() {
    let now = Instant::now();
    let mut registry = Registry::new(limits(3, 10));
    let (busy, _) = admit(&mut registry, "198.51.100.7", now);
    let (idle, _) = admit(&mut registry, "198.51.100.7", now);
    let (_, _) = admit(&mut registry, "198.51.100.7", now);
    assert!(registry.activate(busy));
    let (sender, victims) = admit(&mut registry, "192.0.2.3", now);
    assert_eq!(ids(&victims), [idle]);
    registry.activate(sender);
    let (proxied, _) = admit_exempt(&mut registry, "10.0.0.5", now);
    registry.activate(proxied);
    // Everything busy: the newcomer is refused instead.
    let refused = registry.admit(ip("192.0.2.4"), false, now, ());
    assert_eq!(refused.id, Err(CloseReason::Full));
    assert!(refused.victim.is_none());
    // Answered and waiting again: a candidate once more.
    registry.wait(busy, now);
    let (_, victims) = admit_exempt(&mut registry, "10.0.0.5", now);
    assert_eq!(ids(&victims), [busy]);
}

#[test]
fn an_address_at_its_cap_is_refused_more_unless_exempt() {
    let now = Instant::now();
    let mut registry = Registry::new(limits(100, 2));
    let (_, _) = admit(&mut registry, "198.51.100.7", now);
    let (second, _) = admit(&mut registry, "198.51.100.7", now);
    let refused = registry.admit(ip("198.51.100.7"), false, now, ());
    assert_eq!(refused.id, Err(CloseReason::AddressCap));
    assert!(refused.victim.is_none());
    assert_eq!(registry.open(), 2);
    // Busy connections do not count against the address.
    registry.activate(second);
    let (_, victims) = admit(&mut registry, "198.51.100.7", now);
    assert!(victims.is_empty());
    // A trusted proxy carries many clients: no per-address cap.
    for _ in 0..10 {
        let admission = registry.admit(ip("10.0.0.5"), true, now, ());
        assert!(admission.id.is_ok());
    }
}

#[test]
fn connections_not_yet_read_from_are_never_closed_but_count_against_their_address() {
    let now = Instant::now();
    let mut registry = Registry::new(limits(3, 2));
    // A sender whose connection the server has not got to yet (under load).
    let sender = registry.admit(ip("192.0.2.1"), false, now, ()).id.unwrap();
    let (flood, _) = admit(&mut registry, "198.51.100.7", now);
    let (flood_too, _) = admit(&mut registry, "198.51.100.7", now);
    // At the cap: the flood pays, never the unread connection...
    let admission = registry.admit(ip("203.0.113.1"), false, now, ());
    assert_eq!(admission.victim.map(|victim| victim.id), Some(flood));
    registry.activate(admission.id.unwrap());
    let (proxied, victims) = admit_exempt(&mut registry, "10.0.0.5", now);
    assert_eq!(ids(&victims), [flood_too]);
    registry.activate(proxied);
    // ...and with only unread and busy connections left, the newcomer is refused.
    let refused = registry.admit(ip("203.0.113.3"), false, now, ());
    assert_eq!(refused.id, Err(CloseReason::Full));
    // Nor do unread connections expire.
    assert!(registry.expire(now + Duration::from_secs(3600)).is_empty());
    // Read from, it waits like any other.
    registry.polled(sender, now);
    assert_eq!(registry.waiting(), 1);
    // They count against their address's cap, though.
    let mut registry = Registry::new(limits(10, 2));
    for _ in 0..2 {
        assert!(registry.admit(ip("192.0.2.1"), false, now, ()).id.is_ok());
    }
    let over = registry.admit(ip("192.0.2.1"), false, now, ());
    assert_eq!(over.id, Err(CloseReason::AddressCap));
}

#[test]
fn ipv6_addresses_are_limited_per_64_and_mapped_ipv4_as_ipv4() {
    let now = Instant::now();
    let mut registry = Registry::new(limits(100, 1));
    let refused = |registry: &mut Registry<()>, peer: &str| {
        registry.admit(ip(peer), false, now, ()).id == Err(CloseReason::AddressCap)
    };
    admit(&mut registry, "2001:db8:1:2::1", now);
    assert!(refused(&mut registry, "2001:db8:1:2:ffff::9"));
    assert!(!refused(&mut registry, "2001:db8:1:3::1"));
    admit(&mut registry, "192.0.2.1", now);
    assert!(refused(&mut registry, "::ffff:192.0.2.1"));
}

#[test]
fn waiting_connections_expire_by_the_deadline_of_the_moment() {
    let start = Instant::now();
    let mut registry = Registry::new(limits(4, 10));
    let (never_sent, _) = admit(&mut registry, "192.0.2.1", start);
    let (kept_alive, _) = admit(&mut registry, "192.0.2.2", start);
    registry.activate(kept_alive);
    registry.wait(kept_alive, start + Duration::from_secs(10));
    // Two of four open: the full 75 s.
    assert!(registry.expire(start + Duration::from_secs(74)).is_empty());
    let victims = registry.expire(start + Duration::from_secs(75));
    assert_eq!(ids(&victims), [never_sent]);
    assert_eq!(victims[0].reason, CloseReason::FirstRequestTimeout);
    let victims = registry.expire(start + Duration::from_secs(85));
    assert_eq!(ids(&victims), [kept_alive]);
    assert_eq!(victims[0].reason, CloseReason::IdleTimeout);
    // Full: 5 s.
    for _ in 0..4 {
        admit(&mut registry, "198.51.100.7", start);
    }
    assert_eq!(registry.wait_deadline(), Duration::from_secs(5));
    assert!(registry.expire(start + Duration::from_secs(4)).is_empty());
    let victims = registry.expire(start + Duration::from_secs(5));
    assert_eq!(victims.len(), 4);
    assert_eq!(registry.open(), 0);
}

#[test]
fn removed_and_let_go_connections_leave_no_trace() {
    let now = Instant::now();
    let mut registry = Registry::new(limits(3, 3));
    let (a, _) = admit(&mut registry, "192.0.2.1", now);
    let (b, _) = admit(&mut registry, "192.0.2.1", now);
    registry.remove(a);
    registry.remove(a);
    let victim = registry
        .evict_one(CloseReason::OutOfFiles)
        .expect("one waiting");
    assert_eq!(victim.id, b);
    // A let-go connection's own removal and activation are no-ops.
    registry.remove(b);
    assert!(!registry.activate(b));
    assert_eq!(registry.open(), 0);
    assert_eq!(registry.waiting(), 0);
    assert!(registry.by_peer.is_empty());
    assert!(registry.heaviest.is_empty());
    assert!(registry.evict_one(CloseReason::OutOfFiles).is_none());
}

#[test]
fn a_request_whose_body_is_still_arriving_is_judged_like_a_waiting_connection() {
    let start = Instant::now();
    let mut registry = Registry::new(limits(3, 10));
    let (slow, _) = admit(&mut registry, "198.51.100.7", start);
    let (_, _) = admit(&mut registry, "198.51.100.7", start);
    // A head, then a body trickling in: still a candidate, from when the head came.
    assert!(registry.start_request(slow, start + Duration::from_secs(1)));
    let (sender, _) = admit(&mut registry, "192.0.2.1", start);
    let (_, victims) = admit(&mut registry, "192.0.2.2", start);
    assert_eq!(victims.len(), 1);
    assert_ne!(victims[0].id, sender);
    // Its body in, a request is safe; answered early without reading its body, it waits.
    assert!(registry.start_request(sender, start));
    registry.wait(sender, start);
    assert!(registry.start_request(sender, start));
    assert!(registry.activate(sender));
    let deadline = registry.wait_deadline();
    let victims = registry.expire(start + Duration::from_secs(1) + deadline);
    assert!(victims.iter().all(|victim| victim.id != sender));
    // An upload past the deadline is closed as one.
    let mut registry = Registry::new(limits(10, 10));
    let (upload, _) = admit(&mut registry, "198.51.100.7", start);
    registry.start_request(upload, start);
    let victims = registry.expire(start + Duration::from_secs(75));
    assert_eq!(ids(&victims), [upload]);
    assert_eq!(victims[0].reason, CloseReason::UploadTimeout);
}
