//! Normalization of each provider's webhooks beside the bare JSON parse of the same bytes.
//!
//! For each body one criterion group holds three lines:
//! - `hooknorm`: [`ProviderKind::normalize`] on a verified webhook, the call the pipeline makes
//!   (one-pass parse into `google.protobuf.Struct` values, the provider's rules, the namespaced
//!   id, receive time and trace context);
//! - `parse_object`: that parse alone, to show how the total splits;
//! - `json_value_limit`: `serde_json::from_slice::<serde_json::Value>` of the same bytes, the
//!   cheapest way to look at every field of a body at all.
//!
//! Bodies are the test fixtures (`tests/fixtures/`) minified, as providers post them, plus a
//! ~16 KiB Gigs event whose `data` is padded with realistic subscription add-ons.
//!
//! `cargo bench --bench normalize`. Under `cargo test` criterion runs each line once, and every
//! body is first checked to normalize.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use hooknorm::config::VerificationConfig;
use hooknorm::providers::ProviderKind;
use hooknorm::verify::Verifier;
use hooknorm::webhook::{RawWebhook, VerifiedWebhook};

mod common;
use common::{GIGS, minify, raw};

/// The Gigs subscription event with `data.subscriptionAddons` holding as many add-ons (each a
/// nested `subscriptionAddon` with its `addon`, period and metadata) as fit in about 16 KiB.
fn gigs_16k() -> Vec<u8> {
    const TARGET: usize = 16 << 10;
    let base = minify(GIGS);
    let marker = br#""data":{"#;
    let at = base
        .windows(marker.len())
        .position(|window| window == marker)
        .expect("data in the gigs fixture")
        + marker.len();
    let addon = |index: usize| {
        format!(
            r#"{{"object":"subscriptionAddon","id":"sad_0SNlurA049MEWV2UNWPbDf{index:04}","addon":{{"object":"addon","id":"add_0SNlurA049MEWV8RmT1oQs{index:04}","name":"EU Roaming 5 GB","type":"data","allowances":{{"dataBytes":5368709120,"voiceSeconds":0,"smsMessages":0}},"price":{{"amount":500,"currency":"USD"}}}},"status":"active","activatedAt":"2022-03-16T14:12:41.0Z","createdAt":"2022-03-16T14:02:11.0Z","currentPeriod":{{"number":{index},"start":"2022-03-16T14:12:41.0Z","end":"2022-04-16T14:12:40.0Z"}},"metadata":{{"channel":"app","campaign":"spring-2022"}}}}"#
        )
    };
    let mut addons = String::from(r#""subscriptionAddons":["#);
    let mut index = 0;
    while base.len() + addons.len() + 2 < TARGET {
        if index > 0 {
            addons.push(',');
        }
        addons.push_str(&addon(index));
        index += 1;
    }
    addons.push_str("],");
    let mut body = base[..at].to_vec();
    body.extend_from_slice(addons.as_bytes());
    body.extend_from_slice(&base[at..]);
    body
}

fn normalize(c: &mut Criterion) {
    // Verification is not what is measured here: an unauthenticated source passes everything.
    let verifier = Verifier::from_config(&VerificationConfig::None, None);
    let verified =
        |raw: &RawWebhook| -> VerifiedWebhook { raw.clone().verify(&verifier).expect("verified") };
    let [gigs, rest @ ..] = common::provider_cases();
    // The 16 KiB Gigs body right after the fixture's, as the tables list them.
    let gigs_16k = ("gigs_16KiB", ProviderKind::Gigs, "gigs", gigs_16k());
    let cases = std::iter::once(gigs).chain([gigs_16k]).chain(rest);
    for (label, kind, source, body) in cases {
        let raw = raw(source, body);
        let size = raw.body.len();
        kind.normalize(source, &verified(&raw))
            .unwrap_or_else(|error| panic!("{label} does not normalize: {error}"));
        serde_json::from_slice::<serde_json::Value>(&raw.body).expect("valid json");

        let mut group = c.benchmark_group(format!("normalize/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        // The verified webhook is made outside the timed part (it is a clone of the request).
        group.bench_function(BenchmarkId::from_parameter("hooknorm"), |b| {
            b.iter_batched_ref(
                || verified(&raw),
                // Dropped inside the timed part, as the parse lines drop their trees.
                |webhook| drop(black_box(kind.normalize(source, black_box(webhook)))),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(BenchmarkId::from_parameter("parse_object"), |b| {
            b.iter(|| hooknorm::json::parse_object(black_box(&raw.body)))
        });
        group.bench_function(BenchmarkId::from_parameter("json_value_limit"), |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&raw.body)))
        });
        group.finish();
    }
}

criterion_group!(benches, normalize);
criterion_main!(benches);
