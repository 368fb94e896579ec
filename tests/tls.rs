//! TLS on both listeners, with certificates made here (`rcgen`): API keys and client
//! certificates over TLS from Rust and from Python's `grpcio`; HTTPS ingress and probes; a
//! certificate replaced while a stream is open (new connections get the new one, the stream goes
//! on); and no key, secret or private key in the server's whole log.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::stream::Client;
use common::*;
use hooknorm::cli::connect::BearerKey;
use hooknorm::config::Secret;
use hooknorm::proto::v1::normalizer_service_client::NormalizerServiceClient;
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{ListEventsRequest, ListEventsResponse, StreamEventsRequest};
use prost::Message as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");
const KEY: &str = "tls-test-key-8d2f41c07e9a";

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("ca signs");
        Ca { cert, key }
    }

    /// A leaf for `names` (DNS names or IPs): `(certificate PEM, key PEM)`.
    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("ca signs");
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

fn write(path: &Path, text: &str) {
    // As cert-manager's mounted secrets change: a new file moved into place.
    let new = path.with_extension("new");
    std::fs::write(&new, text).expect("written");
    std::fs::rename(&new, path).expect("moved into place");
}

/// Certificates for one server, in `dir`: the server's (from `ca`), the CA to verify clients
/// against, and a client certificate named `billing.internal`.
struct Files {
    dir: PathBuf,
    server_ca: Ca,
    client_ca: Ca,
}

impl Files {
    fn new(dir: &Path) -> Files {
        let files = Files {
            dir: dir.to_owned(),
            server_ca: Ca::new("server ca"),
            client_ca: Ca::new("client ca"),
        };
        files.use_server_cert(&files.server_ca);
        write(&files.path("client-ca.crt"), &files.client_ca.pem());
        let (cert, key) = files
            .client_ca
            .issue(&["billing.internal"], ExtendedKeyUsagePurpose::ClientAuth);
        write(&files.path("client.crt"), &cert);
        write(&files.path("client.key"), &key);
        write(&files.path("server-ca.crt"), &files.server_ca.pem());
        files
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Puts a fresh server certificate from `ca` in place.
    fn use_server_cert(&self, ca: &Ca) {
        let (cert, key) = ca.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write(&self.path("tls.key"), &key);
        write(&self.path("tls.crt"), &cert);
    }

    /// `[auth]` (a key; the client certificate's name with `read`) and `[tls]` for both listeners.
    fn toml(&self) -> String {
        let path = |name: &str| self.path(name).display().to_string();
        format!(
            r#"{base}
[auth]
[[auth.keys]]
name = "backend"
key = "{KEY}"
scopes = ["ingest", "read"]

[[auth.keys]]
name = "billing"
client_cert_names = ["billing.internal"]
scopes = ["read"]

[tls]
reload_interval_seconds = 1
[tls.grpc]
cert = {cert:?}
key = {key:?}
client_ca = {ca:?}
[tls.http]
cert = {cert:?}
key = {key:?}
"#,
            base = test_config_without_auth(1024 * 1024),
            cert = path("tls.crt"),
            key = path("tls.key"),
            ca = path("client-ca.crt"),
        )
    }
}

/// A TLS channel trusting `ca` (PEM), with the client certificate if `identity`.
async fn tls_channel(
    addr: &str,
    ca: &str,
    identity: Option<&Files>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(files) = identity {
        let read = |name| std::fs::read(files.path(name)).expect("client file");
        tls = tls.identity(Identity::from_pem(read("client.crt"), read("client.key")));
    }
    Channel::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config(tls)?
        .connect()
        .await
}

fn keyed(channel: Channel, key: Option<&str>) -> Client {
    let key = key.map(Secret::new);
    NormalizerServiceClient::with_interceptor(channel, BearerKey::new(key.as_ref()).expect("key"))
}

/// One call from Python's grpcio; `(code, response bytes)`.
fn grpcio(request: serde_json::Value) -> (String, Vec<u8>) {
    let answer = common::python::run_script("grpc_tls.py", &request);
    let bytes = hex::decode(answer["response_hex"].as_str().unwrap_or_default()).expect("hex");
    (answer["code"].as_str().expect("code").to_owned(), bytes)
}

/// `GET path` over HTTPS to the HTTP listener; the status line.
async fn https_get(addr: std::net::SocketAddr, ca: &str, path: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("https handshake");
    let head = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    tls.write_all(head.as_bytes()).await.expect("request");
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.expect("answer");
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_client_certificates_over_tls_from_rust_and_python() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Files::new(dir.path());
    let server = TestServer::start_with(&files.toml()).await;
    let addr = server.addr.to_string();
    let ca = files.server_ca.pem();

    // An API key over TLS.
    let mut backend = keyed(tls_channel(&addr, &ca, None).await.expect("tls"), Some(KEY));
    backend
        .verify_and_normalize(token_request(
            "mm",
            "key",
            MM_TOKEN,
            b"{\"OrderId\":\"o-1\",\"State\":1,\"Type\":0}",
        ))
        .await
        .expect("stored over tls");
    // A client certificate instead of a key: its name maps to `billing`, which only reads.
    let mut billing = keyed(
        tls_channel(&addr, &ca, Some(&files)).await.expect("mtls"),
        None,
    );
    let listed = billing
        .list_events(ListEventsRequest::default())
        .await
        .expect("a certificate reads")
        .into_inner();
    assert_eq!(listed.events.len(), 1);
    let status = billing
        .verify_and_normalize(token_request("mm", "key", MM_TOKEN, b"{}"))
        .await
        .expect_err("a reader cannot ingest");
    assert_eq!(status.code(), Code::PermissionDenied);
    // No credential at all over TLS.
    let status = keyed(tls_channel(&addr, &ca, None).await.expect("tls"), None)
        .list_events(ListEventsRequest::default())
        .await
        .expect_err("no key");
    assert_eq!(reason_of(&status).0, "MISSING_API_KEY");
    // Plain text to the TLS port gets nowhere; a server from another CA is not trusted.
    let plain = Channel::from_shared(format!("http://{addr}")).expect("uri");
    let refused = match plain.connect().await {
        Ok(channel) => keyed(channel, Some(KEY))
            .list_events(ListEventsRequest::default())
            .await
            .is_err(),
        Err(_) => true,
    };
    assert!(refused, "plain text on the tls port");
    assert!(
        tls_channel(&addr, &Ca::new("other").pem(), None)
            .await
            .is_err()
    );

    // Python's grpcio: TLS with a key, mTLS with the certificate, and neither.
    let list = ListEventsRequest::default().encode_to_vec();
    let call = |extra: serde_json::Value| {
        let mut request = serde_json::json!({
            "target": addr,
            "server_name": "localhost",
            "ca": files.path("server-ca.crt"),
            "method": "ListEvents",
            "request_hex": hex::encode(&list),
        });
        request
            .as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        grpcio(request)
    };
    let ingest = token_request(
        "mm",
        "key",
        MM_TOKEN,
        b"{\"OrderId\":\"o-2\",\"State\":1,\"Type\":0}",
    );
    let (code, _) = call(serde_json::json!({
        "method": "VerifyAndNormalize",
        "request_hex": hex::encode(ingest.encode_to_vec()),
        "key": KEY,
    }));
    assert_eq!(code, "OK", "grpcio ingest with a key");
    let (code, response) = call(serde_json::json!({
        "cert": files.path("client.crt"),
        "cert_key": files.path("client.key"),
    }));
    assert_eq!(code, "OK", "grpcio with a client certificate");
    let listed = ListEventsResponse::decode(response.as_slice()).expect("response decodes");
    assert_eq!(listed.events.len(), 2);
    let (code, _) = call(serde_json::json!({}));
    assert_eq!(code, "UNAUTHENTICATED");

    // The CLI over TLS: `--ca-cert` and `--api-key` (a config's key is for its own server).
    let output = Command::new(BIN)
        .args([
            "events",
            "--server",
            &format!("https://{addr}"),
            "--ca-cert",
        ])
        .arg(files.path("server-ca.crt"))
        .env_remove("HOOKNORM_CONFIG")
        .env("HOOKNORM_API_KEY", KEY)
        .output()
        .expect("events runs");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);

    // The HTTP listener speaks HTTPS (the probes are on the ops listener, plain HTTP).
    assert_eq!(
        https_get(server.http_addr, &ca, "/webhooks/mm").await,
        "HTTP/1.1 405 Method Not Allowed"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_serves_new_connections_while_open_streams_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Files::new(dir.path());
    let config = dir.path().join("hooknorm.toml");
    let store = format!(
        "\n[store]\npath = {:?}\n",
        dir.path().join("store").display().to_string()
    );
    std::fs::write(&config, files.toml() + &store).expect("config");
    let mut command = serve_command(BIN, Some(&config));
    command.env("RUST_LOG", "debug");
    let running = spawn_serve(command);
    let addr = running.addr.clone();
    let old_ca = files.server_ca.pem();

    let mut subscriber = keyed(
        tls_channel(&addr, &old_ca, None).await.expect("tls"),
        Some(KEY),
    );
    let mut stream = subscriber
        .stream_events(StreamEventsRequest::default())
        .await
        .expect("stream opens")
        .into_inner();

    let old_key = std::fs::read_to_string(files.path("tls.key")).expect("key");
    let new_ca = Ca::new("rotated server ca");
    files.use_server_cert(&new_ca);
    let deadline = Instant::now() + Duration::from_secs(20);
    let channel = loop {
        if let Ok(channel) = tls_channel(&addr, &new_ca.pem(), None).await {
            break channel;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        tls_channel(&addr, &old_ca, None).await.is_err(),
        "new connections still get the old certificate"
    );
    let mut writer = keyed(channel, Some(KEY));
    let stored = writer
        .verify_and_normalize(gigs_event_request(1, "sim.updated"))
        .await
        .expect("stored over the new certificate")
        .into_inner()
        .event
        .expect("event");
    // The stream opened under the old certificate sees it.
    let event = loop {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("the open stream goes on")
            .expect("stream ok")
            .expect("stream open");
        if let Some(Message::Event(event)) = message.message {
            break event;
        }
    };
    assert_eq!(event.id, stored.id);

    // Refused calls too, so their handling is in the log.
    let status = keyed(
        tls_channel(&addr, &new_ca.pem(), None).await.expect("tls"),
        Some("wrong-key-never-logged-1"),
    )
    .list_events(ListEventsRequest::default())
    .await
    .expect_err("unknown key");
    assert_eq!(reason_of(&status).0, "UNKNOWN_API_KEY");
    running.sigterm();
    let log = running.log_lines_until_exit(Duration::from_secs(20));
    let log = running.startup_log.join("\n") + "\n" + &log.join("\n");
    assert!(
        log.contains("tls certificate reloaded"),
        "no reload in the log"
    );
    let keys = std::fs::read_to_string(files.path("tls.key")).expect("key") + &old_key;
    let client_key = std::fs::read_to_string(files.path("client.key")).expect("client key");
    let keys = keys + &client_key;
    let mut secrets = vec![
        KEY,
        "wrong-key-never-logged-1",
        GIGS_SECRET.trim_start_matches("whsec_"),
        GIGS_SECRET_NEW.trim_start_matches("whsec_"),
        MM_TOKEN,
        ABOWIRE_TOKEN,
    ];
    // Any line of a private key's base64.
    secrets.extend(keys.lines().filter(|line| !line.starts_with("-----")));
    for secret in secrets {
        assert!(!log.contains(secret), "the log holds a secret: {secret}");
    }
}

/// Connections that stall before or during the TLS handshake are judged by the listeners'
/// admission deadlines like any connection without a request (here 1 s, well under the
/// handshake's own 10 s), and while they are open a real client over TLS is served on both
/// listeners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_meet_the_admission_deadlines_and_hold_no_one_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = Files::new(dir.path());
    let toml = files.toml()
        + "\n[grpc]\npreface_timeout_seconds = 1\n\n[http]\nheader_read_timeout_seconds = 1\n";
    let server = TestServer::start_with(&toml).await;
    let ca = files.server_ca.pem();
    // A TLS record header announcing a ClientHello that never comes.
    const HALF_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    let mut stalled = Vec::new();
    for addr in [server.addr, server.http_addr] {
        for sends in [&[][..], HALF_HELLO] {
            for _ in 0..10 {
                let mut tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .expect("connects");
                tcp.write_all(sends).await.expect("written");
                stalled.push(tcp);
            }
        }
    }
    let opened = Instant::now();

    let mut backend = keyed(
        tls_channel(&server.addr.to_string(), &ca, None)
            .await
            .expect("tls beside the stalled connections"),
        Some(KEY),
    );
    backend
        .list_events(ListEventsRequest::default())
        .await
        .expect("served over tls");
    let status = https_get(server.http_addr, &ca, "/webhooks/nowhere").await;
    assert!(status.starts_with("HTTP/1.1 "), "{status}");

    for mut tcp in stalled {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf))
            .await
            .expect("closed by the server");
        // The end of the stream, or a reset: either way the server let go.
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let waited = opened.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "closed after {waited:?}: by the 10 s handshake timeout, not the 1 s deadlines"
    );
}
