//! Shared harness for the black-box tests: a real hooknorm server on 127.0.0.1:0 with a test
//! config, a real gRPC client, a plain HTTP client ([`http`]), and helpers to authenticate
//! requests as each provider would.

#![allow(dead_code)]

pub mod binary;
pub mod flood;
pub mod hooked_log;
pub mod http;
pub mod python;
pub mod stream;

// Not every test binary starts the real binary (as with `dead_code` above).
#[allow(unused_imports)]
pub use binary::*;

use std::net::SocketAddr;
use std::sync::Arc;

use hooknorm::config::Config;
use hooknorm::log::EventLog;
use hooknorm::proto::v1::{Header, VerifyAndNormalizeRequest};
use hooknorm::server::Server;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// The well-known Svix/Standard Webhooks example secret.
pub const GIGS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A second, rotated-in Gigs secret.
pub const GIGS_SECRET_NEW: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const ABOWIRE_TOKEN: &str = "abowire-t0ken/with+chars";
pub const MM_TOKEN: &str = "mm-token";
/// The test config's API key: every scope, every source, a forwarder.
pub const TEST_API_KEY: &str = "test-api-key-all-scopes-0123";

/// The seed of the ed25519 key the Standard Webhooks reference libraries sign their published
/// `v1a` vector with (the same vector as `src/verify/standard_webhooks/tests.rs`).
pub const V1A_REFERENCE_SEED: &str = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
/// The seed of a key the tests sign `v1a` webhooks with; its public key is configured on
/// `gigs-ed25519` alongside the reference key.
pub const V1A_TEST_SEED: [u8; 32] = *b"hooknorm-test-ed25519-signing-ke";

/// The ed25519 key for a 32-byte seed given in base64 (as the reference libraries publish it).
pub fn v1a_key_from_base64(seed: &str) -> ed25519_dalek::SigningKey {
    use base64::Engine as _;
    let seed: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(seed)
        .expect("seed is base64")
        .try_into()
        .expect("seed is 32 bytes");
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

/// `whpk_<base64 public key>`, the form a Standard Webhooks sender publishes its key in; written
/// here with ed25519-dalek and base64 directly, independent of hooknorm's own helpers.
pub fn whpk(key: &ed25519_dalek::SigningKey) -> String {
    use base64::Engine as _;
    format!(
        "whpk_{}",
        base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes())
    )
}

/// A `v1a,<base64 ed25519 signature>` entry over `{id}.{timestamp}.{body}`, made with
/// ed25519-dalek directly rather than hooknorm's signer.
pub fn sign_v1a(
    key: &ed25519_dalek::SigningKey,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    let mut content = format!("{msg_id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    format!(
        "v1a,{}",
        base64::engine::general_purpose::STANDARD.encode(key.sign(&content).to_bytes())
    )
}

/// A config with one source per provider and one per extra scheme, and [`TEST_AUTH`].
pub fn test_config_toml(max_body_bytes: usize) -> String {
    format!("{}{TEST_AUTH}", test_config_without_auth(max_body_bytes))
}

/// The suite replays published signature vectors from years ago as received when signed, as a
/// trusted forwarder would pass them on: hence the wide skew, for this config only. The auth
/// tests (tests/grpc_auth.rs) use their own keys and the default.
pub const TEST_AUTH: &str = r#"
[auth]
received_at_skew_seconds = 315360000
[[auth.keys]]
name = "test-all"
key = "test-api-key-all-scopes-0123"
scopes = ["ingest", "read"]
forwarder = true
"#;

/// [`test_config_toml`] without its `[auth]` table, for tests that configure their own.
pub fn test_config_without_auth(max_body_bytes: usize) -> String {
    let v1a_reference = whpk(&v1a_key_from_base64(V1A_REFERENCE_SEED));
    let v1a_test = whpk(&ed25519_dalek::SigningKey::from_bytes(&V1A_TEST_SEED));
    format!(
        r#"
[server]
grpc_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
ops_listen = "127.0.0.1:0"
shutdown_grace_seconds = 5

[limits]
max_body_bytes = {max_body_bytes}

[[sources]]
name = "gigs"
provider = "gigs"
verification = {{ scheme = "standard_webhooks", secrets = ["{GIGS_SECRET}", "{GIGS_SECRET_NEW}"] }}

[[sources]]
name = "gigs-ed25519"
provider = "gigs"
verification = {{ scheme = "standard_webhooks", public_keys = ["{v1a_reference}", "{v1a_test}"] }}

[[sources]]
name = "abowire"
provider = "abowire"
verification = {{ tokens = ["{ABOWIRE_TOKEN}", "other-token"] }}

[[sources]]
name = "mm"
provider = "mobile_manager"
verification = {{ scheme = "query_token", param = "key", tokens = ["{MM_TOKEN}"] }}

[[sources]]
name = "mm-allowlisted"
provider = "mobile_manager"
allowed_cidrs = ["10.1.0.0/16", "2001:db8::/32"]
verification = {{ scheme = "query_token", tokens = ["{MM_TOKEN}"] }}

[[sources]]
name = "abowire-header"
provider = "abowire"
verification = {{ scheme = "header_token", header = "x-abowire-token", prefix = "Bearer ", tokens = ["{ABOWIRE_TOKEN}"] }}

[[sources]]
name = "abowire-basic"
provider = "abowire"
verification = {{ scheme = "basic_auth", username = "abowire", password = "s3cret" }}

[[sources]]
name = "mm-ip"
provider = "mobile_manager"
verification = {{ scheme = "ip_allowlist", cidrs = ["192.0.2.0/24"] }}

[[sources]]
name = "mm-open"
provider = "mobile_manager"
verification = {{ scheme = "none" }}
"#
    )
}

/// A running server and a connected client; the server stops when this is dropped.
pub struct TestServer {
    /// The gRPC address.
    pub addr: SocketAddr,
    /// The HTTP ingress address.
    pub http_addr: SocketAddr,
    /// The probes' (ops listener's) address.
    pub ops_addr: SocketAddr,
    /// The store directory (kept so a restarted server finds the same log).
    pub store: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
    /// Presents [`TEST_API_KEY`].
    pub client: stream::Client,
    pub channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(&test_config_toml(1024 * 1024)).await
    }

    /// Starts a server with `toml`, storing its log in a fresh temporary directory.
    pub async fn start_with(toml: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().to_owned();
        let mut server = Self::start_in(toml, &store).await;
        server._dir = Some(dir);
        server
    }

    /// Starts a server with `toml` whose log lives in `store` (for restart tests).
    pub async fn start_in(toml: &str, store: &std::path::Path) -> TestServer {
        Self::start_wrapping_log(toml, store, |log| log).await
    }

    /// As [`TestServer::start_in`], with the opened event log passed through `wrap` first (to
    /// inject failures).
    pub async fn start_wrapping_log(
        toml: &str,
        store: &std::path::Path,
        wrap: impl FnOnce(Arc<dyn EventLog>) -> Arc<dyn EventLog>,
    ) -> TestServer {
        let toml = if toml.contains("[store]") {
            toml.to_owned()
        } else {
            format!(
                "{toml}\n[store]\npath = {:?}\n",
                store.display().to_string()
            )
        };
        let config = Config::from_toml(&toml).expect("test config is valid");
        let log = hooknorm::server::open_log(&config)
            .await
            .expect("event log opens");
        let server = Server::bind_with_log(&config, wrap(log))
            .await
            .expect("server binds");
        let addr = server.grpc_addr();
        let http_addr = server.http_addr();
        let ops_addr = server.ops_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("valid uri")
            .connect()
            .await
            .expect("client connects");
        TestServer {
            addr,
            http_addr,
            ops_addr,
            store: store.to_owned(),
            _dir: None,
            client: stream::authenticated(channel.clone())
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            channel,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Stops the server and waits for it to finish (the store directory, if owned, goes too).
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Stops the server but keeps the store directory, returning it for a restart.
    pub async fn stop_keep_store(mut self) -> (Option<tempfile::TempDir>, std::path::PathBuf) {
        self.stop().await;
        (self._dir.take(), self.store.clone())
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task joins");
        }
    }
}

pub fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

/// A Gigs request signed with `secret` at `timestamp` by the independent `standardwebhooks`
/// implementation (by hooknorm's own signer for non-UTF-8 bodies, which that crate refuses).
pub fn gigs_request(
    body: &[u8],
    secret: &str,
    msg_id: &str,
    timestamp: i64,
) -> VerifyAndNormalizeRequest {
    let signature = if std::str::from_utf8(body).is_ok() {
        let signer = standardwebhooks::Webhook::new(secret).expect("secret decodes");
        signer.sign(msg_id, timestamp, body).expect("signs")
    } else {
        hooknorm::verify::standard_webhooks::StandardWebhooksSigner::new(secret)
            .expect("secret decodes")
            .sign(msg_id, timestamp, body)
    };
    VerifyAndNormalizeRequest {
        source: "gigs".into(),
        headers: vec![
            header("content-type", "application/json"),
            header("webhook-id", msg_id),
            header("webhook-timestamp", &timestamp.to_string()),
            header("webhook-signature", &signature),
        ],
        body: body.to_vec(),
        request_uri: "/webhooks/gigs".into(),
        received_at: Some(prost_types::Timestamp {
            seconds: timestamp,
            nanos: 0,
        }),
        ..Default::default()
    }
}

/// A request authenticated with a query token.
pub fn token_request(
    source: &str,
    param: &str,
    token: &str,
    body: &[u8],
) -> VerifyAndNormalizeRequest {
    let query = form_urlencoded_pair(param, token);
    VerifyAndNormalizeRequest {
        source: source.into(),
        headers: vec![header("content-type", "application/json")],
        body: body.to_vec(),
        request_uri: format!("/webhooks/{source}?{query}"),
        ..Default::default()
    }
}

fn form_urlencoded_pair(name: &str, value: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish()
}

/// The request a provider would send for the fixture at `tests/fixtures/<rel>`.
pub fn fixture_request(rel: &str, body: &[u8]) -> VerifyAndNormalizeRequest {
    if rel.starts_with("gigs/") {
        let now = chrono::Utc::now().timestamp();
        gigs_request(body, GIGS_SECRET, "msg_fixture", now)
    } else if rel.starts_with("abowire/") {
        token_request("abowire", "token", ABOWIRE_TOKEN, body)
    } else {
        token_request("mm", "key", MM_TOKEN, body)
    }
}

/// The `ErrorInfo` reason and domain of a status.
pub fn reason_of(status: &tonic::Status) -> (String, String) {
    use tonic_types::StatusExt;
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("status has no ErrorInfo: {status:?}"));
    (info.reason, info.domain)
}

/// An event as canonical proto3 JSON (as `hooknorm send` prints it): field names in lowerCamelCase,
/// enums by name, timestamps in RFC 3339, the `detail` oneof under its variant's name.
pub fn event_json(event: &hooknorm::proto::v1::Event) -> serde_json::Value {
    let text =
        hooknorm::cli::output::to_json("hooknorm.v1.Event", event, false).expect("event renders");
    serde_json::from_str(&text).expect("rendered event is json")
}

pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `tests/fixtures/event_types.json`: every documented event type and what it normalizes to
/// (shared with the providers' unit tests).
pub fn event_types() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures_dir().join("event_types.json"))
        .expect("event_types.json reads");
    serde_json::from_str(&text).expect("event_types.json is json")
}

/// A distinct, minimal Gigs event body (`evt_<n>`), about a subscription and a plan.
pub fn gigs_event(n: u64, event_type: &str) -> Vec<u8> {
    format!(
        r#"{{"object":"event","id":"evt_test{n:08}","type":"com.gigs.{event_type}","time":"2026-01-01T00:00:00Z","specversion":"1.0","source":"https://api.gigs.com","project":"test","version":"2025-05-22","datacontenttype":"application/json","data":{{"object":"subscription","id":"sub_{n}","plan":{{"object":"plan","id":"pln_shared"}},"status":"active"}}}}"#
    )
    .into_bytes()
}

/// A signed Gigs request for [`gigs_event`] whose data also carries `padding` bytes of text
/// (to make events as large as a test needs).
pub fn padded_gigs_event_request(
    n: u64,
    event_type: &str,
    padding: usize,
) -> VerifyAndNormalizeRequest {
    let body = String::from_utf8(gigs_event(n, event_type)).expect("utf-8");
    let body = body.replacen(
        r#""status":"active""#,
        &format!(r#""status":"active","notes":"{}""#, "x".repeat(padding)),
        1,
    );
    gigs_request(
        body.as_bytes(),
        GIGS_SECRET,
        &format!("msg_{n}"),
        chrono::Utc::now().timestamp(),
    )
}

/// A signed Gigs request for [`gigs_event`].
pub fn gigs_event_request(n: u64, event_type: &str) -> VerifyAndNormalizeRequest {
    let body = gigs_event(n, event_type);
    gigs_request(
        &body,
        GIGS_SECRET,
        &format!("msg_{n}"),
        chrono::Utc::now().timestamp(),
    )
}
