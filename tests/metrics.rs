//! `/metrics` on the ops listener of the real binary, scraped before and after known traffic
//! (accepted, duplicate, refused by signature, 413, 429) and read back with the official
//! Prometheus client's OpenMetrics parser (tests/python/parse_metrics.py; `scripts/test`
//! installs it and sets HOOKNORM_TEST_PYTHON): every counter moved by exactly what was sent.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use common::http::{Answer, RawUpload, get, post_webhook};
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

/// Every sample of a scrape, parsed by `prometheus_client`: `name{label=value,...}` -> value.
async fn scrape(ops: SocketAddr) -> HashMap<String, f64> {
    let answer = get(ops, "/metrics").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let output = common::python::run("parse_metrics.py", &answer.body);
    assert!(
        output.status.success(),
        "the parser refused the exposition: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&answer.body)
    );
    serde_json::from_slice(&output.stdout).expect("json samples")
}

/// What the client saw, to compare with what the server counted.
#[derive(Default)]
struct Tally {
    /// `webhooks_received` outcomes: accepted, duplicate or the refusal reason.
    outcomes: BTreeMap<String, u64>,
    statuses: BTreeMap<u16, u64>,
}

impl Tally {
    fn record(&mut self, answer: &Answer) {
        self.count(answer.status, &answer.json);
    }

    fn count(&mut self, status: u16, json: &serde_json::Value) {
        *self.statuses.entry(status).or_default() += 1;
        let outcome = match (status, json["duplicate"].as_bool()) {
            (200, Some(true)) => "duplicate".to_owned(),
            (200, _) => "accepted".to_owned(),
            _ => json["error"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        };
        *self.outcomes.entry(outcome).or_default() += 1;
    }
}

/// Posts `request` until it is not rate limited (at most 20 tries, a second apart), counting
/// every answer, and returns the last.
async fn post(
    http: SocketAddr,
    request: &hooknorm::proto::v1::VerifyAndNormalizeRequest,
    tally: &mut Tally,
) -> Answer {
    for _ in 0..20 {
        let answer = post_webhook(http, request).await;
        tally.record(&answer);
        if answer.status != 429 {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    panic!("still rate limited after 20 s");
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_exactly_the_traffic_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(dir.path(), "[http]\nrate_limit_per_second = 4\n");
    let running = serve_binary(BIN, &config);
    let http: SocketAddr = running.http_addr.parse().expect("http addr");
    let ops: SocketAddr = running.ops_addr.parse().expect("ops addr");
    let before = scrape(ops).await;

    let mut tally = Tally::default();
    let request = gigs_event_request(1, "subscription.activated");
    assert_eq!(post(http, &request, &mut tally).await.status, 200);
    let again = post(http, &request, &mut tally).await;
    assert_eq!(again.json["duplicate"], true, "{:?}", again.json);
    let mut forged = gigs_event_request(2, "subscription.activated");
    forged.body.push(b' ');
    assert_eq!(post(http, &forged, &mut tally).await.status, 401);
    // A head announcing a body over the limit: refused on its length, before any body is sent
    // (a client still writing a whole body may find the connection closed under it).
    let mut status = 429;
    for _ in 0..20 {
        let length = format!("content-length: {}", 1024 * 1024 + 1);
        let upload = RawUpload::start(
            http,
            "/webhooks/gigs",
            &["content-type: application/json", &length],
        )
        .await;
        let answer = upload.answer().await;
        tally.count(answer.status, &answer.json());
        status = answer.status;
        if status != 429 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert_eq!(status, 413);
    // Forged webhooks as fast as they go, until the rate limit refuses one.
    let mut limited = false;
    for _ in 0..200 {
        let answer = post_webhook(http, &forged).await;
        tally.record(&answer);
        if answer.status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "no 429 within 200 webhooks at 4 per second");

    let after = scrape(ops).await;
    let mut checked = 0;
    for (outcome, count) in &tally.outcomes {
        let key = format!("hooknorm_webhooks_received_total{{outcome={outcome},source=gigs}}");
        assert_eq!(delta(&before, &after, &key), *count as f64, "{key}");
        checked += 1;
    }
    for (status, count) in &tally.statuses {
        let key = format!("hooknorm_http_responses_total{{status={status}}}");
        assert_eq!(delta(&before, &after, &key), *count as f64, "{key}");
        checked += 1;
    }
    // accepted, duplicate, SIGNATURE_MISMATCH, PAYLOAD_TOO_LARGE, RATE_LIMITED; 200, 401, 413,
    // 429.
    assert_eq!(checked, 9, "{:?} {:?}", tally.outcomes, tally.statuses);
    let exact = [
        ("hooknorm_events_stored_total{source=gigs}", 1.0),
        (
            "hooknorm_duplicates_total{rule=provider_id,source=gigs}",
            1.0,
        ),
        ("hooknorm_append_duration_seconds_count{}", 2.0),
        ("hooknorm_log_head_sequence{}", 1.0),
        (
            "hooknorm_verification_failures_total{reason=SIGNATURE_MISMATCH,source=gigs}",
            tally.outcomes["SIGNATURE_MISMATCH"] as f64,
        ),
    ];
    for (key, want) in exact {
        assert_eq!(delta(&before, &after, key), want, "{key}");
    }
    // Group commits: the two appends took one or two.
    let commits = delta(&before, &after, "hooknorm_commit_batch_size_count{}");
    let appends = delta(&before, &after, "hooknorm_commit_batch_size_sum{}");
    assert!((1.0..=2.0).contains(&commits), "{commits} commits");
    assert_eq!(appends, 2.0);
    assert!(after["hooknorm_store_size_bytes{}"] > 0.0);
    // Nothing the sender chose is a label value.
    assert!(after.keys().all(|key| !key.contains("msg_")), "{after:?}");
}
