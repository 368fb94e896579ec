//! Server memory per open connection, by kind: what the listeners' default caps are sized from
//! (BENCHMARKS.md, "Connections"). For each kind a fresh `hooknorm serve` child gets N
//! connections of that kind, and the growth of its resident memory (`VmRSS`) is divided by N.
//!
//! `cargo bench --bench connection_memory` (optionally `-- <connections per kind>`, default
//! 4000). Under `cargo test` it runs a short smoke pass, so the bench cannot rot.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

/// What each connection does once open.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// HTTP: connects and sends nothing.
    HttpSilent,
    /// HTTP: half a request head (a slowloris that has only just started).
    HttpHalfHead,
    /// HTTP: 15 KiB of an unfinished head, just under the 16 KiB read buffer (the worst case).
    HttpLongHead,
    /// HTTP: one request answered, then idle on keep-alive.
    HttpKeptAlive,
    /// gRPC: connects and never sends the HTTP/2 preface.
    GrpcSilent,
    /// gRPC: an established HTTP/2 connection with no stream.
    GrpcEstablished,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::HttpSilent,
        Kind::HttpHalfHead,
        Kind::HttpLongHead,
        Kind::HttpKeptAlive,
        Kind::GrpcSilent,
        Kind::GrpcEstablished,
    ];

    fn is_grpc(self) -> bool {
        matches!(self, Kind::GrpcSilent | Kind::GrpcEstablished)
    }
}

/// A `hooknorm serve` child with caps and deadlines far above the bench's needs.
struct Server {
    child: Child,
    http: SocketAddr,
    grpc: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(connections: usize) -> Result<Server, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("hooknorm.toml");
        let cap = connections * 2 + 100;
        std::fs::write(
            &config,
            format!(
                "auth = \"none\"\n[server]\ngrpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
                 ops_listen = \"127.0.0.1:0\"\n\
                 [http]\nmax_connections = {cap}\nmax_waiting_per_address = {cap}\n\
                 header_read_timeout_seconds = 600\n\
                 [grpc]\nmax_connections = {cap}\nmax_waiting_per_address = {cap}\n\
                 preface_timeout_seconds = 600\n\
                 [store]\npath = {:?}\n[log]\nformat = \"json\"\nlevel = \"info\"\n",
                dir.path().join("store").display().to_string()
            ),
        )?;
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let (mut http, mut grpc) = (None, None);
        while http.is_none() || grpc.is_none() {
            let line = lines.next().ok_or("server exited before listening")??;
            // A start-up error is a plain line, not JSON: say what it was.
            let parsed: serde_json::Value =
                serde_json::from_str(&line).map_err(|_| format!("server said: {line}"))?;
            let addr = || parsed["addr"].as_str().and_then(|addr| addr.parse().ok());
            match parsed["message"].as_str() {
                Some("http listening") => http = addr(),
                Some("grpc listening") => grpc = addr(),
                _ => {}
            }
        }
        // Keep draining its log, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server {
            child,
            http: http.ok_or("no http address")?,
            grpc: grpc.ok_or("no grpc address")?,
            _dir: dir,
        })
    }

    fn rss_kib(&self) -> Result<u64, Box<dyn std::error::Error>> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|value| value.trim().parse().ok())
            .ok_or("no VmRSS")?;
        Ok(kib)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens one connection of `kind`; what it returns must be kept for the connection to stay.
async fn open(kind: Kind, server: &Server) -> Result<Held, Box<dyn std::error::Error>> {
    let addr = if kind.is_grpc() {
        server.grpc
    } else {
        server.http
    };
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!("POST /webhooks/gigs HTTP/1.1\r\nhost: {addr}\r\n");
    match kind {
        Kind::HttpSilent | Kind::GrpcSilent => {}
        Kind::HttpHalfHead => stream.write_all(head.as_bytes()).await?,
        Kind::HttpLongHead => {
            let filler = format!("x-filler: {}\r\n", "x".repeat(15 * 1024 - head.len()));
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(filler.as_bytes()).await?;
        }
        Kind::HttpKeptAlive => {
            let request = format!("GET /nowhere HTTP/1.1\r\nhost: {addr}\r\n\r\n");
            stream.write_all(request.as_bytes()).await?;
            let mut answer = vec![0u8; 4096];
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut answer).await?;
            if !answer[..n].starts_with(b"HTTP/1.1 404") {
                return Err("no answer on the kept-alive connection".into());
            }
        }
        Kind::GrpcEstablished => {
            let (client, connection) = h2::client::handshake(stream).await?;
            let task = tokio::spawn(connection);
            return Ok(Held::Http2(client, task));
        }
    }
    Ok(Held::Tcp(stream))
}

enum Held {
    Tcp(#[allow(dead_code)] TcpStream),
    Http2(
        #[allow(dead_code)] h2::client::SendRequest<bytes::Bytes>,
        tokio::task::JoinHandle<Result<(), h2::Error>>,
    ),
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::Http2(_, task) = self {
            task.abort();
        }
    }
}

async fn measure(kind: Kind, connections: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let server = Server::start(connections)?;
    // Warm up: a few of the kind, so one-time allocations are not counted per connection.
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(open(kind, &server).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib()?;
    for _ in 0..connections {
        held.push(open(kind, &server).await?);
    }
    // Every connection accepted, admitted and read from.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib()?;
    drop(held);
    Ok(after.saturating_sub(before) as f64 / connections as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; `cargo test` (which also builds and runs this) does not.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let connections: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(if benchmarking { 4000 } else { 50 });
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        for kind in Kind::ALL {
            let kib = measure(kind, connections).await?;
            println!("connection_memory: {kind:?}: {kib:.1} KiB per connection ({connections} connections)");
        }
        Ok(())
    })
}
