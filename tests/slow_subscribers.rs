//! Slow subscribers against the real binary (so the server's memory can be read from
//! `/proc/<pid>/status`): a paused subscriber delays neither ingestion nor other subscribers and
//! does not grow the server's memory with the events it has not read, nor push the others off the
//! live feed; a subscriber that falls behind goes back to the log and then continues live, with
//! no gap and no duplicate, with or without a type filter.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::stream::*;
use common::*;
use hooknorm::proto::v1::EventFilter;
use hooknorm::proto::v1::stream_events_response::Message;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

/// Appends events `first..first + count` (padded with `padding` bytes) from `writers` concurrent
/// clients, all within `within`; returns each event's sequence by number. `type_of` picks each
/// event's Gigs type. `appended` counts acknowledged appends as they happen.
async fn ingest(
    addr: &str,
    first: u64,
    count: u64,
    writers: u64,
    padding: usize,
    type_of: fn(u64) -> &'static str,
    appended: Arc<AtomicU64>,
) -> HashMap<u64, u64> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut client = connect(addr).await;
        let appended = appended.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = Vec::new();
            let mut n = first + w;
            while n < first + count {
                let response = client
                    .verify_and_normalize(padded_gigs_event_request(n, type_of(n), padding))
                    .await
                    .unwrap_or_else(|status| panic!("append {n}: {status:?}"))
                    .into_inner();
                assert!(!response.duplicate, "{n} is new");
                stored.push((n, response.event.expect("event").sequence));
                appended.fetch_add(1, Ordering::SeqCst);
                n += writers;
            }
            stored
        }));
    }
    let mut sequences = HashMap::new();
    for task in tasks {
        sequences.extend(task.await.expect("writer"));
    }
    sequences
}

fn sim_updated(_: u64) -> &'static str {
    "sim.updated"
}

/// Sorted sequences of `stored` (by event number).
fn sorted(stored: &HashMap<u64, u64>) -> Vec<u64> {
    let mut sequences: Vec<u64> = stored.values().copied().collect();
    sequences.sort_unstable();
    sequences
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_subscriber_delays_neither_ingestion_nor_others_and_costs_bounded_memory() {
    const PER_PHASE: u64 = 1200;
    const PADDING: usize = 16 * 1024;
    const PAUSED: u64 = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(
        dir.path(),
        // Long enough that the paused subscriber stays connected (and paused) throughout. The
        // live feed holds at most 4 MiB of unread events (its default is 16 MiB), about 127 of
        // these: were the paused subscribers' unread tail kept in it, it would be over that
        // budget within the first phase and send every later event by sequence only, to
        // everyone. The stream's debug log says when that happens.
        "[streams]\nbuffer = 16\nslow_subscriber_timeout_seconds = 600\n\
         [store]\nlive_bytes = 4194304\n\
         [log]\nlevel = \"info,hooknorm::stream=debug\"\n",
    );
    let running = serve_binary(BIN, &config);
    // Several paused subscribers, each on its own connection: what one costs, each costs.
    let mut paused = Vec::new();
    for _ in 0..PAUSED {
        let mut client = connect_paused(&running.addr).await;
        let stream = open_stream(&mut client, EventFilter::default(), after(0)).await;
        paused.push((client, stream));
    }
    let mut active_client = connect(&running.addr).await;
    let mut active = open_stream(&mut active_client, EventFilter::default(), after(0)).await;
    let reader =
        tokio::spawn(async move { next_sequences(&mut active, 2 * PER_PHASE as usize).await });

    // Two phases of the same volume while the subscribers stay paused. The first fills what
    // paused subscribers may legitimately cost (their buffers, the HTTP/2 windows, the live
    // feed's byte budget); in the second the peak may grow only by what the server costs
    // without them: events a paused subscriber has not read are not kept for it.
    let counted = Arc::new(AtomicU64::new(0));
    let generous = Duration::from_secs(120);
    let first = tokio::time::timeout(
        generous,
        ingest(
            &running.addr,
            0,
            PER_PHASE,
            8,
            PADDING,
            sim_updated,
            counted.clone(),
        ),
    )
    .await
    .expect("phase 1 ingests while a subscriber is paused");
    let peak_after_first = running.memory_kib("VmHWM");
    let second = tokio::time::timeout(
        generous,
        ingest(
            &running.addr,
            PER_PHASE,
            PER_PHASE,
            8,
            PADDING,
            sim_updated,
            counted,
        ),
    )
    .await
    .expect("phase 2 ingests while a subscriber is paused");
    let peak_after_second = running.memory_kib("VmHWM");
    let rss = running.memory_kib("VmRSS");

    let mut stored = sorted(&first);
    stored.extend(sorted(&second));
    assert_eq!(stored, (1..=2 * PER_PHASE).collect::<Vec<_>>());
    // The other subscriber got everything, in order.
    let got = tokio::time::timeout(generous, reader)
        .await
        .expect("the active subscriber keeps up")
        .expect("reader");
    assert_eq!(got, stored, "active subscriber: gap or duplicate");
    // And got them live: the paused subscribers left the live feed when their buffers filled,
    // so their unread tail never counted against its budget and no event went by sequence
    // only (which would have sent the active subscriber to the log for each one).
    let elided = running
        .log_messages()
        .iter()
        .filter(|message| message.starts_with("live feed over its byte budget"))
        .count();
    assert_eq!(
        elided, 0,
        "the active subscriber read {elided} events from the log because of paused ones"
    );

    // Phase 2 carried PER_PHASE * PADDING = 19 MiB of payload. Without paused subscribers the
    // peak grows by about that much (SQLite's writer page cache filling, up to 64 MiB); holding
    // the events for the paused subscribers would add at least as much again, or PAUSED times
    // that as encoded copies.
    let phase_payload_kib = PER_PHASE * PADDING as u64 / 1024;
    let growth = peak_after_second.saturating_sub(peak_after_first);
    eprintln!(
        "VmHWM {peak_after_first} kB after phase 1, {peak_after_second} kB after phase 2 \
         (+{growth} kB for {phase_payload_kib} kB of payload); VmRSS {rss} kB"
    );
    assert!(
        growth < 2 * phase_payload_kib,
        "peak memory grew by {growth} kB while {phase_payload_kib} kB went past {PAUSED} \
         paused subscribers"
    );
    assert!(
        peak_after_second < 512 * 1024,
        "VmHWM {peak_after_second} kB"
    );

    // The paused subscribers, reading at last, get everything from the log: nothing was lost
    // for them either.
    for (_client, mut stream) in paused {
        let got = next_sequences(&mut stream, stored.len()).await;
        assert_eq!(got, stored, "paused subscriber: gap or duplicate");
    }
}

fn alternate(n: u64) -> &'static str {
    if n.is_multiple_of(3) {
        "subscription.renewed"
    } else {
        "sim.updated"
    }
}

/// Reads `count` events' sequences, pausing a millisecond every 16 events (a slow consumer).
async fn read_slowly(stream: &mut EventStream, count: usize) -> Vec<u64> {
    let mut sequences = Vec::with_capacity(count);
    while sequences.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {count}", sequences.len()))
            .expect("stream ok")
            .expect("stream open");
        if let Some(Message::Event(event)) = message.message {
            sequences.push(event.sequence);
            if sequences.len().is_multiple_of(16) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    sequences
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_behind_the_live_ring_reads_the_log_then_continues_live() {
    const TOTAL: u64 = 2400;
    // Readers start only once this many are in: with 4 KiB events the subscriber's buffer and
    // HTTP/2 windows hold ~150, so it is far behind the live feed (and past the ring's 1,024).
    // Every way back to the log counts: leaving the feed when its buffer fills (what a
    // subscriber that stops reading does), `Lagged` past the ring's count, or an event announced
    // by sequence only past its bytes.
    const HELD_BACK_UNTIL: u64 = 1600;
    const PADDING: usize = 4 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = binary_config(
        dir.path(),
        "[streams]\nbuffer = 16\nslow_subscriber_timeout_seconds = 600\n\
         [store]\nlive_events = 1024\n\
         [log]\nlevel = \"info,hooknorm::stream=debug\"\n",
    );
    let running = serve_binary(BIN, &config);
    let appended = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for filter in [
        EventFilter::default(),
        EventFilter {
            types: vec!["subscription.*".into()],
            ..Default::default()
        },
    ] {
        let mut client = connect_paused(&running.addr).await;
        let mut stream = open_stream(&mut client, filter.clone(), after(0)).await;
        let appended = appended.clone();
        readers.push(tokio::spawn(async move {
            while appended.load(Ordering::SeqCst) < HELD_BACK_UNTIL {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let want = if filter.types.is_empty() {
                TOTAL
            } else {
                TOTAL.div_ceil(3)
            };
            let got = read_slowly(&mut stream, want as usize).await;
            (client, stream, got)
        }));
    }
    let stored = ingest(&running.addr, 0, TOTAL, 8, PADDING, alternate, appended).await;
    let all = sorted(&stored);
    assert_eq!(all, (1..=TOTAL).collect::<Vec<_>>());
    let mut renewals: Vec<u64> = stored
        .iter()
        .filter(|(n, _)| alternate(**n) == "subscription.renewed")
        .map(|(_, sequence)| *sequence)
        .collect();
    renewals.sort_unstable();

    let mut streams = Vec::new();
    for (reader, want) in readers.into_iter().zip([&all, &renewals]) {
        let (client, stream, got) = reader.await.expect("reader");
        assert_eq!(&got, want, "gap or duplicate after falling behind");
        streams.push((client, stream));
    }
    let back_to_the_log = running
        .log_messages()
        .iter()
        .filter(|message| {
            message.starts_with("subscriber lagged")
                || message.starts_with("live feed under pressure, a blocked subscriber leaves it")
                || message.starts_with("live feed over its byte budget")
        })
        .count();
    assert!(
        back_to_the_log >= 2,
        "both subscribers went back to the log: {back_to_the_log}"
    );

    // And both are live again: new events arrive without re-subscribing.
    let mut writer = connect(&running.addr).await;
    let next = append(&mut writer, 1_000_000, "subscription.renewed").await;
    for (_, stream) in &mut streams {
        assert_eq!(next_sequences(stream, 1).await, vec![next]);
    }
}
