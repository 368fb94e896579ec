//! Property tests of signing and verifying: any body signed with any secret verifies, under
//! either header naming; any single byte changed in the body, the id or the timestamp fails.

use std::time::Duration;

use base64::Engine as _;
use chrono::DateTime;
use proptest::prelude::*;

use super::*;

const NOW: i64 = 1_700_000_000;

fn webhook(headers: [(&str, String); 3], body: Vec<u8>) -> RawWebhook {
    RawWebhook {
        source: "s".into(),
        headers: headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
        body,
        request_uri: "/webhooks/s".into(),
        remote_addr: None,
        received_at: DateTime::from_timestamp(NOW, 0).expect("a valid time"),
    }
}

/// A webhook signed with `secret` (bytes before base64) as a sender would send it.
fn signed(key: &[u8], id: &str, timestamp: i64, body: &[u8], svix: bool) -> RawWebhook {
    let secret = format!("{SECRET_PREFIX}{}", BASE64.encode(key));
    let signer = StandardWebhooksSigner::new(&secret).expect("a valid secret");
    let names = if svix {
        [SVIX_ID_HEADER, SVIX_TIMESTAMP_HEADER, SVIX_SIGNATURE_HEADER]
    } else {
        [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER]
    };
    webhook(
        [
            (names[0], id.to_owned()),
            (names[1], timestamp.to_string()),
            (names[2], signer.sign(id, timestamp, body)),
        ],
        body.to_vec(),
    )
}

fn verifier(key: &[u8]) -> StandardWebhooksVerifier {
    let secret = Secret::new(format!("{SECRET_PREFIX}{}", BASE64.encode(key)));
    StandardWebhooksVerifier::new(&[secret], &[], Duration::from_secs(300)).expect("a valid secret")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_body_signed_with_any_secret_verifies(
        key in prop::collection::vec(any::<u8>(), 1..64),
        id in "[!-~]{1,40}",
        skew in -300i64..=300,
        body in prop::collection::vec(any::<u8>(), 0..512),
        svix in any::<bool>(),
    ) {
        let webhook = signed(&key, &id, NOW + skew, &body, svix);
        prop_assert_eq!(verifier(&key).check(&webhook), Ok(()));
    }

    #[test]
    fn any_single_byte_changed_in_the_body_fails(
        key in prop::collection::vec(any::<u8>(), 1..64),
        body in prop::collection::vec(any::<u8>(), 1..512),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let mut webhook = signed(&key, "msg_1", NOW, &body, false);
        let at = at.index(body.len());
        webhook.body[at] ^= flip;
        prop_assert_eq!(verifier(&key).check(&webhook), Err(VerifyError::SignatureMismatch));
    }

    #[test]
    fn any_single_byte_changed_in_the_id_or_timestamp_fails(
        key in prop::collection::vec(any::<u8>(), 1..64),
        id in "[!-~]{1,40}",
        body in prop::collection::vec(any::<u8>(), 0..64),
        header in 0..2usize,
        at in any::<prop::sample::Index>(),
        replacement in "[!-~]",
    ) {
        let mut webhook = signed(&key, &id, NOW, &body, false);
        let value = &mut webhook.headers[header].1;
        let at = at.index(value.len());
        prop_assume!(value[at..=at] != replacement);
        value.replace_range(at..=at, &replacement);
        // A changed timestamp may no longer be a time, or be out of tolerance: refused either way.
        prop_assert!(verifier(&key).check(&webhook).is_err(), "{:?}", webhook.headers);
    }

    #[test]
    fn another_secret_never_verifies(
        key in prop::collection::vec(any::<u8>(), 1..64),
        other in prop::collection::vec(any::<u8>(), 1..64),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        // HMAC pads a key with zeros to its block size, so keys equal but for trailing zeros
        // are one key (RFC 2104); no two secrets a person generates differ only that way.
        let trimmed = |key: &[u8]| key.iter().rposition(|&b| b != 0).map_or(0, |at| at + 1);
        prop_assume!(key[..trimmed(&key)] != other[..trimmed(&other)]);
        let webhook = signed(&key, "msg_1", NOW, &body, false);
        prop_assert_eq!(verifier(&other).check(&webhook), Err(VerifyError::SignatureMismatch));
    }
}
