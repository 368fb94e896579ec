//! SIGTERM and SIGINT: the server stops cleanly, and every event acknowledged before the
//! signal is kept.

use super::*;

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    // Right after it reports listening, several times: the signal handler must already be in
    // place (it once was installed only after those log lines, and SIGTERM then killed it).
    for attempt in 0..8 {
        let mut running = serve(&config);
        running.sigterm();
        let status = running.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "attempt {attempt}: exit status {status}");
    }
}

/// Reads a stream to its end; returns the sequences it got and the ending status.
async fn drain(mut stream: common::stream::EventStream) -> (Vec<u64>, tonic::Status) {
    use hooknorm::proto::v1::stream_events_response::Message;
    let mut sequences = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("stream ends in time")
        {
            Ok(Some(response)) => {
                if let Some(Message::Event(event)) = response.message {
                    sequences.push(event.sequence);
                }
            }
            Ok(None) => panic!("stream closed without a status"),
            Err(status) => return (sequences, status),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_appends_in_flight_keeps_every_acknowledged_event() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use common::stream::*;
    use hooknorm::proto::v1::EventFilter;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::binary_config(dir.path(), "");
    let mut running = serve(&config);
    let mut readers = Vec::new();
    for filter in [
        EventFilter::default(),
        EventFilter {
            types: vec!["subscription.*".into()],
            ..Default::default()
        },
    ] {
        let mut client = connect(&running.addr).await;
        let stream = open_stream(&mut client, filter, earliest()).await;
        readers.push(tokio::spawn(async move {
            let _client = client;
            drain(stream).await
        }));
    }
    // id -> sequence of every append answered OK.
    let acknowledged: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let mut client = connect(&running.addr).await;
        let acknowledged = acknowledged.clone();
        let count = count.clone();
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let id = w * 100_000 + n;
                let kind = if n % 2 == 0 {
                    "sim.updated"
                } else {
                    "subscription.renewed"
                };
                match client
                    .verify_and_normalize(common::gigs_event_request(id, kind))
                    .await
                {
                    Ok(response) => {
                        let event = response.into_inner().event.expect("event");
                        acknowledged
                            .lock()
                            .expect("lock")
                            .insert(event.id, event.sequence);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // Refused once the server stops taking new calls.
                    Err(_) => break,
                }
            }
        }));
    }
    // Stop mid-load.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "no load before SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.sigterm();
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .expect("writers stop")
            .expect("writer");
    }
    let mut ends = Vec::new();
    for reader in readers {
        ends.push(reader.await.expect("reader"));
    }
    let exit = tokio::task::block_in_place(|| running.wait_exit(Duration::from_secs(15)));
    assert!(exit.success(), "exit status {exit}");
    drop(running);

    // Open streams end telling their clients to reconnect, and where to resume.
    for (sequences, status) in &ends {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert_eq!(common::reason_of(status).0, "SHUTTING_DOWN", "{status:?}");
        let resume = resume_after(status);
        assert!(
            sequences.last().is_none_or(|last| *last <= resume),
            "resume after {resume}, but {sequences:?} were sent"
        );
    }
    let (unfiltered, status) = &ends[0];
    let resume = resume_after(status);
    assert_eq!(
        *unfiltered,
        (1..=resume).collect::<Vec<_>>(),
        "the unfiltered stream got every event up to its cursor"
    );

    // Every acknowledged event is stored, where it was acknowledged.
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 200);
    let running = serve(&config);
    let mut client = connect(&running.addr).await;
    let stored: HashMap<String, u64> = list_all(&mut client)
        .await
        .into_iter()
        .map(|event| (event.id, event.sequence))
        .collect();
    for (id, sequence) in &acknowledged {
        assert_eq!(stored.get(id), Some(sequence), "acknowledged {id} lost");
    }
    // Resuming from the cursor after the restart gives exactly the rest.
    let head = stored.values().copied().max().expect("events stored");
    let mut resumed = open_stream(&mut client, EventFilter::default(), after(resume)).await;
    let rest: Vec<u64> = (resume + 1..=head).collect();
    assert_eq!(next_sequences(&mut resumed, rest.len()).await, rest);
    eprintln!(
        "{} acknowledged, {} stored; the unfiltered stream ended after {resume}",
        acknowledged.len(),
        stored.len()
    );
}

#[test]
fn sigint_stops_the_server_gracefully_like_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    for attempt in 0..3 {
        let mut running = serve(&config);
        running.signal("INT");
        let status = running.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "attempt {attempt}: exit status {status}");
        let lines = parsed(&running.log_lines_until_exit(Duration::from_secs(5)));
        assert!(
            lines
                .iter()
                .any(|l| l["message"] == "shutdown requested" && l["signal"] == "SIGINT"),
            "attempt {attempt}: {lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l["message"] == "stopped"),
            "attempt {attempt}: {lines:#?}"
        );
    }
}
