//! The event log's contract, as `hooknorm::log::EventLog`'s documentation states it: one async
//! function per invariant, generic over the backend, so every backend runs the same checks.
//!
//! A backend plugs in with a file of its own (`tests/log_contract_sqlite.rs`) that implements
//! [`Harness`] (open a fresh log with given [`Settings`], reopen it, move its clock) and expands
//! [`log_contract_tests!`] with it, which makes one `#[tokio::test]` per invariant.
//!
//! Sections: `appends` (sequences, read-your-writes, restarts), `reads` (filters, listing,
//! lookups), `live` (the live feed and its seam with reads), `retention` (what it removes and
//! what cursors see), `lifecycle` (closing), and `dedup` (how redeliveries are answered).

#![allow(dead_code)]

pub mod appends;
pub mod dedup;
pub mod lifecycle;
pub mod live;
pub mod reads;
pub mod retention;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hooknorm::event::timestamp;
use hooknorm::event::{EntityKey, Identity};
use hooknorm::log::{AppendRequest, EventFilter, EventLog, Live, LiveSubscription, View};
use hooknorm::proto::v1::{Event, Provider};

pub use appends::*;
pub use dedup::*;
pub use lifecycle::*;
pub use live::*;
pub use reads::*;
pub use retention::*;

/// How a test wants its log configured.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Keep at most this many events (`None`: no limit by count).
    pub retention_max_count: Option<u64>,
    /// Remove events appended longer ago than this, by the log's clock (`None`: no limit).
    pub retention_max_age: Option<Duration>,
    /// How long a redelivery is recognized.
    pub dedup_window: Duration,
    /// About how many unread events a live subscription may have before it is told it lagged;
    /// a backend maps this onto whatever bounds its feed.
    pub live_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retention_max_count: None,
            retention_max_age: None,
            dedup_window: Duration::from_secs(7 * 24 * 3600),
            live_capacity: 4096,
        }
    }
}

/// What a backend provides for the suite to run against it. One harness serves one test.
#[async_trait]
pub trait Harness: Send {
    /// Opens a fresh, empty log configured by `settings`.
    async fn open(&mut self, settings: Settings) -> Arc<dyn EventLog>;

    /// Opens the store of the last [`Harness::open`] again, with the same settings, as a
    /// restarted server would; the previous handle has been closed.
    async fn reopen(&mut self) -> Arc<dyn EventLog>;

    /// Moves the log's clock forward by `by`: retention by age and the dedup window see every
    /// event stored so far as that much older. (A backend on a real clock sleeps.)
    async fn advance(&mut self, by: Duration);
}

/// Expands to one `#[tokio::test]` per invariant, each with a fresh harness made by `$harness`
/// and a time limit, so a broken invariant that leaves a call waiting fails instead of hanging.
macro_rules! log_contract_tests {
    ($harness:expr) => {
        $crate::log_contract::log_contract_tests!(@each $harness;
            append_assigns_increasing_sequences,
            appends_are_visible_to_every_read_once_they_return,
            sequences_and_events_survive_a_reopen,
            sequences_are_never_reused_after_retention_or_a_reopen,
            filters_apply_to_read_after_and_list,
            list_pages_newest_first_before_a_cursor,
            get_finds_an_event_by_id,
            cursor_at_points_just_before_the_first_event_received_then,
            the_live_feed_carries_exactly_the_committed_events_in_order,
            subscribe_then_read_to_head_leaves_no_gap_and_no_duplicate,
            a_lagging_subscription_is_told,
            retention_by_count_removes_the_oldest_and_reads_say_how_far,
            retention_by_age_goes_by_append_time_not_received_at,
            a_cursor_below_the_oldest_kept_event_reads_on_from_it,
            spawned_retention_runs_until_close,
            close_lets_in_flight_appends_finish_then_refuses_work,
            close_ends_subscriptions_after_the_committed_events,
            a_redelivered_provider_id_is_answered_with_the_first_event,
            concurrent_redeliveries_store_one_event,
            dedup_holds_across_a_reopen,
            redeliveries_are_counted_where_the_backend_counts,
            a_retained_provider_id_is_a_duplicate_past_the_window_and_never_renamed,
            a_removed_provider_id_is_recognized_within_the_window_then_stored_again,
            only_a_repeat_of_the_latest_state_is_a_duplicate,
            state_matching_ends_with_the_window,
            the_full_view_returns_the_kept_delivery_and_nothing_else_carries_it,
        );
    };
    (@each $harness:expr; $($test:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let mut harness = $harness;
                let run = $crate::log_contract::$test(&mut harness);
                tokio::time::timeout(std::time::Duration::from_secs(60), run)
                    .await
                    .expect("the contract test finished in time");
            }
        )+
    };
}

pub(crate) use log_contract_tests;

/// 2023-11-14T22:13:20Z: the `received_at` of the suite's events unless a test says otherwise.
pub const T0_MS: i64 = 1_700_000_000_000;

pub fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("a valid time")
}

/// A Gigs event with this id and canonical type, received at [`T0_MS`].
pub fn event(id: &str, event_type: &str) -> Event {
    Event {
        id: id.to_owned(),
        provider: Provider::Gigs as i32,
        source: "gigs".to_owned(),
        r#type: event_type.to_owned(),
        received_at: Some(timestamp(time(T0_MS))),
        ..Event::default()
    }
}

pub fn received(mut event: Event, ms: i64) -> Event {
    event.received_at = Some(timestamp(time(ms)));
    event
}

/// The request that stores `event`, identified by its provider id.
pub fn request(event: Event) -> AppendRequest {
    AppendRequest {
        event,
        identity: Identity::ProviderId,
        delivery: None,
    }
}

/// The request that stores `event` (whose id is its state's fingerprint) as the latest state
/// of `entity`.
pub fn state_request(entity: &str, event: Event) -> AppendRequest {
    AppendRequest {
        event,
        identity: Identity::LatestState(EntityKey::new("test").part(entity)),
        delivery: None,
    }
}

/// Appends `event`, which must be new, and returns it as stored.
pub async fn store(log: &Arc<dyn EventLog>, event: Event) -> Event {
    let appended = log.append(request(event)).await.expect("append");
    assert!(!appended.duplicate, "{:?} is not new", appended.event.id);
    appended.event
}

/// Every stored event, ascending.
pub async fn all(log: &Arc<dyn EventLog>) -> Vec<Event> {
    log.read_after(0, &EventFilter::default(), 10_000)
        .await
        .expect("read_after")
}

pub fn ids(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.id.as_str()).collect()
}

pub fn sequences(events: &[Event]) -> Vec<u64> {
    events.iter().map(|event| event.sequence).collect()
}

pub async fn head(log: &Arc<dyn EventLog>) -> u64 {
    log.head().await.expect("head")
}

/// The next item on a subscription, failing after 10 s.
pub async fn next_live(subscription: &mut LiveSubscription) -> Live {
    tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("a live item in time")
}

/// Fails if an event arrives on `subscription` within `window`.
pub async fn assert_no_live_event(subscription: &mut LiveSubscription, window: Duration) {
    if let Ok(Live::Event(event)) = tokio::time::timeout(window, subscription.next()).await {
        panic!("unexpected live event {}", event.sequence());
    }
}
