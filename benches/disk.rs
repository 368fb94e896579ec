//! Bytes on disk per stored event on the sample mix (issue 17), and what compressing them costs.
//!
//! Two stores are filled with the same `N` webhooks of the sample mix
//! ([`hooknorm::bench::mix`]: every built-in sample in turn, ids made distinct, compact JSON,
//! verified, normalized and appended through the server's [`Pipeline`], deliveries kept): one
//! with compressed bodies (the default: plain until dictionaries are trained on the first
//! events), one kept plain. For each: the fill rate and the process's CPU time per event, the
//! bytes on disk per event (WAL checkpointed) beside the raw bodies' average size, where they
//! are (SQLite's `dbstat`), and a resuming subscriber's catch-up rate over the store.
//!
//! `cargo bench --bench disk -- <events> [<store dir>] [--compressed-only]`: the stores are kept
//! in `<store dir>/compressed` and `<store dir>/plain` (a store already holding the events is
//! measured again without filling). Under `cargo test` a 3,000-event pass runs in a temporary
//! dir and checks that compression took effect, so the bench cannot rot.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use hooknorm::bench::mix::{MIX_SOURCES_TOML, SampleMix};
use hooknorm::bench::soak::cpu_ms;
use hooknorm::config::Config;
use hooknorm::log::sqlite::{DB_FILE_NAME, SqliteEventLog, SqliteOptions};
use hooknorm::log::{EventFilter, EventLog};
use hooknorm::pipeline::Pipeline;

#[path = "common/store_args.rs"]
mod store_args;

use store_args::StoreArgs;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Appends in flight while filling (as many as the server's group commit takes at once).
const IN_FLIGHT: u64 = 256;

fn main() -> Result<(), Error> {
    let compressed_only = std::env::args().any(|a| a == "--compressed-only");
    let StoreArgs {
        benchmarking,
        total,
        ref dir,
        ..
    } = StoreArgs::parse(1_000_000, 3_000)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let compressed = runtime.block_on(measure(&dir.join("compressed"), total, true))?;
    if !benchmarking {
        // The smoke pass's check: past the first thousand events, bodies were compressed, to
        // well under half their plain size.
        let [plain, compressed] = compressed.event_rows;
        if compressed.is_none_or(|compressed| compressed * 2.0 > plain.unwrap_or(0.0)) {
            return Err(format!(
                "event rows: plain {plain:?} B, compressed {compressed:?} B on average"
            )
            .into());
        }
    }
    if !compressed_only {
        let plain = runtime.block_on(measure(&dir.join("plain"), total, false))?;
        println!(
            "compressed / plain: {:.2}x the bytes on disk, {:.2}x the CPU time per event, {:.2}x the fill rate, {:.2}x the catch-up rate",
            compressed.per_event / plain.per_event,
            compressed.cpu_us / plain.cpu_us,
            compressed.fill_rate / plain.fill_rate,
            compressed.catch_up_rate / plain.catch_up_rate,
        );
    }
    Ok(())
}

struct Measured {
    per_event: f64,
    /// The average `events` row body, plain and compressed (`None` where there is none).
    event_rows: [Option<f64>; 2],
    cpu_us: f64,
    fill_rate: f64,
    catch_up_rate: f64,
}

async fn measure(dir: &Path, total: u64, compress: bool) -> Result<Measured, Error> {
    std::fs::create_dir_all(dir)?;
    let toml = format!(
        "auth = \"none\"\n{MIX_SOURCES_TOML}\n[store]\npath = {:?}\n",
        dir.display().to_string()
    );
    let config = Config::from_toml(&toml)?;
    let mix = SampleMix::new(&config)?;
    let options = SqliteOptions {
        compress_after: if compress {
            SqliteOptions::default().compress_after
        } else {
            None
        },
        ..SqliteOptions::default()
    };
    let log: Arc<dyn EventLog> = Arc::new(SqliteEventLog::open_with(&config.store, options)?);
    let pipeline = Pipeline::new(&config, log.clone());
    let stored = log.head().await?;
    let kind = if compress { "compressed" } else { "plain" };
    println!("{kind}: store {} holds {stored} events", dir.display());

    let cpu_before = cpu_ms(std::process::id()).await;
    let started = Instant::now();
    let chunk = (total / 10).max(1_000);
    let mut next = stored;
    while next < total {
        let end = (next + chunk).min(total);
        fill(&pipeline, &mix, next..end).await?;
        next = end;
        println!(
            "  filled {next} of {total} ({:.0} events/s so far)",
            (next - stored) as f64 / started.elapsed().as_secs_f64()
        );
    }
    let filled = total.saturating_sub(stored);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_us = (cpu_ms(std::process::id()).await - cpu_before) * 1e3 / filled.max(1) as f64;
    let fill_rate = filled as f64 / elapsed;
    if filled > 0 {
        println!(
            "{kind}: filled {filled} events at {fill_rate:.0}/s, {cpu_us:.0} us of CPU (all threads) per event"
        );
    }
    let head = log.head().await?;
    let catch_up_rate = catch_up(&log, head).await?;
    log.close().await;
    drop(pipeline);

    let raw: u64 = (0..total).map(|n| mix.body(n).len() as u64).sum();
    let raw_average = raw as f64 / total as f64;
    let (per_event, event_rows) = disk(dir, head, raw_average)?;
    Ok(Measured {
        per_event,
        event_rows,
        cpu_us,
        fill_rate,
        catch_up_rate,
    })
}

/// Appends `range`'s webhooks through the pipeline, [`IN_FLIGHT`] at a time.
async fn fill(
    pipeline: &Pipeline,
    mix: &SampleMix,
    range: std::ops::Range<u64>,
) -> Result<(), Error> {
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|task| {
            let (pipeline, mix, range) = (pipeline.clone(), mix.clone(), range.clone());
            tokio::spawn(async move {
                for n in (range.start + task..range.end).step_by(IN_FLIGHT as usize) {
                    let outcome = pipeline.process(mix.webhook(n)?, false).await?;
                    if outcome.duplicate {
                        return Err::<_, Error>(format!("webhook {n} stored twice").into());
                    }
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// A subscriber resuming from the start of the second half: encoded pages, as a stream's
/// catch-up reads them (decompressed where compressed). Events per second.
async fn catch_up(log: &Arc<dyn EventLog>, head: u64) -> Result<f64, Error> {
    let from = head / 2;
    let until = head.min(from + 1_000_000);
    let started = Instant::now();
    let (mut after, mut events) = (from, 0u64);
    while after < until {
        let batch = log
            .read_encoded_after(after, &EventFilter::default(), 1_000)
            .await?;
        let Some(last) = batch.events.last() else {
            break;
        };
        after = last.sequence;
        events += batch.events.len() as u64;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    println!("catch-up from sequence {from}: {events} events at {rate:.0}/s");
    Ok(rate)
}

/// Bytes on disk per event (WAL checkpointed) and their ratio to the raw body, where they are,
/// and the average `events` body, plain and compressed (a record: event and delivery).
fn disk(dir: &Path, events: u64, raw_average: f64) -> Result<(f64, [Option<f64>; 2]), Error> {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE_NAME))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let on_disk: u64 = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .filter(|meta| meta.is_file())
        .map(|meta| meta.len())
        .sum();
    let per_event = on_disk as f64 / events as f64;
    println!(
        "disk: {on_disk} bytes for {events} events = {per_event:.0} B/event, {:.2}x the raw body ({raw_average:.0} B on average)",
        per_event / raw_average
    );
    let mut statement =
        conn.prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (name, bytes) = row?;
        println!("  {name:<24} {:>8.0} B/event", bytes as f64 / events as f64);
    }
    let mut event_rows = [None, None];
    for table in ["events", "deliveries"] {
        let mut averages = [None, None];
        for (average, codec) in averages.iter_mut().zip(["= 0", "> 0"]) {
            *average = conn.query_row(
                &format!("SELECT AVG(LENGTH(body)) FROM {table} WHERE codec {codec}"),
                [],
                |row| row.get::<_, Option<f64>>(0),
            )?;
        }
        // A compressed `events` body is a record: the event and its delivery.
        println!(
            "  {table} bodies: plain {} B, compressed {} B on average",
            averages[0].map_or("-".to_owned(), |bytes| format!("{bytes:.0}")),
            averages[1].map_or("-".to_owned(), |bytes| format!("{bytes:.0}"))
        );
        if table == "events" {
            event_rows = averages;
        }
    }
    Ok((per_event, event_rows))
}
