//! Who may call: API keys and client certificates resolve to a [`Principal`] whose scopes,
//! sources and forwarder permission decide what it may do. A layer in front of the transports:
//! `grpc` turns `authorization` metadata and the TLS peer into a lookup here, and hands the
//! principal to the handlers, which ask it before they act; nothing here knows a transport.
//!
//! - [`keys`]: the configured keys, looked up by the SHA-256 digest of what a caller presents,
//!   compared in constant time.
//! - [`tls`]: rustls server configurations from PEM files, re-read when the files change, and
//!   the identity of a client certificate.

pub mod keys;
pub mod tls;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::Reason;
use crate::log::EventFilter;

pub use keys::{Authenticator, KeyDigest};

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `VerifyAndNormalize`.
    Ingest,
    /// `StreamEvents`, `ListEvents`, `GetEvent`.
    Read,
}

impl Scope {
    pub const fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
        }
    }
}

/// An authenticated caller: what one configured key (or client certificate) may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's configured name: for logs and messages (never the key itself).
    pub name: String,
    pub scopes: BTreeSet<Scope>,
    /// The only sources it may ingest to or read from; `None`: every source.
    pub sources: Option<BTreeSet<String>>,
    /// Whether its `remote_addr` and `received_at` are believed: a trusted forwarder passing on
    /// webhooks its own HTTP server received.
    pub forwarder: bool,
    /// How far a forwarder's `received_at` may be from now; `None`: any (only with `auth =
    /// "none"`, where every caller is trusted as before keys existed).
    pub received_at_skew: Option<Duration>,
}

/// Why a caller is refused. Messages name keys by their configured name, never by value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no api key: send `authorization: Bearer <key>`")]
    MissingKey,
    #[error("the api key matches no configured key")]
    UnknownKey,
    #[error("key `{key}` lacks the `{}` scope", scope.name())]
    MissingScope { key: String, scope: Scope },
    #[error("key `{key}` may not use source `{name}`")]
    SourceNotAllowed { key: String, name: String },
    #[error(
        "field `received_at` is {}s from now, more than the {}s a forwarder may claim",
        .off.as_secs(), .skew.as_secs()
    )]
    ReceivedAtOutOfRange { off: Duration, skew: Duration },
}

impl AuthError {
    pub fn reason(&self) -> Reason {
        match self {
            AuthError::MissingKey => Reason::MissingApiKey,
            AuthError::UnknownKey => Reason::UnknownApiKey,
            AuthError::MissingScope { .. } => Reason::PermissionDenied,
            AuthError::SourceNotAllowed { .. } => Reason::SourceNotAllowed,
            AuthError::ReceivedAtOutOfRange { .. } => Reason::ReceivedAtOutOfRange,
        }
    }
}

/// Where a webhook came from and when, as the caller claims it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClaimedOrigin {
    pub remote_addr: Option<IpAddr>,
    pub received_at: Option<DateTime<Utc>>,
}

/// Where a webhook came from and when, as far as the server believes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub remote_addr: Option<IpAddr>,
    pub received_at: DateTime<Utc>,
}

impl Principal {
    /// A principal that may do everything, for `auth = "none"`.
    pub fn anonymous() -> Principal {
        Principal {
            name: "anonymous".to_owned(),
            scopes: BTreeSet::from([Scope::Ingest, Scope::Read]),
            sources: None,
            forwarder: true,
            received_at_skew: None,
        }
    }

    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(AuthError::MissingScope {
                key: self.name.clone(),
                scope,
            })
        }
    }

    /// Whether it may ingest to or read events of `source`.
    pub fn may_use(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|sources| sources.contains(source))
    }

    /// Ingest: the webhook's source must be one of the key's.
    pub fn check_source(&self, source: &str) -> Result<(), AuthError> {
        if self.may_use(source) {
            Ok(())
        } else {
            Err(self.not_allowed(source))
        }
    }

    /// Reads: narrows `filter` to the key's sources. A filter naming no source gets all of the
    /// key's; one naming a source outside them is refused, so a caller learns at once that it
    /// asked for something it will never see, rather than waiting on a silent stream.
    pub fn restrict(&self, filter: &mut EventFilter) -> Result<(), AuthError> {
        let Some(allowed) = &self.sources else {
            return Ok(());
        };
        if let Some(foreign) = filter.sources.iter().find(|s| !allowed.contains(*s)) {
            return Err(self.not_allowed(foreign));
        }
        if filter.sources.is_empty() {
            filter.sources = allowed.iter().cloned().collect();
        }
        Ok(())
    }

    /// The origin to verify a webhook against: a forwarder's claims (its `received_at` within
    /// the skew of `now`, unless `dry_run`, which stores nothing and so may re-verify an old
    /// delivery), else the transport's `peer` and `now`.
    pub fn origin(
        &self,
        claimed: ClaimedOrigin,
        peer: Option<IpAddr>,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Origin, AuthError> {
        if !self.forwarder {
            return Ok(Origin {
                remote_addr: peer,
                received_at: now,
            });
        }
        let received_at = claimed.received_at.unwrap_or(now);
        if let Some(skew) = self.received_at_skew.filter(|_| !dry_run) {
            let off = (received_at - now).abs().to_std().unwrap_or(Duration::MAX);
            if off > skew {
                return Err(AuthError::ReceivedAtOutOfRange { off, skew });
            }
        }
        Ok(Origin {
            // A forwarder that names no address passes on its own view: unknown.
            remote_addr: claimed.remote_addr,
            received_at,
        })
    }

    fn not_allowed(&self, source: &str) -> AuthError {
        AuthError::SourceNotAllowed {
            key: self.name.clone(),
            name: source.chars().take(64).collect(),
        }
    }
}

/// The key of an `authorization: Bearer <key>` value (the scheme is case-insensitive); `None`
/// for any other form, which callers refuse as an unknown key rather than ignore.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests;
