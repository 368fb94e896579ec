//! Appending, as only SQLite does it: group commits, the store let go of on drop, ids for
//! events without one. (What every backend does: `tests/log_contract/`.)

use super::*;

/// Dropped without `close`, the log still lets go of the store: the writer drains, checkpoints
/// and releases the lock, so the store opens again at once with everything in it.
#[tokio::test]
async fn dropping_the_log_without_close_still_releases_the_store() {
    let fixture = Fixture::new();
    let log = fixture.open();
    log.append(by_id(event("a", "t.x"))).await.unwrap();
    drop(log);

    let log = fixture.open();
    assert_eq!(ids(&all(&log).await), ["a"]);
    assert!(fixture.config.path.join(DB_FILE_NAME).exists());
    log.close().await;
}

#[test]
fn the_log_is_shareable_across_tasks() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<SqliteEventLog>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_group_commits() {
    const APPENDS: usize = 256;
    let fixture = Fixture::new();
    let log = Arc::new(fixture.open());
    let tasks: Vec<_> = (0..APPENDS)
        .map(|index| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.append(by_id(event(&format!("evt_{index}"), "order.created")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert!(!task.await.unwrap().duplicate);
    }
    assert_eq!(log.head().await.unwrap(), APPENDS as u64);
    let commits = log.commits();
    // One commit per append would be 256; appends queued while a commit runs share the next.
    assert!(
        (1..=APPENDS as u64 / 8).contains(&commits),
        "{APPENDS} concurrent appends took {commits} commits"
    );
    log.close().await;
}

/// However many appends wait, a group commit takes at most `group_commit_max` of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commit_takes_at_most_group_commit_max_appends() {
    let fixture = Fixture::with(|config| config.group_commit_max = 4);
    let log = Arc::new(fixture.open());
    let resume = log.pause_writer().await;
    let before = log.commits();
    let tasks: Vec<_> = (0..10)
        .map(|index| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                log.append(by_id(event(&format!("evt_{index}"), "t.x")))
                    .await
            })
        })
        .collect();
    while log.queued() < 10 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    resume.send(()).unwrap();
    for task in tasks {
        assert!(!task.await.unwrap().unwrap().duplicate);
    }
    // 4 + 4 + 2.
    assert_eq!(log.commits() - before, 3);
    assert_eq!(log.head().await.unwrap(), 10);
    log.close().await;
}
