//! The configured keys and client-certificate names, and the lookup of a caller's credential.
//!
//! A presented key is hashed with SHA-256 and its digest compared, in constant time, with every
//! configured key's digest (as four 64-bit words, XORed and ORed together, then one
//! `subtle` comparison: a byte-wise `ct_eq` costs ~45 ns per key, this ~2): the comparison takes
//! as long whichever key (if any) matches, and the
//! config may hold only digests (`key_sha256`), so it holds no usable key. Keys are high-entropy
//! random strings, so a plain digest (no salt, no stretching) is enough: there is nothing to
//! guess from it.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Principal};

/// The SHA-256 digest of an API key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest(pub [u8; 32]);

impl KeyDigest {
    /// The digest as four words, for [`KeyDigest::ct_eq`].
    fn words(&self) -> [u64; 4] {
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(self.0.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            *word = u64::from_le_bytes(bytes);
        }
        words
    }

    pub fn of(key: &str) -> KeyDigest {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<KeyDigest> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut digest).ok()?;
        Some(KeyDigest(digest))
    }
}

// A digest is not a key, but there is no reason to print one either.
impl std::fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDigest(<redacted>)")
    }
}

/// Resolves callers to principals: by API key, or by a verified client certificate's name.
#[derive(Debug, Clone)]
pub struct Authenticator {
    mode: Mode,
}

#[derive(Debug, Clone)]
enum Mode {
    /// `auth = "none"`: every caller is [`Principal::anonymous`].
    Open(Arc<Principal>),
    Keys {
        /// Few entries (one per configured key), all compared on every lookup.
        by_digest: Vec<([u64; 4], Arc<Principal>)>,
        by_cert_name: HashMap<String, Arc<Principal>>,
    },
}

impl Authenticator {
    /// No authentication: every caller may do everything.
    pub fn open() -> Authenticator {
        Authenticator {
            mode: Mode::Open(Arc::new(Principal::anonymous())),
        }
    }

    /// Keys (`digests`) and client-certificate names, each with the principal it stands for.
    /// Digests and names are unique (the config checks).
    pub fn with_keys(
        digests: Vec<(KeyDigest, Arc<Principal>)>,
        cert_names: HashMap<String, Arc<Principal>>,
    ) -> Authenticator {
        Authenticator {
            mode: Mode::Keys {
                by_digest: digests
                    .into_iter()
                    .map(|(digest, principal)| (digest.words(), principal))
                    .collect(),
                by_cert_name: cert_names,
            },
        }
    }

    /// Whether callers need no credential at all.
    pub fn is_open(&self) -> bool {
        matches!(self.mode, Mode::Open(_))
    }

    /// The principal for a caller that presented `key` (if any) and whose verified client
    /// certificate carries `cert_names`. A presented key wins: it says which key the caller
    /// means to act as, and a wrong one is refused rather than passed over for the certificate.
    pub fn authenticate<'n>(
        &self,
        key: Option<&str>,
        cert_names: impl IntoIterator<Item = &'n str>,
    ) -> Result<Arc<Principal>, AuthError> {
        let (by_digest, by_cert_name) = match &self.mode {
            Mode::Open(anonymous) => return Ok(anonymous.clone()),
            Mode::Keys {
                by_digest,
                by_cert_name,
            } => (by_digest, by_cert_name),
        };
        if let Some(key) = key {
            let presented = KeyDigest::of(key).words();
            let mut found = None;
            // Every digest is compared, the match is not a shortcut.
            for (digest, principal) in by_digest {
                let diff = digest
                    .iter()
                    .zip(&presented)
                    .fold(0u64, |diff, (a, b)| diff | (a ^ b));
                if bool::from(diff.ct_eq(&0)) {
                    found = Some(principal);
                }
            }
            return found.cloned().ok_or(AuthError::UnknownKey);
        }
        cert_names
            .into_iter()
            .find_map(|name| by_cert_name.get(name))
            .cloned()
            .ok_or(AuthError::MissingKey)
    }
}
