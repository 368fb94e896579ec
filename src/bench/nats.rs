//! The NATS backend under load: durable ingest through one replica beside a raw `async-nats`
//! JetStream publish of records of the same shape and size at the same concurrency, in the same
//! run (the broker's own limit on this machine); three replicas on one stream together; and a
//! fresh replica catching up with a stream of stored events. The NATS server is one given with
//! `--nats-url`, or one the bench starts from `--nats-server` (a single node, temporary store).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use prost::Message;

use super::callers::{self, UnaryCaller};
use super::child::{ChildProcess, Security};
use super::drive::{self, Caller, RunResult};
use super::payload::Payloads;
use super::report::ScenarioReport;
use super::{Bench, BenchError, Server, spawn};
use crate::proto::v1::{DedupRule, Event, Header, StreamRecord, WebhookDelivery};

/// The NATS server the scenarios use; a server the bench started is stopped when dropped.
pub struct NatsTarget {
    pub url: String,
    process: Option<(Child, PathBuf)>,
}

impl NatsTarget {
    /// Uses `url`, or starts `server` (a nats-server binary) on a free loopback port.
    pub fn new(url: Option<&str>, server: Option<&Path>) -> Result<NatsTarget, BenchError> {
        if let Some(url) = url {
            return Ok(NatsTarget {
                url: url.to_owned(),
                process: None,
            });
        }
        let Some(server) = server else {
            return Err(BenchError::Config(crate::config::ConfigError::invalid(
                "--nats-url",
                "the nats scenarios need --nats-url or --nats-server",
            )));
        };
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| BenchError::Io { what, source }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(io("cannot find a free port"))?
            .port();
        let dir =
            std::env::temp_dir().join(format!("hooknorm-bench-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(io("cannot create the nats store"))?;
        let child = Command::new(server)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("cannot start nats-server"))?;
        let target = NatsTarget {
            url: format!("nats://127.0.0.1:{port}"),
            process: Some((child, dir)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(BenchError::Child("nats-server did not start".into()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(target)
    }
}

impl Drop for NatsTarget {
    fn drop(&mut self) {
        if let Some((mut child, dir)) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A stream name no other run uses.
fn stream_name(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!("BENCH_{tag}_{}_{nanos}", std::process::id())
}

/// The `[store]` of a replica on `stream`.
fn store_toml(url: &str, stream: &str) -> impl Fn(&Path) -> String + Send + 'static {
    let (url, stream) = (url.to_owned(), stream.to_owned());
    move |store: &Path| {
        format!(
            "[store]\nbackend = \"nats\"\npath = {:?}\n\n[store.nats]\nservers = [{url:?}]\n\
             stream = {stream:?}\nsubject_prefix = \"bench.{}\"\nappend_timeout_seconds = 10\n",
            store.display().to_string(),
            stream.to_ascii_lowercase()
        )
    }
}

async fn start_replica(
    bench: &Bench,
    url: &str,
    stream: &str,
    tag: &str,
) -> Result<Server, BenchError> {
    let store = store_toml(url, stream);
    let tag = tag.to_owned();
    let child = spawn(bench.exe.clone(), move |exe| {
        ChildProcess::serve_with(&exe, &tag, Security::Open, &store)
    })
    .await?;
    Ok(Server::measure(child).await)
}

/// Durable ingest through one replica, then raw JetStream publishes of records of the same size
/// at the same concurrency, on the same server.
pub(super) async fn durable_and_raw(
    bench: &Bench,
    nats: &NatsTarget,
) -> Result<Vec<ScenarioReport>, BenchError> {
    let stream = stream_name("ONE");
    let server = start_replica(bench, &nats.url, &stream, "nats-one").await?;
    let channel = callers::channel(&server.child.grpc_addr)
        .await
        .map_err(BenchError::Client)?;
    let callers = (0..bench.concurrency())
        .map(|_| UnaryCaller::new(channel.clone(), bench.payloads.clone(), false, 0))
        .collect();
    let result = drive::closed_loop(callers, bench.bound()).await;
    let durable = server
        .finish("nats durable (1 replica)", result, bench.load_note())
        .await;

    let raw = raw_publish(bench, nats).await?;
    Ok(vec![durable, raw])
}

/// Three replicas on one stream, the callers spread over them.
pub(super) async fn three_replicas(
    bench: &Bench,
    nats: &NatsTarget,
) -> Result<ScenarioReport, BenchError> {
    let stream = stream_name("THREE");
    let mut servers = Vec::new();
    for index in 0..3 {
        servers
            .push(start_replica(bench, &nats.url, &stream, &format!("nats-three-{index}")).await?);
    }
    let mut channels = Vec::new();
    for server in &servers {
        channels.push(
            callers::channel(&server.child.grpc_addr)
                .await
                .map_err(BenchError::Client)?,
        );
    }
    let callers = (0..bench.concurrency())
        .map(|index| {
            UnaryCaller::new(
                channels[index % 3].clone(),
                bench.payloads.clone(),
                false,
                0,
            )
        })
        .collect();
    let result = drive::closed_loop(callers, bench.bound()).await;
    let note = format!("{}, spread over 3 replicas", bench.load_note());
    let mut servers = servers.into_iter();
    let first = servers
        .next()
        .ok_or_else(|| BenchError::Child("no replica".into()))?;
    let row = first
        .finish("nats durable (3 replicas)", result, note)
        .await;
    for server in servers {
        let _ = tokio::task::spawn_blocking(move || drop(server)).await;
    }
    Ok(row)
}

/// `count` records published straight to a replica's stream, then a fresh replica started on
/// it: spawn to ready (its index caught up) is the catch-up time.
pub(super) async fn catchup(
    bench: &Bench,
    nats: &NatsTarget,
) -> Result<ScenarioReport, BenchError> {
    let count = bench.args.catchup_events;
    let stream = stream_name("CATCHUP");
    // The first replica creates the stream as hooknorm configures it.
    let first = start_replica(bench, &nats.url, &stream, "nats-catchup-create").await?;
    drop(first);
    let client = connect(&nats.url).await?;
    let context = jetstream::new(client);
    let subject = format!(
        "bench.{}.events.gigs.subscription.activated",
        stream.to_ascii_lowercase()
    );
    let started = Instant::now();
    let mut acks = Vec::with_capacity(4096);
    for n in 0..count {
        let payload = record(&bench.payloads, n);
        let ack = context
            .publish(subject.clone(), payload)
            .await
            .map_err(|error| BenchError::Client(format!("publish: {error}")))?;
        acks.push(ack);
        if acks.len() == 4096 {
            for ack in acks.drain(..) {
                ack.await
                    .map_err(|error| BenchError::Client(format!("ack: {error}")))?;
            }
        }
    }
    for ack in acks {
        ack.await
            .map_err(|error| BenchError::Client(format!("ack: {error}")))?;
    }
    let filled = started.elapsed();
    // A fresh replica reports ready only once its index applied what the stream held at start.
    let started = Instant::now();
    let replica = start_replica(bench, &nats.url, &stream, "nats-catchup").await?;
    let addr = replica.child.http_addr.clone().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if ready(&addr).await {
            break;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Child(
                "the fresh replica never caught up".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let result = RunResult {
        ok: count,
        elapsed: started.elapsed(),
        ..RunResult::default()
    };
    let note = format!(
        "{count} events on the stream (published in {:.1} s), fresh replica from spawn to ready",
        filled.as_secs_f64()
    );
    Ok(replica
        .finish("nats catch-up (fresh replica)", result, note)
        .await)
}

async fn ready(addr: &str) -> bool {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
    else {
        return false;
    };
    tokio::spawn(connection);
    let Ok(request) = http::Request::get("/readyz")
        .header(http::header::HOST, addr)
        .body(http_body_util::Empty::<Bytes>::new())
    else {
        return false;
    };
    matches!(sender.send_request(request).await, Ok(response) if response.status() == 200)
}

pub(super) async fn connect(url: &str) -> Result<async_nats::Client, BenchError> {
    async_nats::connect(url)
        .await
        .map_err(|error| BenchError::Client(format!("cannot connect to {url}: {error}")))
}

/// The raw publish scenario: what JetStream itself takes at this concurrency.
async fn raw_publish(bench: &Bench, nats: &NatsTarget) -> Result<ScenarioReport, BenchError> {
    let client = connect(&nats.url).await?;
    let context = jetstream::new(client);
    let name = stream_name("RAW");
    let subject = format!("bench.{}.events", name.to_ascii_lowercase());
    let config = jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{subject}.>")],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    };
    context
        .create_stream(config)
        .await
        .map_err(|error| BenchError::Client(format!("cannot create the raw stream: {error}")))?;
    let callers = (0..bench.concurrency())
        .map(|_| RawCaller {
            context: context.clone(),
            subject: format!("{subject}.gigs.subscription.activated"),
            payloads: bench.payloads.clone(),
        })
        .collect();
    let result = drive::closed_loop(callers, bench.bound()).await;
    let _ = context.delete_stream(&name).await;
    let note = format!(
        "{}, raw async-nats publish + ack of a same-size record with Nats-Msg-Id, no hooknorm",
        bench.load_note()
    );
    Ok(ScenarioReport::new("nats raw publish", result, note))
}

/// One JetStream publish, awaiting its acknowledgement.
struct RawCaller {
    context: jetstream::Context,
    subject: String,
    payloads: Arc<Payloads>,
}

impl Caller for RawCaller {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        let message = jetstream::message::PublishMessage::build()
            .payload(record(&self.payloads, n))
            .message_id(format!("id:gigs:evt_bench{n}"));
        let ack = self
            .context
            .send_publish(self.subject.clone(), message)
            .await
            .map_err(|error| error.to_string())?;
        ack.await.map(|_| ()).map_err(|error| error.to_string())
    }
}

/// A record of the shape hooknorm publishes for the `n`th bench webhook: the event (the body as
/// its data) and the delivery (the body as received).
fn record(payloads: &Payloads, n: u64) -> Bytes {
    let body = payloads.body(n);
    let record = StreamRecord {
        event: Some(Event {
            id: format!("gigs:evt_bench{n:012}"),
            source: "gigs".to_owned(),
            r#type: "subscription.activated".to_owned(),
            provider_event_type: "com.gigs.subscription.activated".to_owned(),
            provider_event_id: format!("evt_bench{n:012}"),
            data_json: String::from_utf8_lossy(&body).into_owned(),
            ..Event::default()
        }),
        dedup_rule: DedupRule::ProviderId as i32,
        delivery: Some(WebhookDelivery {
            body,
            headers: vec![Header {
                name: "content-type".to_owned(),
                value: "application/json".to_owned(),
            }],
            request_path: "/webhooks/gigs".to_owned(),
            remote_addr: "127.0.0.1".to_owned(),
        }),
        accepted_at_ms: chrono::Utc::now().timestamp_millis(),
        append_id: format!("bench.{n}"),
        ..StreamRecord::default()
    };
    Bytes::from(record.encode_to_vec())
}
