//! What only SQLite does: retention's refs, dedup keys and append times, a failing disk, queued
//! appends on close, the schema version and the store lock. (Retention and closing as every
//! backend does them: `tests/log_contract/`.)

use super::*;
use crate::log::View;

#[tokio::test]
async fn retention_removes_refs_with_their_events_but_keeps_dedup_keys() {
    let fixture = Fixture::with(|config| config.retention_max_count = Some(2));
    let log = fixture.open();
    for index in 1..=5 {
        log.append(by_id(about(
            event(&format!("e{index}"), "t.x"),
            resource("sim", format!("s{index}")),
            vec![resource("pool", "p")],
        )))
        .await
        .unwrap();
    }
    let report = log.enforce_retention().await.unwrap();
    assert_eq!(
        report,
        RetentionReport {
            events_removed: 3,
            dedup_keys_removed: 0
        }
    );
    assert_eq!(sequences(&all(&log).await), [4, 5]);
    assert_eq!(
        fixture.count("SELECT COUNT(*) FROM refs WHERE sequence <= 3"),
        0
    );
    assert_eq!(fixture.count("SELECT COUNT(*) FROM refs"), 4);
    assert_eq!(fixture.count("SELECT COUNT(*) FROM dedup"), 5);

    // The dedup key outlives its event: a redelivery is still recognized, answered with what
    // is remembered.
    let again = log.append(by_id(event("e1", "t.x"))).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(
        again.event,
        Event {
            id: "e1".to_owned(),
            sequence: 1,
            ..Event::default()
        }
    );
    log.close().await;
}

#[tokio::test]
async fn retention_by_age_expires_dedup_keys_by_the_window_not_with_their_events() {
    let fixture = Fixture::with(|config| {
        config.retention_max_age_seconds = Some(3600);
        config.dedup_window_seconds = 600;
    });
    let log = fixture.open();
    // Appended two hours ago (by the writer's clock), though received "now".
    fixture.advance(-7_200_000);
    let old = about(
        received(event("old", "t.x"), T0_MS + 300_000),
        resource("sim", "s1"),
        vec![],
    );
    log.append(by_id(old)).await.unwrap();
    // Appended just now, with a `received_at` ten days back: age is the log's to judge, not
    // the caller's.
    fixture.advance(7_190_000);
    let backdated = received(event("recent", "t.x"), T0_MS - 864_000_000);
    log.append(by_id(backdated)).await.unwrap();
    fixture.advance(310_000);
    log.append(by_id(received(event("new", "t.x"), T0_MS + 300_000)))
        .await
        .unwrap();

    let report = log.enforce_retention().await.unwrap();
    assert_eq!(
        report,
        RetentionReport {
            events_removed: 1,
            dedup_keys_removed: 1
        }
    );
    assert_eq!(ids(&all(&log).await), ["recent", "new"]);
    assert_eq!(fixture.count("SELECT COUNT(*) FROM refs"), 0);

    // Past the window for the second key, not for the third.
    fixture.advance(400_000);
    let report = log.enforce_retention().await.unwrap();
    assert_eq!(
        report,
        RetentionReport {
            events_removed: 0,
            dedup_keys_removed: 1
        }
    );
    // The other key, `new`'s: the redelivery below is still recognized by it.
    assert_eq!(fixture.count("SELECT COUNT(*) FROM dedup"), 1);
    assert!(
        log.append(by_id(event("new", "t.x")))
            .await
            .unwrap()
            .duplicate
    );
    log.close().await;
}

/// A wall clock that stepped back makes a newer event look older than those before it: retention
/// by age still removes only the oldest events, up to the first young one, leaving no hole.
#[tokio::test]
async fn retention_by_age_leaves_no_hole_when_the_clock_stepped_back() {
    let fixture = Fixture::with(|config| config.retention_max_age_seconds = Some(3600));
    let log = fixture.open();
    log.append(by_id(event("first", "t.x"))).await.unwrap();
    fixture.advance(-7_200_000);
    log.append(by_id(event("stepped_back", "t.x")))
        .await
        .unwrap();
    fixture.advance(7_200_000);
    log.append(by_id(event("third", "t.x"))).await.unwrap();
    // Half an hour on, only the event appended while the clock was behind looks old.
    fixture.advance(1_800_000);
    assert_eq!(log.enforce_retention().await.unwrap().events_removed, 0);
    assert_eq!(sequences(&all(&log).await), [1, 2, 3]);
    fixture.advance(3_600_000);
    assert_eq!(log.enforce_retention().await.unwrap().events_removed, 3);
    log.close().await;
}

/// A version 1 file (no `appended_at`) is migrated in place: its rows age from their
/// `received_at`, new rows from their append time, and opening again changes nothing.
#[tokio::test]
async fn a_version_1_store_is_migrated_once_and_ages_old_rows_by_received_at() {
    let fixture = Fixture::with(|config| config.retention_max_age_seconds = Some(3600));
    std::fs::create_dir_all(&fixture.config.path).unwrap();
    {
        let raw = fixture.raw();
        for ddl in schema::SCHEMA_V1_FOR_TESTS {
            raw.execute_batch(ddl).unwrap();
        }
        raw.pragma_update(None, "user_version", 1).unwrap();
        let body = EncodedEvent::encode(&event("v1-old", "t.x").with_sequence(1)).bytes;
        raw.execute(
            "INSERT INTO events (sequence, id, provider, source, type, received_at, body) \
             VALUES (1, 'v1-old', 1, 'gigs', 't.x', ?1, ?2)",
            (T0_MS - 7_200_000, body.as_ref()),
        )
        .unwrap();
        let body = EncodedEvent::encode(&event("v1-recent", "t.x").with_sequence(2)).bytes;
        raw.execute(
            "INSERT INTO events (sequence, id, provider, source, type, received_at, body) \
             VALUES (2, 'v1-recent', 1, 'gigs', 't.x', ?1, ?2)",
            (T0_MS - 60_000, body.as_ref()),
        )
        .unwrap();
    }
    for _ in 0..2 {
        let log = fixture.open();
        log.close().await;
        let raw = fixture.raw();
        let version: i64 = raw
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, schema::SCHEMA_VERSION);
        assert_eq!(
            fixture.count("SELECT COUNT(*) FROM events WHERE appended_at = received_at"),
            2
        );
    }
    let log = fixture.open();
    assert_eq!(log.head().await.unwrap(), 2, "sequences continue");
    let appended = log
        .append(by_id(received(event("v2", "t.x"), T0_MS - 864_000_000)))
        .await
        .unwrap();
    assert_eq!(appended.event.sequence, 3);
    assert_eq!(
        fixture.count("SELECT appended_at FROM events WHERE sequence = 3"),
        T0_MS
    );
    let report = log.enforce_retention().await.unwrap();
    assert_eq!(report.events_removed, 1);
    assert_eq!(ids(&all(&log).await), ["v1-recent", "v2"]);
    log.close().await;
}

/// A version 3 file (with the `appended_at` and `refs_sequence` indexes) is migrated in place:
/// those indexes are dropped, the others and every row stay, retention by age still goes by `appended_at`, and
/// redeliveries are counted (version 5).
#[tokio::test]
async fn a_version_3_store_loses_the_appended_at_index_and_keeps_its_events() {
    let fixture = Fixture::with(|config| config.retention_max_age_seconds = Some(3600));
    std::fs::create_dir_all(&fixture.config.path).unwrap();
    let indexes = |raw: &rusqlite::Connection| -> Vec<String> {
        raw.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    };
    {
        let raw = fixture.raw();
        for ddl in schema::SCHEMA_V3_FOR_TESTS {
            raw.execute_batch(ddl).unwrap();
        }
        raw.pragma_update(None, "user_version", 3).unwrap();
        assert!(indexes(&raw).contains(&"events_appended_at".to_owned()));
        for (sequence, id, appended_at) in [(1, "v3-old", T0_MS - 7_200_000), (2, "v3-new", T0_MS)]
        {
            let body = EncodedEvent::encode(&event(id, "t.x").with_sequence(sequence)).bytes;
            raw.execute(
                "INSERT INTO events (sequence, id, provider, source, type, received_at, body, appended_at) \
                 VALUES (?1, ?2, 1, 'gigs', 't.x', ?3, ?4, ?3)",
                (sequence as i64, id, appended_at, body.as_ref()),
            )
            .unwrap();
        }
    }
    for _ in 0..2 {
        fixture.open().close().await;
        let raw = fixture.raw();
        let version: i64 = raw
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, schema::SCHEMA_VERSION);
        assert_eq!(
            indexes(&raw),
            ["dedup_created_at", "events_received_at", "events_type_id",]
        );
    }
    let log = fixture.open();
    assert_eq!(ids(&all(&log).await), ["v3-old", "v3-new"]);
    let appended = log.append(by_id(event("v4", "t.x"))).await.unwrap();
    assert_eq!(appended.event.sequence, 3);
    // Version 5 counts redeliveries, for events stored before it too.
    assert!(
        log.append(by_id(event("v4", "t.x")))
            .await
            .unwrap()
            .duplicate
    );
    let counts = log.duplicate_counts(&[1, 2, 3]).await.unwrap();
    assert_eq!(counts, Some(std::collections::HashMap::from([(3, 1)])));
    assert_eq!(log.enforce_retention().await.unwrap().events_removed, 1);
    assert_eq!(ids(&all(&log).await), ["v3-new", "v4"]);
    log.close().await;
}

fn big_event(id: &str) -> Event {
    let mut event = event(id, "t.big");
    event.provider_event_type = "x".repeat(64 * 1024);
    event
}

#[tokio::test]
async fn a_failed_commit_fails_the_whole_batch_and_the_log_recovers() {
    let fixture = Fixture::new();
    let log = fixture.open();
    log.append(by_id(event("before", "t.x"))).await.unwrap();

    // A "full disk": the file may not grow beyond its current size.
    log.execute_on_writer("PRAGMA max_page_count = 1")
        .await
        .unwrap();
    // One batch (see `dedup_within_one_batch_follows_queue_order`).
    let resume = log.pause_writer().await;
    let (a, b, c, ()) = tokio::join!(
        log.append(by_id(event("small", "t.x"))),
        log.append(by_id(big_event("big_1"))),
        log.append(by_id(big_event("big_2"))),
        async { resume.send(()).unwrap() },
    );
    for result in [a, b, c] {
        assert!(
            matches!(result, Err(LogError::Unavailable { .. })),
            "{result:?}"
        );
    }
    // Nothing of the failed batch is stored, not even the append that would have fit.
    assert_eq!(ids(&all(&log).await), ["before"]);
    assert_eq!(log.head().await.unwrap(), 1);
    assert!(log.get("small", View::Basic).await.unwrap().is_none());

    log.execute_on_writer("PRAGMA max_page_count = 1073741823")
        .await
        .unwrap();
    let recovered = log.append(by_id(big_event("big_1"))).await.unwrap();
    assert!(!recovered.duplicate);
    assert_eq!(recovered.event.sequence, 2);
    let small = log.append(by_id(event("small", "t.x"))).await.unwrap();
    assert!(
        !small.duplicate,
        "the failed batch left no dedup key behind"
    );
    assert_eq!(ids(&all(&log).await), ["before", "big_1", "small"]);
    log.check_writable().await.unwrap();
    log.close().await;
}

/// Found by tests/robustness (a disk filled by the store): a full disk still takes the probe's
/// tiny heartbeat (in pages and WAL frames the store already has) while refusing every event,
/// and readiness said ready for seconds of 503s. After a failed commit, the probe needs room
/// for the largest event that failed, and finds it again by itself once there is room.
#[tokio::test]
async fn after_a_failed_commit_the_probe_needs_room_for_the_event_that_failed() {
    let fixture = Fixture::new();
    let log = fixture.open();
    log.append(by_id(event("before", "t.x"))).await.unwrap();
    log.execute_on_writer("PRAGMA max_page_count = 1")
        .await
        .unwrap();
    // The heartbeat alone fits: what made readiness wrong.
    log.check_writable().await.unwrap();
    assert!(log.append(by_id(big_event("big"))).await.is_err());
    for _ in 0..2 {
        let probe = log.check_writable().await;
        assert!(
            matches!(probe, Err(LogError::Unavailable { .. })),
            "{probe:?}"
        );
    }

    log.execute_on_writer("PRAGMA max_page_count = 1073741823")
        .await
        .unwrap();
    log.check_writable().await.unwrap();
    assert!(!log.append(by_id(big_event("big"))).await.unwrap().duplicate);
    // The room the probe took is given back.
    log.check_writable().await.unwrap();
    assert_eq!(ids(&all(&log).await), ["before", "big"]);
    log.close().await;
}

#[tokio::test]
async fn close_finishes_queued_appends_then_refuses() {
    let fixture = Fixture::new();
    let log = Arc::new(fixture.open());
    let resume = log.pause_writer().await;
    let queued: Vec<_> = (0..20)
        .map(|index| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(by_id(event(&format!("e{index}"), "t.x"))).await })
        })
        .collect();
    while log.queued() < 20 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Twenty appends are waiting when the close begins.
    resume.send(()).unwrap();
    log.close().await;
    for task in queued {
        task.await.unwrap().unwrap();
    }
    log.close().await;
    assert!(matches!(
        log.append(by_id(event("late", "t.x"))).await,
        Err(LogError::Closed)
    ));
    assert!(matches!(log.check_writable().await, Err(LogError::Closed)));
    assert!(matches!(
        log.enforce_retention().await,
        Err(LogError::Closed)
    ));
    // Reads still work on a closed log.
    assert_eq!(all(&log).await.len(), 20);
    assert_eq!(log.head().await.unwrap(), 20);
    // The WAL was folded into the database on close.
    let wal = fixture.config.path.join(format!("{DB_FILE_NAME}-wal"));
    assert!(std::fs::metadata(&wal).map_or(true, |meta| meta.len() == 0));
}

#[tokio::test]
async fn schema_is_versioned_and_a_newer_one_is_refused() {
    let fixture = Fixture::new();
    let log = fixture.open();
    log.close().await;
    let raw = fixture.raw();
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, schema::SCHEMA_VERSION);
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Opening again is a no-op on the schema.
    fixture.open().close().await;

    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    let options = SqliteOptions {
        lock_wait: Duration::from_millis(100),
        ..SqliteOptions::default()
    };
    let error = SqliteEventLog::open_with(&fixture.config, options).unwrap_err();
    assert!(
        matches!(&error, LogError::Unavailable { reason } if reason.contains("newer")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_second_log_on_the_same_store_is_refused_until_the_first_closes() {
    let fixture = Fixture::new();
    let first = fixture.open();
    first
        .append(by_id(event("gigs:evt_1", "t.x")))
        .await
        .unwrap();
    let options = SqliteOptions {
        lock_wait: Duration::from_millis(100),
        ..SqliteOptions::default()
    };
    let error = SqliteEventLog::open_with(&fixture.config, options).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("in use by another hooknorm process"),
        "{error}"
    );
    // The refused open changed nothing: the first log goes on appending.
    let next = first
        .append(by_id(event("gigs:evt_2", "t.x")))
        .await
        .unwrap();
    assert_eq!(next.event.sequence, 2);
    first.close().await;
    let reopened = fixture.open();
    assert_eq!(reopened.head().await.unwrap(), 2);
    reopened.close().await;
}
