//! A three-node NATS cluster on loopback with an R3 stream, and two `hooknorm serve` replicas
//! on it: one NATS node SIGKILLed under load, ingestion goes on through the other two, and
//! nothing acknowledged is lost on either replica.

mod common;
mod nats_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::stream::{connect, list_all};
use common::*;
use hooknorm::log::EventLog;
use hooknorm::log::nats::NatsEventLog;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

/// Every stored event of a replica as `id -> sequence`, failing on an id stored twice.
async fn stored(addr: &str) -> HashMap<String, u64> {
    let mut client = connect(addr).await;
    let mut events = HashMap::new();
    for event in list_all(&mut client).await {
        assert!(
            events.insert(event.id, event.sequence).is_none(),
            "stored twice"
        );
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_goes_on_when_a_node_of_an_r3_cluster_dies() {
    let mut cluster = nats_support::start_cluster();
    let servers: Vec<String> = cluster.iter().map(|node| node.url()).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let stream = nats_support::unique("CLUSTER");

    // A new cluster elects its JetStream leader first: create the R3 stream once it can.
    let mut config = nats_support::store_config(&servers, &stream, &dir.path().join("probe"));
    config.nats.replicas = 3;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match NatsEventLog::open(&config).await {
            Ok(log) => {
                log.close().await;
                break;
            }
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the R3 stream cannot be created: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let replicas: Vec<Running> = (0..2)
        .map(|index| {
            let dir = dir.path().join(format!("replica{index}"));
            std::fs::create_dir_all(&dir).expect("dir");
            let extra = nats_support::store_toml(&servers, &stream, &dir, 3);
            // `binary_config` adds the store path itself.
            let extra = extra.replacen(&format!("path = \"{}\"\n", dir.display()), "", 1);
            serve_binary(BIN, &binary_config(&dir, &extra))
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4u64)
        .map(|writer| {
            let addr = replicas[(writer % 2) as usize].addr.clone();
            let (stop, acknowledged, failed) = (stop.clone(), acknowledged.clone(), failed.clone());
            tokio::spawn(async move {
                let mut client = connect(&addr).await;
                let mut n = writer * 1_000_000;
                // A refused webhook may have been stored all the same: it is retried until
                // answered, even past `stop`, so every stored event is one somebody acknowledged.
                let mut refused = false;
                while refused || !stop.load(Ordering::SeqCst) {
                    // A refused webhook is retried, as its provider would.
                    match client
                        .verify_and_normalize(gigs_event_request(n, "sim.updated"))
                        .await
                    {
                        Ok(response) => {
                            let event = response.into_inner().event.expect("event");
                            let mut acknowledged = acknowledged.lock().expect("lock");
                            if let Some(first) =
                                acknowledged.insert(event.id.clone(), event.sequence)
                            {
                                assert_eq!(first, event.sequence, "{} moved", event.id);
                            }
                            n += 1;
                            refused = false;
                        }
                        Err(status) => {
                            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                            failed.fetch_add(1, Ordering::SeqCst);
                            refused = true;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = acknowledged.lock().expect("lock").len();
    assert!(before > 0, "nothing acknowledged before the kill");
    cluster[0].kill();
    let killed_at = Instant::now();
    // Ingestion goes on: a good many more acknowledgements after the kill.
    while acknowledged.lock().expect("lock").len() < before + 200 {
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "ingestion stalled after the kill ({} acknowledged, {} refusals)",
            acknowledged.lock().expect("lock").len(),
            failed.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    for replica in &replicas {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = stored(&replica.addr).await;
        while events.len() < acknowledged.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            events = stored(&replica.addr).await;
        }
        for (id, sequence) in &acknowledged {
            assert_eq!(
                events.get(id),
                Some(sequence),
                "acknowledged {id} lost or moved"
            );
        }
        assert_eq!(
            events.len(),
            acknowledged.len(),
            "stored events nobody acknowledged"
        );
    }
    eprintln!(
        "{} acknowledged ({before} before the kill), {} refusals retried during the failover",
        acknowledged.len(),
        failed.load(Ordering::SeqCst)
    );
}
