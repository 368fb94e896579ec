//! Tests for the Standard Webhooks verifier and signer, including the vectors published by the
//! standard-webhooks reference libraries and interop with the independent `standardwebhooks` crate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::*;

// The `v1a` (ed25519) tests, in their own file to keep this one short.
mod v1a;

// The vector every reference library (Go, Python, JavaScript, ...) tests `sign` with.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP: i64 = 1614265330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
/// A well-formed `v1` entry that matches nothing (from the reference multi-signature tests).
const OTHER_V1: &str = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";

fn at(timestamp: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(timestamp, 0).unwrap()
}

fn webhook(headers: &[(&str, &str)], body: &[u8], received: i64) -> RawWebhook {
    RawWebhook {
        source: "gigs".into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
        request_uri: "/webhooks/gigs".into(),
        remote_addr: None,
        received_at: at(received),
    }
}

/// The reference vector's request with `signature` and a timestamp header, received at `TIMESTAMP`.
fn signed(timestamp: &str, signature: &str) -> RawWebhook {
    webhook(
        &[
            ("webhook-id", MSG_ID),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        ],
        BODY,
        TIMESTAMP,
    )
}

fn secrets(values: &[&str]) -> Vec<Secret> {
    values.iter().map(|v| Secret::new(*v)).collect()
}

fn verifier(values: &[&str]) -> StandardWebhooksVerifier {
    StandardWebhooksVerifier::new(&secrets(values), &[], Duration::from_secs(300)).unwrap()
}

fn malformed(result: Result<(), VerifyError>) -> bool {
    matches!(result, Err(VerifyError::MalformedSignature { .. }))
}

fn random_secret(rng: &mut impl Rng) -> String {
    let key: [u8; 24] = rng.r#gen();
    format!("whsec_{}", BASE64.encode(key))
}

#[test]
fn signer_reproduces_published_vectors() {
    let signer = StandardWebhooksSigner::new(SECRET).unwrap();
    assert_eq!(signer.sign(MSG_ID, TIMESTAMP, BODY), SIGNATURE);
    // The prefix is optional.
    let unprefixed = StandardWebhooksSigner::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert_eq!(unprefixed.sign(MSG_ID, TIMESTAMP, BODY), SIGNATURE);
    assert_eq!(
        sign_v1(&Secret::new(SECRET), MSG_ID, TIMESTAMP, BODY).unwrap(),
        SIGNATURE
    );
    // The `standardwebhooks` crate's own vector.
    let signer = StandardWebhooksSigner::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    assert_eq!(
        signer.sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        ),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

#[test]
fn published_vector_verifies_with_and_without_prefix() {
    let request = signed(&TIMESTAMP.to_string(), SIGNATURE);
    assert_eq!(verifier(&[SECRET]).check(&request), Ok(()));
    assert_eq!(
        verifier(&["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]).check(&request),
        Ok(())
    );
}

#[test]
fn svix_header_names_are_accepted() {
    let request = webhook(
        &[
            ("Svix-Id", MSG_ID),
            ("Svix-Timestamp", &TIMESTAMP.to_string()),
            ("Svix-Signature", SIGNATURE),
        ],
        BODY,
        TIMESTAMP,
    );
    assert_eq!(verifier(&[SECRET]).check(&request), Ok(()));
}

#[test]
fn published_invalid_signatures_are_rejected() {
    let v = verifier(&[SECRET]);
    let ts = TIMESTAMP.to_string();
    // Last character changed: well-formed but wrong.
    let wrong = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
    assert_eq!(
        v.check(&signed(&ts, wrong)),
        Err(VerifyError::SignatureMismatch)
    );
    assert_eq!(
        v.check(&signed(&ts, OTHER_V1)),
        Err(VerifyError::SignatureMismatch)
    );
    // Too short, empty, truncated: not a 32-byte signature at all.
    assert!(malformed(
        v.check(&signed(&ts, "v1,dawfeoifkpqwoekfpqoekf"))
    ));
    assert!(malformed(v.check(&signed(&ts, "v1,"))));
    assert!(malformed(v.check(&signed(&ts, &SIGNATURE[..8]))));
    assert!(malformed(v.check(&signed(&ts, "v1,not base64!"))));
    assert!(malformed(v.check(&signed(&ts, "v1,****"))));
}

#[test]
fn body_id_and_timestamp_are_all_covered() {
    let v = verifier(&[SECRET]);
    let ts = TIMESTAMP.to_string();
    let mut request = signed(&ts, SIGNATURE);
    request.body = br#"{"test": 2432232315}"#.to_vec();
    assert_eq!(v.check(&request), Err(VerifyError::SignatureMismatch));
    let mut request = signed(&ts, SIGNATURE);
    request.headers[0].1 = "msg_other".into();
    assert_eq!(v.check(&request), Err(VerifyError::SignatureMismatch));
    // One second later is within tolerance but not what was signed.
    let request = signed(&(TIMESTAMP + 1).to_string(), SIGNATURE);
    assert_eq!(v.check(&request), Err(VerifyError::SignatureMismatch));
}

#[test]
fn any_valid_entry_among_several_passes() {
    let v = verifier(&[SECRET]);
    let ts = TIMESTAMP.to_string();
    let v2 = "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
    let reference = format!("{OTHER_V1} {v2} {SIGNATURE} {OTHER_V1}");
    assert_eq!(v.check(&signed(&ts, &reference)), Ok(()));
    let last_only = format!("{OTHER_V1} {OTHER_V1}  {SIGNATURE}");
    assert_eq!(v.check(&signed(&ts, &last_only)), Ok(()));
    let none = format!("{OTHER_V1} {v2} {OTHER_V1}");
    assert_eq!(
        v.check(&signed(&ts, &none)),
        Err(VerifyError::SignatureMismatch)
    );
    // A malformed entry does not spoil a valid one...
    let with_garbage = format!("v1,!!! {SIGNATURE}");
    assert_eq!(v.check(&signed(&ts, &with_garbage)), Ok(()));
    // ...but is reported when nothing matched.
    assert!(malformed(
        v.check(&signed(&ts, &format!("v1,!!! {OTHER_V1}")))
    ));
}

#[test]
fn at_most_max_signature_entries_are_tried() {
    let v = verifier(&[SECRET]);
    let ts = TIMESTAMP.to_string();
    let wrong = |n: usize| vec![OTHER_V1; n].join(" ");
    // The last entry the bound allows still passes...
    let at_bound = format!("{} {SIGNATURE}", wrong(MAX_SIGNATURE_ENTRIES - 1));
    assert_eq!(v.check(&signed(&ts, &at_bound)), Ok(()));
    // ...one past it is never checked, whatever follows: a long list buys no more work.
    let past = format!("{} {SIGNATURE}", wrong(MAX_SIGNATURE_ENTRIES));
    let refused = v.check(&signed(&ts, &past));
    assert!(malformed(refused.clone()), "{refused:?}");
    let why = refused.unwrap_err().to_string();
    assert!(why.contains(&MAX_SIGNATURE_ENTRIES.to_string()), "{why}");
    // A match early in a long list passes at once.
    let early = format!("{SIGNATURE} {}", wrong(100));
    assert_eq!(v.check(&signed(&ts, &early)), Ok(()));
}

#[test]
fn repeated_signature_headers_are_all_considered() {
    let ts = TIMESTAMP.to_string();
    let request = webhook(
        &[
            ("webhook-id", MSG_ID),
            ("webhook-timestamp", &ts),
            ("webhook-signature", OTHER_V1),
            ("webhook-signature", SIGNATURE),
        ],
        BODY,
        TIMESTAMP,
    );
    assert_eq!(verifier(&[SECRET]).check(&request), Ok(()));
}

#[test]
fn unknown_versions_are_skipped() {
    let v = verifier(&[SECRET]);
    let ts = TIMESTAMP.to_string();
    let mixed = format!("v2,whatever v1b,@@@ {SIGNATURE}");
    assert_eq!(v.check(&signed(&ts, &mixed)), Ok(()));
    assert_eq!(
        v.check(&signed(
            &ts,
            "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
        )),
        Err(VerifyError::SignatureMismatch)
    );
    // No `version,signature` entry at all.
    for header in ["", "   ", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="] {
        assert!(malformed(v.check(&signed(&ts, header))), "{header:?}");
    }
}

#[test]
fn rotated_secrets_accept_any_of_them() {
    let mut rng = rand::thread_rng();
    let old = random_secret(&mut rng);
    let v = verifier(&[&old, SECRET]);
    let ts = TIMESTAMP.to_string();
    assert_eq!(v.check(&signed(&ts, SIGNATURE)), Ok(()));
    let by_old = StandardWebhooksSigner::new(&old)
        .unwrap()
        .sign(MSG_ID, TIMESTAMP, BODY);
    assert_eq!(v.check(&signed(&ts, &by_old)), Ok(()));
    let by_stranger = StandardWebhooksSigner::new(&random_secret(&mut rng))
        .unwrap()
        .sign(MSG_ID, TIMESTAMP, BODY);
    assert_eq!(
        v.check(&signed(&ts, &by_stranger)),
        Err(VerifyError::SignatureMismatch)
    );
}

#[test]
fn timestamps_outside_tolerance_are_rejected_both_ways() {
    let signer = StandardWebhooksSigner::new(SECRET).unwrap();
    let v = verifier(&[SECRET]);
    let received = TIMESTAMP;
    let request = |sent: i64| {
        webhook(
            &[
                ("webhook-id", MSG_ID),
                ("webhook-timestamp", &sent.to_string()),
                ("webhook-signature", &signer.sign(MSG_ID, sent, BODY)),
            ],
            BODY,
            received,
        )
    };
    // Exactly at the edge is still accepted, as in the reference libraries.
    assert_eq!(v.check(&request(received - 300)), Ok(()));
    assert_eq!(v.check(&request(received + 300)), Ok(()));
    assert_eq!(
        v.check(&request(received - 301)),
        Err(VerifyError::TimestampOutOfTolerance {
            timestamp: received - 301,
            skew_seconds: 301,
            tolerance_seconds: 300,
        })
    );
    assert_eq!(
        v.check(&request(received + 301)),
        Err(VerifyError::TimestampOutOfTolerance {
            timestamp: received + 301,
            skew_seconds: -301,
            tolerance_seconds: 300,
        })
    );
    assert!(matches!(
        v.check(&request(0)),
        Err(VerifyError::TimestampOutOfTolerance { .. })
    ));
    let strict =
        StandardWebhooksVerifier::new(&secrets(&[SECRET]), &[], Duration::from_secs(10)).unwrap();
    assert_eq!(strict.check(&request(received - 10)), Ok(()));
    assert!(strict.check(&request(received - 11)).is_err());
}

#[test]
fn stale_replay_and_forgery_are_told_apart() {
    let v = verifier(&[SECRET]);
    // The genuine signature, replayed an hour later: a replay, not a forgery.
    let mut replay = signed(&TIMESTAMP.to_string(), SIGNATURE);
    replay.received_at = at(TIMESTAMP + 3600);
    assert!(matches!(
        v.check(&replay),
        Err(VerifyError::TimestampOutOfTolerance { .. })
    ));
    // A fresh timestamp with a made-up signature: a forgery.
    let forged = signed(&TIMESTAMP.to_string(), OTHER_V1);
    assert_eq!(v.check(&forged), Err(VerifyError::SignatureMismatch));
}

#[test]
fn timestamp_must_be_an_integer() {
    let v = verifier(&[SECRET]);
    for timestamp in [
        "hello",
        "1614265330.0",
        "+1614265330",
        " 1614265330",
        "-1614265330",
        "1.6e9",
        "",
        "99999999999999999999",
    ] {
        let result = v.check(&signed(timestamp, SIGNATURE));
        assert!(malformed(result.clone()), "{timestamp:?}: {result:?}");
    }
}

#[test]
fn each_missing_header_is_named() {
    let v = verifier(&[SECRET]);
    let ts = TIMESTAMP.to_string();
    let all = [
        ("webhook-id", MSG_ID),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", SIGNATURE),
    ];
    for (skip, name) in ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .into_iter()
        .enumerate()
    {
        let headers: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, h)| *h)
            .collect();
        assert_eq!(
            v.check(&webhook(&headers, BODY, TIMESTAMP)),
            Err(VerifyError::MissingSignature {
                what: format!("{name} header")
            })
        );
    }
}

#[test]
fn bad_keys_fail_construction_without_revealing_them() {
    let tolerance = Duration::from_secs(300);
    let error =
        StandardWebhooksVerifier::new(&secrets(&[SECRET, "whsec_n0t*base64!"]), &[], tolerance)
            .unwrap_err();
    assert!(error.starts_with("secrets[1] "), "{error}");
    assert!(error.contains("base64"), "{error}");
    assert!(!error.contains("n0t"), "{error}");
    let error = StandardWebhooksVerifier::new(&secrets(&["whsec_"]), &[], tolerance).unwrap_err();
    assert!(
        error.contains("secrets[0]") && error.contains("empty"),
        "{error}"
    );
    let error = StandardWebhooksVerifier::new(&[], &[], tolerance).unwrap_err();
    assert!(error.contains("at least one"), "{error}");
    let many = vec![Secret::new(SECRET); MAX_SECRETS + 1];
    let error = StandardWebhooksVerifier::new(&many, &[], tolerance).unwrap_err();
    assert!(error.contains("at most 8"), "{error}");
    let most = vec![Secret::new(SECRET); MAX_SECRETS];
    let v = StandardWebhooksVerifier::new(&most, &[], tolerance).unwrap();
    assert_eq!(v.check(&signed(&TIMESTAMP.to_string(), SIGNATURE)), Ok(()));
    for (key, why) in [
        ("whpk_$$$$", "base64"),
        ("whpk_AAAA", "32-byte"),
        // The identity point: small order, so it would accept forgeries.
        ("whpk_AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "weak"),
    ] {
        let error = StandardWebhooksVerifier::new(&[], &secrets(&[key]), tolerance).unwrap_err();
        assert!(error.starts_with("public_keys[0] "), "{error}");
        assert!(error.contains(why), "{error}");
    }
    let error = StandardWebhooksSigner::new("whsec_n0t*base64!").unwrap_err();
    assert!(!error.contains("n0t"), "{error}");
}

#[test]
fn accepts_what_the_standardwebhooks_crate_signs_and_signs_alike() {
    let mut rng = rand::thread_rng();
    for _ in 0..64 {
        let secret = random_secret(&mut rng);
        let id = format!("msg_{}", rng.r#gen::<u64>());
        let timestamp = rng.gen_range(1_000_000_000..4_000_000_000i64);
        let len = rng.gen_range(0..2048);
        let body: String = (0..len).map(|_| rng.r#gen::<char>()).collect();
        let theirs = standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .sign(&id, timestamp, body.as_bytes())
            .unwrap();
        let ours =
            StandardWebhooksSigner::new(&secret)
                .unwrap()
                .sign(&id, timestamp, body.as_bytes());
        assert_eq!(ours, theirs);
        let request = webhook(
            &[
                ("webhook-id", &id),
                ("webhook-timestamp", &timestamp.to_string()),
                ("webhook-signature", &theirs),
            ],
            body.as_bytes(),
            timestamp + rng.gen_range(-300..=300),
        );
        assert_eq!(verifier(&[&secret]).check(&request), Ok(()));
    }
}

#[test]
fn binary_bodies_round_trip() {
    // Bodies are bytes, not text: the `standardwebhooks` crate cannot sign these, we can.
    let mut rng = rand::thread_rng();
    let secret = random_secret(&mut rng);
    let signer = StandardWebhooksSigner::new(&secret).unwrap();
    for len in [0, 1, 63, 64, 65, 1024, 16 * 1024 + 3] {
        let body: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
        let request = webhook(
            &[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", "1700000000"),
                (
                    "webhook-signature",
                    &signer.sign("msg_1", 1_700_000_000, &body),
                ),
            ],
            &body,
            1_700_000_000,
        );
        assert_eq!(verifier(&[&secret]).check(&request), Ok(()), "{len}");
    }
}

#[test]
fn debug_and_errors_never_show_secrets_or_signatures() {
    let v = verifier(&[SECRET]);
    let signer = StandardWebhooksSigner::new(SECRET).unwrap();
    let keys = StandardWebhooksKeys::decode(&secrets(&[SECRET]), &[]).unwrap();
    let shown = format!("{v:?} {signer:?} {keys:?}");
    assert!(!shown.contains("MfKQ9r8"), "{shown}");
    // What they do show: counts, and where a key sits, that it is redacted.
    assert!(
        shown.contains("StandardWebhooksVerifier { secrets: 1"),
        "{shown}"
    );
    assert!(shown.contains("HmacKey(<redacted>)"), "{shown}");
    assert!(
        shown.contains("StandardWebhooksKeys { secrets: 1, public_keys: 0 }"),
        "{shown}"
    );
    let ts = TIMESTAMP.to_string();
    for header in [OTHER_V1, &SIGNATURE[..20], "v1a,Ceo5qEr07ixe2NLpvHk3FH9bwy"] {
        let error = v.check(&signed(&ts, header)).unwrap_err().to_string();
        assert!(
            !error.contains("Ceo5") && !error.contains("g0hM"),
            "{error}"
        );
    }
}
