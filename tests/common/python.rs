//! The test tools' Python (`tools/.venv`, made by `scripts/test`, which also sets
//! `HOOKNORM_TEST_PYTHON`), for the tests that check hooknorm against independent Python
//! libraries: a script under `tests/python/` takes one JSON request on stdin and answers JSON.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The venv's interpreter.
pub fn interpreter() -> String {
    std::env::var("HOOKNORM_TEST_PYTHON").unwrap_or_else(|_| {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/.venv/bin/python");
        assert!(
            std::path::Path::new(venv).exists(),
            "this test needs the Python tools: run ./scripts/test (it creates tools/.venv)"
        );
        venv.to_owned()
    })
}

/// Runs `tests/python/<script>` with `input` on stdin; what it printed, whatever its exit.
pub fn run(script: &str, input: &[u8]) -> Output {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(interpreter())
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("input written");
    child.wait_with_output().expect("python finishes")
}

/// Runs `tests/python/<script>` with `request` on stdin; its JSON answer.
pub fn run_script(script: &str, request: &serde_json::Value) -> serde_json::Value {
    let output = run(script, request.to_string().as_bytes());
    assert!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json answer")
}
