//! The real `hooknorm` binary: `serve` on port 0 answers health and reflection, `send` shows the
//! whole path for each provider, bad config fails start-up naming the key, and SIGTERM stops
//! the server cleanly.

#[path = "../common/mod.rs"]
mod common;
mod logs;
mod shutdown;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");

fn serve(config: &Path) -> common::Running {
    common::serve_binary(BIN, config)
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    common::binary_config(dir, "")
}

#[test]
fn send_shows_each_provider_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let running = serve(&config);
    for (source, sample, want_type) in [
        ("gigs", "subscription.activated", "subscription.activated"),
        (
            "gigs",
            "portOutCredentials.issued",
            "port_out_credentials.issued",
        ),
        ("abowire", "api-key.revoke", "api_key.revoked"),
        (
            "abowire-header",
            "subscription.bulk-enable",
            "subscription.bulk_enabled",
        ),
        (
            "abowire-basic",
            "current.customer.updated",
            "customer.updated",
        ),
        ("mm", "order.complete", "order.completed"),
        ("mm", "alert.off", "alert.cleared"),
    ] {
        let output = Command::new(BIN)
            .args(["send", "--config"])
            .arg(&config)
            .args(["--source", source, "--sample", sample, "--server"])
            .arg(format!("http://{}", running.addr))
            .output()
            .expect("send runs");
        assert!(
            output.status.success(),
            "{source}/{sample}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let json: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("send prints json");
        assert_eq!(
            json["event"]["type"], want_type,
            "{source}/{sample}: {json}"
        );
        assert_eq!(json["event"]["source"], source);
    }

    // A refused webhook: the reason reaches the user and the exit code is non-zero.
    let bogus = dir.path().join("bogus.json");
    std::fs::write(&bogus, "[1,2]").expect("written");
    let output = Command::new(BIN)
        .args(["send", "--config"])
        .arg(&config)
        .args(["--source", "abowire", "--file"])
        .arg(&bogus)
        .args(["--server"])
        .arg(format!("http://{}", running.addr))
        .output()
        .expect("send runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MALFORMED_PAYLOAD"), "{stderr}");

    // Readers given --server need no config file: run from a directory that has none.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let output = Command::new(BIN)
        .current_dir(elsewhere.path())
        .env_remove("HOOKNORM_CONFIG")
        .env("HOOKNORM_API_KEY", common::TEST_API_KEY)
        .args(["events", "--limit", "3", "--server"])
        .arg(format!("http://{}", running.addr))
        .output()
        .expect("events runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one json event per line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["type"], "alert.cleared", "newest first");
}

#[tokio::test]
async fn health_and_reflection_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = serve(&write_config(dir.path()));
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", running.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connects");

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "hooknorm.v1.NormalizerService"] {
        let response = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner();
        assert_eq!(
            response.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "service {service:?}"
        );
    }

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = stream
        .message()
        .await
        .expect("message")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"hooknorm.v1.NormalizerService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

#[test]
fn invalid_config_fails_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (toml, key) in [
        ("[server]\ngrpc_listen = \"nonsense\"", "grpc_listen"),
        (
            "[[sources]]\nname = \"g\"\nprovider = \"gigs\"\nverification = { secrets = [\"whsec_%%%notbase64\"] }",
            "sources[0].verification",
        ),
        (
            "[[sources]]\nname = \"a\"\nprovider = \"abowire\"\nverification = { tokens = [{ env = \"HN_NOT_SET_XYZ\" }] }",
            "sources[0].verification.tokens[0]",
        ),
        (
            "[[sources]]\nname = \"a\"\nprovider = \"abowire\"",
            "sources[0].verification",
        ),
        (
            "[[sources]]\nname = \"m\"\nprovider = \"mobile_manager\"\nallowed_cidrs = [\"10.0.0.0/33\"]\nverification = { scheme = \"none\" }",
            "sources[0].allowed_cidrs[0]",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).expect("written");
        let output = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .expect("runs");
        assert!(!output.status.success(), "{toml}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "expected `{key}` in: {stderr}");
        assert!(!stderr.contains("%%%notbase64"), "secret echoed: {stderr}");
    }
    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("hooknorm.toml"))
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "dev config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The parsed JSON log lines in `lines` (panics on one that is not a JSON object).
fn parsed(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|line| match serde_json::from_str(line) {
            Ok(value @ serde_json::Value::Object(_)) => value,
            _ => panic!("log line is not a json object: {line}"),
        })
        .collect()
}

#[test]
fn serve_without_config_reads_hooknorm_toml_in_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    // binary_config writes `<dir>/hooknorm.toml`.
    write_config(dir.path());
    let mut command = common::serve_command(BIN, None);
    command.current_dir(dir.path());
    let running = common::spawn_serve(command);
    // `gigs-ed25519` is in the test config only, not in the repository's dev config.
    let sources: Vec<String> = parsed(&running.startup_log)
        .iter()
        .filter(|l| l["message"] == "source configured")
        .filter_map(|l| l["source"].as_str().map(str::to_owned))
        .collect();
    assert!(sources.contains(&"gigs-ed25519".to_owned()), "{sources:?}");
    drop(running);

    // And without one there, it says which file it looked for.
    let empty = tempfile::tempdir().expect("tempdir");
    let output = common::serve_command(BIN, None)
        .current_dir(empty.path())
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("hooknorm.toml"), "{stderr}");
}

#[test]
fn serve_with_a_bad_config_exits_non_zero_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (toml, key) in [
        ("[server]\ngrpc_listen = \"nonsense\"", "grpc_listen"),
        ("[limits]\nmax_body_bytes = \"big\"", "max_body_bytes"),
        (
            "[[sources]]\nname = \"g\"\nprovider = \"gigs\"\nverification = { secrets = [\"whsec_%%%notbase64\"] }",
            "sources[0].verification",
        ),
        (
            "[[sources]]\nname = \"m\"\nprovider = \"mobile_manager\"\nverification = { scheme = \"none\", extra = 1 }",
            "extra",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).expect("written");
        let output = common::serve_command(BIN, Some(&path))
            .output()
            .expect("runs");
        assert!(!output.status.success(), "{toml}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "expected `{key}` in: {stderr}");
        assert!(!stderr.contains("%%%notbase64"), "secret echoed: {stderr}");
    }
}
