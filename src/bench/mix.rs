//! The sample mix: every built-in sample webhook ([`SAMPLES`], the test fixtures) in turn, each
//! made a distinct event and authenticated for its source as its provider would send it. What
//! the disk figures are measured on, since a padded body would compress far better than
//! anything a provider sends.
//!
//! Each webhook `n` is sample `n % SAMPLES.len()` with every id-like value (a key `id` or one
//! ending in `Id`/`_id`) replaced by a pseudo-random value of the same form (prefix, length,
//! alphabet, separators kept), derived from `n`: ids are what differs between a provider's real
//! webhooks, and random ones compress as badly as real ones. Bodies are compact JSON, as
//! providers post them (the fixtures are indented for reading).

use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::Origin;
use crate::cli::samples::{SAMPLES, Sample};
use crate::cli::send::{SendError, authenticated_request};
use crate::config::{Config, SourceConfig};
use crate::proto::v1::VerifyAndNormalizeRequest;
use crate::webhook::RawWebhook;

/// The config sources the mix is sent to, one per provider (in `[[sources]]` syntax): add them to
/// a server or pipeline config.
pub const MIX_SOURCES_TOML: &str = r#"
[[sources]]
name = "mix-gigs"
provider = "gigs"
verification = { scheme = "standard_webhooks", secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }

[[sources]]
name = "mix-abowire"
provider = "abowire"
verification = { scheme = "query_token", tokens = ["mix-abowire-token-0123456789abcdef"] }

[[sources]]
name = "mix-mobile-manager"
provider = "mobile_manager"
verification = { scheme = "none" }
"#;

/// Webhooks of the sample mix.
#[derive(Debug, Clone)]
pub struct SampleMix {
    samples: Vec<(SourceConfig, Value)>,
}

impl SampleMix {
    /// The mix for `config`, which must hold a source for each sample's provider.
    pub fn new(config: &Config) -> Result<SampleMix, String> {
        let samples = SAMPLES
            .iter()
            .map(|sample: &Sample| {
                let source = config
                    .sources
                    .iter()
                    .find(|source| source.provider == sample.provider)
                    .ok_or_else(|| format!("no source for {:?}", sample.provider))?;
                let body = serde_json::from_str(sample.body)
                    .map_err(|error| format!("sample {}: {error}", sample.name))?;
                Ok((source.clone(), body))
            })
            .collect::<Result<_, String>>()?;
        Ok(SampleMix { samples })
    }

    /// How many distinct samples the mix cycles through.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the mix has no samples (never: there is one per documented event shape).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The body of the `n`th webhook.
    pub fn body(&self, n: u64) -> Vec<u8> {
        let (_, sample) = self.sample(n);
        let mut body = sample.clone();
        vary(&mut body, None, n);
        // A `Value` always serializes.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The `n`th webhook, authenticated now.
    pub fn request(&self, n: u64) -> Result<VerifyAndNormalizeRequest, SendError> {
        let (source, _) = self.sample(n);
        authenticated_request(source, self.body(n))
    }

    /// The `n`th webhook as the pipeline takes it, received now.
    pub fn webhook(&self, n: u64) -> Result<RawWebhook, SendError> {
        let origin = Origin {
            remote_addr: None,
            received_at: Utc::now(),
        };
        Ok(crate::grpc::raw_webhook(self.request(n)?, origin))
    }

    fn sample(&self, n: u64) -> &(SourceConfig, Value) {
        &self.samples[(n % self.samples.len() as u64) as usize]
    }
}

/// Replaces every id-like string under `value` (`key` is the key it is held under).
fn vary(value: &mut Value, key: Option<&str>, n: u64) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                vary(value, Some(key), n);
            }
        }
        Value::Array(values) => values.iter_mut().for_each(|value| vary(value, key, n)),
        Value::String(text) if key.is_some_and(id_like) => *text = random_like(text, n),
        _ => {}
    }
}

fn id_like(key: &str) -> bool {
    key.eq_ignore_ascii_case("id") || key.ends_with("Id") || key.ends_with("_id")
}

/// A value of `original`'s form: what follows its last `_` (all of it when there is none) gets
/// pseudo-random characters of the same class, separators (`-`) kept.
fn random_like(original: &str, n: u64) -> String {
    let keep = original.rfind('_').map_or(0, |at| at + 1);
    let mut digest = Sha256::new();
    digest.update(n.to_le_bytes());
    digest.update(original.as_bytes());
    let mut stream = digest.finalize().to_vec();
    let mut out = String::with_capacity(original.len());
    out.push_str(&original[..keep]);
    for (i, c) in original[keep..].chars().enumerate() {
        if i >= stream.len() {
            let more = Sha256::digest(&stream);
            stream.extend_from_slice(&more);
        }
        let byte = stream[i];
        out.push(match c {
            '0'..='9' => char::from(b'0' + byte % 10),
            'a'..='f' if hex_like(&original[keep..]) => {
                char::from(b"0123456789abcdef"[usize::from(byte % 16)])
            }
            'a'..='z' => char::from(b'a' + byte % 26),
            'A'..='Z' => char::from(b'A' + byte % 26),
            other => other,
        });
    }
    out
}

/// Whether `text` is lowercase hex (with `-`, as a UUID): its letters stay hex digits.
fn hex_like(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c) || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EventLog;

    fn mix() -> SampleMix {
        let toml = format!("auth = \"none\"\n{MIX_SOURCES_TOML}");
        let config = Config::from_toml(&toml).expect("mix sources parse");
        SampleMix::new(&config).expect("a source per provider")
    }

    #[test]
    fn every_sample_in_turn_with_ids_of_their_own_and_their_form_kept() {
        let mix = mix();
        assert_eq!(mix.len(), SAMPLES.len());
        let first: Value = serde_json::from_slice(&mix.body(0)).unwrap();
        let again: Value = serde_json::from_slice(&mix.body(mix.len() as u64)).unwrap();
        let original: Value = serde_json::from_str(SAMPLES[0].body).unwrap();
        assert_ne!(first, again, "the same sample, another event");
        assert_eq!(mix.body(0), mix.body(0), "deterministic");
        for body in [&first, &again] {
            let (id, was) = (
                body["id"].as_str().unwrap(),
                original["id"].as_str().unwrap(),
            );
            assert_ne!(id, was);
            assert_eq!(id.len(), was.len());
            assert_eq!(id.rfind('_'), was.rfind('_'));
            // Everything but ids is the sample's.
            assert_eq!(body["type"], original["type"]);
        }
        assert_eq!(random_like("3f7a2c9e-8b1d", 1).len(), 13);
        assert!(hex_like(&random_like("3f7a2c9e-8b1d", 1)));
        assert_eq!(&random_like("usr_8Kq3Zt1mXc", 2)[..4], "usr_");
    }

    /// Each of them verifies and normalizes, as a distinct event each time round.
    #[tokio::test]
    async fn every_sample_is_accepted_by_its_provider() {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "auth = \"none\"\n{MIX_SOURCES_TOML}\n[store]\npath = {:?}\n",
            dir.path().display().to_string()
        );
        let config = Config::from_toml(&toml).unwrap();
        let log =
            std::sync::Arc::new(crate::log::sqlite::SqliteEventLog::open(&config.store).unwrap());
        let pipeline = crate::pipeline::Pipeline::new(&config, log.clone());
        let mix = SampleMix::new(&config).unwrap();
        for n in 0..2 * mix.len() as u64 {
            let outcome = pipeline.process(mix.webhook(n).unwrap(), false).await;
            let outcome = outcome.unwrap_or_else(|error| panic!("sample {n}: {error}"));
            assert!(!outcome.duplicate, "sample {n} stored as a duplicate");
        }
        log.close().await;
    }
}
