//! How the embedded store's costs grow with the size of the log (issue 17): a store filled with
//! `N` real events (signed 1 KiB Gigs webhooks, verified, normalized and appended through the
//! same [`Pipeline`] the server runs, deliveries kept), then, against the full store:
//!
//! - append throughput on the full store beside a new, empty one (alternating rounds);
//! - `GetEvent` and `ListEvents` by resource (a resource with one event, and one every event
//!   names) latency percentiles;
//! - a subscriber's catch-up from the middle (the encoded reads a resuming stream makes);
//! - bytes on disk per event, with the WAL checkpointed, beside the raw body size, and which
//!   table or index holds them (SQLite's `dbstat`);
//! - ingest latency with retention deleting the oldest events beside the same ingest without.
//!
//! `cargo bench --bench growth -- <events> [<store dir>]`: a store dir that already holds the
//! events is reused (filling 10 million takes a while), an empty or missing one is filled and
//! kept. Under `cargo test` a 1,000-event smoke pass runs in a temporary dir, so the bench
//! cannot rot.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hooknorm::bench::child::{Security, server_config_toml};
use hooknorm::bench::payload::Payloads;
use hooknorm::config::{Config, StoreConfig};
use hooknorm::event::resource;
use hooknorm::log::sqlite::SqliteEventLog;
use hooknorm::log::{EventFilter, EventLog, View};
use hooknorm::pipeline::Pipeline;
use hooknorm::proto::v1::Event;
use hooknorm::webhook::RawWebhook;
use prost::Message;

#[path = "common/store_args.rs"]
mod store_args;

use store_args::StoreArgs;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Appends in flight while filling (as many as the server's group commit takes at once).
const FILL_IN_FLIGHT: usize = 256;
/// Appends in flight for the latency phases: the load generator's default.
const LATENCY_IN_FLIGHT: usize = 64;

fn main() -> Result<(), Error> {
    let StoreArgs { total, ref dir, .. } = StoreArgs::parse(10_000_000, 1_000)?;
    std::fs::create_dir_all(dir)?;
    let chunk = (total / 20).clamp(250, 200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(total, chunk, dir))
}

/// Rounds of the append-rate comparison.
const RATE_ROUNDS: usize = 3;

async fn run(total: u64, chunk: u64, dir: &Path) -> Result<(), Error> {
    let (config, payloads) = bench_config(dir)?;
    let log: Arc<dyn EventLog> = Arc::new(SqliteEventLog::open(&config.store)?);
    let pipeline = Pipeline::new(&config, log.clone());
    let mut stored = stored_events(dir)?;
    println!("growth: store {} holds {stored} events", dir.display());

    // A reused store holds the webhooks of earlier runs, their latency phases included: new
    // appends go on from the newest, so none is a duplicate.
    let mut next = next_webhook(&log).await?;
    while stored < total {
        let count = chunk.min(total - stored);
        let (rate, _) = append(&pipeline, &payloads, next..next + count, FILL_IN_FLIGHT).await?;
        next += count;
        stored += count;
        println!("  filled {stored} of {total}: {rate:.0} events/s");
    }
    let (empty, full) = append_rates(&config, &payloads, &pipeline, next, chunk).await?;
    println!(
        "append {chunk} events, {FILL_IN_FLIGHT} in flight, medians of {RATE_ROUNDS} alternating rounds: empty store {:.0}/s, at {stored} events {:.0}/s ({:.2}x)",
        empty,
        full,
        full / empty
    );
    let head = log.head().await?;

    reads(&log, head).await?;
    catch_up(&log, head).await?;
    let next = next_webhook(&log).await?;
    log.close().await;
    drop(pipeline);
    let stored = stored_events(dir)?;
    disk(dir, stored, payloads.body(0).len())?;
    retention(dir, stored, next, &payloads).await?;
    Ok(())
}

/// How many events the store in `dir` holds (retention may have removed the oldest).
fn stored_events(dir: &Path) -> Result<u64, Error> {
    let db = dir.join(hooknorm::log::sqlite::DB_FILE_NAME);
    if !db.exists() {
        return Ok(0);
    }
    let conn = rusqlite::Connection::open(&db)?;
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))?;
    Ok(u64::try_from(count)?)
}

/// The number of the first webhook no run has appended yet: one past the largest `n` among the
/// newest events (ids are `<source>:evt_bench<n>`; every run appends in increasing `n`, its
/// appends in flight committing in any order, so the newest page spans all of them).
async fn next_webhook(log: &Arc<dyn EventLog>) -> Result<u64, Error> {
    let newest = log
        .list(&EventFilter::default(), None, 4 * FILL_IN_FLIGHT)
        .await?;
    let mut next = 0;
    for event in newest {
        let (_, n) = event
            .id
            .rsplit_once("evt_bench")
            .ok_or("unexpected event id form")?;
        next = next.max(n.parse::<u64>()? + 1);
    }
    Ok(next)
}

/// The append rate on the full store beside a new, empty one: rounds of `chunk` appends,
/// alternating between a fresh empty store and the full one (`pipeline`, from webhook `next`
/// on, past every one it holds), so that the machine getting busier or quieter weighs on both
/// alike. The median rate of each.
async fn append_rates(
    config: &Config,
    payloads: &Payloads,
    pipeline: &Pipeline,
    mut next: u64,
    chunk: u64,
) -> Result<(f64, f64), Error> {
    let (mut empty, mut full) = (Vec::new(), Vec::new());
    for _ in 0..RATE_ROUNDS {
        let dir = tempfile::tempdir()?;
        let mut fresh = config.clone();
        fresh.store.path = dir.path().to_owned();
        let log: Arc<dyn EventLog> = Arc::new(SqliteEventLog::open(&fresh.store)?);
        let (rate, _) = append(
            &Pipeline::new(&fresh, log.clone()),
            payloads,
            0..chunk,
            FILL_IN_FLIGHT,
        )
        .await?;
        log.close().await;
        empty.push(rate);
        let (rate, _) = append(pipeline, payloads, next..next + chunk, FILL_IN_FLIGHT).await?;
        next += chunk;
        full.push(rate);
        println!(
            "  round: empty store {:.0}/s, full store {rate:.0}/s",
            empty[empty.len() - 1]
        );
    }
    let median = |mut rates: Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    Ok((median(empty), median(full)))
}

/// The bench server's config (its Gigs source and secret), with the store in `dir`.
fn bench_config(dir: &Path) -> Result<(Config, Payloads), Error> {
    let toml = server_config_toml(dir, Security::Open, dir);
    let mut config = Config::from_toml(&toml)?;
    config.store = StoreConfig {
        path: dir.to_owned(),
        ..StoreConfig::default()
    };
    let payloads = Payloads::new(config.sources[0].clone(), 1024);
    Ok((config, payloads))
}

fn webhook(payloads: &Payloads, n: u64) -> Result<RawWebhook, Error> {
    let request = payloads.request(n)?;
    Ok(RawWebhook {
        source: request.source,
        headers: request
            .headers
            .into_iter()
            .map(|header| (header.name, header.value))
            .collect(),
        body: request.body,
        request_uri: request.request_uri,
        remote_addr: None,
        received_at: Utc::now(),
    })
}

/// Appends webhooks `range` through the pipeline, `in_flight` at a time; returns events/s and
/// every append's latency.
async fn append(
    pipeline: &Pipeline,
    payloads: &Payloads,
    range: std::ops::Range<u64>,
    in_flight: usize,
) -> Result<(f64, Vec<Duration>), Error> {
    let count = range.end - range.start;
    let started = Instant::now();
    let tasks: Vec<_> = (0..in_flight as u64)
        .map(|task| {
            let pipeline = pipeline.clone();
            let payloads = payloads.clone();
            let range = range.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for n in (range.start + task..range.end).step_by(in_flight) {
                    let webhook = webhook(&payloads, n)?;
                    let sent = Instant::now();
                    let outcome = pipeline.process(webhook, false).await?;
                    latencies.push(sent.elapsed());
                    if outcome.duplicate {
                        return Err::<_, Error>(format!("webhook {n} stored twice").into());
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(usize::try_from(count)?);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((count as f64 / started.elapsed().as_secs_f64(), latencies))
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1);
        samples.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} samples)",
        at(0.5),
        at(0.99),
        at(1.0),
        samples.len()
    )
}

/// `GetEvent` by id and `ListEvents` by resource, spread over the whole log.
async fn reads(log: &Arc<dyn EventLog>, head: u64) -> Result<(), Error> {
    const SAMPLES: u64 = 2_000;
    let everything = EventFilter::default();
    // Events sampled by sequence over what is stored, so a store that retention has thinned
    // (an earlier run's last phase) reads as well as a fresh one; finding each id is not timed.
    let oldest = log.read_encoded_after(0, &everything, 1).await?;
    let oldest = oldest.events.first().ok_or("the store is empty")?.sequence;
    let span = head.saturating_sub(oldest) + 1;
    let stride = (span / SAMPLES).max(1);
    let mut gets = Vec::new();
    let mut by_subject = Vec::new();
    for i in 0..SAMPLES.min(span) {
        let sequence = oldest + (i * stride + i % 7) % span;
        let found = log.read_encoded_after(sequence - 1, &everything, 1).await?;
        let found = found
            .events
            .first()
            .ok_or("no event at or after a stored sequence")?;
        let id = Event::decode(found.bytes.clone())?.id;
        let started = Instant::now();
        let event = log.get(&id, View::Basic).await?;
        gets.push(started.elapsed());
        let event = event.ok_or_else(|| format!("event {id} not found"))?;
        let subject = event.subject.clone().ok_or("event without subject")?;
        let filter = EventFilter::new(Vec::new(), Vec::new(), &[], Some(subject))?;
        let started = Instant::now();
        let page = log.list(&filter, None, 50).await?;
        by_subject.push(started.elapsed());
        if page.is_empty() {
            return Err(format!("no events listed for {id}'s subject").into());
        }
    }
    println!("GetEvent by id: {}", percentiles(gets));
    println!(
        "ListEvents by resource (its own subject, 1 event): {}",
        percentiles(by_subject)
    );
    // A resource every event names (the plan), paged from the newest and from the middle.
    let plan = EventFilter::new(
        Vec::new(),
        Vec::new(),
        &[],
        Some(resource("plan", "pln_bench")),
    )?;
    let mut by_plan = Vec::new();
    for i in 0..200u64 {
        let before = (i % 2 == 1).then_some(oldest + span / 2 + i);
        let started = Instant::now();
        let page = log.list(&plan, before, 50).await?;
        by_plan.push(started.elapsed());
        if page.len() != 50 && span > 100 {
            return Err(format!("a page of {} events for the plan", page.len()).into());
        }
    }
    println!(
        "ListEvents by resource (every event's plan), 50 a page: {}",
        percentiles(by_plan)
    );
    Ok(())
}

/// A subscriber resuming from the middle: the encoded pages a stream's catch-up reads.
async fn catch_up(log: &Arc<dyn EventLog>, head: u64) -> Result<(), Error> {
    const PAGE: usize = 1_000;
    let from = head / 2;
    let until = head.min(from + 1_000_000);
    let everything = EventFilter::default();
    let started = Instant::now();
    let (mut after, mut events, mut bytes) = (from, 0u64, 0usize);
    while after < until {
        let batch = log.read_encoded_after(after, &everything, PAGE).await?;
        let Some(last) = batch.events.last() else {
            break;
        };
        after = last.sequence;
        events += batch.events.len() as u64;
        bytes += batch.events.iter().map(|e| e.bytes.len()).sum::<usize>();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "catch-up from sequence {from}: {events} events in {elapsed:.2} s = {:.0} events/s ({:.0} MB/s encoded)",
        events as f64 / elapsed,
        bytes as f64 / elapsed / 1e6
    );
    Ok(())
}

/// Bytes on disk per event, the WAL checkpointed away, and where they are.
fn disk(dir: &Path, events: u64, body: usize) -> Result<(), Error> {
    let db = dir.join(hooknorm::log::sqlite::DB_FILE_NAME);
    let conn = rusqlite::Connection::open(&db)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let on_disk: u64 = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .filter(|meta| meta.is_file())
        .map(|meta| meta.len())
        .sum();
    let per_event = on_disk as f64 / events as f64;
    println!(
        "disk: {on_disk} bytes for {events} events = {per_event:.0} bytes/event, {:.2}x the {body} B raw body",
        per_event / body as f64
    );
    let by_object = conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()
        });
    match by_object {
        Ok(rows) => {
            for (name, bytes) in rows {
                println!(
                    "  {name:<24} {:>8.0} bytes/event",
                    bytes as f64 / events as f64
                );
            }
        }
        Err(error) => println!("  (no per-table figures: {error})"),
    }
    Ok(())
}

/// Ingest latency at the load generator's concurrency, without retention and then while
/// retention deletes the oldest tenth of the log (at least 1,000 events; 1 million at 10
/// million).
async fn retention(dir: &Path, stored: u64, next: u64, payloads: &Payloads) -> Result<(), Error> {
    let (mut config, _) = bench_config(dir)?;
    let count = 20_000u64.min(stored / 2).max(500);
    let log: Arc<dyn EventLog> = Arc::new(SqliteEventLog::open(&config.store)?);
    let pipeline = Pipeline::new(&config, log.clone());
    let start = next;
    let (_, without) = append(&pipeline, payloads, start..start + count, LATENCY_IN_FLIGHT).await?;
    println!("ingest, no retention running: {}", percentiles(without));
    log.close().await;
    drop(pipeline);

    let delete = (stored / 10).max(1_000).min(stored);
    config.store.retention_max_count = Some(stored + count - delete);
    let log: Arc<dyn EventLog> = Arc::new(SqliteEventLog::open(&config.store)?);
    let pipeline = Pipeline::new(&config, log.clone());
    let retention = {
        let log = log.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let report = log.enforce_retention().await;
            (report, started.elapsed())
        })
    };
    let start = start + count;
    let (_, with) = append(&pipeline, payloads, start..start + count, LATENCY_IN_FLIGHT).await?;
    println!(
        "ingest, retention deleting {delete} events beside it: {}",
        percentiles(with)
    );
    let (report, took) = retention.await?;
    println!("retention pass: {:?} in {took:.2?}", report?);
    log.close().await;
    Ok(())
}
