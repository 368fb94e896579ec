//! Abowire: two unsigned JSON formats, told apart by their fields.
//!
//! - v1 `{id, eventArn, component, action, userId, timestamp, origin, destination, payload}`, with
//!   event names `resource:verb` (`api-key:revoke` -> `api_key.revoked`).
//! - current `{source, event, accountId, isProduction, payload, previousPayload}`, with `event`
//!   already `<resource>.<action>` (`customer.created`).
//!
//! Neither carries a trustworthy per-event id (the v1 `id` is documented as the *webhook's* UUID),
//! so the local id is a fingerprint of the whole body: a redelivery deduplicates, two distinct
//! events with identical bodies are indistinguishable anyway.
//!
//! A `payload` that is not an object (a bulk event's array, a bare string) is kept as
//! `data = {"value": payload}`, since `data` is a `Struct`; the elements of an array payload that
//! carry an `id` become `related` resources of the event's kind.

use std::borrow::Cow;

use prost_types::value::Kind;
use prost_types::{Struct, Value};

use super::fields::{self, Object};
use super::{Context, NormalizeError};
use crate::event::{self, Fingerprint, resource};
use crate::proto::v1::event::Detail;
use crate::proto::v1::{AbowireDetail, AbowireFormat, Event, ResourceRef};

/// Normalizes an Abowire webhook of either format.
pub fn normalize(mut fields: Object, context: &Context) -> Result<Event, NormalizeError> {
    // Fingerprint before anything is moved out of the body.
    let id = Fingerprint::new().object(&fields).finish("abw_");
    let mut event = if fields::has(&fields, "event") {
        current(&mut fields, context)?
    } else if fields::has(&fields, "action") || fields::has(&fields, "eventArn") {
        v1(&mut fields, context)?
    } else {
        return Err(NormalizeError::field(
            "event",
            "required (neither v1 `action`/`eventArn` nor current `event` present)",
        ));
    };
    event.id = id;
    Ok(event)
}

/// The current format.
fn current(fields: &mut Object, context: &Context) -> Result<Event, NormalizeError> {
    let name = fields::take_required_string(fields, "", "event")?;
    let canonical = event::dotted_type(&name).ok_or_else(|| {
        NormalizeError::field(
            "event",
            format!("expected \"<resource>.<action>\", found {name:?}"),
        )
    })?;
    let kind = canonical
        .split_once('.')
        .map(|(kind, _)| kind)
        .unwrap_or_default();
    let (data, subject, related) = payload(fields, "payload", kind)?;
    let previous_data = take_payload(fields, "previousPayload")?;
    let detail = AbowireDetail {
        format: AbowireFormat::Current as i32,
        event_source: fields::take_string(fields, "", "source")?.unwrap_or_default(),
        account_id: fields::take_string(fields, "", "accountId")?.unwrap_or_default(),
        is_production: fields::optional_bool(fields, "", "isProduction")?,
        ..AbowireDetail::default()
    };
    Ok(Event {
        r#type: canonical,
        provider_event_type: name,
        subject: Some(subject),
        related,
        // The current format carries no time.
        occurred_at: Some(event::timestamp(context.received_at)),
        data,
        previous_data,
        detail: Some(Detail::Abowire(detail)),
        ..Event::default()
    })
}

/// The v1 format.
fn v1(fields: &mut Object, context: &Context) -> Result<Event, NormalizeError> {
    let event_arn = fields::take_string(fields, "", "eventArn")?.unwrap_or_default();
    let component = fields::take_string(fields, "", "component")?.unwrap_or_default();
    let action = fields::take_string(fields, "", "action")?.unwrap_or_default();
    let (resource_name, verb) = v1_name(&event_arn, &component, &action)?;
    let kind = event::snake_case(&resource_name);
    let canonical = format!("{kind}.{}", event::past_tense(&verb));
    let (timestamp_text, occurred_at) = timestamp(fields, context)?;
    let (data, subject, related) = payload(fields, "payload", &kind)?;
    let detail = AbowireDetail {
        format: AbowireFormat::V1 as i32,
        webhook_id: scalar(fields, "id")?,
        user_id: scalar(fields, "userId")?,
        origin: fields::take_string(fields, "", "origin")?.unwrap_or_default(),
        destination: fields::take_string(fields, "", "destination")?.unwrap_or_default(),
        timestamp: timestamp_text,
        event_arn,
        component,
        action,
        ..AbowireDetail::default()
    };
    Ok(Event {
        r#type: canonical,
        provider_event_type: format!("{resource_name}:{verb}"),
        subject: Some(subject),
        related,
        occurred_at: Some(event::timestamp(occurred_at)),
        data,
        previous_data: None,
        detail: Some(Detail::Abowire(detail)),
        ..Event::default()
    })
}

/// The v1 event name `resource:verb`: from `action` when it is a full name
/// (`api-key:revoke`), else `component` + `action`, else the last two `:`- or `/`-separated
/// segments of `eventArn` (`arn:abowire:…:api-key:revoke`).
fn v1_name(
    event_arn: &str,
    component: &str,
    action: &str,
) -> Result<(String, String), NormalizeError> {
    let split = |text: &str| -> Option<(String, String)> {
        let mut segments = text
            .rsplit([':', '/'])
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let verb = segments.next()?;
        let resource_name = segments.next()?;
        Some((resource_name.to_owned(), verb.to_owned()))
    };
    let name = if action.contains(':') {
        split(action)
    } else if !component.trim().is_empty() && !action.trim().is_empty() {
        Some((component.trim().to_owned(), action.trim().to_owned()))
    } else {
        split(event_arn)
    };
    let invalid = || {
        NormalizeError::field(
            "action",
            format!(
                "expected a `resource:verb` event name in `action`, `component` + `action` or \
                 `eventArn`, found action {action:?}, component {component:?}, eventArn {event_arn:?}"
            ),
        )
    };
    let (resource_name, verb) = name.ok_or_else(invalid)?;
    if event::snake_case(&resource_name).is_empty() || event::snake_case(&verb).is_empty() {
        return Err(invalid());
    }
    Ok((resource_name, verb))
}

/// The v1 `timestamp` as sent and as a time: RFC 3339, or epoch seconds or milliseconds as a
/// number or numeric text. Absent -> the receive time.
fn timestamp(
    fields: &Object,
    context: &Context,
) -> Result<(String, chrono::DateTime<chrono::Utc>), NormalizeError> {
    let parsed = match fields::get(fields, "timestamp") {
        None => return Ok((String::new(), context.received_at)),
        Some(Kind::StringValue(text)) => (text.clone(), event::parse_time_text(text)),
        Some(Kind::NumberValue(number)) => {
            (fields::number_text(*number), event::from_epoch(*number))
        }
        Some(other) => {
            return Err(fields::wrong_type(
                "",
                "timestamp",
                "a time or an epoch number",
                Some(other),
            ));
        }
    };
    match parsed {
        (text, Some(time)) => Ok((text, time)),
        (text, None) => Err(NormalizeError::field(
            "timestamp",
            format!("expected an rfc 3339 time or epoch seconds/milliseconds, found {text:?}"),
        )),
    }
}

/// An identifier-like v1 field (a string, or a number as text).
fn scalar(fields: &Object, key: &str) -> Result<String, NormalizeError> {
    Ok(fields::optional_scalar(fields, "", key)?
        .map(Cow::into_owned)
        .unwrap_or_default())
}

/// Takes the payload as `data`, with the subject (`kind`/`payload.id`) and, for array payloads,
/// the elements as related resources.
fn payload(
    fields: &mut Object,
    key: &str,
    kind: &str,
) -> Result<(Option<Struct>, ResourceRef, Vec<ResourceRef>), NormalizeError> {
    let mut subject_id = String::new();
    let mut related = Vec::new();
    match fields::get(fields, key) {
        Some(Kind::StructValue(object)) => {
            subject_id = fields::optional_scalar(&object.fields, key, "id")?
                .map(Cow::into_owned)
                .unwrap_or_default();
        }
        Some(Kind::ListValue(list)) => {
            for item in &list.values {
                let id = match &item.kind {
                    Some(Kind::StructValue(object)) => {
                        fields::get(&object.fields, "id").and_then(fields::scalar_text)
                    }
                    Some(other) => fields::scalar_text(other),
                    None => None,
                };
                if let Some(id) = id.filter(|id| !id.is_empty()) {
                    related.push(resource(kind, id));
                }
            }
        }
        _ => {}
    }
    let data = take_payload(fields, key)?;
    Ok((data, resource(kind, subject_id), related))
}

/// Takes a payload field as a `Struct`: an object as is, any other value as `{"value": …}`.
fn take_payload(fields: &mut Object, key: &str) -> Result<Option<Struct>, NormalizeError> {
    Ok(match fields.remove(key).and_then(|value| value.kind) {
        None | Some(Kind::NullValue(_)) => None,
        Some(Kind::StructValue(object)) => Some(object),
        Some(other) => {
            let mut wrapped = Struct::default();
            wrapped
                .fields
                .insert("value".to_owned(), Value { kind: Some(other) });
            Some(wrapped)
        }
    })
}

#[cfg(test)]
mod tests;
