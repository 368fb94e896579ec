//! Standard Webhooks (and Svix, the same scheme under its own header names).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`. A `v1` signature is
//! base64(HMAC-SHA256) keyed with the base64-decoded part of a `whsec_` secret; a `v1a` signature
//! is ed25519 checked with a `whpk_` public key. The signature header is a space-separated list of
//! `version,signature` entries: any valid entry passes and unknown versions are skipped, which is
//! how senders roll secrets and schemes without breaking receivers.
//!
//! Checks run cheapest first: headers present, timestamp an integer, timestamp within tolerance,
//! then the signature. A replayed (stale but validly signed) webhook is therefore reported as
//! out of tolerance, and a flood of stale requests never costs an HMAC over the body.
//!
//! [`StandardWebhooksSigner`] is the sending side, for `hooknorm send` and tests.

use std::time::Duration;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;
use crate::verify::VerifyError;
use crate::webhook::RawWebhook;

mod sign;
pub use sign::{StandardWebhooksSigner, public_key_string, sign_v1, sign_v1a};

/// Prefix of HMAC secrets; optional on input, as in the reference libraries.
pub const SECRET_PREFIX: &str = "whsec_";
/// Prefix of ed25519 public keys; optional on input.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Standard header names; [`SVIX_ID_HEADER`] and friends are accepted as well.
pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// Svix-branded header names (Svix-hosted senders such as Gigs use these).
pub const SVIX_ID_HEADER: &str = "svix-id";
pub const SVIX_TIMESTAMP_HEADER: &str = "svix-timestamp";
pub const SVIX_SIGNATURE_HEADER: &str = "svix-signature";

/// Every header the scheme reads: what a stored delivery keeps to be verified again.
pub const SIGNED_HEADERS: [&str; 6] = [
    ID_HEADER,
    TIMESTAMP_HEADER,
    SIGNATURE_HEADER,
    SVIX_ID_HEADER,
    SVIX_TIMESTAMP_HEADER,
    SVIX_SIGNATURE_HEADER,
];

const ID_HEADERS: [&str; 2] = [ID_HEADER, SVIX_ID_HEADER];
const TIMESTAMP_HEADERS: [&str; 2] = [TIMESTAMP_HEADER, SVIX_TIMESTAMP_HEADER];
const SIGNATURE_HEADERS: [&str; 2] = [SIGNATURE_HEADER, SVIX_SIGNATURE_HEADER];

/// At most this many secrets per source. Rotation needs two; each one adds an HMAC over the body
/// to every request, forged ones included; and the bound keeps the per-check MACs on the stack.
pub const MAX_SECRETS: usize = 8;

/// At most this many `version,signature` entries are read from a webhook's signature headers.
/// Senders list one per active secret (two while rotating); each `v1a` entry costs an ed25519
/// check per public key, so an unbounded list would let one request buy unbounded CPU.
pub const MAX_SIGNATURE_ENTRIES: usize = 16;

/// HMAC-SHA256 output and ed25519 signature sizes.
const MAC_LEN: usize = 32;
const ED25519_SIGNATURE_LEN: usize = 64;

/// Standard alphabet; padding optional when decoding (some dashboards strip the `=`), always
/// written when encoding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Verifies `v1` and `v1a` signatures for one source.
pub struct StandardWebhooksVerifier {
    /// One per configured secret; several during a rotation.
    hmac_keys: Vec<HmacKey>,
    public_keys: Vec<VerifyingKey>,
    tolerance_seconds: u64,
}

// Counts only: the keys are secret (HMAC) or long and useless in a log line (ed25519).
impl std::fmt::Debug for StandardWebhooksVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandardWebhooksVerifier")
            .field("secrets", &self.hmac_keys.len())
            .field("public_keys", &self.public_keys.len())
            .field("tolerance_seconds", &self.tolerance_seconds)
            .finish()
    }
}

impl StandardWebhooksVerifier {
    /// Decodes the secrets and public keys once. Errors name the offending entry by index and
    /// never include its value.
    pub fn new(
        secrets: &[Secret],
        public_keys: &[Secret],
        tolerance: Duration,
    ) -> Result<Self, String> {
        Ok(Self::from_keys(
            StandardWebhooksKeys::decode(secrets, public_keys)?,
            tolerance,
        ))
    }

    /// A verifier for keys decoded earlier (when the config was loaded).
    pub fn from_keys(keys: StandardWebhooksKeys, tolerance: Duration) -> Self {
        StandardWebhooksVerifier {
            hmac_keys: keys.hmac_keys,
            public_keys: keys.public_keys,
            tolerance_seconds: tolerance.as_secs(),
        }
    }

    /// Checks headers, timestamp and signature; see the module docs for the order.
    pub fn check(&self, webhook: &RawWebhook) -> Result<(), VerifyError> {
        let (_, id) = required_header(webhook, &ID_HEADERS)?;
        let (_, timestamp_text) = required_header(webhook, &TIMESTAMP_HEADERS)?;
        let (signature_header, _) = required_header(webhook, &SIGNATURE_HEADERS)?;
        let timestamp = parse_timestamp(timestamp_text)?;
        self.check_tolerance(timestamp, webhook.received_at.timestamp())?;

        let content = SignedContent {
            id,
            // Signed as sent, so the sender's exact digits are what we MAC.
            timestamp: timestamp_text,
            body: &webhook.body,
        };
        let mut any_entry = false;
        let mut malformed: Option<&'static str> = None;
        // Filled at the first well-formed entry that needs them, then reused for every other
        // entry: one MAC per secret however many signatures the header lists.
        let mut macs = None;
        let mut message = None;
        let entries = webhook
            .headers_named(signature_header)
            .flat_map(str::split_ascii_whitespace);
        for (index, entry) in entries.enumerate() {
            if index == MAX_SIGNATURE_ENTRIES {
                return Err(malformed_signature(
                    "none of the signature headers' first 16 entries matches",
                ));
            }
            let Some((version, encoded)) = entry.split_once(',') else {
                continue;
            };
            any_entry = true;
            let outcome = match version {
                "v1" => self.matches_v1(encoded, &content, &mut macs),
                "v1a" => self.matches_v1a(encoded, &content, &mut message),
                // Unknown versions are skipped: senders may add schemes before we know them.
                _ => continue,
            };
            match outcome {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(why) => {
                    malformed.get_or_insert(why);
                }
            }
        }
        if !any_entry {
            return Err(malformed_signature(
                "signature header has no `version,signature` entry",
            ));
        }
        match malformed {
            Some(why) => Err(malformed_signature(why)),
            None => Err(VerifyError::SignatureMismatch),
        }
    }

    /// Whether a `v1` entry matches any secret; `macs` caches the MAC under each secret.
    fn matches_v1(
        &self,
        encoded: &str,
        content: &SignedContent<'_>,
        macs: &mut Option<[[u8; MAC_LEN]; MAX_SECRETS]>,
    ) -> Result<bool, &'static str> {
        let mut buffer = [0u8; MAC_LEN + 16];
        let candidate = decode_signature(encoded, &mut buffer, &V1)?;
        if self.hmac_keys.is_empty() {
            return Ok(false);
        }
        let macs = macs.get_or_insert_with(|| {
            let mut macs = [[0u8; MAC_LEN]; MAX_SECRETS];
            for (slot, key) in macs.iter_mut().zip(&self.hmac_keys) {
                *slot = key.mac(content);
            }
            macs
        });
        // No early exit between secrets: timing does not reveal which one matched.
        Ok(macs[..self.hmac_keys.len()]
            .iter()
            .fold(false, |acc, mac| acc | mac_eq(mac, candidate)))
    }

    /// Whether a `v1a` entry verifies under any public key; `message` caches the signed content.
    fn matches_v1a(
        &self,
        encoded: &str,
        content: &SignedContent<'_>,
        message: &mut Option<Vec<u8>>,
    ) -> Result<bool, &'static str> {
        let mut buffer = [0u8; ED25519_SIGNATURE_LEN + 16];
        let candidate = decode_signature(encoded, &mut buffer, &V1A)?;
        let bytes: [u8; ED25519_SIGNATURE_LEN] = candidate.try_into().map_err(|_| V1A.wrong_len)?;
        let signature = Signature::from_bytes(&bytes);
        if self.public_keys.is_empty() {
            return Ok(false);
        }
        // ed25519 needs the message in one piece (streaming needs dalek's `hazmat` feature).
        let message = message.get_or_insert_with(|| content.to_vec());
        Ok(self
            .public_keys
            .iter()
            .any(|key| key.verify_strict(message, &signature).is_ok()))
    }

    fn check_tolerance(&self, timestamp: i64, received: i64) -> Result<(), VerifyError> {
        // Positive when the webhook claims to have been sent before it arrived.
        let skew = received.saturating_sub(timestamp);
        if skew.unsigned_abs() > self.tolerance_seconds {
            return Err(VerifyError::TimestampOutOfTolerance {
                timestamp,
                skew_seconds: skew,
                tolerance_seconds: self.tolerance_seconds,
            });
        }
        Ok(())
    }
}

/// A source's decoded `v1` secrets and `v1a` public keys. Decoding is where a bad secret is
/// found, so the config does it once at load and keeps this rather than the text.
#[derive(Clone)]
pub struct StandardWebhooksKeys {
    hmac_keys: Vec<HmacKey>,
    public_keys: Vec<VerifyingKey>,
}

// Counts only, as for the verifier.
impl std::fmt::Debug for StandardWebhooksKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandardWebhooksKeys")
            .field("secrets", &self.hmac_keys.len())
            .field("public_keys", &self.public_keys.len())
            .finish()
    }
}

impl StandardWebhooksKeys {
    /// Decodes `whsec_` secrets and `whpk_` public keys. Errors name the offending entry by
    /// index (`secrets[1] is not valid base64…`) and never include its value.
    pub fn decode(secrets: &[Secret], public_keys: &[Secret]) -> Result<Self, String> {
        if secrets.is_empty() && public_keys.is_empty() {
            return Err("needs at least one secret or public key".to_owned());
        }
        if secrets.len() > MAX_SECRETS {
            return Err(format!(
                "has {} secrets, at most {MAX_SECRETS} are allowed",
                secrets.len()
            ));
        }
        let hmac_keys = secrets
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                HmacKey::from_secret(secret.expose())
                    .map_err(|why| format!("secrets[{index}] {why}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let public_keys = public_keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                parse_public_key(key.expose()).map_err(|why| format!("public_keys[{index}] {why}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StandardWebhooksKeys {
            hmac_keys,
            public_keys,
        })
    }

    /// A signer with the first `v1` secret; `None` when only `v1a` public keys are configured.
    pub fn signer(&self) -> Option<StandardWebhooksSigner> {
        self.hmac_keys
            .first()
            .map(|key| StandardWebhooksSigner { key: key.clone() })
    }
}

/// An HMAC-SHA256 state already keyed with a secret. Cloning it per message skips re-deriving
/// the inner and outer pads, which is most of the cost for small bodies.
#[derive(Clone)]
struct HmacKey(Hmac<Sha256>);

// Hand-written: the keyed state is as good as the secret.
impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

impl HmacKey {
    /// The reason is phrased to follow the secret's name (`secrets[1] is not valid base64…`).
    fn from_secret(secret: &str) -> Result<HmacKey, &'static str> {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        // The decode error is not shown: it quotes the offending character of the secret.
        let key = BASE64
            .decode(encoded)
            .map_err(|_| "is not valid base64 after the optional `whsec_` prefix")?;
        if key.is_empty() {
            return Err("is empty after the `whsec_` prefix");
        }
        Hmac::<Sha256>::new_from_slice(&key)
            .map(HmacKey)
            .map_err(|_| "cannot key HMAC-SHA256")
    }

    fn mac(&self, content: &SignedContent<'_>) -> [u8; MAC_LEN] {
        let mut mac = self.0.clone();
        // Fed in pieces: concatenating would copy the whole body for nothing.
        for piece in content.pieces() {
            mac.update(piece);
        }
        mac.finalize().into_bytes().into()
    }
}

fn parse_public_key(key: &str) -> Result<VerifyingKey, &'static str> {
    let encoded = key.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(key);
    let bytes = BASE64
        .decode(encoded)
        .map_err(|_| "is not valid base64 after the optional `whpk_` prefix")?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "is not a 32-byte ed25519 public key")?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| "is not a valid ed25519 public key")?;
    if key.is_weak() {
        // A small-order key would accept forged signatures.
        return Err("is a weak ed25519 public key");
    }
    Ok(key)
}

/// `{id}.{timestamp}.{body}`, kept in pieces.
struct SignedContent<'a> {
    id: &'a str,
    timestamp: &'a str,
    body: &'a [u8],
}

impl SignedContent<'_> {
    fn pieces(&self) -> [&[u8]; 5] {
        [
            self.id.as_bytes(),
            b".",
            self.timestamp.as_bytes(),
            b".",
            self.body,
        ]
    }

    fn to_vec(&self) -> Vec<u8> {
        let pieces = self.pieces();
        let mut out = Vec::with_capacity(pieces.iter().map(|p| p.len()).sum());
        for piece in pieces {
            out.extend_from_slice(piece);
        }
        out
    }
}

/// The first header present among the standard and Svix names, with the name that matched.
fn required_header<'a>(
    webhook: &'a RawWebhook,
    names: &[&'static str; 2],
) -> Result<(&'static str, &'a str), VerifyError> {
    names
        .iter()
        .find_map(|name| webhook.header(name).map(|value| (*name, value)))
        .ok_or_else(|| VerifyError::MissingSignature {
            what: format!("{} header", names[0]),
        })
}

/// Integer Unix seconds, digits only (no sign, spaces or fraction), as the reference libraries.
fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    let not_integer = || malformed_signature("webhook-timestamp is not an integer unix time");
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_integer());
    }
    text.parse().map_err(|_| not_integer())
}

/// A signature version's decoded size and how to say it is malformed.
struct SignatureFormat {
    len: usize,
    not_base64: &'static str,
    wrong_len: &'static str,
}

const V1: SignatureFormat = SignatureFormat {
    len: MAC_LEN,
    not_base64: "v1 signature is not valid base64",
    wrong_len: "v1 signature is not 32 bytes",
};

const V1A: SignatureFormat = SignatureFormat {
    len: ED25519_SIGNATURE_LEN,
    not_base64: "v1a signature is not valid base64",
    wrong_len: "v1a signature is not 64 bytes",
};

/// Decodes one signature into `buffer` (on the stack); `Ok` only when it has the format's size.
fn decode_signature<'b>(
    encoded: &str,
    buffer: &'b mut [u8],
    format: &SignatureFormat,
) -> Result<&'b [u8], &'static str> {
    match BASE64.decode_slice(encoded, buffer) {
        Ok(n) if n == format.len => Ok(&buffer[..n]),
        Ok(_) | Err(base64::DecodeSliceError::OutputSliceTooSmall) => Err(format.wrong_len),
        Err(base64::DecodeSliceError::DecodeError(_)) => Err(format.not_base64),
    }
}

/// Constant-time equality of a MAC and a decoded candidate, compared as four words: `subtle`
/// puts an optimization barrier on every element, and 4 barriers cost an eighth of 32.
fn mac_eq(mac: &[u8; MAC_LEN], candidate: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let Ok(candidate) = <&[u8; MAC_LEN]>::try_from(candidate) else {
        return false;
    };
    let words = |bytes: &[u8; MAC_LEN]| -> [u64; MAC_LEN / 8] {
        std::array::from_fn(|i| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(word)
        })
    };
    bool::from(words(mac)[..].ct_eq(&words(candidate)[..]))
}

fn malformed_signature(why: &str) -> VerifyError {
    VerifyError::MalformedSignature {
        why: why.to_owned(),
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
