//! `hooknorm bench` on the NATS backend with tiny settings (its own nats-server, started from
//! the binary the tests use), so the NATS scenarios cannot rot unnoticed.

mod bench_support;
mod nats_support;

use bench_support::{rows, scenario_names};

#[test]
fn bench_nats_reports_both_rows_and_the_ratio() {
    let report = run(&[
        "--scenario",
        "nats",
        "--requests",
        "200",
        "--concurrency",
        "8",
    ]);
    assert_eq!(
        scenario_names(&report),
        ["nats durable (1 replica)", "nats raw publish"]
    );
    for row in rows(&report) {
        assert_eq!(row["ok"], 200, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
    }
    assert_checked(&report, "nats durable / raw publish");
}

/// `--scenario fanout` with a NATS server given runs the broker's own core pub/sub beside it, to
/// as many subscribers at the same rate, and sets the two p99s side by side.
#[test]
fn bench_fanout_runs_the_nats_yardstick_beside_it() {
    let report = run(&[
        "--scenario",
        "fanout",
        "--subscribers",
        "20",
        "--fanout-rate",
        "50",
        "--fanout-duration",
        "1s",
    ]);
    assert_eq!(scenario_names(&report), ["fan-out", "nats core fan-out"]);
    for row in rows(&report) {
        assert_eq!(
            row["ok"],
            50 * 20,
            "every message to every subscriber: {row}"
        );
        assert_eq!(row["errors"], 0, "{row}");
    }
    assert_checked(&report, "fan-out p99 / nats core p99");
}

/// `hooknorm bench <args>` against a nats-server of its own.
fn run(args: &[&str]) -> serde_json::Value {
    let server = nats_support::nats_server_binary();
    let nats = [std::ffi::OsStr::new("--nats-server"), server.as_os_str()];
    bench_support::run(args.iter().map(std::ffi::OsStr::new).chain(nats))
}

/// The report sets a figure against a target named `what`.
fn assert_checked(report: &serde_json::Value, what: &str) {
    let checks = report["checks"].as_array().expect("checks");
    assert!(
        checks.iter().any(|check| check["what"] == what),
        "{what} not among {checks:?}"
    );
}
