//! `[store.nats]` against real servers: credentials (user/password, token, NKey seed, and a
//! `.creds` file on a server in operator mode) and TLS with a
//! private CA reach the server, a wrong one is a start-up error that shows no secret, and a
//! stream that exists with other settings is refused and left as it was.

mod nats_support;

use std::path::Path;
use std::process::Command;

use hooknorm::config::{NatsAuth, Secret, StoreConfig};
use hooknorm::log::EventLog;
use hooknorm::log::nats::{NatsEventLog, NatsOpenError};
use nats_support::NatsServer;

fn config(server: &NatsServer, dir: &Path) -> StoreConfig {
    nats_support::store_config(&[server.url()], &nats_support::unique("CONFIG"), dir)
}

async fn opens(config: &StoreConfig) -> Result<(), NatsOpenError> {
    let log = NatsEventLog::open(config).await?;
    log.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_and_tokens_reach_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = NatsServer::start_with(
        &nats_support::nats_server_binary(),
        &[
            "--user".into(),
            "hooknorm".into(),
            "--pass".into(),
            "s3cret-pass".into(),
        ],
    );
    let mut store = config(&server, dir.path());
    store.nats.connect_timeout_seconds = 2;
    store.nats.auth = NatsAuth::UserPassword {
        user: "hooknorm".into(),
        password: Secret::new("s3cret-pass"),
    };
    opens(&store).await.expect("user and password are accepted");
    store.nats.auth = NatsAuth::UserPassword {
        user: "hooknorm".into(),
        password: Secret::new("wrong-pass"),
    };
    let error = opens(&store)
        .await
        .expect_err("a wrong password is refused")
        .to_string();
    assert!(error.contains("cannot connect to nats"), "{error}");
    assert!(!error.contains("wrong-pass"), "a secret in {error}");

    let server = NatsServer::start_with(
        &nats_support::nats_server_binary(),
        &["--auth".into(), "t0ken-value".into()],
    );
    let mut store = config(&server, &dir.path().join("token"));
    store.nats.auth = NatsAuth::Token(Secret::new("t0ken-value"));
    opens(&store).await.expect("the token is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .output()
            .map(|output| output.status.success())
            .unwrap_or(false)
    };
    let made = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        &path("ca.key"),
        "-out",
        &path("ca.pem"),
    ]) && openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &path("server.key"),
        "-out",
        &path("server.csr"),
    ]) && {
        std::fs::write(path("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            &path("server.csr"),
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &path("san.ext"),
            "-out",
            &path("server.pem"),
        ])
    };
    if !made {
        eprintln!("SKIPPED: openssl cannot make test certificates here");
        return;
    }
    let server = NatsServer::start_with(
        &nats_support::nats_server_binary(),
        &[
            "--tls".into(),
            "--tlscert".into(),
            path("server.pem"),
            "--tlskey".into(),
            path("server.key"),
        ],
    );
    let mut store = config(&server, &dir.path().join("index"));
    store.nats.connect_timeout_seconds = 2;
    store.nats.tls.required = true;
    let error = opens(&store)
        .await
        .expect_err("an unknown CA is refused")
        .to_string();
    assert!(error.contains("cannot connect to nats"), "{error}");
    store.nats.tls.ca_file = Some(dir.path().join("ca.pem"));
    opens(&store).await.expect("TLS with the private CA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_with_other_settings_is_refused_and_left_alone() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = config(&server, dir.path());
    let mut missing = store.clone();
    missing.nats.create_stream = false;
    let error = opens(&missing).await.expect_err("no stream").to_string();
    assert!(error.contains("does not exist"), "{error}");

    opens(&store).await.expect("creates the stream");
    store.nats.max_age_seconds = 30 * 24 * 3600;
    store.nats.max_bytes = 1 << 30;
    let error = opens(&store).await.expect_err("other settings").to_string();
    assert!(error.contains("max_age is 0 s"), "{error}");
    assert!(error.contains("max_bytes is -1"), "{error}");
    assert!(error.contains("never alters"), "{error}");

    let client = async_nats::connect(server.url()).await.expect("connects");
    let stream = async_nats::jetstream::new(client)
        .get_stream(&store.nats.stream)
        .await
        .expect("the stream is still there");
    let config = &stream.cached_info().config;
    assert_eq!(config.max_age.as_secs(), 0, "left as it was");
    assert_eq!(config.max_bytes, -1, "left as it was");
}

/// A signed NATS JWT (`ed25519-nkey`) with `claims`, issued by `issuer` about `subject`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({
        "jti": nats_support::unique("JTI"),
        "iat": now,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let payload = b64(claims.to_string().as_bytes());
    let signed = format!("{header}.{payload}");
    let signature = issuer.sign(signed.as_bytes()).expect("signs");
    format!("{signed}.{}", b64(&signature))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_seeds_and_creds_files_reach_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");

    // An NKey user: the server knows only the public key.
    let user = nkeys::KeyPair::new_user();
    let conf = dir.path().join("nkey.conf");
    std::fs::write(
        &conf,
        format!(
            "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
            user.public_key()
        ),
    )
    .expect("conf");
    let server = NatsServer::start_with(
        &nats_support::nats_server_binary(),
        &["-c".into(), conf.display().to_string()],
    );
    let mut store = config(&server, &dir.path().join("nkey"));
    store.nats.connect_timeout_seconds = 2;
    store.nats.auth = NatsAuth::NKey(Secret::new(user.seed().expect("seed")));
    opens(&store)
        .await
        .expect("the seed signs the server's nonce");
    let stranger = nkeys::KeyPair::new_user().seed().expect("seed");
    store.nats.auth = NatsAuth::NKey(Secret::new(stranger.clone()));
    let error = opens(&store)
        .await
        .expect_err("an unknown nkey is refused")
        .to_string();
    assert!(error.contains("cannot connect to nats"), "{error}");
    assert!(!error.contains(&stranger), "a seed in {error}");

    // A decentralized (operator) server: the account's JWT preloaded, the user's in a .creds file
    // beside its seed, as `nsc generate creds` writes it.
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        serde_json::json!({ "type": "operator", "version": 2 }),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "conn": -1, "leaf": -1, "imports": -1, "exports": -1, "data": -1,
        "payload": -1, "wildcards": true,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "hooknorm",
        serde_json::json!({ "type": "account", "version": 2, "limits": unlimited }),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        "hooknorm",
        serde_json::json!({
            "type": "user", "version": 2, "pub": {}, "sub": {},
            "subs": -1, "data": -1, "payload": -1,
        }),
    );
    // JetStream needs a system account for its internal subscriptions.
    let system = nkeys::KeyPair::new_account();
    let system_jwt = jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({ "type": "account", "version": 2 }),
    );
    let conf = dir.path().join("operator.conf");
    std::fs::write(
        &conf,
        format!(
            "operator: {operator_jwt}\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{ {sys}: {system_jwt}, {account}: {account_jwt} }}\n",
            sys = system.public_key(),
            account = account.public_key(),
        ),
    )
    .expect("conf");
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().expect("seed")
    );
    let server = NatsServer::start_with(
        &nats_support::nats_server_binary(),
        &["-c".into(), conf.display().to_string()],
    );
    let mut store = config(&server, &dir.path().join("creds"));
    store.nats.connect_timeout_seconds = 2;
    store.nats.auth = NatsAuth::Credentials(Secret::new(creds));
    opens(&store)
        .await
        .expect("the creds file's JWT and seed are accepted, and JetStream is usable");
}
