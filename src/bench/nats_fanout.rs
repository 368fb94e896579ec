//! The fan-out's yardstick: nats-server core pub/sub (no JetStream, nothing stored) to as many
//! subscriber connections as the fan-out has subscribers, at the same rate, each message the
//! `StreamEventsResponse` hooknorm would stream for that bench webhook (its body normalized by the
//! Gigs provider), decoded by each subscriber as slimly as the fan-out's subscribers decode
//! theirs. Run beside `--scenario fanout` on the same machine, so the ratio of hooknorm's fan-out
//! to the broker's stays measured.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message;
use tokio::sync::watch;

use super::callers::SendTimes;
use super::drive::{self, Caller};
use super::nats::{NatsTarget, connect};
use super::payload::Payloads;
use super::report::ScenarioReport;
use super::streams::{Received, SlimStreamEventsResponse, gather, plan};
use super::{Bench, BenchError};
use crate::config::VerificationConfig;
use crate::proto::v1::StreamEventsResponse;
use crate::proto::v1::stream_events_response::Message as ResponseMessage;
use crate::providers::ProviderKind;
use crate::verify::Verifier;
use crate::webhook::RawWebhook;

/// `--subscribers` connections subscribed to one subject, then publishes at `--fanout-rate` for
/// `--fanout-duration`; every delivery's latency from its publish.
pub(super) async fn core_fanout(
    bench: &Bench,
    nats: &NatsTarget,
) -> Result<ScenarioReport, BenchError> {
    let args = &bench.args;
    let subject = format!("bench.fanout.{}", std::process::id());
    let (rate, planned, times) = plan(args);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut subscribers = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        let client = connect(&nats.url).await?;
        let subscription = client
            .subscribe(subject.clone())
            .await
            .map_err(|error| BenchError::Client(format!("cannot subscribe: {error}")))?;
        // The server has the interest once it has answered a flush after the SUB.
        client
            .flush()
            .await
            .map_err(|error| BenchError::Client(format!("cannot flush a subscription: {error}")))?;
        subscribers.push(tokio::spawn(receive(
            client,
            subscription,
            times.clone(),
            planned,
            stop_rx.clone(),
        )));
    }
    let publisher = Publisher {
        client: connect(&nats.url).await?,
        subject,
        payloads: bench.payloads.clone(),
        verifier: Arc::new(Verifier::from_config(&VerificationConfig::None, None)),
        times: Arc::clone(&times),
    };
    let message_bytes = publisher.message(0).map_err(BenchError::Client)?.len();
    let published = drive::open_loop(publisher, rate, args.fanout_duration).await;
    let (result, short) = gather(subscribers, stop_tx, &published, &times).await?;
    let note = format!(
        "nats-server core pub/sub, {} subscriber connections, {} publishes of {message_bytes} B at \
         {rate:.0}/s ({} failed), {short} subscribers missed messages; per s = deliveries",
        args.subscribers, published.ok, published.errors
    );
    Ok(ScenarioReport::new("nats core fan-out", result, note))
}

/// One subscriber's messages until it has `expected` or is stopped.
async fn receive(
    // Held: dropping the client would close the subscription's connection.
    _client: async_nats::Client,
    mut subscription: async_nats::Subscriber,
    times: Arc<SendTimes>,
    expected: u64,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let mut received = Received::default();
    while received.events() < expected {
        tokio::select! {
            message = subscription.next() => {
                let Some(message) = message else { break };
                match SlimStreamEventsResponse::decode(message.payload) {
                    Ok(SlimStreamEventsResponse { event: Some(event) }) => {
                        received.delivered(&times, &event);
                    }
                    Ok(_) => received.failed("a message without an event".to_owned()),
                    Err(error) => received.failed(format!("undecodable message: {error}")),
                }
            }
            _ = stop.wait_for(|stop| *stop) => break,
        }
    }
    received
}

/// Publishes the `n`th bench event, as a subscriber would receive it, noting when.
#[derive(Clone)]
struct Publisher {
    client: async_nats::Client,
    subject: String,
    payloads: Arc<Payloads>,
    /// Lets every body through: only the normalized event's bytes matter here.
    verifier: Arc<Verifier>,
    times: Arc<SendTimes>,
}

impl Publisher {
    /// What hooknorm streams for the `n`th bench webhook: its body normalized as the server's
    /// Gigs source does, with a sequence.
    fn message(&self, n: u64) -> Result<Bytes, String> {
        let raw = RawWebhook {
            source: "gigs".to_owned(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: self.payloads.body(n),
            request_uri: "/webhooks/gigs".to_owned(),
            remote_addr: None,
            received_at: chrono::Utc::now(),
        };
        let verified = raw
            .verify(&self.verifier)
            .map_err(|error| error.to_string())?;
        let mut event = ProviderKind::Gigs
            .normalize("gigs", &verified)
            .map_err(|error| error.to_string())?
            .event;
        event.sequence = n + 1;
        let response = StreamEventsResponse {
            message: Some(ResponseMessage::Event(event)),
        };
        Ok(Bytes::from(response.encode_to_vec()))
    }
}

impl Caller for Publisher {
    async fn call(&mut self, n: u64) -> Result<(), String> {
        let message = self.message(n)?;
        if let Some(slot) = usize::try_from(n)
            .ok()
            .and_then(|n| self.times.nanos.get(n))
        {
            let nanos = u64::try_from(self.times.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            slot.store(nanos, Ordering::Relaxed);
        }
        self.client
            .publish(self.subject.clone(), message)
            .await
            .map_err(|error| error.to_string())?;
        // Out now, not at the client's next batch: a publish's latency starts here.
        self.client.flush().await.map_err(|error| error.to_string())
    }
}
