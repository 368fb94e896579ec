//! The stream scenarios. Fan-out: many `StreamEvents` subscribers while durable appends arrive
//! at a fixed rate; each delivery's latency is from its append's send time to its receipt.
//! Catch-up: one subscriber replays a large stored log from the earliest event.
//!
//! Subscribers decode only each event's id and sequence (a slim message sharing the tags of
//! `StreamEventsResponse`), so the generator's own decoding cost stays small beside the server's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Streaming;
use tonic::transport::Channel;

use super::callers::{self, SendTimes, UnaryCaller};
use super::drive::{self, Bound, RunResult};
use super::latency::Latencies;
use super::payload::index_of;
use super::report::ScenarioReport;
use super::{Bench, BenchError, Server};
use crate::proto::v1::stream_events_request::Start;
use crate::proto::v1::{StartPosition, StreamEventsRequest};

/// How long deliveries may still arrive after the last append, or between catch-up events.
const DRAIN: Duration = Duration::from_secs(10);

/// `StreamEventsResponse` with only the event's id and sequence decoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SlimStreamEventsResponse {
    #[prost(message, optional, tag = "1")]
    pub event: Option<SlimEvent>,
}

/// `Event` with only its id and sequence decoded.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SlimEvent {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(uint64, tag = "17")]
    pub sequence: u64,
}

async fn open_stream(
    channel: Channel,
    position: StartPosition,
) -> Result<Streaming<SlimStreamEventsResponse>, BenchError> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|error| BenchError::Client(format!("channel not ready: {error}")))?;
    let request = StreamEventsRequest {
        filter: None,
        start: Some(Start::Position(position as i32)),
    };
    let codec = tonic_prost::ProstCodec::<StreamEventsRequest, SlimStreamEventsResponse>::default();
    let path = http::uri::PathAndQuery::from_static("/hooknorm.v1.NormalizerService/StreamEvents");
    grpc.server_streaming(tonic::Request::new(request), path, codec)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| BenchError::Client(format!("cannot subscribe: {status}")))
}

/// What one fan-out subscriber saw.
#[derive(Default)]
pub(super) struct Received {
    events: u64,
    latencies: Latencies,
    /// When the last event arrived, since the send times' epoch.
    last_at: Duration,
    error: Option<String>,
}

impl Received {
    /// Counts `event`, received now, with its latency from its append's send time.
    pub(super) fn delivered(&mut self, times: &SendTimes, event: &SlimEvent) {
        let now = times.epoch.elapsed();
        let sent = index_of(&event.id)
            .and_then(|n| times.nanos.get(usize::try_from(n).ok()?))
            .map(|slot| slot.load(std::sync::atomic::Ordering::Relaxed));
        match sent {
            Some(sent) => {
                self.events += 1;
                self.last_at = now;
                self.latencies
                    .record(now.saturating_sub(Duration::from_nanos(sent)));
            }
            None => self.error = Some(format!("unexpected event {}", event.id)),
        }
    }

    pub(super) fn events(&self) -> u64 {
        self.events
    }

    pub(super) fn failed(&mut self, error: String) {
        self.error = Some(error);
    }
}

async fn receive(
    mut stream: Streaming<SlimStreamEventsResponse>,
    times: Arc<SendTimes>,
    expected: u64,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut received = Received::default();
    while received.events < expected {
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(message)) => {
                    if let Some(event) = message.event {
                        received.delivered(&times, &event);
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    received.failed(format!("stream ended: {status}"));
                    break;
                }
            },
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    received
}

/// A fan-out's rate, how many events it sends at that rate, and where their send times go.
pub(super) fn plan(args: &super::args::BenchArgs) -> (f64, u64, Arc<SendTimes>) {
    let rate = args.fanout_rate.max(1.0);
    let planned = (rate * args.fanout_duration.as_secs_f64()).ceil().max(1.0) as u64;
    let times = Arc::new(SendTimes::new(usize::try_from(planned).unwrap_or_default()));
    (rate, planned, times)
}

/// Waits for every subscriber, stopping them [`DRAIN`] after the last send, and adds up what
/// they received beside what was `sent`: the run's result, and how many subscribers missed some.
///
/// The result's time runs from the first send to the last delivery, so its rate is what was
/// delivered: over the sends' time alone, a backlog still draining after them would count too.
pub(super) async fn gather(
    subscribers: Vec<JoinHandle<Received>>,
    stop: watch::Sender<bool>,
    sent: &RunResult,
    times: &SendTimes,
) -> Result<(RunResult, usize), BenchError> {
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(DRAIN).await;
        let _ = stop.send(true);
    });
    let mut result = RunResult {
        errors: sent.errors,
        first_error: sent.first_error.clone(),
        elapsed: sent.elapsed,
        ..RunResult::default()
    };
    let mut short = 0;
    let mut last_at = Duration::ZERO;
    for subscriber in subscribers {
        let received = subscriber
            .await
            .map_err(|error| BenchError::Client(format!("subscriber task failed: {error}")))?;
        if received.events < sent.ok {
            short += 1;
        }
        last_at = last_at.max(received.last_at);
        result.ok += received.events;
        result.latencies.merge(received.latencies);
        if let Some(error) = received.error {
            result.errors += 1;
            result.first_error.get_or_insert(error);
        }
    }
    stopper.abort();
    let first_sent = times
        .nanos
        .first()
        .map_or(0, |slot| slot.load(Ordering::Relaxed));
    if let Some(span) = last_at.checked_sub(Duration::from_nanos(first_sent))
        && !span.is_zero()
    {
        result.elapsed = span;
    }
    Ok((result, short))
}

/// N subscribers from LATEST, then appends at a fixed rate; every delivery's latency.
pub(super) async fn fanout(bench: &Bench) -> Result<ScenarioReport, BenchError> {
    let args = &bench.args;
    let server = Server::start(&bench.exe, "fanout").await?;
    let addr = server.child.grpc_addr.clone();
    let per_connection = usize::try_from(args.streams_per_connection).unwrap_or(1);
    let connections = args.subscribers.div_ceil(per_connection).max(1);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(callers::channel(&addr).await.map_err(BenchError::Client)?);
    }
    let (rate, planned, times) = plan(args);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut subscribers = Vec::with_capacity(args.subscribers);
    for index in 0..args.subscribers {
        let stream =
            open_stream(channels[index % connections].clone(), StartPosition::Latest).await?;
        subscribers.push(tokio::spawn(receive(
            stream,
            times.clone(),
            planned,
            stop_rx.clone(),
        )));
    }
    // The answer's headers come once the server has subscribed; a moment more for the last ones.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let appended = append_apart(
        addr.clone(),
        bench.payloads.clone(),
        Arc::clone(&times),
        rate,
        args.fanout_duration,
    )
    .await?;
    // A delivery's latency starts at its append's send: what the append itself took says how
    // much of it is ingest waiting behind the fan-out's work in the server.
    let append_latency = appended
        .latencies
        .clone()
        .summary()
        .map(|summary| {
            format!(
                "; the appends themselves p50 {:.1} ms, p99 {:.1} ms",
                summary.p50_ms, summary.p99_ms
            )
        })
        .unwrap_or_default();
    let (result, short) = gather(subscribers, stop_tx, &appended, &times).await?;
    let note = format!(
        "{} subscribers, {} appends at {rate:.0}/s ({} failed), {short} subscribers missed events; per s = deliveries{append_latency}",
        args.subscribers, appended.ok, appended.errors
    );
    Ok(server.finish("fan-out", result, note).await)
}

/// Appends at `rate` for `duration` from a thread and runtime of their own: the appender
/// stands for providers on other machines, so the subscribers' work in this process must not
/// hold back its requests (their send times start each delivery's latency).
async fn append_apart(
    addr: String,
    payloads: Arc<super::payload::Payloads>,
    times: Arc<SendTimes>,
    rate: f64,
    duration: Duration,
) -> Result<RunResult, BenchError> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("fanout-appender".into())
        .spawn(move || {
            let appended = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| BenchError::Client(format!("appender runtime: {error}")))
                .and_then(|runtime| {
                    runtime.block_on(async {
                        let channel = callers::channel(&addr).await.map_err(BenchError::Client)?;
                        let caller = UnaryCaller::new(channel, payloads, false, 0).recording(times);
                        Ok(drive::open_loop(caller, rate, duration).await)
                    })
                });
            let _ = done_tx.send(appended);
        })
        .map_err(|error| BenchError::Client(format!("appender thread: {error}")))?;
    done_rx
        .await
        .map_err(|_| BenchError::Client("appender thread ended without an answer".into()))?
}

/// Stores `catchup_events` events, then times one subscriber replaying them from EARLIEST.
pub(super) async fn catchup(bench: &Bench) -> Result<ScenarioReport, BenchError> {
    let server = Server::start(&bench.exe, "catchup").await?;
    let channel = callers::channel(&server.child.grpc_addr)
        .await
        .map_err(BenchError::Client)?;
    let writers = bench.concurrency().max(256);
    let callers = (0..writers)
        .map(|_| UnaryCaller::new(channel.clone(), bench.payloads.clone(), false, 0))
        .collect();
    let filled = drive::closed_loop(callers, Bound::Requests(bench.args.catchup_events)).await;
    let started = tokio::time::Instant::now();
    let mut stream = open_stream(channel, StartPosition::Earliest).await?;
    let mut result = RunResult {
        errors: filled.errors,
        first_error: filled.first_error.clone(),
        ..RunResult::default()
    };
    let mut last = started;
    while result.ok < filled.ok {
        match tokio::time::timeout(DRAIN, stream.message()).await {
            Ok(Ok(Some(message))) => {
                if message.event.is_some() {
                    result.ok += 1;
                    last = tokio::time::Instant::now();
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(status)) => {
                result.errors += 1;
                result
                    .first_error
                    .get_or_insert(format!("stream ended: {status}"));
                break;
            }
            Err(_) => {
                result.errors += 1;
                result.first_error.get_or_insert("catch-up stalled".into());
                break;
            }
        }
    }
    result.elapsed = last.duration_since(started);
    let note = format!(
        "replay of {} stored events from EARLIEST (filled at {:.0}/s with {writers} in flight)",
        filled.ok,
        filled.throughput()
    );
    Ok(server.finish("catch-up", result, note).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_delivery_rate_runs_to_the_last_delivery_not_the_last_send() {
        let times = SendTimes::new(2);
        times.nanos[0].store(1_000_000_000, Ordering::Relaxed);
        let subscriber = |events, last_s| {
            tokio::spawn(async move {
                Received {
                    events,
                    last_at: Duration::from_secs(last_s),
                    ..Received::default()
                }
            })
        };
        // Sends took 2 s; the slower subscriber had its last event 5 s after the first send.
        let sent = RunResult {
            ok: 2,
            elapsed: Duration::from_secs(2),
            ..RunResult::default()
        };
        let (stop, _) = watch::channel(false);
        let subscribers = vec![subscriber(2, 3), subscriber(1, 6)];
        let (result, short) = gather(subscribers, stop, &sent, &times).await.unwrap();
        assert_eq!((result.ok, short), (3, 1));
        assert_eq!(result.elapsed, Duration::from_secs(5));
    }
}
