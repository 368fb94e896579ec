//! Entry points for coverage-guided fuzzing: each takes arbitrary bytes, feeds them to one
//! parser the internet (or an operator) can reach, and asserts what that parser promises beyond
//! not panicking. `fuzz/` (a `cargo fuzz` crate of its own) calls them, and the unit tests below
//! replay every checked-in seed and every input that once failed through the same functions on
//! each `cargo test`, without nightly. Not an API: hidden from the docs, and nothing else in the
//! crate uses it.
//!
//! Inputs that carry headers are text lines `name: value`, then an empty line, then the body,
//! so seeds can be written by hand and a crash input read at a glance.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ed25519_dalek::SigningKey;
use prost::Message as _;

use crate::config::{Config, Secret, VerificationConfig};
use crate::http::client_ip::client_ip;
use crate::log::filter::EventFilter;
use crate::proto::v1::{Event, StreamEventsResponse, stream_events_response};
use crate::providers::ProviderKind;
use crate::verify::standard_webhooks::{
    StandardWebhooksSigner, StandardWebhooksVerifier, public_key_string,
};
use crate::verify::{IpAllowlist, Verifier, VerifyError};
use crate::webhook::RawWebhook;

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target by the name `fuzz/` and the seed directories use.
pub const TARGETS: &[(&str, Target)] = &[
    ("standard_webhooks", standard_webhooks),
    ("normalize_gigs", normalize_gigs),
    ("normalize_abowire", normalize_abowire),
    ("normalize_mobile_manager", normalize_mobile_manager),
    ("json_struct", json_struct),
    ("config", config),
    ("forwarded", forwarded),
    ("content_type", content_type),
    ("page_token", page_token),
];

/// The secret the Standard Webhooks target verifies with (`whsec_` + base64 of 32 bytes), so
/// seeds can carry valid signatures.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The receive time of every fuzzed webhook: fixed, so an input means the same on every run
/// and a seed's timestamp stays within tolerance.
pub const RECEIVED_AT: i64 = 1_700_000_000;

const TOLERANCE: Duration = Duration::from_secs(300);

/// The ed25519 key whose public half the Standard Webhooks target accepts (`v1a`).
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn received_at() -> DateTime<Utc> {
    DateTime::from_timestamp(RECEIVED_AT, 0).unwrap_or_default()
}

/// `name: value` lines until an empty line, then the body (lossy text; a header value is text
/// by the time a verifier reads it).
fn split_message(data: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let (head, body) = match data.windows(2).position(|pair| pair == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let headers = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    (headers, body)
}

/// The verifier and signer of the Standard Webhooks target, made once: deriving the ed25519 keys
/// took most of each run's time.
fn standard_webhooks_keys() -> &'static (StandardWebhooksVerifier, StandardWebhooksSigner) {
    static KEYS: OnceLock<(StandardWebhooksVerifier, StandardWebhooksSigner)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let public_key = public_key_string(&signing_key().verifying_key());
        let verifier = StandardWebhooksVerifier::new(
            &[Secret::new(SECRET)],
            &[Secret::new(public_key)],
            TOLERANCE,
        )
        .expect("the fuzz keys are valid");
        let signer = StandardWebhooksSigner::new(SECRET).expect("the fuzz secret is valid");
        (verifier, signer)
    })
}

/// Standard Webhooks header parsing and verification, with a `v1` secret and a `v1a` key.
/// Besides the input's own verdict: the body signed by the same secret verifies, and the body
/// with one byte changed does not.
pub fn standard_webhooks(data: &[u8]) {
    let (headers, body) = split_message(data);
    let webhook = RawWebhook {
        source: "fuzz".into(),
        headers,
        body: body.to_vec(),
        request_uri: "/webhooks/fuzz".into(),
        remote_addr: None,
        received_at: received_at(),
    };
    let (verifier, signer) = standard_webhooks_keys();
    let verdict = verifier.check(&webhook);
    if let Err(error) = &verdict {
        // Every refusal is one of the scheme's own reasons (never a token or address one).
        assert!(
            !matches!(
                error,
                VerifyError::MissingToken { .. }
                    | VerifyError::TokenMismatch
                    | VerifyError::AddressNotAllowed
            ),
            "{error:?}"
        );
    }

    let id = "msg_fuzz";
    let signed = |body: &[u8]| RawWebhook {
        headers: vec![
            ("webhook-id".into(), id.into()),
            ("webhook-timestamp".into(), RECEIVED_AT.to_string()),
            (
                "webhook-signature".into(),
                signer.sign(id, RECEIVED_AT, body),
            ),
        ],
        body: body.to_vec(),
        ..webhook.clone()
    };
    let good = signed(&webhook.body);
    assert_eq!(
        verifier.check(&good),
        Ok(()),
        "a body signed with the secret"
    );
    if !good.body.is_empty() {
        let mut changed = good.clone();
        let at = usize::from(good.body[0]) % good.body.len();
        changed.body[at] ^= 1;
        assert_eq!(
            verifier.check(&changed),
            Err(VerifyError::SignatureMismatch),
            "byte {at} changed after signing"
        );
    }
}

pub fn normalize_gigs(data: &[u8]) {
    normalize(ProviderKind::Gigs, data);
}

pub fn normalize_abowire(data: &[u8]) {
    normalize(ProviderKind::Abowire, data);
}

pub fn normalize_mobile_manager(data: &[u8]) {
    normalize(ProviderKind::MobileManager, data);
}

/// One provider's normalize over a body (verified by a `none` source). An event it returns has
/// a canonical type, is namespaced by its source, normalizes the same way twice and survives
/// the trip to a subscriber (encoded in a `StreamEventsResponse` and decoded again).
pub fn normalize(kind: ProviderKind, body: &[u8]) {
    let verifier = Verifier::from_config(&VerificationConfig::None, None);
    let raw = RawWebhook {
        source: "fuzz".into(),
        headers: Vec::new(),
        body: body.to_vec(),
        request_uri: "/webhooks/fuzz".into(),
        remote_addr: None,
        received_at: received_at(),
    };
    let Ok(webhook) = raw.verify(&verifier) else {
        panic!("a `none` source verifies every webhook");
    };
    let Ok(normalized) = kind.normalize("fuzz", &webhook) else {
        return;
    };
    let event = &normalized.event;
    assert!(
        crate::event::is_canonical_type(&event.r#type),
        "type {:?} from {:?}",
        event.r#type,
        event.provider_event_type
    );
    assert!(event.id.starts_with("fuzz:"), "id {:?}", event.id);
    let again = kind
        .normalize("fuzz", &webhook)
        .expect("normalized once, normalizes again");
    assert_eq!(again.event, normalized.event);
    assert_eq!(again.identity, normalized.identity);
    assert_decodes(event);
}

/// The event as a subscriber receives it decodes: nesting within every protobuf runtime's
/// limit (prost's is the one checked here).
fn assert_decodes(event: &Event) {
    let message = StreamEventsResponse {
        message: Some(stream_events_response::Message::Event(event.clone())),
    };
    let bytes = message.encode_to_vec();
    let decoded = StreamEventsResponse::decode(bytes.as_slice());
    assert_eq!(decoded.as_ref().ok(), Some(&message), "{decoded:?}");
}

/// The JSON-to-`Struct` parser, keeping the text of two fields as the providers do. An accepted
/// body decodes once stored as an event's data, and each kept text is JSON itself.
pub fn json_struct(data: &[u8]) {
    let Ok(parsed) = crate::json::parse_object_keeping(data, &["data", "previousData"]) else {
        return;
    };
    for (key, text) in &parsed.kept {
        assert!(
            serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
            "kept `{key}` is not json: {text:?}"
        );
    }
    assert_decodes(&Event {
        data: Some(prost_types::Struct {
            fields: parsed.fields,
        }),
        ..Event::default()
    });
}

/// The configuration parser and its validation, without environment overrides.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text);
    }
}

/// `Forwarded` and `X-Forwarded-For` from a trusted proxy and from any other peer: the input is
/// header lines. Only a trusted proxy's headers are read.
pub fn forwarded(data: &[u8]) {
    let (headers, _) = split_message(data);
    let map = header_map(&headers);
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let trusted = IpAllowlist::parse("fuzz", &["10.0.0.0/8".into(), "fd00::/8".into()])
        .expect("the fuzz allowlist is valid");
    let _client = client_ip(Some(peer), &map, &trusted);
    // An untrusted peer speaks only for itself, whatever it claims.
    let outsider = IpAddr::from([192, 0, 2, 1]);
    assert_eq!(client_ip(Some(outsider), &map, &trusted), Some(outsider));
    assert_eq!(client_ip(None, &map, &trusted), None);
}

/// Content-type checking over header lines: a type accepted alone names JSON.
pub fn content_type(data: &[u8]) {
    let (headers, _) = split_message(data);
    let map = header_map(&headers);
    let accepted = crate::http::request::check_content_type(&map).is_ok();
    let values: Vec<_> = map.get_all(http::header::CONTENT_TYPE).iter().collect();
    if accepted && let [value] = values.as_slice() {
        let text = value.to_str().unwrap_or_default().to_ascii_lowercase();
        assert!(text.contains("json"), "accepted {text:?}");
    }
    assert!(
        values.len() < 2 || !accepted,
        "accepted {} types",
        values.len()
    );
}

/// A header map from parsed lines, skipping names and values HTTP would not carry.
fn header_map(headers: &[(String, String)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Page tokens: any text is refused or read as a cursor, a token read back is one the server
/// could issue for the same filter, and an issued token is refused under another filter.
pub fn page_token(data: &[u8]) {
    use crate::log::page::{page_token as issue_page_token, parse_page_token as read_page_token};
    let filter = EventFilter {
        sources: vec!["fuzz".into()],
        ..EventFilter::default()
    };
    let other = EventFilter::default();
    let text = String::from_utf8_lossy(data);
    if let Ok(Some(before)) = read_page_token(&text, &filter) {
        let issued = issue_page_token(before, &filter);
        assert_eq!(read_page_token(&issued, &filter).ok(), Some(Some(before)));
    }
    let mut cursor = [0u8; 8];
    for (slot, byte) in cursor.iter_mut().zip(data) {
        *slot = *byte;
    }
    let before = u64::from_le_bytes(cursor);
    let issued = issue_page_token(before, &filter);
    assert_eq!(read_page_token(&issued, &filter).ok(), Some(Some(before)));
    assert!(read_page_token(&issued, &other).is_err());
}

#[cfg(test)]
mod tests;
