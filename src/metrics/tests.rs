use super::*;

fn metrics() -> Metrics {
    Metrics::new(HashSet::from(["gigs".to_owned()]), None)
}

#[test]
fn unconfigured_sources_are_one_label_value() {
    let metrics = metrics();
    metrics.webhook("gigs", WebhookOutcome::Accepted);
    metrics.webhook("evil\"name", WebhookOutcome::Refused(Reason::UnknownSource));
    metrics.webhook("another", WebhookOutcome::Refused(Reason::UnknownSource));
    let text = metrics.encode();
    assert!(
        text.contains(
            "hooknorm_webhooks_received_total{source=\"unknown\",outcome=\"UNKNOWN_SOURCE\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains("hooknorm_events_stored_total{source=\"gigs\"} 1"),
        "{text}"
    );
    assert!(!text.contains("evil"), "{text}");
}

#[test]
fn only_authentication_refusals_count_as_verification_failures() {
    let metrics = metrics();
    for reason in Reason::ALL {
        metrics.webhook("gigs", WebhookOutcome::Refused(*reason));
    }
    let text = metrics.encode();
    let failures: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("hooknorm_verification_failures_total{"))
        .collect();
    assert_eq!(failures.len(), 7, "{text}");
    assert!(
        failures
            .iter()
            .any(|line| line.contains("reason=\"SIGNATURE_MISMATCH\"")),
        "{text}"
    );
    assert!(
        !failures
            .iter()
            .any(|line| line.contains("reason=\"PAYLOAD_TOO_LARGE\"")),
        "{text}"
    );
}

#[test]
fn subscriber_guard_counts_open_streams() {
    let metrics: &'static Metrics = Box::leak(Box::new(metrics()));
    let first = metrics.subscriber();
    let second = metrics.subscriber();
    assert!(metrics.encode().contains("hooknorm_subscribers 2"));
    drop(first);
    drop(second);
    assert!(metrics.encode().contains("hooknorm_subscribers 0"));
}

#[test]
fn store_size_is_the_files_in_the_store_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
    std::fs::write(dir.path().join("b"), [0u8; 23]).unwrap();
    let metrics = Metrics::new(HashSet::new(), Some(dir.path().to_owned()));
    assert!(
        metrics.encode().contains("hooknorm_store_size_bytes 123"),
        "{}",
        metrics.encode()
    );
}

/// The checked-in Grafana dashboard queries only metrics that exist, and shows every one.
#[test]
fn dashboard_and_registry_name_the_same_metrics() {
    let metrics = metrics();
    // A labelled family is exposed once it has a sample.
    metrics.webhook("gigs", WebhookOutcome::Accepted);
    metrics.webhook("gigs", WebhookOutcome::Refused(Reason::SignatureMismatch));
    metrics.duplicate("gigs", "provider_id");
    metrics.http_response(200);
    metrics.stream_end(StreamEndReason::ClientLeft);
    let exposed: HashSet<String> = metrics
        .encode()
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .map(str::to_owned)
        .collect();
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/helm/hooknorm/dashboards/hooknorm.json"
    ))
    .unwrap();
    let queried: HashSet<String> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("hooknorm_"))
        .map(|word| {
            ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .fold(word, |word, suffix| {
                    word.strip_suffix(suffix).unwrap_or(word)
                })
                .to_owned()
        })
        .collect();
    assert_eq!(queried, exposed);
}
