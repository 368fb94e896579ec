//! `hooknorm bench` against the real binary with tiny settings, so the load generator (its
//! signing, its child-process handling and its report) cannot rot unnoticed.

mod bench_support;

use bench_support::{rows, run, scenario_names};

#[test]
fn bench_unary_reports_nonzero_throughput() {
    check_rows(
        "unary",
        &[
            "unary durable",
            "unary durable, basic view",
            "unary dry_run",
        ],
    );
}

/// The servers with an API key, and with TLS too, take the bench's key over the bench's TLS.
#[test]
fn bench_auth_reports_nonzero_throughput() {
    check_rows("auth", &["auth off", "auth key", "auth key+tls"]);
}

/// A few subscribers: every append reaches every one, and the appends' own latency is reported
/// beside the deliveries'.
#[test]
fn bench_fanout_delivers_every_event_to_every_subscriber() {
    let report = run([
        "--scenario",
        "fanout",
        "--subscribers",
        "20",
        "--fanout-rate",
        "50",
        "--fanout-duration",
        "1s",
    ]);
    let [row] = report["scenarios"]
        .as_array()
        .expect("scenarios")
        .as_slice()
    else {
        panic!("one row expected: {report}");
    };
    assert_eq!(row["scenario"], "fan-out", "{row}");
    assert_eq!(row["ok"], 50 * 20, "{row}");
    assert_eq!(row["errors"], 0, "{row}");
    let note = row["note"].as_str().expect("note");
    assert!(note.contains(", 0 subscribers missed events"), "{note}");
    assert!(note.contains("the appends themselves p50 "), "{note}");
}

/// Runs `scenario` with 200 requests and checks its rows are `names`, each without errors.
fn check_rows(scenario: &str, expected: &[&str]) {
    let report = run([
        "--scenario",
        scenario,
        "--requests",
        "200",
        "--concurrency",
        "8",
    ]);
    assert_eq!(scenario_names(&report), expected);
    for row in rows(&report) {
        assert_eq!(row["ok"], 200, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        assert!(
            row["per_second"].as_f64().expect("per_second") > 0.0,
            "{row}"
        );
        assert!(
            row["latency"]["p99_ms"].as_f64().expect("p99") > 0.0,
            "{row}"
        );
        assert!(row["startup_ms"].as_f64().expect("startup") > 0.0, "{row}");
    }
}
