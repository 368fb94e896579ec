//! Standard Webhooks signatures over real gRPC against a server on 127.0.0.1:0: every published
//! test vector the unit tests use (svix's example, the `standardwebhooks` crate's, the reference
//! libraries' `v1a` ed25519 vector and their invalid and partial signatures) gets its expected
//! outcome, and `v1a` signatures made here with ed25519-dalek verify against `whpk_` keys.

mod common;

use common::*;
use hooknorm::proto::v1::VerifyAndNormalizeRequest;
use tonic::Code;

// The svix / Standard Webhooks example every reference library tests with (secret: GIGS_SECRET).
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP: i64 = 1614265330;
const BODY: &str = r#"{"test": 2432232314}"#;
const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
/// The reference libraries' `v1a` signature of the same message, by the key of V1A_REFERENCE_SEED.
const V1A_SIGNATURE: &str =
    "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==";
/// A well-formed `v1` entry that matches nothing (from the reference multi-signature tests).
const OTHER_V1: &str = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
const V2: &str = "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";

// The `standardwebhooks` crate's own vector (secret: GIGS_SECRET_NEW).
const CRATE_MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const CRATE_TIMESTAMP: i64 = 1649367553;
const CRATE_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
const CRATE_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

/// What a vector should get.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The signature verifies. The vectors' bodies are not Gigs events, so the request then
    /// fails normalization: `MALFORMED_PAYLOAD` is proof that verification passed.
    Verifies,
    /// Verification refuses it with this reason.
    Refused(&'static str),
}

/// One published vector, sent as `webhook-*` headers and received at the signed time (unless
/// `received_at` says otherwise).
struct Vector {
    name: &'static str,
    source: &'static str,
    msg_id: &'static str,
    timestamp: i64,
    body: &'static str,
    signature: String,
    received_at: i64,
    outcome: Outcome,
}

fn svix(name: &'static str, source: &'static str, signature: &str, outcome: Outcome) -> Vector {
    Vector {
        name,
        source,
        msg_id: MSG_ID,
        timestamp: TIMESTAMP,
        body: BODY,
        signature: signature.to_owned(),
        received_at: TIMESTAMP,
        outcome,
    }
}

fn request(vector: &Vector) -> VerifyAndNormalizeRequest {
    VerifyAndNormalizeRequest {
        source: vector.source.into(),
        headers: vec![
            header("webhook-id", vector.msg_id),
            header("webhook-timestamp", &vector.timestamp.to_string()),
            header("webhook-signature", &vector.signature),
        ],
        body: vector.body.as_bytes().to_vec(),
        request_uri: format!("/webhooks/{}", vector.source),
        received_at: Some(prost_types::Timestamp {
            seconds: vector.received_at,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn vectors() -> Vec<Vector> {
    use Outcome::*;
    let mut vectors = vec![
        svix("svix example", "gigs", SIGNATURE, Verifies),
        Vector {
            name: "standardwebhooks crate vector",
            source: "gigs",
            msg_id: CRATE_MSG_ID,
            timestamp: CRATE_TIMESTAMP,
            body: CRATE_BODY,
            signature: CRATE_SIGNATURE.to_owned(),
            received_at: CRATE_TIMESTAMP,
            outcome: Verifies,
        },
        svix(
            "v1a reference vector",
            "gigs-ed25519",
            V1A_SIGNATURE,
            Verifies,
        ),
        Vector {
            name: "svix example, body tampered",
            body: r#"{"test": 2432232315}"#,
            ..svix("", "gigs", SIGNATURE, Refused("SIGNATURE_MISMATCH"))
        },
        // The reference libraries' invalid signatures: well-formed but wrong...
        svix(
            "last character changed",
            "gigs",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
            Refused("SIGNATURE_MISMATCH"),
        ),
        svix(
            "other v1 signature",
            "gigs",
            OTHER_V1,
            Refused("SIGNATURE_MISMATCH"),
        ),
        // ...and partial ones, which are not a 32-byte MAC at all.
        svix(
            "too short",
            "gigs",
            "v1,dawfeoifkpqwoekfpqoekf",
            Refused("MALFORMED_SIGNATURE"),
        ),
        svix("empty v1", "gigs", "v1,", Refused("MALFORMED_SIGNATURE")),
        svix(
            "truncated",
            "gigs",
            &SIGNATURE[..8],
            Refused("MALFORMED_SIGNATURE"),
        ),
        svix(
            "v1a partial",
            "gigs-ed25519",
            "v1a,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            Refused("MALFORMED_SIGNATURE"),
        ),
        svix(
            "empty v1a",
            "gigs-ed25519",
            "v1a,",
            Refused("MALFORMED_SIGNATURE"),
        ),
        // The reference multi-signature headers: any valid entry passes, unknown versions skip.
        svix(
            "valid among several",
            "gigs",
            &format!("{OTHER_V1} {V2} {SIGNATURE} {OTHER_V1}"),
            Verifies,
        ),
        svix(
            "valid last, double space",
            "gigs",
            &format!("{OTHER_V1} {OTHER_V1}  {SIGNATURE}"),
            Verifies,
        ),
        svix(
            "none valid among several",
            "gigs",
            &format!("{OTHER_V1} {V2} {OTHER_V1}"),
            Refused("SIGNATURE_MISMATCH"),
        ),
        // Each key only checks its own version.
        svix(
            "v1a vector on an hmac-only source",
            "gigs",
            V1A_SIGNATURE,
            Refused("SIGNATURE_MISMATCH"),
        ),
        svix(
            "v1 vector on a public-key-only source",
            "gigs-ed25519",
            SIGNATURE,
            Refused("SIGNATURE_MISMATCH"),
        ),
    ];
    // The genuine signatures replayed an hour late, or received an hour early.
    for (name, skew) in [("v1 replayed", 3600), ("v1 from the future", -3600)] {
        let mut vector = svix(
            name,
            "gigs",
            SIGNATURE,
            Refused("TIMESTAMP_OUT_OF_TOLERANCE"),
        );
        vector.received_at = TIMESTAMP + skew;
        vectors.push(vector);
    }
    let mut vector = svix(
        "v1a replayed",
        "gigs-ed25519",
        V1A_SIGNATURE,
        Refused("TIMESTAMP_OUT_OF_TOLERANCE"),
    );
    vector.received_at = TIMESTAMP + 301;
    vectors.push(vector);
    vectors
}

#[tokio::test]
async fn every_published_vector_gets_its_outcome_over_grpc() {
    let mut server = TestServer::start().await;
    let vectors = vectors();
    assert!(vectors.len() >= 18, "too few vectors: {}", vectors.len());
    for vector in &vectors {
        let status = server
            .client
            .verify_and_normalize(request(vector))
            .await
            .expect_err("no vector body is a gigs event");
        let (want_code, want_reason) = match vector.outcome {
            Outcome::Verifies => (Code::InvalidArgument, "MALFORMED_PAYLOAD"),
            Outcome::Refused(reason) => (Code::Unauthenticated, reason),
        };
        assert_eq!(
            (status.code(), reason_of(&status).0.as_str()),
            (want_code, want_reason),
            "{}: {status:?}",
            vector.name
        );
    }
    // The same vectors under Svix's header names.
    for vector in vectors
        .iter()
        .filter(|v| matches!(v.outcome, Outcome::Verifies))
    {
        let mut request = request(vector);
        for h in &mut request.headers {
            h.name = h.name.replacen("webhook-", "svix-", 1);
        }
        let status = server
            .client
            .verify_and_normalize(request)
            .await
            .expect_err("not a gigs event");
        assert_eq!(
            reason_of(&status).0,
            "MALFORMED_PAYLOAD",
            "{} (svix-*): {status:?}",
            vector.name
        );
    }
    server.shutdown().await;
}

/// A Gigs fixture sent to `gigs-ed25519` with `signature` as its signature header.
fn v1a_request(
    body: &[u8],
    msg_id: &str,
    timestamp: i64,
    signature: &str,
) -> VerifyAndNormalizeRequest {
    let mut request = gigs_request(body, GIGS_SECRET, msg_id, timestamp);
    request.source = "gigs-ed25519".into();
    request.request_uri = "/webhooks/gigs-ed25519".into();
    for h in &mut request.headers {
        if h.name == "webhook-signature" {
            h.value = signature.to_owned();
        }
    }
    request
}

#[tokio::test]
async fn v1a_signatures_made_with_ed25519_dalek_verify() {
    let mut server = TestServer::start().await;
    let body = std::fs::read(fixtures_dir().join("gigs/sim.retired.json")).expect("fixture");
    let now = chrono::Utc::now().timestamp();
    let key = ed25519_dalek::SigningKey::from_bytes(&V1A_TEST_SEED);

    let signature = sign_v1a(&key, "msg_v1a", now, &body);
    let event = server
        .client
        .verify_and_normalize(v1a_request(&body, "msg_v1a", now, &signature))
        .await
        .expect("v1a by a configured key verifies")
        .into_inner()
        .event
        .expect("event");
    assert_eq!(event.r#type, "sim.retired");
    assert_eq!(event.source, "gigs-ed25519");

    // Next to entries this source cannot check, as a sender rolling keys would send it.
    let mixed = format!("{OTHER_V1} {V2} {signature}");
    server
        .client
        .verify_and_normalize(v1a_request(&body, "msg_v1a", now, &mixed))
        .await
        .expect("v1a among other entries verifies");

    // A key the source does not have.
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let forged = sign_v1a(&stranger, "msg_v1a", now, &body);
    let status = server
        .client
        .verify_and_normalize(v1a_request(&body, "msg_v1a", now, &forged))
        .await
        .expect_err("unknown key");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        reason_of(&status),
        ("SIGNATURE_MISMATCH".into(), "hooknorm".into())
    );

    // The right key over other content: body, id and timestamp are all signed.
    let mut tampered = v1a_request(&body, "msg_v1a", now, &signature);
    tampered.body.push(b' ');
    let other_id = v1a_request(&body, "msg_other", now, &signature);
    let other_time = v1a_request(&body, "msg_v1a", now + 1, &signature);
    for request in [tampered, other_id, other_time] {
        let status = server
            .client
            .verify_and_normalize(request)
            .await
            .expect_err("signature over other content");
        assert_eq!(reason_of(&status).0, "SIGNATURE_MISMATCH", "{status:?}");
    }
    server.shutdown().await;
}
