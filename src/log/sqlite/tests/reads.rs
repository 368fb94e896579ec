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
