//! Reads, as only SQLite does them: type prefixes as string ranges, corrupt rows. (Filters,
//! paging and lookups every backend must get right: `tests/log_contract/reads.rs`.)

use super::*;
use crate::log::View;

#[test]
fn prefix_upper_bounds() {
    use super::read::prefix_upper_bound;
    assert_eq!(prefix_upper_bound("order.").as_deref(), Some("order/"));
    assert_eq!(prefix_upper_bound("a%").as_deref(), Some("a&"));
    assert_eq!(
        prefix_upper_bound("a\u{D7FF}").as_deref(),
        Some("a\u{E000}")
    );
    assert_eq!(
        prefix_upper_bound("a\u{10FFFF}").as_deref(),
        Some("b"),
        "char::MAX cannot grow, so the char before it does"
    );
    assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    assert_eq!(prefix_upper_bound(""), None);
}

fn is_corrupt<T: std::fmt::Debug>(result: Result<T, LogError>) -> bool {
    matches!(result, Err(LogError::Corrupt { sequence: 1, .. }))
}

#[tokio::test]
async fn corrupt_bodies_are_reported_with_their_sequence() {
    let fixture = Fixture::new();
    let log = fixture.open();
    log.append(by_id(event("a", "t.x"))).await.unwrap();
    log.execute_on_writer("UPDATE events SET body = x'ffffffff' WHERE sequence = 1")
        .await
        .unwrap();
    assert!(is_corrupt(
        log.read_after(0, &EventFilter::default(), 10).await
    ));
    assert!(is_corrupt(log.get("a", View::Basic).await));
    assert!(is_corrupt(log.append(by_id(event("a", "t.x"))).await));
    // The writer is unharmed.
    log.append(by_id(event("b", "t.x"))).await.unwrap();
    log.close().await;
}

/// Every catch-up read of `cursors` with each filter, as (removed_through, sequences, bytes).
async fn catch_up_reads(
    log: &SqliteEventLog,
    cursors: std::ops::RangeInclusive<u64>,
) -> Vec<String> {
    let filters = [
        EventFilter::default(),
        EventFilter::new(vec![], vec![], &["order.*".to_owned()], None).unwrap(),
        EventFilter::new(vec![], vec![], &[], Some(resource("sim", "s3"))).unwrap(),
    ];
    let mut reads = Vec::new();
    for after in cursors {
        for filter in &filters {
            for limit in [4, 100] {
                let batch = log.read_encoded_after(after, filter, limit).await.unwrap();
                reads.push(format!("{after} {limit} {filter:?}: {batch:?}"));
            }
        }
    }
    reads
}

#[tokio::test]
async fn catch_up_reads_near_the_head_answer_as_the_file_does() {
    let fixture = Fixture::with(|config| config.retention_max_count = Some(20));
    let open = || {
        SqliteEventLog::open_with(
            &fixture.config,
            SqliteOptions {
                // The window holds the newest 25 of the 60 events: reads before it use the file.
                broadcast_capacity: 25,
                ..SqliteOptions::default()
            },
        )
        .unwrap()
    };
    let log = open();
    for n in 1..=60u64 {
        let kind = if n % 3 == 0 {
            "order.updated"
        } else {
            "sim.activated"
        };
        let subject = resource("sim", format!("s{}", n % 4));
        log.append(by_id(about(event(&format!("e{n}"), kind), subject, vec![])))
            .await
            .unwrap();
    }
    let window = log.recent.as_ref().unwrap();
    assert!(window.read_after(35, &EventFilter::default(), 1).is_some());
    assert!(window.read_after(34, &EventFilter::default(), 1).is_none());
    let before = catch_up_reads(&log, 0..=61).await;
    // Retention removes the oldest 40, a part of the window among them.
    assert_eq!(log.enforce_retention().await.unwrap().events_removed, 40);
    assert!(window.read_after(39, &EventFilter::default(), 1).is_none());
    assert!(window.read_after(40, &EventFilter::default(), 1).is_some());
    let after = catch_up_reads(&log, 0..=61).await;
    log.close().await;

    // Reopened, the window is empty and the file answers everything.
    let reopened = open();
    assert_eq!(catch_up_reads(&reopened, 0..=61).await, after);
    reopened.close().await;
    assert_ne!(before, after, "retention shows in the reads");
    assert!(before.iter().any(|read| read.contains("sequence: 60")));
}
