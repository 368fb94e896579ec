//! Compressed bodies: a dictionary trained on the store's own events, rows read back exactly,
//! damage reported. The helpers are shared with `upgrades`.

use prost::Message;

use super::*;
use crate::log::sqlite::{IndexEntry, IndexEntryKind};
use crate::proto::v1::{Header, WebhookDelivery};

/// Small, so tests train quickly; enough bodies for zstd to train on.
pub(super) const COMPRESS_AFTER: u64 = 200;

pub(super) fn open_compressing(fixture: &Fixture, compress_after: Option<u64>) -> SqliteEventLog {
    let now_ms = Arc::clone(&fixture.now_ms);
    let clock: Clock = Arc::new(move || time(now_ms.load(Ordering::SeqCst)));
    SqliteEventLog::open_with(
        &fixture.config,
        SqliteOptions {
            clock,
            compress_after,
            ..SqliteOptions::default()
        },
    )
    .unwrap()
}

/// A webhook-like event with its delivery: JSON sharing its shape with the others, ids and
/// values of its own.
pub(super) fn webhook(n: u64) -> AppendRequest {
    let data = format!(
        r#"{{"object":"subscription","id":"sub_{n:08x}","plan":{{"object":"plan","id":"pln_{}"}},"status":"active","phoneNumber":"+49170{n:07}","createdAt":"2026-01-0{}T10:00:00Z"}}"#,
        n % 7,
        1 + n % 9
    );
    let body = format!(
        r#"{{"object":"event","id":"evt_{n:016x}","type":"com.gigs.subscription.activated","specversion":"1.0","source":"https://api.gigs.com","data":{data}}}"#
    );
    let mut event = about(
        event(&format!("gigs:evt_{n:016x}"), "subscription.activated"),
        resource("subscription", format!("sub_{n:08x}")),
        vec![resource("plan", format!("pln_{}", n % 7))],
    );
    event.data_json = data;
    event.traceparent = format!("00-{n:032x}-{n:016x}-01");
    AppendRequest {
        event,
        identity: Identity::ProviderId,
        delivery: Some(WebhookDelivery {
            body: body.into_bytes(),
            headers: vec![
                Header {
                    name: "webhook-id".to_owned(),
                    value: format!("msg_{n:024x}"),
                },
                Header {
                    name: "content-type".to_owned(),
                    value: "application/json".to_owned(),
                },
            ],
            request_path: "/webhooks/gigs".to_owned(),
            ..WebhookDelivery::default()
        }),
    }
}

/// Waits until the training thread's dictionary compresses new rows (a real thread, so real
/// time).
pub(super) async fn wait_for_dictionaries(log: &SqliteEventLog) {
    for _ in 0..500 {
        if !log.codec.wants_dictionary() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no dictionary trained within 10 s");
}

/// Appends `range`'s webhooks; what each append answered, by number.
pub(super) async fn append_all(
    log: &SqliteEventLog,
    range: std::ops::Range<u64>,
) -> Vec<(u64, Event)> {
    let mut appended = Vec::new();
    for n in range {
        let answer = log.append(webhook(n)).await.unwrap();
        assert!(!answer.duplicate);
        appended.push((n, answer.event));
    }
    appended
}

/// Every way a stored event is read gives back exactly what was appended.
pub(super) async fn assert_reads_back(log: &SqliteEventLog, appended: &[(u64, Event)]) {
    let stored = log
        .read_after(0, &EventFilter::default(), 10_000)
        .await
        .unwrap();
    let expected: Vec<&Event> = appended.iter().map(|(_, event)| event).collect();
    assert_eq!(stored.iter().collect::<Vec<_>>(), expected);
    let encoded = log
        .read_encoded_after(0, &EventFilter::default(), 10_000)
        .await
        .unwrap();
    assert_eq!(encoded.events.len(), appended.len());
    for (encoded, (_, event)) in encoded.events.iter().zip(appended) {
        assert_eq!(encoded.sequence, event.sequence);
        // Byte for byte what the live feed sends: subscribers cannot tell the two apart.
        assert_eq!(encoded.bytes, event.encode_to_vec());
    }
    for (n, event) in appended.iter().step_by(37) {
        let full = log.get(&event.id, View::Full).await.unwrap().unwrap();
        assert_eq!(full.delivery, webhook(*n).delivery);
        assert_eq!(
            Event {
                delivery: None,
                ..full
            },
            *event
        );
    }
}

pub(super) fn codecs(fixture: &Fixture, table: &str) -> Vec<i64> {
    fixture
        .raw()
        .prepare(&format!("SELECT codec FROM {table} ORDER BY sequence"))
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The newest `count` events are compressed.
pub(super) fn assert_newest_compressed(fixture: &Fixture, count: usize) {
    let codecs = codecs(fixture, "events");
    let newest = &codecs[codecs.len() - count..];
    assert!(newest.iter().all(|codec| *codec > 0), "{newest:?}");
}

#[tokio::test]
async fn bodies_are_compressed_once_trained_and_read_back_exactly() {
    let fixture = Fixture::new();
    let log = open_compressing(&fixture, Some(COMPRESS_AFTER));
    let mut appended = append_all(&log, 0..COMPRESS_AFTER).await;
    wait_for_dictionaries(&log).await;
    appended.extend(append_all(&log, COMPRESS_AFTER..COMPRESS_AFTER + 300).await);

    let events = codecs(&fixture, "events");
    let plain = events.iter().filter(|codec| **codec == 0).count();
    assert!(plain as u64 >= COMPRESS_AFTER, "{plain} plain rows");
    assert!(
        events[plain..].iter().all(|codec| *codec > 0),
        "rows after the first compressed one are compressed too"
    );
    assert!(events.len() - plain >= 300);
    // A record holds its delivery: only plain events have a `deliveries` row.
    assert_eq!(codecs(&fixture, "deliveries"), vec![0; plain]);
    // The point of it: a record, event and delivery, is several times smaller than the event
    // alone kept plain.
    let average = |codec: &str| -> f64 {
        fixture
            .raw()
            .query_row(
                &format!("SELECT AVG(LENGTH(body)) FROM events WHERE codec {codec}"),
                [],
                |row| row.get(0),
            )
            .unwrap()
    };
    let (plain, compressed) = (average("= 0"), average("> 0"));
    assert!(
        compressed * 3.0 < plain,
        "plain {plain} B, compressed {compressed} B"
    );

    assert_reads_back(&log, &appended).await;
    // A redelivery of a compressed event is answered with it, as stored.
    let (n, first) = &appended[COMPRESS_AFTER as usize + 5];
    let again = log.append(webhook(*n)).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.event, *first);
    log.close().await;

    // Reopened, the dictionaries come from the file: old rows read, new rows compress at once.
    let log = open_compressing(&fixture, Some(COMPRESS_AFTER));
    appended.extend(append_all(&log, 1_000..1_010).await);
    assert_reads_back(&log, &appended).await;
    assert_newest_compressed(&fixture, 10);
    assert_eq!(fixture.count("SELECT COUNT(*) FROM dictionaries"), 1);
    log.close().await;
}

/// A recurring state is stored under a new name; that re-encoding is compressed as well.
#[tokio::test]
async fn a_recurrence_renamed_in_the_writer_is_compressed_and_reads_back() {
    let fixture = Fixture::new();
    let log = open_compressing(&fixture, Some(COMPRESS_AFTER));
    append_all(&log, 0..COMPRESS_AFTER).await;
    wait_for_dictionaries(&log).await;
    let state = |id: &str| latest("sim_1", event(id, "sim.updated"));
    log.append(state("gigs:state_a")).await.unwrap();
    log.append(state("gigs:state_b")).await.unwrap();
    let recurred = log.append(state("gigs:state_a")).await.unwrap();
    assert!(!recurred.duplicate);
    assert!(recurred.event.id.starts_with("gigs:state_a-"));
    let stored = log.get(&recurred.event.id, View::Basic).await;
    assert_eq!(stored.unwrap(), Some(recurred.event));
    assert_newest_compressed(&fixture, 3);
    log.close().await;
}

/// Retention finds a removed event's refs by the resources its body names, plain or
/// compressed: none is left behind, none of a kept event is touched.
#[tokio::test]
async fn retention_removes_the_refs_of_plain_and_compressed_events() {
    let fixture = Fixture::with(|config| config.retention_max_count = Some(100));
    let log = open_compressing(&fixture, Some(COMPRESS_AFTER));
    append_all(&log, 0..COMPRESS_AFTER).await;
    wait_for_dictionaries(&log).await;
    let appended = append_all(&log, COMPRESS_AFTER..COMPRESS_AFTER + 200).await;
    assert_eq!(fixture.count("SELECT COUNT(*) FROM refs"), 2 * 400);
    // Removes the 200 plain events and 100 compressed ones.
    let report = log.enforce_retention().await.unwrap();
    assert_eq!(report.events_removed, 300);
    let oldest = appended[100].1.sequence;
    assert_eq!(fixture.count("SELECT COUNT(*) FROM refs"), 2 * 100);
    assert_eq!(
        fixture.count(&format!(
            "SELECT COUNT(*) FROM refs WHERE sequence < {oldest}"
        )),
        0
    );
    let (_, kept) = &appended[150];
    let subject = kept.subject.clone();
    let filter = EventFilter::new(Vec::new(), Vec::new(), &[], subject).unwrap();
    assert_eq!(
        log.list(&filter, None, 10).await.unwrap(),
        std::slice::from_ref(kept)
    );
    log.close().await;
}

#[tokio::test]
async fn without_compression_bodies_stay_plain() {
    let fixture = Fixture::new();
    let log = open_compressing(&fixture, None);
    let appended = append_all(&log, 0..COMPRESS_AFTER + 50).await;
    log.close().await;
    assert_eq!(fixture.count("SELECT COUNT(*) FROM dictionaries"), 0);
    assert!(codecs(&fixture, "events").iter().all(|codec| *codec == 0));
    let log = open_compressing(&fixture, None);
    assert_reads_back(&log, &appended).await;
    log.close().await;
}

/// A damaged compressed body, or one naming a dictionary the store lacks, is reported as
/// corrupt with its sequence: never decoded into something else.
#[tokio::test]
async fn damaged_compressed_bodies_are_reported_corrupt() {
    let fixture = Fixture::new();
    let log = open_compressing(&fixture, Some(COMPRESS_AFTER));
    append_all(&log, 0..COMPRESS_AFTER).await;
    wait_for_dictionaries(&log).await;
    let appended = append_all(&log, COMPRESS_AFTER..COMPRESS_AFTER + 3).await;
    log.close().await;
    let [first, second, _] = [0, 1, 2].map(|index| appended[index].1.sequence as i64);
    let raw = fixture.raw();
    raw.execute(
        "UPDATE events SET body = substr(body, 1, length(body) - 8) WHERE sequence = ?1",
        [first],
    )
    .unwrap();
    raw.execute("UPDATE events SET codec = 99 WHERE sequence = ?1", [second])
        .unwrap();
    drop(raw);

    let log = open_compressing(&fixture, Some(COMPRESS_AFTER));
    for (sequence, reason) in [(first, ""), (second, "no dictionary 99")] {
        let read = log
            .read_after(sequence as u64 - 1, &EventFilter::default(), 1)
            .await;
        match read {
            Err(LogError::Corrupt {
                sequence: reported,
                reason: said,
            }) => {
                assert_eq!(reported, sequence as u64);
                assert!(said.contains(reason), "{said}");
            }
            other => panic!("sequence {sequence}: {other:?}"),
        }
    }
    // The rows around them are unharmed.
    let third = log
        .read_after(second as u64, &EventFilter::default(), 1)
        .await
        .unwrap();
    assert_eq!(third, [appended[2].1.clone()]);
    log.close().await;
}

/// A replica's index of a stream (the NATS backend) compresses the entries it applies, reads
/// them back, removes compressed events with their refs, and still recognizes a redelivery.
#[tokio::test]
async fn a_replica_index_compresses_what_it_applies() {
    let fixture = Fixture::new();
    let now_ms = Arc::clone(&fixture.now_ms);
    let clock: Clock = Arc::new(move || time(now_ms.load(Ordering::SeqCst)));
    let index = SqliteEventLog::open_index(
        &fixture.config.path,
        &fixture.config,
        SqliteOptions {
            clock,
            compress_after: Some(COMPRESS_AFTER),
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    let apply = |range: std::ops::Range<u64>| {
        range
            .map(|n| IndexEntry {
                sequence: n + 1,
                kind: IndexEntryKind::Append {
                    request: webhook(n),
                    accepted_at_ms: T0_MS,
                    reply: None,
                },
            })
            .collect::<Vec<_>>()
    };
    for start in (0..COMPRESS_AFTER).step_by(50) {
        index.apply(apply(start..start + 50)).await.unwrap();
    }
    wait_for_dictionaries(&index).await;
    index
        .apply(apply(COMPRESS_AFTER..COMPRESS_AFTER + 100))
        .await
        .unwrap();
    let stored = index
        .read_after(0, &EventFilter::default(), 10_000)
        .await
        .unwrap();
    assert_eq!(stored.len() as u64, COMPRESS_AFTER + 100);
    let expected: Vec<(u64, Event)> = stored
        .iter()
        .enumerate()
        .map(|(n, event)| (n as u64, event.clone()))
        .collect();
    for (n, event) in &expected {
        let mut sent = webhook(*n).event;
        sent.sequence = event.sequence;
        assert_eq!(*event, sent);
    }
    assert_reads_back(&index, &expected).await;
    assert_newest_compressed(&fixture, 100);

    // Removing everything below the last 50 takes every compressed and plain event's refs.
    let keep_from = COMPRESS_AFTER + 51;
    index
        .apply(vec![IndexEntry {
            sequence: COMPRESS_AFTER + 101,
            kind: IndexEntryKind::RemoveBelow {
                sequence: keep_from,
            },
        }])
        .await
        .unwrap();
    assert_eq!(fixture.count("SELECT COUNT(*) FROM refs"), 2 * 50);
    assert_eq!(
        fixture.count(&format!(
            "SELECT COUNT(*) FROM refs WHERE sequence < {keep_from}"
        )),
        0
    );
    // A redelivery of a kept, compressed event is recognized as it.
    let (n, kept) = &expected[(COMPRESS_AFTER + 60) as usize];
    let known = index.recognize(&webhook(*n), T0_MS).await.unwrap();
    let known = known.expect("recognized");
    assert!(known.duplicate);
    assert_eq!(known.event, *kept);
    index.close().await;
}
