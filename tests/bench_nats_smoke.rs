//! `hooknorm bench` on the NATS backend with tiny settings (its own nats-server, started from
//! the binary the tests use), so the NATS scenarios cannot rot unnoticed.

mod nats_support;

use std::process::Command;

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
    for row in report["scenarios"].as_array().expect("scenarios") {
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
    for row in report["scenarios"].as_array().expect("scenarios") {
        assert_eq!(
            row["ok"],
            50 * 20,
            "every message to every subscriber: {row}"
        );
        assert_eq!(row["errors"], 0, "{row}");
    }
    assert_checked(&report, "fan-out p99 / nats core p99");
}

/// `hooknorm bench <args> --json` against a nats-server of its own, which must succeed; its
/// report.
fn run(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_hooknorm"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg("--nats-server")
        .arg(nats_support::nats_server_binary())
        .env_remove("HOOKNORM_CONFIG")
        .output()
        .expect("bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).expect("report is json")
}

fn scenario_names(report: &serde_json::Value) -> Vec<&str> {
    report["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .filter_map(|row| row["scenario"].as_str())
        .collect()
}

/// The report sets a figure against a target named `what`.
fn assert_checked(report: &serde_json::Value, what: &str) {
    let checks = report["checks"].as_array().expect("checks");
    assert!(
        checks.iter().any(|check| check["what"] == what),
        "{what} not among {checks:?}"
    );
}
