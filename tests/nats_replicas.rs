//! Three `hooknorm serve` processes on one JetStream stream, as three replicas behind one
//! Service: identical deliveries raced across replicas store one event; subscribers on any
//! replica see every replica's events in one order; a replica SIGKILLed under load loses no
//! acknowledged event and the senders' retries on the survivors are answered as duplicates with
//! the first ids; a replica restarted with its local index deleted serves the same history.

mod common;
mod nats_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::http::{assert_accepted, post_webhook};
use common::stream::{connect, list_all, open_stream};
use common::*;
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{EventFilter, EventView, GetEventRequest, StartPosition};
use nats_support::NatsServer;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

fn server() -> &'static NatsServer {
    static SERVER: OnceLock<NatsServer> = OnceLock::new();
    SERVER.get_or_init(NatsServer::start)
}

/// Config files of `count` replicas sharing one stream, each with its own index directory.
fn replica_configs(dir: &Path, count: usize, servers: &[String], replicas: usize) -> Vec<PathBuf> {
    let stream = nats_support::unique("REPLICAS");
    (0..count)
        .map(|index| {
            let dir = dir.join(format!("replica{index}"));
            std::fs::create_dir_all(&dir).expect("replica dir");
            let servers = servers
                .iter()
                .map(|server| format!("{server:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            let extra = format!(
                "[store]\nbackend = \"nats\"\n\n[store.nats]\nservers = [{servers}]\n\
                 stream = \"{stream}\"\nsubject_prefix = \"hn.{}\"\nreplicas = {replicas}\n",
                stream.to_ascii_lowercase()
            );
            binary_config(&dir, &extra)
        })
        .collect()
}

fn start_replicas(configs: &[PathBuf]) -> Vec<Running> {
    configs
        .iter()
        .map(|config| serve_binary(BIN, config))
        .collect()
}

/// Every stored event of a replica, oldest first, as `(id, sequence)`.
async fn history(addr: &str) -> Vec<(String, u64)> {
    let mut client = connect(addr).await;
    let mut events: Vec<(String, u64)> = list_all(&mut client)
        .await
        .into_iter()
        .map(|event| (event.id, event.sequence))
        .collect();
    events.reverse();
    events
}

/// A replica's history once it holds `count` events (replicas follow within milliseconds).
async fn history_of(addr: &str, count: usize) -> Vec<(String, u64)> {
    for _ in 0..200 {
        let events = history(addr).await;
        if events.len() >= count {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    history(addr).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_deliveries_raced_across_replicas_store_one_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let replicas = start_replicas(&replica_configs(dir.path(), 3, &[server().url()], 1));
    let mut answers: HashMap<u64, Vec<(String, u64, bool)>> = HashMap::new();
    for n in 0..30u64 {
        // The same delivery to all three at once: over HTTP to two, over gRPC to the third.
        let request = gigs_event_request(n, "sim.updated");
        let http: Vec<_> = replicas[..2]
            .iter()
            .map(|replica| {
                let addr = replica.http_addr.parse().expect("addr");
                let request = request.clone();
                tokio::spawn(async move { post_webhook(addr, &request).await })
            })
            .collect();
        let grpc_addr = replicas[2].addr.clone();
        let grpc = tokio::spawn(async move {
            let mut client = connect(&grpc_addr).await;
            client
                .verify_and_normalize(request)
                .await
                .expect("grpc append")
                .into_inner()
        });
        for answer in http {
            let answer = answer.await.expect("http task");
            answers
                .entry(n)
                .or_default()
                .push(assert_accepted(&answer, "raced delivery"));
        }
        let response = grpc.await.expect("grpc task");
        let event = response.event.expect("event");
        answers
            .entry(n)
            .or_default()
            .push((event.id, event.sequence, response.duplicate));
    }
    // States racing: on, off, on for one alert, each delivered to all three replicas at once.
    let on = std::fs::read_to_string(fixtures_dir().join("mobile_manager/alert.on.json"))
        .expect("fixture");
    let off = on.replace(
        r#""AlertTriggerType": "On""#,
        r#""AlertTriggerType": "Off""#,
    );
    assert_ne!(on, off);
    let mut states = Vec::new();
    for (fixture, body) in [("on", &on), ("off", &off), ("on again", &on)] {
        let body = body.as_bytes();
        let request = token_request("mm", "key", MM_TOKEN, body);
        let raced: Vec<_> = replicas
            .iter()
            .map(|replica| {
                let addr = replica.http_addr.parse().expect("addr");
                let request = request.clone();
                tokio::spawn(async move { post_webhook(addr, &request).await })
            })
            .collect();
        let mut answers = Vec::new();
        for answer in raced {
            answers.push(assert_accepted(&answer.await.expect("task"), fixture));
        }
        assert_eq!(
            answers
                .iter()
                .filter(|(_, _, duplicate)| !duplicate)
                .count(),
            1,
            "{fixture}: {answers:?}"
        );
        let first = answers.iter().find(|(_, _, d)| !d).expect("stored").clone();
        assert!(
            answers
                .iter()
                .all(|(id, sequence, _)| (id, *sequence) == (&first.0, first.1)),
            "{fixture}: {answers:?}"
        );
        states.push(first);
    }
    assert_ne!(states[0].0, states[2].0, "on, off, on is three events");

    for (n, answers) in &answers {
        let stored: Vec<_> = answers
            .iter()
            .filter(|(_, _, duplicate)| !duplicate)
            .collect();
        assert_eq!(stored.len(), 1, "webhook {n}: {answers:?}");
        let (id, sequence, _) = stored[0];
        for (other_id, other_sequence, _) in answers {
            assert_eq!((other_id, other_sequence), (id, sequence), "webhook {n}");
        }
    }
    let expected = answers.len() + states.len();
    let first = history_of(&replicas[0].addr, expected).await;
    assert_eq!(first.len(), expected, "one event per webhook");
    for replica in &replicas[1..] {
        assert_eq!(
            history_of(&replica.addr, expected).await,
            first,
            "same history"
        );
    }
    // Any replica has the delivery a webhook was accepted with, whichever replica took it.
    let (id, sequence) = first[0].clone();
    for replica in &replicas {
        let event = connect(&replica.addr)
            .await
            .get_event(GetEventRequest {
                id: id.clone(),
                view: EventView::Full as i32,
            })
            .await
            .expect("get")
            .into_inner()
            .event
            .expect("event");
        assert_eq!(event.sequence, sequence);
        let delivery = event.delivery.expect("the kept delivery");
        assert_eq!(delivery.body, gigs_event(0, "sim.updated"));
    }
}

/// The sequences of the next `count` events a stream carries.
async fn next_events(stream: &mut common::stream::EventStream, count: usize) -> Vec<(String, u64)> {
    let mut events = Vec::new();
    while events.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("an event in time")
            .expect("stream ok")
            .expect("stream open");
        if let Some(Message::Event(event)) = message.message {
            events.push((event.id, event.sequence));
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_on_any_replica_see_every_replicas_events_in_one_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let replicas = start_replicas(&replica_configs(dir.path(), 3, &[server().url()], 1));
    let latest = Some(hooknorm::proto::v1::stream_events_request::Start::Position(
        StartPosition::Latest as i32,
    ));
    let mut on_2 = open_stream(
        &mut connect(&replicas[1].addr).await,
        EventFilter::default(),
        latest,
    )
    .await;
    let mut on_3 = open_stream(
        &mut connect(&replicas[2].addr).await,
        EventFilter::default(),
        latest,
    )
    .await;
    // Replicas 1 and 3 take webhooks at the same time.
    let writers: Vec<_> = [0usize, 2]
        .into_iter()
        .map(|index| {
            let addr = replicas[index].addr.clone();
            tokio::spawn(async move {
                let mut client = connect(&addr).await;
                let mut taken = Vec::new();
                for n in 0..40u64 {
                    let response = client
                        .verify_and_normalize(gigs_event_request(
                            index as u64 * 1000 + n,
                            "sim.updated",
                        ))
                        .await
                        .expect("append")
                        .into_inner();
                    assert!(!response.duplicate);
                    let event = response.event.expect("event");
                    taken.push((event.id, event.sequence));
                }
                taken
            })
        })
        .collect();
    let mut taken = Vec::new();
    for writer in writers {
        taken.extend(writer.await.expect("writer"));
    }
    taken.sort_by_key(|(_, sequence)| *sequence);
    let seen_2 = next_events(&mut on_2, taken.len()).await;
    let seen_3 = next_events(&mut on_3, taken.len()).await;
    assert_eq!(
        seen_2, taken,
        "replica 2 sees what 1 and 3 took, in stream order"
    );
    assert_eq!(seen_3, seen_2, "and in the same order as replica 3");
    // A cursor from one replica resumes on another.
    let cursor = taken[39].1;
    let mut resumed = open_stream(
        &mut connect(&replicas[0].addr).await,
        EventFilter::default(),
        common::stream::after(cursor),
    )
    .await;
    assert_eq!(next_events(&mut resumed, 40).await, taken[40..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_nothing_acknowledged_and_retries_are_duplicates() {
    const WRITERS: u64 = 6;
    let dir = tempfile::tempdir().expect("tempdir");
    let configs = replica_configs(dir.path(), 3, &[server().url()], 1);
    let mut replicas = start_replicas(&configs);
    let acknowledged: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let unknown: Arc<Mutex<Vec<u64>>> = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let addr = replicas[0].addr.clone();
            let (acknowledged, unknown, killed) =
                (acknowledged.clone(), unknown.clone(), killed.clone());
            tokio::spawn(async move {
                let mut client = connect(&addr).await;
                for n in 0.. {
                    let id = writer * 100_000 + n;
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
                        }
                        Err(status) => {
                            assert!(
                                killed.load(Ordering::SeqCst),
                                "refused before the kill: {status:?}"
                            );
                            unknown.lock().expect("lock").push(id);
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    killed.store(true, Ordering::SeqCst);
    let killed_replica = replicas.remove(0);
    drop(killed_replica); // SIGKILL
    for writer in writers {
        writer.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 50,
        "too little load: {}",
        acknowledged.len()
    );
    // The senders retry on the survivors: what the killed replica acknowledged is a duplicate
    // with its first id and sequence; what it cut off is stored now or was before.
    let mut survivor = connect(&replicas[0].addr).await;
    let mut retried: HashMap<String, u64> = HashMap::new();
    let unknown = unknown.lock().expect("lock").clone();
    for n in unknown {
        let response = survivor
            .verify_and_normalize(gigs_event_request(n, "sim.updated"))
            .await
            .expect("retry on a survivor")
            .into_inner();
        let event = response.event.expect("event");
        retried.insert(event.id, event.sequence);
    }
    let mut other = connect(&replicas[1].addr).await;
    for (id, sequence) in acknowledged.iter().take(20) {
        let n: u64 = id
            .trim_start_matches("gigs:evt_test")
            .parse()
            .expect("numeric id");
        let response = other
            .verify_and_normalize(gigs_event_request(n, "sim.updated"))
            .await
            .expect("retry")
            .into_inner();
        assert!(response.duplicate, "{id} retried on a survivor");
        let event = response.event.expect("event");
        assert_eq!(
            (&event.id, event.sequence),
            (id, *sequence),
            "the first id and sequence"
        );
    }
    let expected = acknowledged.len() + retried.len();
    let stored = history_of(&replicas[0].addr, expected).await;
    let by_id: HashMap<&String, u64> = stored.iter().map(|(id, s)| (id, *s)).collect();
    assert_eq!(by_id.len(), stored.len(), "an event stored twice");
    for (id, sequence) in acknowledged.iter().chain(&retried) {
        assert_eq!(
            by_id.get(id),
            Some(sequence),
            "acknowledged {id} lost or moved"
        );
    }
    assert_eq!(stored.len(), expected, "stored events nobody acknowledged");
    assert_eq!(history_of(&replicas[1].addr, expected).await, stored);

    // The killed replica comes back on its own index and catches up.
    let restarted = serve_binary(BIN, &configs[0]);
    assert_eq!(history_of(&restarted.addr, expected).await, stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_without_its_index_serves_the_same_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let configs = replica_configs(dir.path(), 2, &[server().url()], 1);
    let replicas = start_replicas(&configs);
    let mut client = connect(&replicas[0].addr).await;
    for n in 0..200u64 {
        client
            .verify_and_normalize(gigs_event_request(n, "sim.updated"))
            .await
            .expect("append");
    }
    let expected = history_of(&replicas[0].addr, 200).await;
    assert_eq!(expected.len(), 200);
    let mut replicas = replicas.into_iter();
    let first = replicas.next().expect("replica 1");
    drop(replicas); // SIGKILL replica 2
    std::fs::remove_dir_all(dir.path().join("replica1/store")).expect("index removed");
    let rebuilt = serve_binary(BIN, &configs[1]);
    assert_eq!(history_of(&rebuilt.addr, 200).await, expected);
    // And it takes new webhooks, recognizing old ones.
    let mut client = connect(&rebuilt.addr).await;
    let again = client
        .verify_and_normalize(gigs_event_request(7, "sim.updated"))
        .await
        .expect("append")
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(again.event.expect("event").sequence, expected[7].1);
    drop(first);
}
