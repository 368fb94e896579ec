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

use base64::Engine as _;
use chrono::Utc;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;

mod common;
use common::{KEY, MSG_ID};

const SIZES: [(&str, usize); 3] = [
    ("1KiB", 1 << 10),
    ("16KiB", 16 << 10),
    ("256KiB", 256 << 10),
];

fn verify(c: &mut Criterion) {
    let ours = common::verifier();
    #[cfg(feature = "bench-peers")]
    let peer = svix::webhooks::Webhook::new(&common::secret()).expect("svix webhook");
    let keyed = Hmac::<Sha256>::new_from_slice(&KEY).expect("hmac key");

    for (label, size) in SIZES {
        let body = common::padded_body(size);
        // Signed now: svix checks the timestamp against the clock, ours against `received_at`.
        let raw = common::signed(body.clone(), Utc::now());
        let header = |name: &str| {
            raw.headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .expect("signed header")
        };
        let timestamp = header("svix-timestamp");
        let signature = header("svix-signature");
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
