//! The real `hooknorm` binary as a child process: its config, its addresses (read from its
//! start-up log), its log lines and its memory.

use super::*;

/// A `hooknorm serve` child process; killed (SIGKILL) when dropped.
pub struct Running {
    pub child: std::process::Child,
    /// The gRPC address.
    pub addr: String,
    /// The HTTP ingress address.
    pub http_addr: String,
    /// The probes' (ops listener's) address.
    pub ops_addr: String,
    /// Its log lines up to and including the last "listening" one.
    pub startup_log: Vec<String>,
    /// Its JSON log lines after the start-up ones, as they come.
    logs: std::sync::mpsc::Receiver<String>,
}

impl Running {
    /// Sends SIGTERM (a graceful stop).
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`TERM`, `INT`, ...) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Every log line written since the last call, as written.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }

    /// The log lines written until the process closes its stderr (it exited), waiting up to
    /// `within`.
    pub fn log_lines_until_exit(&self, within: std::time::Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + within;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return lines,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!("stderr still open after {within:?}; got {lines:#?}")
                }
            }
        }
    }

    /// A `kB` field of the server's `/proc/<pid>/status` (`VmRSS`, `VmHWM`, `RssAnon`, ...).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status reads");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"))
    }

    /// The `message` of every log line written since the last call.
    pub fn log_messages(&self) -> Vec<String> {
        self.logs
            .try_iter()
            .filter_map(|line| {
                let parsed: serde_json::Value = serde_json::from_str(&line).ok()?;
                Some(parsed["message"].as_str()?.to_owned())
            })
            .collect()
    }

    /// Waits (up to `within`) for the process to exit and returns its status.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not exit within {within:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Writes a config for the real binary into `dir` (its store under `dir/store`), with `extra`
/// TOML appended, and returns its path.
pub fn binary_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("hooknorm.toml");
    let store = format!(
        "[store]\npath = {:?}\n",
        dir.join("store").display().to_string()
    );
    // TOML allows a table once: a `[store]` in `extra` gets the path added to it.
    let toml = if extra.contains("[store]\n") {
        format!(
            "{}\n{}\n",
            test_config_toml(1024 * 1024),
            extra.replacen("[store]\n", &store, 1)
        )
    } else {
        format!("{}\n{store}{extra}\n", test_config_toml(1024 * 1024))
    };
    std::fs::write(&path, toml).expect("config written");
    path
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real binary's `serve` with JSON logs on stderr (piped) and `RUST_LOG` unset, reading
/// `config`, or with `None` whatever it finds by itself (`$HOOKNORM_CONFIG` is removed, so
/// `./hooknorm.toml` of the command's working directory).
pub fn serve_command(bin: &str, config: Option<&std::path::Path>) -> std::process::Command {
    let mut command = std::process::Command::new(bin);
    command.arg("serve");
    match config {
        Some(config) => {
            command.arg("--config").arg(config);
        }
        None => {
            command.env_remove("HOOKNORM_CONFIG");
        }
    }
    command
        .env("HOOKNORM_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    command
}

/// Starts the real binary's `serve` and waits for its "grpc listening", "http listening" and
/// "ops listening" log lines.
pub fn serve_binary(bin: &str, config: &std::path::Path) -> Running {
    spawn_serve(serve_command(bin, Some(config)))
}

/// Spawns `command` (a `serve` logging JSON to a piped stderr, see [`serve_command`]) and waits
/// for its "grpc listening", "http listening" and "ops listening" log lines.
pub fn spawn_serve(mut command: std::process::Command) -> Running {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let child = command.spawn().expect("binary starts");
    // Owned by `Running` from here on, so every path (including a panic) kills and reaps it.
    let (tx, rx) = std::sync::mpsc::channel();
    let mut running = Running {
        child,
        addr: String::new(),
        http_addr: String::new(),
        ops_addr: String::new(),
        startup_log: Vec::new(),
        logs: rx,
    };
    let stderr = running.child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(line) = running.logs.recv_timeout(Duration::from_millis(100)) {
            let parsed: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("log line is not json: {line}"));
            let addr = || parsed["addr"].as_str().expect("addr field").to_owned();
            if parsed["message"] == "grpc listening" {
                running.addr = addr();
            } else if parsed["message"] == "http listening" {
                running.http_addr = addr();
            } else if parsed["message"] == "ops listening" {
                running.ops_addr = addr();
            }
            running.startup_log.push(line);
            if !running.addr.is_empty()
                && !running.http_addr.is_empty()
                && !running.ops_addr.is_empty()
            {
                return running;
            }
        }
    }
    panic!(
        "server did not report its address; log: {:#?}",
        running.startup_log
    );
}
