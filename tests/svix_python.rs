//! Interop with the official `svix` Python library (an independent Standard Webhooks
//! implementation): what it signs, hooknorm verifies over real gRPC; what hooknorm's `send`
//! signer produces, it verifies. `scripts/test` installs it (tests/python/requirements.txt) and
//! sets HOOKNORM_TEST_PYTHON.

mod common;

use base64::Engine;
use common::*;
use hooknorm::verify::standard_webhooks::StandardWebhooksSigner;
use rand::RngCore;

fn run_svix(request: &serde_json::Value) -> serde_json::Value {
    common::python::run_script("svix_interop.py", request)
}

fn random_secret() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

#[tokio::test]
async fn svix_python_signatures_verify_and_ours_verify_in_svix() {
    let secrets: Vec<String> = (0..3).map(|_| random_secret()).collect();
    let toml = format!(
        r#"
[server]
grpc_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
ops_listen = "127.0.0.1:0"

[[sources]]
name = "gigs"
provider = "gigs"
verification = {{ scheme = "standard_webhooks", secrets = {secrets:?} }}
{TEST_AUTH}"#
    );
    let mut server = TestServer::start_with(&toml).await;
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<serde_json::Value> = (0..24u64)
        .map(|n| {
            serde_json::json!({
                "secret": secrets[n as usize % secrets.len()],
                "msg_id": format!("msg_interop_{n}"),
                "timestamp": now,
                "body_b64": base64::engine::general_purpose::STANDARD.encode(gigs_event(n, "sim.updated")),
            })
        })
        .collect();

    // svix signs -> hooknorm verifies.
    let answer = run_svix(&serde_json::json!({ "sign": cases }));
    let signatures = answer["signatures"].as_array().expect("signatures");
    assert_eq!(signatures.len(), cases.len());
    for (case, signature) in cases.iter().zip(signatures) {
        let msg_id = case["msg_id"].as_str().expect("id");
        let request = hooknorm::proto::v1::VerifyAndNormalizeRequest {
            source: "gigs".into(),
            headers: vec![
                header("svix-id", msg_id),
                header("svix-timestamp", &now.to_string()),
                header("svix-signature", signature.as_str().expect("signature")),
            ],
            body: base64::engine::general_purpose::STANDARD
                .decode(case["body_b64"].as_str().expect("body"))
                .expect("base64"),
            ..Default::default()
        };
        server
            .client
            .verify_and_normalize(request)
            .await
            .unwrap_or_else(|status| panic!("svix signature for {msg_id} refused: {status:?}"));
    }

    // hooknorm signs -> svix verifies; a tampered body does not.
    let mut verify_cases = Vec::new();
    for case in &cases {
        let secret = case["secret"].as_str().expect("secret");
        let body = base64::engine::general_purpose::STANDARD
            .decode(case["body_b64"].as_str().expect("body"))
            .expect("base64");
        let signature = StandardWebhooksSigner::new(secret)
            .expect("secret decodes")
            .sign(case["msg_id"].as_str().expect("id"), now, &body);
        let mut case = case.clone();
        case["signature"] = signature.into();
        verify_cases.push(case);
    }
    let mut tampered = verify_cases[0].clone();
    tampered["body_b64"] = base64::engine::general_purpose::STANDARD
        .encode(b"{\"tampered\":true}")
        .into();
    verify_cases.push(tampered);
    let answer = run_svix(&serde_json::json!({ "verify": verify_cases }));
    let verified: Vec<bool> = answer["verified"]
        .as_array()
        .expect("verified")
        .iter()
        .map(|v| v.as_bool().expect("bool"))
        .collect();
    let (tampered, genuine) = verified.split_last().expect("non-empty");
    assert!(
        genuine.iter().all(|ok| *ok),
        "svix refused hooknorm signatures: {verified:?}"
    );
    assert!(!tampered, "svix accepted a tampered body");
    server.shutdown().await;
}
