//! Inputs shared by the benches: the provider fixtures as providers post them (minified), the
//! unverified webhook around a body, and a Standard Webhooks signed request of a given size.

// Each bench binary includes this module and uses only part of it.
#![allow(dead_code)]

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};

use hooknorm::config::Secret;
use hooknorm::providers::ProviderKind;
use hooknorm::verify::StandardWebhooksVerifier;
use hooknorm::verify::standard_webhooks::StandardWebhooksSigner;
use hooknorm::webhook::RawWebhook;

/// Strips the whitespace between JSON tokens (strings are kept byte for byte).
pub fn minify(pretty: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(pretty.len());
    let (mut in_string, mut escaped) = (false, false);
    for byte in pretty.bytes() {
        if in_string {
            out.push(byte);
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if !byte.is_ascii_whitespace() {
            in_string = byte == b'"';
            out.push(byte);
        }
    }
    out
}

pub const GIGS: &str = include_str!("../../tests/fixtures/gigs/subscription.activated.json");
pub const ABOWIRE: &str = include_str!("../../tests/fixtures/abowire/api-key.revoke.json");
pub const MM_ORDER: &str = include_str!("../../tests/fixtures/mobile_manager/order.complete.json");
pub const MM_ALERT: &str = include_str!("../../tests/fixtures/mobile_manager/alert.on.json");

/// One body per provider format: `(label, provider, source, minified body)`.
pub fn provider_cases() -> [(&'static str, ProviderKind, &'static str, Vec<u8>); 4] {
    [
        ("gigs_1KiB", ProviderKind::Gigs, "gigs", minify(GIGS)),
        ("abowire", ProviderKind::Abowire, "abowire", minify(ABOWIRE)),
        (
            "mobile_manager_order",
            ProviderKind::MobileManager,
            "mobile-manager",
            minify(MM_ORDER),
        ),
        (
            "mobile_manager_alert",
            ProviderKind::MobileManager,
            "mobile-manager",
            minify(MM_ALERT),
        ),
    ]
}

/// A fixed receive time, so repeated runs do the same work.
pub fn fixed_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 10, 15, 31)
        .single()
        .expect("time")
}

/// The webhook as the HTTP ingress hands it on, with a JSON content type.
pub fn raw(source: &str, body: Vec<u8>) -> RawWebhook {
    RawWebhook {
        source: source.to_owned(),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body,
        request_uri: format!("/webhooks/{source}"),
        remote_addr: None,
        received_at: fixed_time(),
    }
}

/// A fixed 32-byte key, as Svix issues them.
pub const KEY: [u8; 32] = *b"hooknorm-bench-key-0123456789abc";
pub const MSG_ID: &str = "msg_2Lh9KDQ8qGZNh7b3zXe1jPcVt0W";

/// The `whsec_` form of [`KEY`].
pub fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(KEY)
    )
}

/// A JSON body of exactly `size` bytes (a Gigs-like envelope around a padding string).
pub fn padded_body(size: usize) -> Vec<u8> {
    let head = br#"{"object":"event","id":"evt_0SNlurA049MEWV6Hq7Kc1yZ2PdR4Tx","type":"com.gigs.subscription.activated","data":{"object":"subscription","id":"sub_0SNlurA049MEWV2gSfSxi00xlPIi","note":""#;
    let tail = br#""}}"#;
    let filler = b"abcdefghijklmnopqrstuvwxyz0123456789 ";
    let mut body = head.to_vec();
    let pad = size - head.len() - tail.len();
    body.extend(filler.iter().cycle().take(pad));
    body.extend_from_slice(tail);
    assert_eq!(body.len(), size);
    body
}

/// Our verifier for [`secret`] with a five-minute tolerance.
pub fn verifier() -> StandardWebhooksVerifier {
    StandardWebhooksVerifier::new(
        &[Secret::new(secret())],
        &[],
        std::time::Duration::from_secs(300),
    )
    .expect("verifier")
}

/// `body` signed at `at` with Svix-named headers (Svix-hosted senders such as Gigs use them).
pub fn signed(body: Vec<u8>, at: DateTime<Utc>) -> RawWebhook {
    let signer = StandardWebhooksSigner::new(&secret()).expect("signer");
    let signature = signer.sign(MSG_ID, at.timestamp(), &body);
    RawWebhook {
        source: "gigs".to_owned(),
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("svix-id".to_owned(), MSG_ID.to_owned()),
            ("svix-timestamp".to_owned(), at.timestamp().to_string()),
            ("svix-signature".to_owned(), signature),
        ],
        body,
        request_uri: "/webhooks/gigs".to_owned(),
        remote_addr: None,
        received_at: at,
    }
}
