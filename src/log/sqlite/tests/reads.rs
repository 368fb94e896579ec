//! Reads: filters pushed into SQL, paging, lookups by id and time, corrupt data.

use super::*;
use crate::log::View;

/// Events chosen so a careless translation (LIKE wildcards, case folding, duplicate refs)
/// would return too much.
fn filter_corpus() -> Vec<Event> {
    let mut abowire = about(
        event("abo:1", "invoice.paid"),
        resource("invoice", "inv_1"),
        vec![resource("subscription", "sub_1")],
    );
    abowire.provider = Provider::Abowire as i32;
    abowire.source = "abo".to_owned();
    let mut mm = about(
        event("mm:1", "sub_x.created"),
        resource("sim", "s1"),
        vec![],
    );
    mm.provider = Provider::MobileManager as i32;
    mm.source = "mm".to_owned();
    vec![
        about(
            event("gigs:1", "subscription.created"),
            resource("subscription", "sub_1"),
            vec![resource("plan", "pln_1")],
        ),
        abowire,
        mm,
        event("gigs:2", "subXx.created"),
        event("gigs:3", "a%b.done"),
        event("gigs:4", "aXYb.done"),
        event("gigs:5", "SUBSCRIPTION.created"),
        // The same resource as subject and related must come back once.
        about(
            event("gigs:6", "subscription.updated"),
            resource("subscription", "sub_1"),
            vec![resource("subscription", "sub_1"), resource("plan", "pln_2")],
        ),
        event("gigs:7", "subscriptions.created"),
    ]
}

#[tokio::test]
async fn filters_are_applied_in_read_after_and_list() {
    let fixture = Fixture::new();
    let log = fixture.open();
    let corpus = filter_corpus();
    for event in &corpus {
        log.append(by_id(event.clone())).await.unwrap();
    }
    let stored = all(&log).await;
    let prefix = |p: &str| TypePattern::parse(p).unwrap();
    let cases: Vec<(EventFilter, Vec<&str>)> = vec![
        (
            EventFilter {
                providers: vec![Provider::Abowire as i32, Provider::MobileManager as i32],
                ..EventFilter::default()
            },
            vec!["abo:1", "mm:1"],
        ),
        (
            EventFilter {
                sources: vec!["abo".to_owned(), "mm".to_owned()],
                ..EventFilter::default()
            },
            vec!["abo:1", "mm:1"],
        ),
        (
            EventFilter {
                types: vec![prefix("invoice.paid")],
                ..EventFilter::default()
            },
            vec!["abo:1"],
        ),
        (
            EventFilter {
                types: vec![prefix("subscription.*")],
                ..EventFilter::default()
            },
            vec!["gigs:1", "gigs:6"],
        ),
        (
            EventFilter {
                types: vec![prefix("sub_x.*")],
                ..EventFilter::default()
            },
            vec!["mm:1"],
        ),
        (
            EventFilter {
                types: vec![prefix("a%b.*")],
                ..EventFilter::default()
            },
            vec!["gigs:3"],
        ),
        (
            EventFilter {
                types: vec![prefix("invoice.paid"), prefix("sub_x.*")],
                ..EventFilter::default()
            },
            vec!["abo:1", "mm:1"],
        ),
        (
            EventFilter {
                types: vec![prefix("*")],
                ..EventFilter::default()
            },
            ids(&stored),
        ),
        (
            EventFilter {
                resource: Some(resource("subscription", "sub_1")),
                ..EventFilter::default()
            },
            vec!["gigs:1", "abo:1", "gigs:6"],
        ),
        (
            EventFilter {
                resource: Some(resource("plan", "pln_1")),
                ..EventFilter::default()
            },
            vec!["gigs:1"],
        ),
        (
            EventFilter {
                resource: Some(resource("subscription", "sub_1")),
                sources: vec!["gigs".to_owned()],
                types: vec![prefix("subscription.*")],
                providers: vec![Provider::Gigs as i32],
            },
            vec!["gigs:1", "gigs:6"],
        ),
        (
            EventFilter {
                resource: Some(resource("subscription", "sub_2")),
                ..EventFilter::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        // The in-memory matcher is the reference the SQL must agree with.
        let reference: Vec<&str> = stored
            .iter()
            .filter(|event| filter.matches(event))
            .map(|event| event.id.as_str())
            .collect();
        assert_eq!(reference, expected, "reference for {filter:?}");
        let ascending = log.read_after(0, &filter, 100).await.unwrap();
        assert_eq!(ids(&ascending), expected, "read_after {filter:?}");
        let mut descending = log.list(&filter, None, 100).await.unwrap();
        descending.reverse();
        assert_eq!(ids(&descending), expected, "list {filter:?}");
    }
    log.close().await;
}

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

#[tokio::test]
async fn list_pages_newest_first() {
    let fixture = Fixture::new();
    let log = fixture.open();
    for index in 1..=10 {
        let subject = resource("subscription", if index % 2 == 0 { "even" } else { "odd" });
        log.append(by_id(about(
            event(&format!("e{index}"), "t.x"),
            subject,
            vec![],
        )))
        .await
        .unwrap();
    }
    let everything = EventFilter::default();
    let page = log.list(&everything, None, 4).await.unwrap();
    assert_eq!(sequences(&page), [10, 9, 8, 7]);
    let page = log.list(&everything, Some(7), 4).await.unwrap();
    assert_eq!(sequences(&page), [6, 5, 4, 3]);
    let page = log.list(&everything, Some(3), 4).await.unwrap();
    assert_eq!(sequences(&page), [2, 1]);
    assert!(log.list(&everything, Some(1), 4).await.unwrap().is_empty());
    assert!(log.list(&everything, None, 0).await.unwrap().is_empty());

    let even = EventFilter {
        resource: Some(resource("subscription", "even")),
        ..EventFilter::default()
    };
    let page = log.list(&even, None, 2).await.unwrap();
    assert_eq!(sequences(&page), [10, 8]);
    let page = log.list(&even, Some(8), 10).await.unwrap();
    assert_eq!(sequences(&page), [6, 4, 2]);
    let page = log.read_after(4, &even, 2).await.unwrap();
    assert_eq!(sequences(&page), [6, 8]);
    log.close().await;
}

#[tokio::test]
async fn get_finds_by_id() {
    let fixture = Fixture::new();
    let log = fixture.open();
    log.append(by_id(event("a", "t.x"))).await.unwrap();
    log.append(by_id(event("b", "t.y"))).await.unwrap();
    let b = log.get("b", View::Basic).await.unwrap().unwrap();
    assert_eq!(b, event("b", "t.y").with_sequence(2));
    assert!(log.get("missing", View::Basic).await.unwrap().is_none());
    log.close().await;
}

#[tokio::test]
async fn cursor_at_points_just_before_the_first_event_received_then() {
    let fixture = Fixture::new();
    let log = fixture.open();
    assert_eq!(log.cursor_at(time(T0_MS)).await.unwrap(), 0);
    for (id, ms) in [("a", T0_MS), ("b", T0_MS + 1000), ("c", T0_MS + 2000)] {
        log.append(by_id(received(event(id, "t.x"), ms)))
            .await
            .unwrap();
    }
    assert_eq!(log.cursor_at(time(T0_MS - 1)).await.unwrap(), 0);
    assert_eq!(log.cursor_at(time(T0_MS)).await.unwrap(), 0);
    assert_eq!(log.cursor_at(time(T0_MS + 500)).await.unwrap(), 1);
    assert_eq!(log.cursor_at(time(T0_MS + 1000)).await.unwrap(), 1);
    assert_eq!(log.cursor_at(time(T0_MS + 2000)).await.unwrap(), 2);
    // Nothing received since: the head, so reading from it yields only what comes next.
    assert_eq!(log.cursor_at(time(T0_MS + 9000)).await.unwrap(), 3);

    // Received out of order (a caller-supplied time): still nothing received since is skipped.
    log.append(by_id(received(event("late", "t.x"), T0_MS + 500)))
        .await
        .unwrap();
    let cursor = log.cursor_at(time(T0_MS + 500)).await.unwrap();
    assert_eq!(cursor, 1);
    let since = log
        .read_after(cursor, &EventFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(ids(&since), ["b", "c", "late"]);
    log.close().await;
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
