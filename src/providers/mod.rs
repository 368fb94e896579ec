//! Providers: how each provider's webhook body is parsed and normalized into an [`Event`].
//!
//! One file per provider. Each exposes `PAYLOAD` (where its payload sits in the body) and
//! `normalize(fields, &Context) -> Result<Normalized, _>` filling the provider-specific parts
//! (local id, type, subject, related, times, data, detail) and deciding how its events are
//! recognized again ([`Identity`]); this module fills what is common (provider, source,
//! namespaced id, receive time, trace context, the payload's exact text).

pub mod abowire;
pub mod fields;
pub mod gigs;
pub mod mobile_manager;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::Reason;
use crate::event::Identity;
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
pub struct Context<'a> {
    /// When the webhook was received (the occurrence time of events that carry none).
    pub received_at: DateTime<Utc>,
    /// The payload's exact text, as it will be kept on the event.
    pub payload: PayloadText<'a>,
}

/// Where a provider's payload sits in its body.
#[derive(Debug, Clone, Copy)]
pub enum PayloadLocation {
    /// Top-level fields: the payload and, on updates, the previous payload.
    Fields {
        data: &'static str,
        previous: &'static str,
    },
    /// The body is the payload.
    WholeBody,
}

/// A payload's exact JSON text, sliced from the body; `None` where absent or `null`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PayloadText<'a> {
    pub data: Option<&'a str>,
    pub previous: Option<&'a str>,
}

/// A normalized event and how it is recognized when delivered again. A provider cannot return
/// an event without deciding the second.
#[derive(Debug, Clone)]
pub struct Normalized {
    pub event: Event,
    pub identity: Identity,
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
    /// Every provider, in the order they are listed to people.
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::Gigs,
        ProviderKind::Abowire,
        ProviderKind::MobileManager,
    ];

    /// The provider with this config name (`mobile-manager` is accepted for `mobile_manager`).
    pub fn from_name(name: &str) -> Option<ProviderKind> {
        match name {
            "mobile-manager" => Some(ProviderKind::MobileManager),
            name => Self::ALL.into_iter().find(|kind| kind.name() == name),
        }
    }

    /// The provider of an `Event.provider` value; `None` for one this build does not know.
    pub fn from_proto(provider: i32) -> Option<ProviderKind> {
        let provider = Provider::try_from(provider).ok()?;
        Self::ALL.into_iter().find(|kind| kind.proto() == provider)
    }

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

    fn payload_location(self) -> PayloadLocation {
        match self {
            ProviderKind::Gigs => gigs::PAYLOAD,
            ProviderKind::Abowire => abowire::PAYLOAD,
            ProviderKind::MobileManager => mobile_manager::PAYLOAD,
        }
    }

    /// Parses and normalizes a verified webhook received on `source`.
    pub fn normalize(
        self,
        source: &str,
        webhook: &VerifiedWebhook,
    ) -> Result<Normalized, NormalizeError> {
        let body = webhook.body();
        let (fields, payload) = match self.payload_location() {
            PayloadLocation::Fields { data, previous } => {
                let parsed = crate::json::parse_object_keeping(body, &[data, previous])?;
                let payload = PayloadText {
                    data: parsed.kept(data).filter(|text| *text != "null"),
                    previous: parsed.kept(previous).filter(|text| *text != "null"),
                };
                (parsed.fields, payload)
            }
            PayloadLocation::WholeBody => {
                let fields = crate::json::parse_object(body)?;
                // Parsed, so valid UTF-8; the object without the whitespace around it.
                let text = std::str::from_utf8(body).map(str::trim).ok();
                let payload = PayloadText {
                    data: text,
                    previous: None,
                };
                (fields, payload)
            }
        };
        let raw = webhook.raw();
        let context = Context {
            received_at: raw.received_at,
            payload,
        };
        let Normalized {
            mut event,
            identity,
        } = match self {
            ProviderKind::Gigs => gigs::normalize(fields, &context)?,
            ProviderKind::Abowire => abowire::normalize(fields, &context)?,
            ProviderKind::MobileManager => mobile_manager::normalize(fields, &context)?,
        };
        event.id = crate::event::join(&[source, ":", &event.id]);
        event.provider = self.proto() as i32;
        event.source = source.to_owned();
        event.received_at = Some(crate::event::timestamp(raw.received_at));
        event.data_json = payload.data.unwrap_or_default().to_owned();
        event.previous_data_json = payload.previous.unwrap_or_default().to_owned();
        if let Some(traceparent) = raw.traceparent() {
            event.traceparent = traceparent.to_owned();
        }
        let identity = match identity {
            Identity::LatestState(entity) => Identity::LatestState(entity.within(source)),
            other => other,
        };
        Ok(Normalized { event, identity })
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
