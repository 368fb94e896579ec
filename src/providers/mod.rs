//! Providers: how each provider's webhook body is parsed and normalized into an [`Event`].
//!
//! One file per provider. Each exposes `normalize(fields, &Context) -> Result<Event, _>` filling
//! the provider-specific parts (local id, type, subject, related, times, data, detail); this module
//! fills what is common (provider, source, namespaced id, receive time, trace context).

pub mod abowire;
pub mod fields;
pub mod gigs;
pub mod mobile_manager;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::Reason;
use crate::json::JsonError;
use crate::proto::v1::{Event, Provider};
use crate::webhook::VerifiedWebhook;

/// Why a verified body cannot be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("field `{field}`: {reason}")]
    Field { field: String, reason: String },
}

impl NormalizeError {
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        NormalizeError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn reason(&self) -> Reason {
        Reason::MalformedPayload
    }
}

/// What a provider's normalizer may know besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// When the webhook was received (the occurrence time of events that carry none).
    pub received_at: DateTime<Utc>,
}

/// The closed set of provider formats a source can be configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Gigs,
    Abowire,
    MobileManager,
}

impl ProviderKind {
    /// The provider's config name.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Gigs => "gigs",
            ProviderKind::Abowire => "abowire",
            ProviderKind::MobileManager => "mobile_manager",
        }
    }

    /// The scheme a source uses when its config names none.
    pub fn default_scheme(self) -> &'static str {
        match self {
            ProviderKind::Gigs => "standard_webhooks",
            ProviderKind::Abowire | ProviderKind::MobileManager => "query_token",
        }
    }

    pub fn proto(self) -> Provider {
        match self {
            ProviderKind::Gigs => Provider::Gigs,
            ProviderKind::Abowire => Provider::Abowire,
            ProviderKind::MobileManager => Provider::MobileManager,
        }
    }

    /// Parses and normalizes a verified webhook received on `source`.
    pub fn normalize(
        self,
        source: &str,
        webhook: &VerifiedWebhook,
    ) -> Result<Event, NormalizeError> {
        let fields = crate::json::parse_object(webhook.body())?;
        let raw = webhook.raw();
        let context = Context {
            received_at: raw.received_at,
        };
        let mut event = match self {
            ProviderKind::Gigs => gigs::normalize(fields, &context)?,
            ProviderKind::Abowire => abowire::normalize(fields, &context)?,
            ProviderKind::MobileManager => mobile_manager::normalize(fields, &context)?,
        };
        event.id = crate::event::join(&[source, ":", &event.id]);
        event.provider = self.proto() as i32;
        event.source = source.to_owned();
        event.received_at = Some(crate::event::timestamp(raw.received_at));
        if let Some(traceparent) = raw.traceparent() {
            event.traceparent = traceparent.to_owned();
        }
        Ok(event)
    }
}
