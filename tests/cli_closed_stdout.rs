//! The real `hooknorm` client commands with a stdout whose reader has gone (`hooknorm samples |
//! head -1`): each ends at once, successfully and silently, not with a panic or an error about
//! output no one reads.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

/// Runs `hooknorm args…` with stdout a pipe whose read end is already closed, so its first
/// write fails with `EPIPE`, and asserts it exits 0 with nothing on stderr.
fn assert_quiet_success_with_closed_stdout(args: &[&str]) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("HOOKNORM_CONFIG")
        .env("HOOKNORM_API_KEY", common::TEST_API_KEY)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    // `tail` would wait for new events forever if it missed the closed pipe.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running 30 s after its stdout closed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr piped"), &mut stderr)
        .expect("stderr reads");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(
        status.success(),
        "{args:?} exited with {status}; stderr: {stderr}"
    );
    assert!(stderr.is_empty(), "{args:?} wrote to stderr: {stderr}");
}

#[test]
fn samples_ends_quietly_when_its_reader_leaves() {
    assert_quiet_success_with_closed_stdout(&["samples"]);
}

#[test]
fn send_events_and_tail_end_quietly_when_their_reader_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::binary_config(dir.path(), "");
    let running = common::serve_binary(BIN, &config);
    let server = format!("http://{}", running.addr);
    let config = config.to_str().expect("utf-8 path");
    // The webhook is stored before `send` prints, so `events` and `tail` have one to print.
    assert_quiet_success_with_closed_stdout(&[
        "send",
        "--config",
        config,
        "--source",
        "mm",
        "--sample",
        "order.complete",
        "--server",
        &server,
    ]);
    assert_quiet_success_with_closed_stdout(&["events", "--limit", "3", "--server", &server]);
    assert_quiet_success_with_closed_stdout(&["tail", "--earliest", "--server", &server]);
}
