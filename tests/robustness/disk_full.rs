//! A real full disk: the embedded store on a small tmpfs while webhooks with payloads of up to
//! 64 KiB keep arriving, filled either by another file taking the last byte at once or by the
//! store itself growing into it. An event is never acknowledged without being stored: every
//! refusal is 503 `STORE_UNAVAILABLE` with `Retry-After`, readiness goes not-ready, every
//! acknowledged event is readable afterwards, the file passes SQLite's integrity check, and
//! once space returns (the other file deleted) ingestion and readiness come back by
//! themselves. Mounting needs root: elsewhere the test says why it skips.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hooknorm::proto::v1::GetEventRequest;
use tonic::transport::Channel;

use crate::common::http::{get, post_webhook};
use crate::common::{ABOWIRE_TOKEN, test_config_toml, token_request};

/// Webhooks in flight at once while the disk fills.
const SENDERS: usize = 4;

/// A tmpfs mounted for the test, unmounted (lazily, in case the server still holds it) when
/// dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// `None` when it cannot be mounted (not root, no mount namespace), with the reason.
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the filesystem at `dir` with a file until it refuses another byte.
fn fill(dir: &Path) -> (PathBuf, u64) {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler created");
    let block = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    let mut size = block.len();
    // Smaller and smaller writes, down to one byte, so not a byte is left.
    while size > 0 {
        match file.write(&block[..size]) {
            Ok(n) => written += n as u64,
            Err(_) => size /= 2,
        }
    }
    let _ = file.sync_all();
    (path, written)
}

/// A distinct Abowire event with `padding` bytes in its payload.
fn webhook(n: u64, padding: usize) -> hooknorm::proto::v1::VerifyAndNormalizeRequest {
    let body = format!(
        r#"{{"source":"disk-full","event":"customer.updated","accountId":"acc_1","payload":{{"id":"cus_{n}","notes":"{}"}}}}"#,
        "x".repeat(padding)
    );
    token_request("abowire", "token", ABOWIRE_TOKEN, body.as_bytes())
}

/// What the server answered the webhooks sent so far.
#[derive(Debug, Default)]
struct Answers {
    /// Acknowledged events: webhook number -> event id.
    stored: BTreeMap<u64, String>,
    /// Refusals by status and reason.
    refused: BTreeMap<String, usize>,
}

impl Answers {
    fn refusals(&self) -> usize {
        self.refused.values().sum()
    }
}

/// Sends webhook `n` and records the answer: 200 with an event id, or 503 `STORE_UNAVAILABLE`
/// with `Retry-After`; anything else fails the test.
async fn send(answers: &Mutex<Answers>, addr: SocketAddr, n: u64, padding: usize) -> u16 {
    let answer = post_webhook(addr, &webhook(n, padding)).await;
    let mut answers = answers.lock().expect("answers");
    if answer.status == 200 {
        let id = answer.json["id"].as_str().expect("an event id").to_owned();
        answers.stored.insert(n, id);
    } else {
        assert_eq!(answer.status, 503, "webhook {n}: {:?}", answer.json);
        assert_eq!(answer.reason(), "STORE_UNAVAILABLE", "webhook {n}");
        assert!(
            answer.header("retry-after").is_some(),
            "webhook {n}: no Retry-After"
        );
        *answers
            .refused
            .entry(format!("{} {}", answer.status, answer.reason()))
            .or_default() += 1;
    }
    answer.status
}

/// [`SENDERS`] senders posting webhooks of 1 to 64 KiB until `stop`.
fn load(
    addr: SocketAddr,
    answers: &Arc<Mutex<Answers>>,
    next: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinSet<()> {
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (answers, next, stop) = (answers.clone(), next.clone(), stop.clone());
        senders.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let padding = 1024 + (n as usize * 7919) % (63 * 1024);
                send(&answers, addr, n, padding).await;
            }
        });
    }
    senders
}

/// Waits (up to `within`) until `done` holds of the answers.
async fn until(
    answers: &Mutex<Answers>,
    what: &str,
    within: Duration,
    done: impl Fn(&Answers) -> bool,
) {
    let started = Instant::now();
    while !done(&answers.lock().expect("answers")) {
        if started.elapsed() > within {
            let answers = answers.lock().expect("answers");
            panic!(
                "{what}: not within {within:?} ({} acknowledged, refused {:?})",
                answers.stored.len(),
                answers.refused
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `/readyz` until it answers `status`; how long that took.
async fn readyz_becomes(ops: SocketAddr, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let answer = get(ops, "/readyz").await;
        if answer.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "/readyz still {} after {within:?}: {:?}",
            answer.status,
            answer.json
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How the disk fills.
#[derive(Debug, Clone, Copy)]
enum Fill {
    /// Another file takes every byte left, all at once, under load.
    Filler,
    /// The store grows into the space left beside a 4 MiB ballast file, under load: its WAL
    /// is large by then, and a tiny write can still fit where events no longer do.
    Store,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filled_by_another_file_refuses_with_503_loses_nothing_and_recovers() {
    full_disk(Fill::Filler).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filled_by_the_store_refuses_with_503_loses_nothing_and_recovers() {
    full_disk(Fill::Store).await;
}

async fn full_disk(how: Fill) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mount_point = dir.path().join("small");
    std::fs::create_dir(&mount_point).expect("mount point");
    let size = match how {
        Fill::Filler => "16m",
        Fill::Store => "12m",
    };
    let tmpfs = match Tmpfs::mount(&mount_point, size) {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!(
                "SKIPPED: a full disk needs a {size} tmpfs, and mounting one failed ({why}); \
                 run as root to test it"
            );
            return;
        }
    };
    let ballast = tmpfs.path.join("ballast");
    if let Fill::Store = how {
        std::fs::write(&ballast, vec![0x5a; 4 << 20]).expect("ballast written");
    }
    let store = tmpfs.path.join("store");
    let config = dir.path().join("hooknorm.toml");
    let toml = format!(
        "{}\n[store]\npath = {:?}\n",
        test_config_toml(1024 * 1024),
        store.display().to_string()
    );
    std::fs::write(&config, toml).expect("config written");
    let mut running = crate::common::serve_binary(super::BIN, &config);
    let http: SocketAddr = running.http_addr.parse().expect("http addr");
    let ops: SocketAddr = running.ops_addr.parse().expect("ops addr");
    readyz_becomes(ops, 200, Duration::from_secs(10)).await;

    let answers = Arc::new(Mutex::new(Answers::default()));
    let next = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    // Before: the store takes events.
    for _ in 0..10 {
        let n = next.fetch_add(1, Ordering::Relaxed);
        assert_eq!(send(&answers, http, n, 16 * 1024).await, 200);
    }

    // Filled under load: the senders keep going (while the filler takes the last byte, or
    // until the store has taken it), until webhooks are refused and readiness follows.
    let mut senders = load(http, &answers, &next, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_fill = answers.lock().expect("answers").stored.len();
    let (freed_file, filled) = match how {
        Fill::Filler => fill(&tmpfs.path),
        Fill::Store => (ballast, 0),
    };
    until(&answers, "refusals", Duration::from_secs(60), |a| {
        a.refusals() >= 20
    })
    .await;
    // The next store check after a failed append fails (a check's answer is reused for a
    // second), even where a tiny write still fits.
    let within = hooknorm::readiness::STORE_CHECK_TTL + Duration::from_secs(1);
    let not_ready_after = readyz_becomes(ops, 503, within).await;
    let readyz = get(ops, "/readyz").await;
    assert_eq!(readyz.status, 503);
    let (stored_full, refused_full) = {
        let answers = answers.lock().expect("answers");
        (answers.stored.len(), answers.refusals())
    };
    eprintln!(
        "disk full ({how:?}): filler of {filled} bytes; {before_fill} acknowledged before, \
         {stored_full} by the time {refused_full} were refused; /readyz 503 within \
         {not_ready_after:?}: {}",
        String::from_utf8_lossy(&readyz.body)
    );

    // Not ready, so a load balancer sends no more: neither do the senders (left running, they
    // would take the space freed next as fast as it comes).
    stop.store(true, Ordering::Relaxed);
    while let Some(sender) = senders.join_next().await {
        sender.expect("a sender");
    }

    // Space returns: readiness and ingestion resume by themselves, no restart.
    std::fs::remove_file(&freed_file).expect("space freed");
    let ready_after = readyz_becomes(ops, 200, Duration::from_secs(10)).await;
    for _ in 0..20 {
        let n = next.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            send(&answers, http, n, 32 * 1024).await,
            200,
            "after space returned"
        );
    }
    let answers = Arc::try_unwrap(answers)
        .expect("senders stopped")
        .into_inner()
        .expect("answers");
    eprintln!(
        "space returned ({how:?}): /readyz 200 within {ready_after:?}, then 20 webhooks \
         acknowledged; {} acknowledged in all, refusals {:?}",
        answers.stored.len(),
        answers.refused
    );

    // Nothing acknowledged is lost.
    let channel = Channel::from_shared(format!("http://{}", running.addr))
        .expect("uri")
        .connect()
        .await
        .expect("grpc connects");
    let mut client = crate::common::stream::authenticated(channel);
    for (n, id) in &answers.stored {
        let event = client
            .get_event(GetEventRequest {
                id: id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("acknowledged webhook {n} ({id}) is lost: {status:?}"));
        let data = event
            .into_inner()
            .event
            .and_then(|event| event.data)
            .expect("data");
        assert!(data.fields.contains_key("notes"), "webhook {n}");
    }

    // The file is sound once the server is gone.
    running.sigterm();
    assert!(running.wait_exit(Duration::from_secs(15)).success());
    let db = rusqlite::Connection::open_with_flags(
        store.join("events.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("store opens");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity check runs");
    assert_eq!(check, "ok");
    let count: i64 = db
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .expect("count");
    // A refused append may still have committed (the answer lost, not the event): the sender
    // retries and dedup recognizes it. Never fewer than acknowledged.
    assert!(
        usize::try_from(count).expect("a count") >= answers.stored.len(),
        "{count} stored, {} acknowledged",
        answers.stored.len()
    );
}
