//! Reads: filters in `read_after` and `list`, listing newest first before a cursor, lookups by
//! id and by receive time.

use hooknorm::event::resource;
use hooknorm::log::{EventFilter, TypePattern};
use hooknorm::proto::v1::ResourceRef;

use super::*;

fn about(mut event: Event, subject: ResourceRef, related: Vec<ResourceRef>) -> Event {
    event.subject = Some(subject);
    event.related = related;
    event
}

/// Events chosen so a careless translation of filters (LIKE wildcards, case folding, an event
/// listed once per matching ref) would return too much.
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

pub async fn filters_apply_to_read_after_and_list<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    for event in filter_corpus() {
        store(&log, event).await;
    }
    let stored = all(&log).await;
    let pattern = |p: &str| TypePattern::parse(p).expect("pattern");
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
                types: vec![pattern("invoice.paid")],
                ..EventFilter::default()
            },
            vec!["abo:1"],
        ),
        (
            EventFilter {
                types: vec![pattern("subscription.*")],
                ..EventFilter::default()
            },
            vec!["gigs:1", "gigs:6"],
        ),
        (
            EventFilter {
                types: vec![pattern("sub_x.*")],
                ..EventFilter::default()
            },
            vec!["mm:1"],
        ),
        (
            EventFilter {
                types: vec![pattern("a%b.*")],
                ..EventFilter::default()
            },
            vec!["gigs:3"],
        ),
        (
            EventFilter {
                types: vec![pattern("invoice.paid"), pattern("sub_x.*")],
                ..EventFilter::default()
            },
            vec!["abo:1", "mm:1"],
        ),
        (
            EventFilter {
                types: vec![pattern("*")],
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
                types: vec![pattern("subscription.*")],
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
        // The in-memory matcher is the reference every backend's reads must agree with.
        let reference: Vec<&str> = stored
            .iter()
            .filter(|event| filter.matches(event))
            .map(|event| event.id.as_str())
            .collect();
        assert_eq!(reference, expected, "reference for {filter:?}");
        let ascending = log.read_after(0, &filter, 100).await.expect("read");
        assert_eq!(ids(&ascending), expected, "read_after {filter:?}");
        let encoded = log.read_encoded_after(0, &filter, 100).await.expect("read");
        assert_eq!(
            encoded
                .events
                .iter()
                .map(|e| e.sequence)
                .collect::<Vec<_>>(),
            sequences(&ascending),
            "read_encoded_after {filter:?}"
        );
        let mut descending = log.list(&filter, None, 100).await.expect("list");
        descending.reverse();
        assert_eq!(ids(&descending), expected, "list {filter:?}");
    }
    log.close().await;
}

pub async fn list_pages_newest_first_before_a_cursor<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    let mut stored = Vec::new();
    for index in 1..=10 {
        let subject = resource("subscription", if index % 2 == 0 { "even" } else { "odd" });
        let event = about(event(&format!("e{index}"), "t.x"), subject, vec![]);
        stored.push(store(&log, event).await.sequence);
    }
    // `s[n]` is the sequence of event e<n>.
    let s = |n: usize| stored[n - 1];
    let everything = EventFilter::default();
    let page = log.list(&everything, None, 4).await.expect("list");
    assert_eq!(sequences(&page), [s(10), s(9), s(8), s(7)]);
    let page = log.list(&everything, Some(s(7)), 4).await.expect("list");
    assert_eq!(sequences(&page), [s(6), s(5), s(4), s(3)]);
    let page = log.list(&everything, Some(s(3)), 4).await.expect("list");
    assert_eq!(sequences(&page), [s(2), s(1)]);
    assert!(
        log.list(&everything, Some(s(1)), 4)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        log.list(&everything, None, 0)
            .await
            .expect("list")
            .is_empty()
    );

    let even = EventFilter {
        resource: Some(resource("subscription", "even")),
        ..EventFilter::default()
    };
    let page = log.list(&even, None, 2).await.expect("list");
    assert_eq!(sequences(&page), [s(10), s(8)]);
    let page = log.list(&even, Some(s(8)), 10).await.expect("list");
    assert_eq!(sequences(&page), [s(6), s(4), s(2)]);
    let page = log.read_after(s(4), &even, 2).await.expect("read");
    assert_eq!(sequences(&page), [s(6), s(8)]);
    log.close().await;
}

pub async fn get_finds_an_event_by_id<H: Harness>(harness: &mut H) {
    let log = harness.open(Settings::default()).await;
    store(&log, event("a", "t.x")).await;
    let b = store(&log, event("b", "t.y")).await;
    assert_eq!(log.get("b", View::Basic).await.expect("get"), Some(b));
    assert_eq!(log.get("missing", View::Basic).await.expect("get"), None);
    log.close().await;
}

pub async fn cursor_at_points_just_before_the_first_event_received_then<H: Harness>(
    harness: &mut H,
) {
    let log = harness.open(Settings::default()).await;
    assert_eq!(log.cursor_at(time(T0_MS)).await.expect("cursor"), 0);
    let mut stored = Vec::new();
    for (id, ms) in [("a", T0_MS), ("b", T0_MS + 1000), ("c", T0_MS + 2000)] {
        stored.push(store(&log, received(event(id, "t.x"), ms)).await);
    }
    let cursor = |ms| log.cursor_at(time(ms));
    // Reading from the cursor yields the first event received at or after the time first.
    let everything = EventFilter::default();
    for (ms, first) in [
        (T0_MS - 1, 0),
        (T0_MS, 0),
        (T0_MS + 500, 1),
        (T0_MS + 2000, 2),
    ] {
        let at = cursor(ms).await.expect("cursor");
        assert!(at < stored[first].sequence, "{ms}: {at}");
        let next = log.read_after(at, &everything, 1).await.expect("read");
        assert_eq!(next, [stored[first].clone()], "{ms}");
    }
    // Nothing received since: the head, so reading from it yields only what comes next.
    assert_eq!(
        cursor(T0_MS + 9000).await.expect("cursor"),
        head(&log).await
    );

    // Received out of order (a caller-supplied time): nothing received since is skipped.
    store(&log, received(event("late", "t.x"), T0_MS + 500)).await;
    let at = cursor(T0_MS + 500).await.expect("cursor");
    let since = log.read_after(at, &everything, 10).await.expect("read");
    assert_eq!(ids(&since), ["b", "c", "late"]);
    log.close().await;
}
