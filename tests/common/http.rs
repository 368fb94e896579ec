//! A plain HTTP/1.1 client for the ingress tests: hyper's low-level client, one connection per
//! request (as a provider's delivery would be), a raw-socket client for what a well-behaved
//! client cannot do (stalled and huge uploads), and the assertions the ingress tests share.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hooknorm::proto::v1::VerifyAndNormalizeRequest;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ABOWIRE_TOKEN, GIGS_SECRET, MM_TOKEN, TestServer, fixtures_dir};

pub const MIB: usize = 1024 * 1024;

/// An answer from the server.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: ::http::HeaderMap,
    pub body: Vec<u8>,
    /// The body as JSON (`Null` when it is not).
    pub json: serde_json::Value,
}

impl Answer {
    /// `error.reason` of an error body.
    pub fn reason(&self) -> &str {
        self.json["error"]["reason"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Sends one request on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connects");
    send_on(stream, addr, method, uri, headers, body).await
}

/// Sends one request on `stream`, a fresh connection to `addr`.
pub async fn send_on(
    stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Answer {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = ::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .expect("request builds");
    let response = tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
        .await
        .expect("answer in time")
        .expect("answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body reads")
        .to_bytes()
        .to_vec();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        body,
        json,
    }
}

/// POSTs a webhook exactly as the gRPC request describes it: its URI, headers and body.
pub async fn post_webhook(addr: SocketAddr, request: &VerifyAndNormalizeRequest) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connects");
    post_webhook_on(stream, addr, request).await
}

/// As [`post_webhook`], on `stream`, a fresh connection to `addr`.
pub async fn post_webhook_on(
    stream: TcpStream,
    addr: SocketAddr,
    request: &VerifyAndNormalizeRequest,
) -> Answer {
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|header| (header.name.clone(), header.value.clone()))
        .collect();
    send_on(
        stream,
        addr,
        "POST",
        &request.request_uri,
        &headers,
        request.body.clone(),
    )
    .await
}

pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    send(addr, "GET", path, &[], Vec::new()).await
}

/// A request written by hand on a raw socket: the head now, the body in parts later.
pub struct RawUpload {
    pub stream: TcpStream,
}

impl RawUpload {
    /// Connects and writes the request head (`extra` are complete header lines).
    pub async fn start(addr: SocketAddr, path: &str, extra: &[&str]) -> RawUpload {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        let mut head = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\n");
        for line in extra {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .expect("head written");
        RawUpload { stream }
    }

    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads until the server closes or a full answer (head plus `content-length` body) is in.
    pub async fn answer(mut self) -> RawAnswer {
        read_answer(&mut self.stream).await
    }
}

/// An answer read off a raw socket.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    pub body: String,
}

impl RawAnswer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, value) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// Reads one HTTP/1.1 answer from `stream` (skipping `100 Continue`).
pub async fn read_answer<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> RawAnswer {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(answer) = parse_answer(&buffer) {
            return answer;
        }
        match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .expect("answer in time")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    parse_answer(&buffer)
        .unwrap_or_else(|| panic!("no complete answer: {:?}", String::from_utf8_lossy(&buffer)))
}

fn parse_answer(buffer: &[u8]) -> Option<RawAnswer> {
    let text = String::from_utf8_lossy(buffer);
    let mut rest: &str = &text;
    loop {
        let (head, body) = rest.split_once("\r\n\r\n")?;
        let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
        if status == 100 {
            rest = body;
            continue;
        }
        let answer = RawAnswer {
            status,
            head: head.to_owned(),
            body: String::new(),
        };
        let length: usize = answer
            .header("content-length")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        return (body.len() >= length).then(|| RawAnswer {
            body: body[..length].to_owned(),
            ..answer
        });
    }
}

/// The Abowire ingress URL with its (percent-encoded) token, as configured at Abowire.
pub fn abowire_uri() -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", ABOWIRE_TOKEN)
        .finish();
    format!("/webhooks/abowire?{query}")
}

/// The bytes of `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(rel)).expect("fixture reads")
}

/// Every fixture in `expected.json` with the canonical type it must normalize to.
pub fn expected_fixtures() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixtures_dir().join("expected.json")).expect("reads");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json.as_object()
        .expect("object")
        .iter()
        .map(|(rel, want)| (rel.clone(), want["type"].as_str().expect("type").to_owned()))
        .collect()
}

/// Asserts a 200 JSON answer; returns its `id`, `sequence` and `duplicate`.
pub fn assert_accepted(answer: &Answer, what: &str) -> (String, u64, bool) {
    assert_eq!(answer.status, 200, "{what}: {:?}", answer.json);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    (
        answer.json["id"].as_str().expect("id").to_owned(),
        answer.json["sequence"].as_u64().expect("sequence"),
        answer.json["duplicate"].as_bool().expect("duplicate"),
    )
}

/// Asserts a JSON refusal with `status` and `reason` that echoes no configured secret.
pub fn assert_refused(answer: &Answer, status: u16, reason: &str, what: &str) {
    assert_eq!(answer.status, status, "{what}: {:?}", answer.json);
    assert_eq!(answer.reason(), reason, "{what}: {:?}", answer.json);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "{what}"
    );
    let body = String::from_utf8_lossy(&answer.body);
    for secret in [
        ABOWIRE_TOKEN,
        MM_TOKEN,
        GIGS_SECRET,
        "s3cret",
        "other-token",
    ] {
        assert!(!body.contains(secret), "{what}: secret in {body}");
    }
    assert!(
        !answer.json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{what}"
    );
}

/// Polls `/readyz` until it answers `status` (its store check is reused for up to a second).
pub async fn readyz_becomes(addr: SocketAddr, status: u16) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get(addr, "/readyz").await;
        if answer.status == status || Instant::now() > deadline {
            assert_eq!(answer.status, status, "{:?}", answer.json);
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The gRPC health status of `service` (`""`: the whole server).
pub async fn grpc_health(server: &TestServer, service: &str) -> i32 {
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status
}
