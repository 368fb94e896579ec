//! Durable append throughput of the SQLite event log: many concurrent appends, each returning
//! only after its group commit is fsync'd.
//!
//! `cargo bench --bench append_throughput` (optionally `-- <total> <concurrency>`). Under
//! `cargo test` it runs a short smoke pass, so the bench cannot rot.

use std::sync::Arc;
use std::time::Instant;

use hooknorm::config::StoreConfig;
use hooknorm::event::Identity;
use hooknorm::log::sqlite::SqliteEventLog;
use hooknorm::log::{AppendRequest, EventLog};
use hooknorm::proto::v1::{Event, ResourceRef};

fn event(index: usize) -> Event {
    Event {
        id: format!("gigs:evt_{index}"),
        provider: 1,
        source: "gigs".into(),
        r#type: "subscription.renewed".into(),
        subject: Some(ResourceRef {
            kind: "subscription".into(),
            id: format!("sub_{}", index % 1000),
        }),
        related: vec![ResourceRef {
            kind: "plan".into(),
            id: "pln_1".into(),
        }],
        received_at: Some(prost_types::Timestamp {
            seconds: 1_767_225_600,
            nanos: 0,
        }),
        ..Event::default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; `cargo test` (which also builds and runs this) does not.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let default_total = if benchmarking { 100_000 } else { 1_000 };
    let total: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(default_total);
    let concurrency: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(512);
    let dir = tempfile::tempdir()?;
    let config = StoreConfig {
        path: dir.path().to_owned(),
        ..StoreConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let log: Arc<dyn EventLog> = Arc::new(SqliteEventLog::open(&config)?);
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|task| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    for index in (task..total).step_by(concurrency) {
                        let request = AppendRequest {
                            event: event(index),
                            identity: Identity::ProviderId,
                            delivery: None,
                        };
                        log.append(request).await?;
                    }
                    Ok::<_, hooknorm::log::LogError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        let elapsed = started.elapsed();
        println!(
            "append_throughput: {total} durable appends, {concurrency} in flight: {elapsed:.2?} = {:.0} events/s",
            total as f64 / elapsed.as_secs_f64()
        );
        log.close().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
