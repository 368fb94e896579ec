//! `hooknorm tail` and `hooknorm events`, the built binary against a running server: one JSON
//! event per line, filters and start positions passed through to the RPCs.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::stream::*;
use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

/// A `hooknorm tail` child; killed when dropped.
struct Tail {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Tail {
    fn start(args: &[&str]) -> Tail {
        let mut child = Command::new(BIN)
            .arg("tail")
            .args(args)
            .env("HOOKNORM_API_KEY", common::TEST_API_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tail starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Tail { child, lines }
    }

    /// The next line as JSON, failing after 20 s.
    fn next(&self) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .expect("tail prints a line in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one json event: {line}: {e}"))
    }

    /// Fails if a line is printed within `window`.
    fn assert_quiet(&self, window: Duration) {
        if let Ok(line) = self.lines.recv_timeout(window) {
            panic!("unexpected extra line: {line}");
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sequence as proto3 JSON renders it (a uint64 is a string).
fn sequence_of(event: &serde_json::Value) -> u64 {
    event["sequence"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .or_else(|| event["sequence"].as_u64())
        .unwrap_or_else(|| panic!("no sequence in {event}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_replayed_then_live_events_one_json_per_line() {
    let mut server = TestServer::start().await;
    let url = format!("http://{}", server.addr);
    let first = append(&mut server.client, 1, "sim.updated").await;
    let renewed = append(&mut server.client, 2, "subscription.renewed").await;
    let third = append(&mut server.client, 3, "sim.updated").await;

    let tail = Tail::start(&["--server", &url, "--earliest", "--type", "sim.*"]);
    let replayed: Vec<serde_json::Value> = (0..2).map(|_| tail.next()).collect();
    assert_eq!(
        replayed.iter().map(sequence_of).collect::<Vec<_>>(),
        vec![first, third]
    );
    assert_eq!(replayed[0]["type"], "sim.updated");
    assert_eq!(replayed[0]["id"], "gigs:evt_test00000001");

    let resumed = Tail::start(&["--server", &url, "--after", &renewed.to_string()]);
    assert_eq!(sequence_of(&resumed.next()), third);

    // Live: only the matching new event reaches the filtered tail.
    append(&mut server.client, 4, "subscription.renewed").await;
    let live = append(&mut server.client, 5, "sim.updated").await;
    assert_eq!(sequence_of(&tail.next()), live);
    tail.assert_quiet(Duration::from_millis(300));
    drop(tail);
    drop(resumed);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_lists_newest_first_one_json_per_line_and_gets_by_id() {
    let mut server = TestServer::start().await;
    let url = format!("http://{}", server.addr);
    let mut sequences = Vec::new();
    for n in 0..5 {
        sequences.push(append(&mut server.client, n, "invoice.created").await);
    }
    append(&mut server.client, 9, "sim.updated").await;

    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .arg("events")
            .args(["--server", &url])
            .env("HOOKNORM_API_KEY", common::TEST_API_KEY)
            .args(args)
            .output()
            .expect("events runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let text = tokio::task::block_in_place(|| run(&["--type", "invoice.*", "--limit", "3"]));
    let listed: Vec<u64> = text
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one json event per line: {line}: {e}"));
            assert_eq!(event["type"], "invoice.created");
            sequence_of(&event)
        })
        .collect();
    let mut newest: Vec<u64> = sequences.iter().rev().take(3).copied().collect();
    assert_eq!(listed, newest);

    let one = tokio::task::block_in_place(|| run(&["--id", "gigs:evt_test00000002"]));
    let event: serde_json::Value = serde_json::from_str(&one).expect("one json event");
    newest = vec![sequences[2]];
    assert_eq!(vec![sequence_of(&event)], newest);
    server.shutdown().await;
}
