//! The measuring clients beside a flood: a provider posting signed webhooks at a fixed rate,
//! and the kubelet's probe.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::WEBHOOKS_PER_SECOND;
use super::common::flood::*;
use super::common::http::*;
use super::common::*;

/// What a webhook sender saw.
#[derive(Debug, Default)]
pub struct Sent {
    /// Connect to answer, of every webhook answered 200.
    pub latencies: Latencies,
    /// Connecting alone, of every webhook that connected.
    pub connects: Latencies,
    /// Webhooks not answered 200, with what happened instead.
    pub failures: Vec<String>,
}

/// Signed Gigs webhooks from `source` at a fixed rate for `window`, each on a fresh connection
/// as a provider sends them; latencies include connecting. Open loop: a slow answer never
/// delays the next webhook.
pub fn send_webhooks(http: SocketAddr, source: IpAddr, window: Duration) -> Sent {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let count = WEBHOOKS_PER_SECOND * window.as_secs();
        let interval = Duration::from_secs(1) / WEBHOOKS_PER_SECOND as u32;
        let start = tokio::time::Instant::now();
        let mut sends = Vec::new();
        for n in 0..count {
            tokio::time::sleep_until(start + interval * n as u32).await;
            let request = gigs_event_request(1_000_000 + n, "subscription.renewed");
            sends.push(tokio::spawn(async move {
                let began = Instant::now();
                let mut connected = None;
                let answer = tokio::time::timeout(Duration::from_secs(20), async {
                    let stream = connect_from(source, http)
                        .await
                        .map_err(|e| e.to_string())?;
                    connected = Some(began.elapsed());
                    Ok::<_, String>(post_webhook_on(stream, http, &request).await)
                })
                .await;
                let latency = began.elapsed();
                let outcome = match answer {
                    Ok(Ok(answer)) if answer.status == 200 => Ok(latency),
                    Ok(Ok(answer)) => Err(format!("{}: {:?}", answer.status, answer.json)),
                    Ok(Err(error)) => Err(format!("connect: {error}")),
                    Err(_) => Err("no answer within 20 s".to_owned()),
                };
                (connected, outcome)
            }));
        }
        let mut sent = Sent::default();
        for send in sends {
            match send.await {
                Ok((connected, outcome)) => {
                    if let Some(connected) = connected {
                        sent.connects.record(connected);
                    }
                    match outcome {
                        Ok(latency) => sent.latencies.record(latency),
                        Err(failure) => sent.failures.push(failure),
                    }
                }
                Err(error) => sent.failures.push(format!("client task: {error}")),
            }
        }
        sent
    })
}

/// `GET /healthz` on a fresh connection every 100 ms, as the kubelet probes.
pub fn probe(ops: SocketAddr, window: Duration) -> (Latencies, Vec<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut latencies = Latencies::default();
        let mut failures = Vec::new();
        let start = Instant::now();
        while start.elapsed() < window {
            let began = Instant::now();
            match tokio::time::timeout(Duration::from_secs(5), get(ops, "/healthz")).await {
                Ok(answer) if answer.status == 200 => latencies.record(began.elapsed()),
                Ok(answer) => failures.push(format!("{}", answer.status)),
                Err(_) => failures.push("no answer within 5 s".to_owned()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (latencies, failures)
    })
}
