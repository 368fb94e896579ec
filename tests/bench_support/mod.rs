//! Running `hooknorm bench` from the bench smoke tests and reading its JSON report.

#![allow(dead_code)]

use std::process::Command;

/// `hooknorm bench <args> --json`, which must succeed; its report.
pub fn run<I, S>(args: I) -> serde_json::Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = Command::new(env!("CARGO_BIN_EXE_hooknorm"))
        .arg("bench")
        .args(args)
        .arg("--json")
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

/// The report's rows.
pub fn rows(report: &serde_json::Value) -> &[serde_json::Value] {
    report["scenarios"].as_array().expect("scenarios")
}

/// The names of the report's rows, in order.
pub fn scenario_names(report: &serde_json::Value) -> Vec<&str> {
    rows(report)
        .iter()
        .filter_map(|row| row["scenario"].as_str())
        .collect()
}
