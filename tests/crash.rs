//! Crash safety of the real binary: concurrent VerifyAndNormalize calls, SIGKILL mid-load several
//! times, restart each time; every event whose RPC returned OK is stored exactly once, and every
//! webhook whose call the kill cut off is, once redelivered after the restart, stored exactly once.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::stream::{connect, list_all};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");
const ROUNDS: u64 = 4;
const WRITERS: u64 = 8;

/// Redelivers the webhooks numbered `pending` (their first outcome unknown) and records each as
/// acknowledged: every one must be accepted now, as new or as a duplicate of what was stored.
async fn redeliver(addr: &str, pending: &[u64], acknowledged: &Mutex<HashMap<String, u64>>) {
    let mut client = connect(addr).await;
    for &n in pending {
        let response = client
            .verify_and_normalize(gigs_event_request(n, "sim.updated"))
            .await
            .unwrap_or_else(|status| panic!("redelivery of {n} refused: {status:?}"))
            .into_inner();
        let event = response.event.expect("event");
        let mut acknowledged = acknowledged.lock().expect("lock");
        if let Some(sequence) = acknowledged.insert(event.id.clone(), event.sequence) {
            assert_eq!(sequence, event.sequence, "{} moved", event.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_sigkill_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(dir.path(), "");

    // id -> sequence the server acknowledged.
    let acknowledged: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    // Events whose request was in flight at a kill: stored or not, nobody knows.
    let unknown: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut resent = 0;
    for round in 0..ROUNDS {
        let running = serve_binary(BIN, &config);
        // After the restart, redeliver every webhook whose outcome the kill hid, as its provider
        // would: each is stored exactly once, whether or not it made it in before the kill.
        let pending = std::mem::take(&mut *unknown.lock().expect("lock"));
        resent += pending.len();
        redeliver(&running.addr, &pending, &acknowledged).await;
        // Set just before the kill: a call that fails earlier is the server failing under
        // load, not the kill cutting it off.
        let killed = Arc::new(AtomicBool::new(false));
        let acknowledged_now = Arc::new(AtomicU64::new(0));
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let addr = running.addr.clone();
            let acknowledged = acknowledged.clone();
            let unknown = unknown.clone();
            let killed = killed.clone();
            let acknowledged_now = acknowledged_now.clone();
            writers.push(tokio::spawn(async move {
                let mut client = connect(&addr).await;
                for n in 0.. {
                    let id = round * 1_000_000 + writer * 100_000 + n;
                    match client
                        .verify_and_normalize(gigs_event_request(id, "sim.updated"))
                        .await
                    {
                        Ok(response) => {
                            let event = response.into_inner().event.expect("event");
                            acknowledged
                                .lock()
                                .expect("lock")
                                .insert(event.id, event.sequence);
                            acknowledged_now.fetch_add(1, Ordering::SeqCst);
                        }
                        // The server was killed: this one's fate is unknown; stop this writer.
                        Err(status) => {
                            assert!(
                                killed.load(Ordering::SeqCst),
                                "round {round}: writer {writer} refused before the kill: \
                                 {status:?}"
                            );
                            unknown.lock().expect("lock").push(id);
                            break;
                        }
                    }
                }
            }));
        }
        // Kill at a different point of the load each round.
        tokio::time::sleep(Duration::from_millis(300 + 250 * round)).await;
        killed.store(true, Ordering::SeqCst);
        let before_kill = acknowledged_now.load(Ordering::SeqCst);
        drop(running); // SIGKILL, then reap
        // Only a kill that lands while appends are being answered tests crash safety.
        assert!(
            before_kill > 0,
            "round {round}: no append was acknowledged before the kill"
        );
        for writer in writers {
            writer.await.expect("writer task");
        }
    }

    // Restart once more, redeliver what the last kill hid, and read the whole log.
    let running = serve_binary(BIN, &config);
    let pending = std::mem::take(&mut *unknown.lock().expect("lock"));
    resent += pending.len();
    redeliver(&running.addr, &pending, &acknowledged).await;
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 100,
        "too little load to prove anything: {}",
        acknowledged.len()
    );
    let mut client = connect(&running.addr).await;
    let mut stored: Vec<(String, u64)> = Vec::new();
    // Stored events per provider event id: a second copy of a webhook would be stored under
    // another id (`<id>-<n>`), so ids alone being unique would not show it.
    let mut copies: HashMap<String, usize> = HashMap::new();
    for event in list_all(&mut client).await {
        *copies.entry(event.provider_event_id.clone()).or_default() += 1;
        stored.push((event.id, event.sequence));
    }
    let twice: Vec<_> = copies.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "webhooks stored more than once: {twice:?}"
    );
    for id in acknowledged.keys() {
        let provider_id = id.trim_start_matches("gigs:");
        assert_eq!(
            copies.get(provider_id),
            Some(&1),
            "{id} not stored exactly once"
        );
    }
    let ids: HashSet<&String> = stored.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), stored.len(), "an event is stored twice");
    let sequences: HashSet<u64> = stored.iter().map(|(_, s)| *s).collect();
    assert_eq!(sequences.len(), stored.len(), "a sequence is reused");
    let by_id: HashMap<&String, u64> = stored.iter().map(|(id, s)| (id, *s)).collect();
    for (id, sequence) in &acknowledged {
        assert_eq!(
            by_id.get(id),
            Some(sequence),
            "acknowledged event {id} lost or moved"
        );
    }
    // Nothing else is stored: every webhook sent was acknowledged, at first or on redelivery.
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "stored events nobody acknowledged"
    );
    // Acknowledged events redelivered now are recognized as duplicates.
    let some = acknowledged.keys().take(5).cloned().collect::<Vec<_>>();
    for id in some {
        let n: u64 = id
            .trim_start_matches("gigs:evt_test")
            .parse()
            .expect("numeric id");
        let response = client
            .verify_and_normalize(gigs_event_request(n, "sim.updated"))
            .await
            .expect("ok")
            .into_inner();
        assert!(response.duplicate, "{id} not recognized after restart");
    }
    eprintln!(
        "{} acknowledged over {ROUNDS} kills ({resent} of them redelivered after a kill hid \
         their outcome), {} stored",
        acknowledged.len(),
        stored.len()
    );
}
