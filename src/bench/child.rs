//! The processes under test: `hooknorm serve` (a fresh temporary store and config per scenario)
//! or the hidden `hooknorm bench-echo-server`, started from this very executable. Start-up time
//! is spawn to the `grpc listening` log line; memory is read from `/proc/<pid>/status`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::BenchError;
use super::payload::BENCH_GIGS_SECRET;

/// How long a child may take to report its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The API key the bench's servers with keys accept (and its callers present).
pub const BENCH_API_KEY: &str = "bench-api-key-0123456789abcdef";

/// The TLS files of the servers with TLS: a fixed, public test certificate for `localhost` and
/// `127.0.0.1` from a CA made for the bench alone (not a secret, trusted nowhere else).
pub const BENCH_CA_PEM: &str = include_str!("tls/ca.pem");
const BENCH_CERT_PEM: &str = include_str!("tls/server.pem");
const BENCH_KEY_PEM: &str = include_str!("tls/server.key");

/// Who a scenario's server lets call, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `auth = "none"`, plain TCP: the other scenarios' server, so their figures stay comparable.
    Open,
    /// One API key with every scope, plain TCP.
    ApiKey,
    /// The key, over TLS on the gRPC listener.
    ApiKeyTls,
}

/// The server config of a scenario: ephemeral ports, JSON logs at `warn` except the start-up
/// lines, the store in `store`, one Gigs source; `[auth]` and `[tls]` as `security` says, the
/// TLS files under `tls_dir`.
pub fn server_config_toml(store: &Path, security: Security, tls_dir: &Path) -> String {
    server_config_toml_with(&sqlite_store(store), security, tls_dir)
}

/// The `[store]` section of an embedded store in `dir`.
pub(super) fn sqlite_store(dir: &Path) -> String {
    format!("[store]\npath = {:?}\n", dir.display().to_string())
}

/// [`server_config_toml`] with another `[store]` section (and its subtables).
pub fn server_config_toml_with(store: &str, security: Security, tls_dir: &Path) -> String {
    let auth = match security {
        Security::Open => String::new(),
        Security::ApiKey | Security::ApiKeyTls => format!(
            "[auth]\n[[auth.keys]]\nname = \"bench\"\nkey = \"{BENCH_API_KEY}\"\n\
             scopes = [\"ingest\", \"read\"]\n"
        ),
    };
    let tls = match security {
        Security::ApiKeyTls => format!(
            "[tls.grpc]\ncert = {:?}\nkey = {:?}\n",
            tls_dir.join("server.pem").display().to_string(),
            tls_dir.join("server.key").display().to_string()
        ),
        Security::Open | Security::ApiKey => String::new(),
    };
    let none = if security == Security::Open {
        "auth = \"none\"\n"
    } else {
        ""
    };
    format!(
        r#"{none}
[server]
grpc_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
ops_listen = "127.0.0.1:0"
shutdown_grace_seconds = 1

[http]
max_concurrency = 4096

[log]
format = "json"
level = "warn,hooknorm::server=info"

[[sources]]
name = "gigs"
provider = "gigs"
verification = {{ scheme = "standard_webhooks", secrets = ["{BENCH_GIGS_SECRET}"] }}

{store}
{auth}{tls}"#
    )
}

/// A running child process; killed (and its temporary directory removed) when dropped.
#[derive(Debug)]
pub struct ChildProcess {
    child: std::process::Child,
    /// The gRPC address, `host:port`.
    pub grpc_addr: String,
    /// The HTTP ingress address, `host:port` (the real server only).
    pub http_addr: Option<String>,
    /// Spawn to the `grpc listening` line (for the real server: both listeners bound, the log
    /// open and readiness checked).
    pub startup: Duration,
    dir: Option<PathBuf>,
}

impl ChildProcess {
    /// Starts `hooknorm serve` with a fresh store and config under the system temp directory.
    pub fn serve(exe: &Path, tag: &str, security: Security) -> Result<ChildProcess, BenchError> {
        ChildProcess::serve_with(exe, tag, security, &sqlite_store)
    }

    /// As [`ChildProcess::serve`], with the `[store]` section `store` makes for the store
    /// directory.
    pub fn serve_with(
        exe: &Path,
        tag: &str,
        security: Security,
        store: &dyn Fn(&Path) -> String,
    ) -> Result<ChildProcess, BenchError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "hooknorm-bench-{}-{tag}-{nanos}",
            std::process::id()
        ));
        let io = |source| BenchError::Io {
            what: format!("cannot prepare {}", dir.display()),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let config = dir.join("hooknorm.toml");
        std::fs::write(dir.join("server.pem"), BENCH_CERT_PEM).map_err(io)?;
        std::fs::write(dir.join("server.key"), BENCH_KEY_PEM).map_err(io)?;
        let toml = server_config_toml_with(&store(&dir.join("store")), security, &dir);
        std::fs::write(&config, toml).map_err(io)?;
        let mut command = Command::new(exe);
        command.arg("serve").arg("--config").arg(&config);
        let mut child = Self::spawn(command, true)?;
        child.dir = Some(dir);
        Ok(child)
    }

    /// Starts the bare echo server.
    pub fn echo(exe: &Path) -> Result<ChildProcess, BenchError> {
        let mut command = Command::new(exe);
        command.args(["bench-echo-server", "--listen", "127.0.0.1:0"]);
        Self::spawn(command, false)
    }

    fn spawn(mut command: Command, wants_http: bool) -> Result<ChildProcess, BenchError> {
        let started = Instant::now();
        let child = command
            .env_remove("RUST_LOG")
            .env_remove("HOOKNORM_CONFIG")
            // Each scenario's config says whether spans are exported, not the bench's caller.
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("OTEL_TRACES_SAMPLER")
            .env_remove("OTEL_TRACES_SAMPLER_ARG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| BenchError::Io {
                what: "cannot start the server process".into(),
                source,
            })?;
        let mut running = ChildProcess {
            child,
            grpc_addr: String::new(),
            http_addr: None,
            startup: Duration::ZERO,
            dir: None,
        };
        let stderr = running
            .child
            .stderr
            .take()
            .ok_or_else(|| BenchError::Child("stderr is not piped".into()))?;
        // Drained for the child's whole life, so a chatty child never blocks on a full pipe.
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let deadline = started + START_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match lines.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    return Err(BenchError::Child(format!(
                        "server did not report its addresses; its log: {seen:?}"
                    )));
                }
            };
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let addr = parsed["addr"].as_str().map(str::to_owned);
            match parsed["message"].as_str() {
                Some("grpc listening") => {
                    running.startup = started.elapsed();
                    running.grpc_addr = addr.unwrap_or_default();
                }
                Some("http listening") => running.http_addr = addr,
                _ => seen.push(line),
            }
            if !running.grpc_addr.is_empty() && (!wants_http || running.http_addr.is_some()) {
                return Ok(running);
            }
        }
    }

    /// The store directory of a `hooknorm serve` child with an embedded store.
    pub fn store_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.join("store"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A `/proc/<pid>/status` field in MiB (`VmRSS`: now; `VmHWM`: the peak so far).
pub async fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = tokio::fs::read_to_string(format!("/proc/{pid}/status"))
        .await
        .ok()?;
    let line = status
        .lines()
        .find(|line| line.starts_with(field) && line[field.len()..].starts_with(':'))?;
    let kib: f64 = line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
