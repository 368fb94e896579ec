//! The sending side of the scheme, for `hooknorm send` and tests.

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use super::{BASE64, HmacKey, PUBLIC_KEY_PREFIX, SignedContent};
use crate::config::Secret;

/// Signs webhooks the way Standard Webhooks senders do (`v1`, HMAC-SHA256).
#[derive(Debug, Clone)]
pub struct StandardWebhooksSigner {
    pub(super) key: HmacKey,
}

impl StandardWebhooksSigner {
    /// `secret` is a `whsec_…` secret (the prefix is optional). The error never includes it.
    pub fn new(secret: &str) -> Result<Self, String> {
        HmacKey::from_secret(secret)
            .map(|key| StandardWebhooksSigner { key })
            .map_err(|why| format!("secret {why}"))
    }

    /// The `webhook-signature` header value: `v1,<base64>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let mac = self.key.mac(&SignedContent {
            id: msg_id,
            timestamp: &timestamp,
            body,
        });
        format!("v1,{}", BASE64.encode(mac))
    }
}

/// One-shot `v1` signing with a configured secret: the `webhook-signature` header value.
pub fn sign_v1(
    secret: &Secret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, String> {
    Ok(StandardWebhooksSigner::new(secret.expose())?.sign(msg_id, timestamp, body))
}

/// `v1a` (ed25519) signing: the `webhook-signature` header value `v1a,<base64>`.
pub fn sign_v1a(key: &SigningKey, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let message = SignedContent {
        id: msg_id,
        timestamp: &timestamp,
        body,
    }
    .to_vec();
    format!("v1a,{}", BASE64.encode(key.sign(&message).to_bytes()))
}

/// The `whpk_…` form of an ed25519 public key, as configured in `public_keys`.
pub fn public_key_string(key: &VerifyingKey) -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", BASE64.encode(key.as_bytes()))
}
