//! What the binary logs: the start-up warning for unauthenticated sources, JSON and text
//! formats, and never a secret.

use super::*;

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
