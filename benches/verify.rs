//! Standard Webhooks verification beside its limit and a peer, at 1 KiB, 16 KiB and 256 KiB.
//!
//! For each body size one criterion group holds three lines over the same signed webhook:
//! - `hooknorm`: [`StandardWebhooksVerifier::check`] on a [`RawWebhook`] (headers, timestamp
//!   tolerance, signature decode, HMAC, constant-time compare), as the pipeline calls it;
//! - `hmac_limit`: HMAC-SHA256 of the same signed content `id.timestamp.body` with an already
//!   keyed `Hmac<Sha256>`: no verifier can do less work;
//! - `svix`: the `svix` crate's `Webhook::verify` on the same headers and body (the peer), built
//!   only with `--features bench-peers` (its TLS stack adds minutes to every cold build).
//!
//! And the API key check in front of the gRPC service (`api_key` group): finding the caller of a
//! presented key among 16 configured keys, a known key and an unknown one, beside one SHA-256 of
//! the key (`sha256_limit`, the least any digest lookup does).
//!
//! `cargo bench --features bench-peers --bench verify`. Under `cargo test` criterion runs each line once (a smoke pass
//! that also asserts every line accepts the signature).

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use hooknorm::config::Secret;
use hooknorm::verify::StandardWebhooksVerifier;
use hooknorm::verify::standard_webhooks::StandardWebhooksSigner;
use hooknorm::webhook::RawWebhook;

/// A fixed 32-byte key, as Svix issues them.
const KEY: [u8; 32] = *b"hooknorm-bench-key-0123456789abc";
const MSG_ID: &str = "msg_2Lh9KDQ8qGZNh7b3zXe1jPcVt0W";
const SIZES: [(&str, usize); 3] = [
    ("1KiB", 1 << 10),
    ("16KiB", 16 << 10),
    ("256KiB", 256 << 10),
];

/// A JSON body of exactly `size` bytes (a Gigs-like envelope around a padding string).
fn body(size: usize) -> Vec<u8> {
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

fn verify(c: &mut Criterion) {
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(KEY)
    );
    let ours = StandardWebhooksVerifier::new(
        &[Secret::new(secret.clone())],
        &[],
        Duration::from_secs(300),
    )
    .expect("verifier");
    let signer = StandardWebhooksSigner::new(&secret).expect("signer");
    #[cfg(feature = "bench-peers")]
    let peer = svix::webhooks::Webhook::new(&secret).expect("svix webhook");
    let keyed = Hmac::<Sha256>::new_from_slice(&KEY).expect("hmac key");

    for (label, size) in SIZES {
        let body = body(size);
        // Signed now: svix checks the timestamp against the clock, ours against `received_at`.
        let now = Utc::now();
        let timestamp = now.timestamp().to_string();
        let signature = signer.sign(MSG_ID, now.timestamp(), &body);
        let raw = RawWebhook {
            source: "gigs".to_owned(),
            // Svix-hosted senders (Gigs) use the svix- names.
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("svix-id".to_owned(), MSG_ID.to_owned()),
                ("svix-timestamp".to_owned(), timestamp.clone()),
                ("svix-signature".to_owned(), signature.clone()),
            ],
            body: body.clone(),
            request_uri: "/webhooks/gigs".to_owned(),
            remote_addr: None,
            received_at: now,
        };
        #[cfg(feature = "bench-peers")]
        let headers = {
            let mut headers = http::HeaderMap::new();
            for (name, value) in &raw.headers {
                headers.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                    http::HeaderValue::from_str(value).expect("header value"),
                );
            }
            headers
        };
        let hmac_limit = || {
            let mut mac = keyed.clone();
            mac.update(MSG_ID.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(black_box(&body));
            mac.finalize().into_bytes()
        };
        // Every line must accept the same webhook, or the comparison means nothing.
        ours.check(&raw).expect("hooknorm accepts");
        #[cfg(feature = "bench-peers")]
        peer.verify(&body, &headers).expect("svix accepts");
        let expected = base64::engine::general_purpose::STANDARD.encode(hmac_limit());
        assert_eq!(signature, format!("v1,{expected}"));

        let mut group = c.benchmark_group(format!("verify/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter("hooknorm"), |b| {
            b.iter(|| ours.check(black_box(&raw)))
        });
        group.bench_function(BenchmarkId::from_parameter("hmac_limit"), |b| {
            b.iter(hmac_limit)
        });
        #[cfg(feature = "bench-peers")]
        group.bench_function(BenchmarkId::from_parameter("svix"), |b| {
            b.iter(|| peer.verify(black_box(&body), black_box(&headers)))
        });
        group.finish();
    }
}

fn api_key(c: &mut Criterion) {
    use hooknorm::auth::{Authenticator, KeyDigest, Principal};
    use std::sync::Arc;
    let keys: Vec<String> = (0..16)
        .map(|n| format!("bench-api-key-{n:02}-0123456789abcdef"))
        .collect();
    let digests = keys
        .iter()
        .map(|key| (KeyDigest::of(key), Arc::new(Principal::anonymous())))
        .collect();
    let auth = Authenticator::with_keys(digests, Default::default());
    let known = keys[15].as_str();
    let unknown = "bench-api-key-99-0123456789abcdef";
    assert!(auth.authenticate(Some(known), []).is_ok());
    assert!(auth.authenticate(Some(unknown), []).is_err());
    let mut group = c.benchmark_group("api_key");
    group.bench_function(BenchmarkId::from_parameter("known"), |b| {
        b.iter(|| auth.authenticate(Some(black_box(known)), []))
    });
    group.bench_function(BenchmarkId::from_parameter("unknown"), |b| {
        b.iter(|| auth.authenticate(Some(black_box(unknown)), []))
    });
    group.bench_function(BenchmarkId::from_parameter("sha256_limit"), |b| {
        b.iter(|| KeyDigest::of(black_box(known)))
    });
    group.finish();
}

criterion_group!(benches, verify, api_key);
criterion_main!(benches);
