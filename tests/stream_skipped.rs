//! StreamEvents over real gRPC when retention has removed events a subscriber asks for: a
//! resume cursor older than the oldest kept event gets `EventsSkipped` first (and `hooknorm
//! tail` says so on stderr), a cursor retention has not passed gets none, and neither does
//! `EARLIEST`, which asks for the oldest kept event.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::stream::*;
use common::*;
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{EventFilter, EventsSkipped, ListEventsRequest};

/// A server that keeps the newest 3 events, retention running every second.
async fn server_keeping_three(dir: &tempfile::TempDir) -> TestServer {
    let toml = format!(
        "{}\n[store]\npath = {:?}\nretention_max_count = 3\nretention_interval_seconds = 1\n",
        test_config_toml(1024 * 1024),
        dir.path().display().to_string()
    );
    TestServer::start_in(&toml, dir.path()).await
}

/// Appends events 1..=10 and waits for retention to leave the newest three (8, 9, 10).
async fn ten_appended_three_kept(server: &mut TestServer) {
    for n in 1..=10 {
        assert_eq!(append(&mut server.client, n, "sim.updated").await, n);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = server
            .client
            .list_events(ListEventsRequest::default())
            .await
            .expect("list")
            .into_inner();
        let kept: Vec<u64> = listed.events.iter().map(|e| e.sequence).collect();
        if kept == [10, 9, 8] {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not run: {kept:?} kept"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next message that is not a heartbeat.
async fn next_message(stream: &mut EventStream) -> Message {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("a message in time")
            .expect("stream ok")
            .expect("stream open");
        match message.message {
            Some(Message::Heartbeat(_)) | None => {}
            Some(message) => return message,
        }
    }
}

fn event_sequence(message: Message) -> u64 {
    match message {
        Message::Event(event) => event.sequence,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cursor_older_than_retention_is_told_what_was_skipped_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = server_keeping_three(&dir).await;
    ten_appended_three_kept(&mut server).await;

    let mut stream = open_stream(&mut server.client, EventFilter::default(), after(2)).await;
    assert_eq!(
        next_message(&mut stream).await,
        Message::EventsSkipped(EventsSkipped {
            after_sequence: 2,
            last_skipped_sequence: 7,
        })
    );
    for sequence in [8, 9, 10] {
        assert_eq!(event_sequence(next_message(&mut stream).await), sequence);
    }
    // Then live, with no second notice.
    let live = append(&mut server.client, 11, "sim.updated").await;
    assert_eq!(event_sequence(next_message(&mut stream).await), live);
    server.shutdown().await;
}

#[tokio::test]
async fn a_cursor_retention_has_not_passed_and_earliest_get_no_notice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = server_keeping_three(&dir).await;
    ten_appended_three_kept(&mut server).await;

    // After 7, the newest removed: nothing between it and 8 is missing. After 9: only 10
    // follows. EARLIEST asks for the oldest kept event, so nothing it gets was skipped.
    let starts = [(after(7), 8), (after(9), 10), (earliest(), 8)];
    let mut streams = Vec::new();
    for (start, first) in starts {
        let mut stream = open_stream(&mut server.client, EventFilter::default(), start).await;
        for sequence in first..=10 {
            assert_eq!(event_sequence(next_message(&mut stream).await), sequence);
        }
        streams.push(stream);
    }
    // A filtered subscriber resuming where retention stopped hears of nothing either, though
    // the events it is sent are not the next sequences.
    let filter = EventFilter {
        types: vec!["subscription.*".into()],
        ..Default::default()
    };
    streams.push(open_stream(&mut server.client, filter, after(7)).await);
    // Whatever came before, the next message on every stream is the next event.
    let matching = append(&mut server.client, 11, "subscription.renewed").await;
    for stream in &mut streams {
        assert_eq!(event_sequence(next_message(stream).await), matching);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_says_on_stderr_what_was_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = server_keeping_three(&dir).await;
    ten_appended_three_kept(&mut server).await;
    let url = format!("http://{}", server.addr);
    let mut tail = Command::new(env!("CARGO_BIN_EXE_hooknorm"))
        .args(["tail", "--server", &url, "--after", "2"])
        .env("HOOKNORM_API_KEY", common::TEST_API_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tail starts");
    let stderr = tail.stderr.take().expect("stderr piped");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = lines.recv_timeout(Duration::from_secs(20));
    let _ = tail.kill();
    let _ = tail.wait();
    let line = line.expect("tail prints a notice in time");
    assert!(
        line.contains("events after sequence 2 through 7 were removed by retention"),
        "{line}"
    );
    server.shutdown().await;
}
