//! Stores written by versions 5 and 6 opened in place: their rows read back, their dedup keys
//! still recognize, and new events are compressed as records.

use prost::Message;

use super::compression::{
    COMPRESS_AFTER, append_all, assert_newest_compressed, assert_reads_back, codecs,
    open_compressing, wait_for_dictionaries, webhook,
};
use super::*;
use crate::event::EntityKey;
use crate::log::sqlite::frame::PreEncoded;

/// With `old` stored at open, past the training threshold: the first commit starts training on
/// them, and once trained, old and new events read back.
async fn train_on_old_rows(log: &SqliteEventLog, old: Vec<(u64, Event)>) {
    let mut appended = old;
    appended.extend(append_all(log, COMPRESS_AFTER..COMPRESS_AFTER + 1).await);
    wait_for_dictionaries(log).await;
    appended.extend(append_all(log, 500..520).await);
    assert_reads_back(log, &appended).await;
}

/// A store as version 5 left it (every body plain, no `codec` columns) opens in place: its
/// rows read back as they were, it trains on them at the first commit, and new rows compress.
#[tokio::test]
async fn a_version_5_store_keeps_its_plain_rows_and_compresses_new_ones() {
    let fixture = Fixture::new();
    std::fs::create_dir_all(&fixture.config.path).unwrap();
    let mut old = Vec::new();
    {
        let raw = fixture.raw();
        raw.pragma_update(None, "journal_mode", "wal").unwrap();
        for ddl in schema::SCHEMA_V5_FOR_TESTS {
            raw.execute_batch(ddl).unwrap();
        }
        raw.pragma_update(None, "user_version", 5).unwrap();
        for n in 0..COMPRESS_AFTER {
            let request = webhook(n);
            let sequence = n + 1;
            let event = request.event.with_sequence(sequence);
            raw.execute(
                "INSERT INTO events (sequence, id, provider, source, type, received_at, body, appended_at) \
                 VALUES (?1, ?2, 1, 'gigs', ?3, ?4, ?5, ?4)",
                (
                    sequence as i64,
                    &event.id,
                    &event.r#type,
                    T0_MS,
                    event.encode_to_vec(),
                ),
            )
            .unwrap();
            raw.execute(
                "INSERT INTO deliveries (sequence, body) VALUES (?1, ?2)",
                (sequence as i64, request.delivery.unwrap().encode_to_vec()),
            )
            .unwrap();
            old.push((n, event));
        }
        // Text keys as version 5 kept them: one of an event retention has removed since, and
        // an entity's latest state.
        let entity = EntityKey::new("test").part("sim_1");
        for (key, sequence, id) in [
            ("id:gigs:evt_removed".to_owned(), 0, "gigs:evt_removed"),
            (format!("latest:{}", entity.as_str()), 1, "gigs:state_a"),
        ] {
            raw.execute(
                "INSERT INTO dedup (key, sequence, id, created_at) VALUES (?1, ?2, ?3, ?4)",
                (key, sequence, id, T0_MS),
            )
            .unwrap();
        }
    }
    let log = open_compressing(&fixture, Some(COMPRESS_AFTER));
    assert_eq!(
        fixture
            .raw()
            .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
            .unwrap(),
        schema::SCHEMA_VERSION
    );
    assert_reads_back(&log, &old).await;
    // Every text key became a digest and is still recognized.
    let removed = log
        .append(by_id(event("gigs:evt_removed", "t.x")))
        .await
        .unwrap();
    assert!(removed.duplicate);
    assert_eq!(
        (removed.event.id.as_str(), removed.event.sequence),
        ("gigs:evt_removed", 0)
    );
    let same_state = log
        .append(latest("sim_1", event("gigs:state_a", "t.x")))
        .await
        .unwrap();
    assert!(same_state.duplicate);
    assert_eq!(same_state.event, old[0].1);
    assert_eq!(
        fixture.count("SELECT COUNT(*) FROM dedup WHERE typeof(key) = 'blob'"),
        2
    );
    // The store already holds enough plain events: the first commit starts training.
    train_on_old_rows(&log, old).await;
    // The old deliveries stay where they were; the new events are records holding theirs.
    assert_eq!(
        codecs(&fixture, "deliveries"),
        vec![0; COMPRESS_AFTER as usize + 1]
    );
    assert_newest_compressed(&fixture, 20);
    log.close().await;
}

/// A store as version 6 left it (events and deliveries compressed apart, each with a
/// dictionary of its own) opens in place: its rows read back, it trains a record dictionary on
/// them, and new events are records.
#[tokio::test]
async fn a_version_6_store_keeps_its_rows_and_trains_a_record_dictionary_on_them() {
    let fixture = Fixture::new();
    std::fs::create_dir_all(&fixture.config.path).unwrap();
    let requests: Vec<AppendRequest> = (0..COMPRESS_AFTER).map(webhook).collect();
    let frames: Vec<Vec<u8>> = requests
        .iter()
        .map(|request| PreEncoded::new(&request.event).event_frame())
        .collect();
    let deliveries: Vec<Vec<u8>> = requests
        .iter()
        .map(|request| request.delivery.as_ref().unwrap().encode_to_vec())
        .collect();
    let mut old = Vec::new();
    {
        let raw = fixture.raw();
        raw.pragma_update(None, "journal_mode", "wal").unwrap();
        schema::create_version_6_for_tests(&raw).unwrap();
        let mut compressors = Vec::new();
        for (id, kind, samples) in [(1, "event", &frames), (2, "delivery", &deliveries)] {
            let content = zstd::dict::from_samples(samples, 16 * 1024).unwrap();
            raw.execute(
                "INSERT INTO dictionaries (id, kind, content, created_at) VALUES (?1, ?2, ?3, ?4)",
                (id, kind, &content, T0_MS),
            )
            .unwrap();
            compressors.push(zstd::bulk::Compressor::with_dictionary(3, &content).unwrap());
        }
        for (n, request) in requests.iter().enumerate() {
            let sequence = n as u64 + 1;
            let event = request.event.clone().with_sequence(sequence);
            raw.execute(
                "INSERT INTO events (sequence, id, provider, source, type, received_at, body, appended_at, codec) \
                 VALUES (?1, ?2, 1, 'gigs', ?3, ?4, ?5, ?4, 1)",
                (
                    sequence as i64,
                    &event.id,
                    &event.r#type,
                    T0_MS,
                    compressors[0].compress(&frames[n]).unwrap(),
                ),
            )
            .unwrap();
            raw.execute(
                "INSERT INTO deliveries (sequence, body, codec) VALUES (?1, ?2, 2)",
                (
                    sequence as i64,
                    compressors[1].compress(&deliveries[n]).unwrap(),
                ),
            )
            .unwrap();
            old.push((n as u64, event));
        }
    }
    let log = open_compressing(&fixture, Some(COMPRESS_AFTER));
    assert_reads_back(&log, &old).await;
    // Sources and types became names, which filters find the old rows by.
    let filtered = |source: &str, types: &[&str]| {
        let types: Vec<String> = types.iter().map(|pattern| (*pattern).to_owned()).collect();
        EventFilter::new(Vec::new(), vec![source.to_owned()], &types, None).unwrap()
    };
    let found = log
        .read_after(0, &filtered("gigs", &["subscription.*"]), 10_000)
        .await
        .unwrap();
    assert_eq!(found.len() as u64, COMPRESS_AFTER);
    let exact = filtered("gigs", &["plan.updated", "subscription.activated"]);
    assert_eq!(log.list(&exact, None, 3).await.unwrap().len(), 3);
    for (source, types) in [
        ("other", &["subscription.*"][..]),
        ("gigs", &["plan.*"][..]),
    ] {
        let none = log.read_after(0, &filtered(source, types), 10).await;
        assert_eq!(none.unwrap(), []);
    }
    // Its rows are all compressed, so the first commit trains on them, read through the codec.
    train_on_old_rows(&log, old).await;
    assert_eq!(
        fixture.count("SELECT COUNT(*) FROM dictionaries WHERE kind = 'record'"),
        1
    );
    let events = codecs(&fixture, "events");
    assert!(
        events[..COMPRESS_AFTER as usize]
            .iter()
            .all(|codec| *codec == 1)
    );
    assert!(events.iter().rev().take(20).all(|codec| *codec > 2));
    assert_eq!(
        fixture.count("SELECT COUNT(*) FROM deliveries"),
        COMPRESS_AFTER as i64 + 1
    );
    log.close().await;
}
