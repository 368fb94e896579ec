//! The real `hooknorm` binary: `serve` on port 0 answers health and reflection, `send` shows the
//! whole path for each provider, bad config fails start-up naming the key, and SIGTERM stops
//! the server cleanly.

mod common;

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
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    // Right after it reports listening, several times: the signal handler must already be in
    // place (it once was installed only after those log lines, and SIGTERM then killed it).
    for attempt in 0..8 {
        let mut running = serve(&config);
        running.sigterm();
        let status = running.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "attempt {attempt}: exit status {status}");
    }
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

/// Reads a stream to its end; returns the sequences it got and the ending status.
async fn drain(mut stream: common::stream::EventStream) -> (Vec<u64>, tonic::Status) {
    use hooknorm::proto::v1::stream_events_response::Message;
    let mut sequences = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("stream ends in time")
        {
            Ok(Some(response)) => {
                if let Some(Message::Event(event)) = response.message {
                    sequences.push(event.sequence);
                }
            }
            Ok(None) => panic!("stream closed without a status"),
            Err(status) => return (sequences, status),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_appends_in_flight_keeps_every_acknowledged_event() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use common::stream::*;
    use hooknorm::proto::v1::{EventFilter, ListEventsRequest};

    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::binary_config(dir.path(), "");
    let mut running = serve(&config);
    let mut readers = Vec::new();
    for filter in [
        EventFilter::default(),
        EventFilter {
            types: vec!["subscription.*".into()],
            ..Default::default()
        },
    ] {
        let mut client = connect(&running.addr).await;
        let stream = open_stream(&mut client, filter, earliest()).await;
        readers.push(tokio::spawn(async move {
            let _client = client;
            drain(stream).await
        }));
    }
    // id -> sequence of every append answered OK.
    let acknowledged: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let count = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let mut client = connect(&running.addr).await;
        let acknowledged = acknowledged.clone();
        let count = count.clone();
        writers.push(tokio::spawn(async move {
            for n in 0.. {
                let id = w * 100_000 + n;
                let kind = if n % 2 == 0 {
                    "sim.updated"
                } else {
                    "subscription.renewed"
                };
                match client
                    .verify_and_normalize(common::gigs_event_request(id, kind))
                    .await
                {
                    Ok(response) => {
                        let event = response.into_inner().event.expect("event");
                        acknowledged
                            .lock()
                            .expect("lock")
                            .insert(event.id, event.sequence);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // Refused once the server stops taking new calls.
                    Err(_) => break,
                }
            }
        }));
    }
    // Stop mid-load.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "no load before SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running.sigterm();
    for writer in writers {
        tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .expect("writers stop")
            .expect("writer");
    }
    let mut ends = Vec::new();
    for reader in readers {
        ends.push(reader.await.expect("reader"));
    }
    let exit = tokio::task::block_in_place(|| running.wait_exit(Duration::from_secs(15)));
    assert!(exit.success(), "exit status {exit}");
    drop(running);

    // Open streams end telling their clients to reconnect, and where to resume.
    for (sequences, status) in &ends {
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert_eq!(common::reason_of(status).0, "SHUTTING_DOWN", "{status:?}");
        let resume = resume_after(status);
        assert!(
            sequences.last().is_none_or(|last| *last <= resume),
            "resume after {resume}, but {sequences:?} were sent"
        );
    }
    let (unfiltered, status) = &ends[0];
    let resume = resume_after(status);
    assert_eq!(
        *unfiltered,
        (1..=resume).collect::<Vec<_>>(),
        "the unfiltered stream got every event up to its cursor"
    );

    // Every acknowledged event is stored, where it was acknowledged.
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 200);
    let running = serve(&config);
    let mut client = connect(&running.addr).await;
    let mut stored: HashMap<String, u64> = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_events(ListEventsRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        stored.extend(page.events.into_iter().map(|e| (e.id, e.sequence)));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    for (id, sequence) in &acknowledged {
        assert_eq!(stored.get(id), Some(sequence), "acknowledged {id} lost");
    }
    // Resuming from the cursor after the restart gives exactly the rest.
    let head = stored.values().copied().max().expect("events stored");
    let mut resumed = open_stream(&mut client, EventFilter::default(), after(resume)).await;
    let rest: Vec<u64> = (resume + 1..=head).collect();
    assert_eq!(next_sequences(&mut resumed, rest.len()).await, rest);
    eprintln!(
        "{} acknowledged, {} stored; the unfiltered stream ended after {resume}",
        acknowledged.len(),
        stored.len()
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
fn scheme_none_always_warns_at_start_up_naming_the_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    // `mm-open` (from the shared config) has no allowlist; this one has.
    let config = common::binary_config(
        dir.path(),
        "[[sources]]\nname = \"mm-open-allowlisted\"\nprovider = \"mobile_manager\"\n\
         allowed_cidrs = [\"10.9.0.0/16\"]\nverification = { scheme = \"none\" }\n",
    );
    let running = serve(&config);
    let warnings: Vec<(String, String)> = parsed(&running.startup_log)
        .into_iter()
        .filter(|line| line["level"] == "WARN")
        .map(|line| {
            (
                line["source"].as_str().unwrap_or_default().to_owned(),
                line["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let sources: Vec<&str> = warnings.iter().map(|(source, _)| source.as_str()).collect();
    assert_eq!(
        sources,
        ["mm-open", "mm-open-allowlisted"],
        "one warning per `none` source and none for others: {warnings:#?}"
    );
    for (source, message) in &warnings {
        assert!(message.contains("unauthenticated"), "{source}: {message}");
    }
    assert!(
        warnings[1].1.contains("allowed_cidrs"),
        "the allowlisted one says what still limits it: {warnings:#?}"
    );
}

#[tokio::test]
async fn json_log_format_writes_json_lines_and_text_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    // From the file alone: the environment variable the other tests set is removed.
    let config = common::binary_config(dir.path(), "[log]\nformat = \"json\"\n");
    let mut command = common::serve_command(BIN, Some(&config));
    command.env_remove("HOOKNORM_LOG_FORMAT");
    let mut running = common::spawn_serve(command);
    let mut client = common::stream::connect(&running.addr).await;
    // A refusal, so there is a request-time line as well as start-up ones.
    let status = client
        .verify_and_normalize(common::token_request("abowire", "token", "wrong", b"{}"))
        .await
        .expect_err("wrong token");
    assert_eq!(common::reason_of(&status).0, "TOKEN_MISMATCH");
    running.sigterm();
    let status = running.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    let mut lines = running.startup_log.clone();
    lines.extend(running.log_lines_until_exit(Duration::from_secs(5)));
    let lines = parsed(&lines);
    for line in &lines {
        for field in ["timestamp", "level", "message"] {
            assert!(line[field].is_string(), "no {field} in {line}");
        }
    }
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    for message in ["source configured", "webhook refused", "stopped"] {
        assert!(
            messages.contains(&message),
            "no {message:?} in {messages:?}"
        );
    }

    let config = common::binary_config(dir.path(), "[log]\nformat = \"text\"\n");
    let mut command = common::serve_command(BIN, Some(&config));
    command.env_remove("HOOKNORM_LOG_FORMAT");
    let mut child = command.spawn().expect("binary starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let line = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.contains("grpc listening"))
    });
    let line = tokio::task::spawn_blocking(move || line.join().expect("reader"))
        .await
        .expect("joins");
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("text log reports listening");
    assert!(
        serde_json::from_str::<serde_json::Value>(&line).is_err(),
        "text format wrote json: {line}"
    );
}

#[test]
fn sigint_stops_the_server_gracefully_like_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    for attempt in 0..3 {
        let mut running = serve(&config);
        running.signal("INT");
        let status = running.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "attempt {attempt}: exit status {status}");
        let lines = parsed(&running.log_lines_until_exit(Duration::from_secs(5)));
        assert!(
            lines
                .iter()
                .any(|l| l["message"] == "shutdown requested" && l["signal"] == "SIGINT"),
            "attempt {attempt}: {lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l["message"] == "stopped"),
            "attempt {attempt}: {lines:#?}"
        );
    }
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

#[tokio::test]
async fn secrets_never_reach_the_log() {
    const TOKEN: &str = "tok-never-in-the-log-5f2c9a";
    // Base64 of 24 distinctive bytes; the whsec_ form is what an operator pastes.
    const GIGS_SECRET: &str = "whsec_bmV2ZXItaW4tdGhlLWxvZy1laXRoZXIh";
    let dir = tempfile::tempdir().expect("tempdir");
    let config = common::binary_config(
        dir.path(),
        &format!(
            "[[sources]]\nname = \"abowire-secret\"\nprovider = \"abowire\"\n\
             verification = {{ tokens = [\"{TOKEN}\"] }}\n\n\
             [[sources]]\nname = \"gigs-secret\"\nprovider = \"gigs\"\n\
             verification = {{ secrets = [{{ env = \"HN_TEST_GIGS_SECRET\" }}] }}\n"
        ),
    );
    let mut command = common::serve_command(BIN, Some(&config));
    // Debug for hooknorm's own lines, so what it logs per request is all there.
    command
        .env("RUST_LOG", "info,hooknorm=debug")
        .env("HN_TEST_GIGS_SECRET", GIGS_SECRET);
    let mut running = common::spawn_serve(command);
    let mut client = common::stream::connect(&running.addr).await;
    let http_addr: std::net::SocketAddr = running.http_addr.parse().expect("http addr");
    let mut requests = vec![
        // The right token with a body that is no Abowire event: the URI carries the secret.
        common::token_request("abowire-secret", "token", TOKEN, b"{\"nothing\": 1}"),
        // A near miss of the token.
        common::token_request("abowire-secret", "token", &format!("{TOKEN}x"), b"{}"),
        // The right secret signing a body that is not JSON.
        common::gigs_request(
            b"not json",
            GIGS_SECRET,
            "msg_s",
            chrono::Utc::now().timestamp(),
        ),
    ];
    // A signature by the right secret over other content.
    let mut tampered =
        common::gigs_request(b"{}", GIGS_SECRET, "msg_t", chrono::Utc::now().timestamp());
    tampered.body = b"{ }".to_vec();
    requests.push(tampered);
    for request in &mut requests {
        if request.source == "gigs" {
            request.source = "gigs-secret".into();
            request.request_uri = "/webhooks/gigs-secret".into();
        }
    }
    for request in &requests {
        client
            .verify_and_normalize(request.clone())
            .await
            .expect_err("refused");
        let answer = common::http::post_webhook(http_addr, request).await;
        assert!(answer.status >= 400, "{}", answer.status);
    }
    running.sigterm();
    let status = running.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    let mut lines = running.startup_log.clone();
    lines.extend(running.log_lines_until_exit(Duration::from_secs(5)));
    let refused = lines
        .iter()
        .filter(|l| l.contains("webhook refused"))
        .count();
    assert!(refused >= requests.len() * 2, "{lines:#?}");
    let secret_body = GIGS_SECRET.trim_start_matches("whsec_");
    for line in &lines {
        for secret in [
            TOKEN,
            secret_body,
            common::GIGS_SECRET,
            common::ABOWIRE_TOKEN,
            common::TEST_API_KEY,
        ] {
            assert!(!line.contains(secret), "secret in log line: {line}");
        }
    }
}
