//! Page sizes, tokens (pinned, so tokens survive deploys) and pages over a real SQLite log.

use super::*;
use crate::config::StoreConfig;
use crate::event::Identity;
use crate::log::AppendRequest;
use crate::log::sqlite::SqliteEventLog;

#[test]
fn page_sizes_default_cap_and_refuse_negatives() {
    assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
    assert_eq!(page_size(7).unwrap(), 7);
    assert_eq!(page_size(5000).unwrap(), MAX_PAGE_SIZE);
    assert!(matches!(page_size(-1), Err(PageError::PageSize)));
}

#[test]
fn page_tokens_are_stable_across_builds_and_list_order() {
    let filter = |sources: [&str; 2]| EventFilter {
        providers: vec![2, 1],
        sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        types: vec![TypePattern::Prefix("order.".into())],
        resource: None,
    };
    let token = page_token(42, &filter(["mm", "gigs"]));
    assert_eq!(token, page_token(42, &filter(["gigs", "mm"])));
    // Pinned: a token issued before a deploy must parse after it.
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .unwrap();
    assert_eq!(String::from_utf8(raw).unwrap(), PINNED_TOKEN);
    assert_eq!(
        parse_page_token(&token, &filter(["gigs", "mm"])).unwrap(),
        Some(42)
    );
}

const PINNED_TOKEN: &str = "v1:42:8cd22e326508e6d6";

#[test]
fn page_tokens_round_trip_and_bind_the_filter() {
    let filter = EventFilter {
        sources: vec!["gigs".into()],
        ..EventFilter::default()
    };
    let token = page_token(42, &filter);
    assert_eq!(parse_page_token(&token, &filter).unwrap(), Some(42));
    assert_eq!(parse_page_token("", &filter).unwrap(), None);
    assert!(parse_page_token(&token, &EventFilter::default()).is_err());
    assert!(parse_page_token("garbage!", &filter).is_err());
    assert_eq!(
        PageError::PageToken.reason(),
        crate::error::Reason::InvalidRequest
    );
}

/// A log holding five small events, sequences 1 to 5.
async fn five_events() -> (tempfile::TempDir, SqliteEventLog) {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        path: dir.path().to_owned(),
        ..StoreConfig::default()
    };
    let log = SqliteEventLog::open(&config).unwrap();
    for n in 1..=5 {
        let event = Event {
            id: format!("evt_{n}"),
            source: "gigs".into(),
            r#type: "order.completed".into(),
            ..Event::default()
        };
        log.append(AppendRequest {
            event,
            identity: Identity::ProviderId,
            delivery: None,
        })
        .await
        .unwrap();
    }
    (dir, log)
}

fn sequences(page: &Page) -> Vec<u64> {
    page.events.iter().map(|event| event.sequence).collect()
}

#[tokio::test]
async fn pages_walk_the_log_newest_first() {
    let (_dir, log) = five_events().await;
    let filter = EventFilter::default();
    let mut token = String::new();
    let mut pages = Vec::new();
    loop {
        let page = list_page(&log, &filter, 2, &token, 1024).await.unwrap();
        pages.push(sequences(&page));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, [vec![5, 4], vec![3, 2], vec![1]]);
    let other = EventFilter {
        sources: vec!["other".into()],
        ..EventFilter::default()
    };
    let first = list_page(&log, &filter, 2, "", 1024).await.unwrap();
    let replayed = list_page(&log, &other, 2, &first.next_page_token, 1024).await;
    assert!(matches!(replayed, Err(PageError::PageToken)));
}

#[tokio::test]
async fn pages_stop_at_their_byte_budget_but_hold_one_event() {
    let (_dir, log) = five_events().await;
    let filter = EventFilter::default();
    let (all, more) = read_page(&log, &filter, None, 10, usize::MAX)
        .await
        .unwrap();
    assert!(!more);
    let one = prost::encoding::message::encoded_len(1, &all[0]);
    let (events, more) = read_page(&log, &filter, None, 10, one * 2).await.unwrap();
    assert_eq!((events.len(), more), (2, true));
    let (events, more) = read_page(&log, &filter, None, 10, 1).await.unwrap();
    assert_eq!((events.len(), more), (1, true));
}
