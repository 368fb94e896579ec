//! The event log contract against the oldest NATS server hooknorm supports (2.9, as Debian 12
//! ships it at `/usr/sbin/nats-server`, or `HOOKNORM_TEST_NATS_SERVER_OLDEST`): every invariant
//! in turn, in one test, on a server of that version the test starts. Skipped, saying so, on a
//! machine without that binary.

// Invariants are called one by one below, not through the suite's macro.
#[allow(unused_macros, unused_imports)]
mod log_contract;
mod nats_support;

#[path = "nats_support/contract_harness.rs"]
mod contract_harness;

use std::sync::OnceLock;

use contract_harness::NatsHarness;
use nats_support::NatsServer;

fn server() -> Option<&'static NatsServer> {
    static SERVER: OnceLock<Option<NatsServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            nats_support::oldest_nats_server_binary()
                .map(|binary| NatsServer::start_with(&binary, &[]))
        })
        .as_ref()
}

macro_rules! each_invariant {
    ($server:expr; $($test:ident),+ $(,)?) => {
        $(
            let mut harness = NatsHarness::new($server);
            tokio::time::timeout(
                std::time::Duration::from_secs(60),
                log_contract::$test(&mut harness),
            )
            .await
            .expect(concat!(stringify!($test), " finished in time"));
        )+
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_holds_on_the_oldest_supported_nats_server() {
    let Some(server) = server() else {
        eprintln!(
            "SKIPPED: no nats-server 2.9 at /usr/sbin/nats-server (set \
             HOOKNORM_TEST_NATS_SERVER_OLDEST to test the oldest supported version)"
        );
        return;
    };
    let version =
        std::process::Command::new(nats_support::oldest_nats_server_binary().expect("binary"))
            .arg("--version")
            .output()
            .expect("nats-server --version");
    eprintln!(
        "oldest: {}",
        String::from_utf8_lossy(&version.stdout).trim()
    );
    each_invariant!(server;
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
        a_retained_provider_id_is_a_duplicate_past_the_window_and_never_renamed,
        a_removed_provider_id_is_recognized_within_the_window_then_stored_again,
        only_a_repeat_of_the_latest_state_is_a_duplicate,
        state_matching_ends_with_the_window,
        the_full_view_returns_the_kept_delivery_and_nothing_else_carries_it,
    );
}
