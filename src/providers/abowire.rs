//! Abowire: two unsigned JSON formats, told apart by their fields.
//!
//! - v1 `{id, eventArn, component, action, userId, timestamp, origin, destination, payload}`, with
//!   event names `resource:verb` (`api-key:revoke` -> `api_key.revoked`).
//! - current `{source, event, accountId, isProduction, payload, previousPayload}`, with `event`
//!   already `<resource>.<action>` (`customer.created`).
//!
//! Neither carries a trustworthy per-event id (the v1 `id` is documented as the *webhook's* UUID),
//! so the local id is a fingerprint of the whole body: a redelivery deduplicates, two distinct
//! events with identical bodies are indistinguishable anyway. The payloads enter it as their
//! exact text, since parsed numbers are doubles: `{"cents": 9007199254740993}` and `…992` are
//! different events. A v1 body with a `timestamp` names one moment, so its fingerprint identifies
//! the event; without one (and in the current format) a body is the *state* of a resource, and
//! only a repeat of that resource's latest state is a redelivery.
//!
//! Envelope fields neither format documents are kept in `detail.extensions`.
//!
//! A `payload` that is not an object (a bulk event's array, a bare string) is kept as
//! `data = {"value": payload}`, since `data` is a `Struct`; the elements of an array payload that
//! carry an `id` become `related` resources of the event's kind.

use prost_types::value::Kind;
use prost_types::{Struct, Value};

use super::fields::{self, Object};
use super::{Context, NormalizeError, Normalized, PayloadLocation};
use crate::event::{self, EntityKey, Fingerprint, Identity, resource};
use crate::proto::v1::event::Detail;
use crate::proto::v1::{AbowireDetail, AbowireFormat, Event, ResourceRef};

/// The envelope fields of both formats, taken out of the body in one pass (cheaper than removing
/// them one by one). Each is as sent; JSON null counts as absent.
#[derive(Default)]
struct Envelope {
    id: Option<Value>,
    event_arn: Option<Value>,
    component: Option<Value>,
    action: Option<Value>,
    user_id: Option<Value>,
    timestamp: Option<Value>,
    origin: Option<Value>,
    destination: Option<Value>,
    payload: Option<Value>,
    source: Option<Value>,
    event: Option<Value>,
    account_id: Option<Value>,
    is_production: Option<Value>,
    previous_payload: Option<Value>,
    /// Fields neither format documents, kept as sent (see `AbowireDetail.extensions`).
    extensions: Object,
}

/// `payload` and, in the current format, `previousPayload`.
pub const PAYLOAD: PayloadLocation = PayloadLocation::Fields {
    data: "payload",
    previous: "previousPayload",
};

/// Normalizes an Abowire webhook of either format.
pub fn normalize(fields: Object, context: &Context<'_>) -> Result<Normalized, NormalizeError> {
    // Fingerprint before anything is moved out of the body.
    let id = Fingerprint::new()
        .object(&fields)
        .text(context.payload.data.unwrap_or("null"))
        .text(context.payload.previous.unwrap_or("null"))
        .finish("abw_");
    let mut envelope = Envelope::default();
    for (key, value) in fields {
        let slot = match key.as_str() {
            "id" => &mut envelope.id,
            "eventArn" => &mut envelope.event_arn,
            "component" => &mut envelope.component,
            "action" => &mut envelope.action,
            "userId" => &mut envelope.user_id,
            "timestamp" => &mut envelope.timestamp,
            "origin" => &mut envelope.origin,
            "destination" => &mut envelope.destination,
            "payload" => &mut envelope.payload,
            "source" => &mut envelope.source,
            "event" => &mut envelope.event,
            "accountId" => &mut envelope.account_id,
            "isProduction" => &mut envelope.is_production,
            "previousPayload" => &mut envelope.previous_payload,
            // Fields this version does not know: kept, never rejected (forward compatibility).
            _ => {
                envelope.extensions.insert(key, value);
                continue;
            }
        };
        *slot = Some(value);
    }
    let mut event = if present(&envelope.event) {
        current(envelope, context)?
    } else if present(&envelope.action) || present(&envelope.event_arn) {
        v1(envelope, context)?
    } else {
        return Err(NormalizeError::field(
            "event",
            "required (neither v1 `action`/`eventArn` nor current `event` present)",
        ));
    };
    event.id = id;
    let identity = identity(&event);
    Ok(Normalized { event, identity })
}

/// A timestamped v1 delivery is one moment; anything else is the state of the resource it is
/// about or, naming none, of its type.
fn identity(event: &Event) -> Identity {
    if let Some(Detail::Abowire(detail)) = &event.detail
        && detail.format == AbowireFormat::V1 as i32
        && !detail.timestamp.is_empty()
    {
        return Identity::Fingerprint;
    }
    let entity = match &event.subject {
        Some(subject) if !subject.id.is_empty() => EntityKey::new("resource")
            .part(&subject.kind)
            .part(&subject.id),
        _ => EntityKey::new("type").part(&event.r#type),
    };
    Identity::LatestState(entity)
}

/// Unknown envelope fields as `detail.extensions`: unset when there are none.
fn extensions(fields: Object) -> Option<Struct> {
    (!fields.is_empty()).then_some(Struct { fields })
}

fn present(value: &Option<Value>) -> bool {
    matches!(value, Some(Value { kind: Some(kind) }) if !matches!(kind, Kind::NullValue(_)))
}

/// The current format.
fn current(envelope: Envelope, context: &Context<'_>) -> Result<Event, NormalizeError> {
    let name = fields::require_string(string(envelope.event, "event")?, "", "event")?;
    let canonical = event::dotted_type(&name).ok_or_else(|| {
        NormalizeError::field(
            "event",
            format!("expected \"<resource>.<action>\", found {name:?}"),
        )
    })?;
    let kind = canonical.split_once('.').map_or("", |(kind, _)| kind);
    let (data, subject, related) = payload(envelope.payload, kind)?;
    let is_production = envelope.is_production.map_or(Ok(None), |value| {
        fields::into_bool(value, "", "isProduction")
    })?;
    let detail = AbowireDetail {
        format: AbowireFormat::Current as i32,
        event_source: string(envelope.source, "source")?.unwrap_or_default(),
        account_id: string(envelope.account_id, "accountId")?.unwrap_or_default(),
        is_production,
        extensions: extensions(envelope.extensions),
        ..AbowireDetail::default()
    };
    Ok(Event {
        subject: Some(subject),
        r#type: canonical,
        provider_event_type: name,
        related,
        // The current format carries no time.
        occurred_at: Some(event::timestamp(context.received_at)),
        data,
        previous_data: envelope.previous_payload.and_then(wrap),
        detail: Some(Detail::Abowire(detail)),
        ..Event::default()
    })
}

/// The v1 format.
fn v1(envelope: Envelope, context: &Context<'_>) -> Result<Event, NormalizeError> {
    let event_arn = string(envelope.event_arn, "eventArn")?.unwrap_or_default();
    let component = string(envelope.component, "component")?.unwrap_or_default();
    let action = string(envelope.action, "action")?.unwrap_or_default();
    let invalid = || {
        NormalizeError::field(
            "action",
            format!(
                "expected a `resource:verb` event name in `action`, `component` + `action` or \
                 `eventArn`, found action {action:?}, component {component:?}, eventArn {event_arn:?}"
            ),
        )
    };
    let (resource_name, verb) = v1_name(&event_arn, &component, &action).ok_or_else(invalid)?;
    let kind = event::snake_case(resource_name);
    let past = event::past_tense(verb);
    if kind.is_empty() || past.is_empty() {
        return Err(invalid());
    }
    let provider_event_type = event::join(&[resource_name, ":", verb]);
    let (timestamp_text, occurred_at) = timestamp(envelope.timestamp, context)?;
    let (data, subject, related) = payload(envelope.payload, &kind)?;
    let detail = AbowireDetail {
        format: AbowireFormat::V1 as i32,
        webhook_id: scalar(envelope.id, "id")?,
        user_id: scalar(envelope.user_id, "userId")?,
        origin: redact_url(&string(envelope.origin, "origin")?.unwrap_or_default()),
        destination: redact_url(&string(envelope.destination, "destination")?.unwrap_or_default()),
        timestamp: timestamp_text,
        event_arn,
        component,
        action,
        extensions: extensions(envelope.extensions),
        ..AbowireDetail::default()
    };
    Ok(Event {
        r#type: event::join(&[&kind, ".", &past]),
        provider_event_type,
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
fn v1_name<'a>(
    event_arn: &'a str,
    component: &'a str,
    action: &'a str,
) -> Option<(&'a str, &'a str)> {
    let split = |text: &'a str| {
        let mut segments = text
            .rsplit([':', '/'])
            .map(str::trim)
            .filter(|segment| !segment.is_empty());
        let verb = segments.next()?;
        Some((segments.next()?, verb))
    };
    let (component, action_trimmed) = (component.trim(), action.trim());
    if action.contains(':') {
        split(action)
    } else if !component.is_empty() && !action_trimmed.is_empty() {
        Some((component, action_trimmed))
    } else {
        split(event_arn)
    }
}

/// The v1 `timestamp` as sent and as a time: RFC 3339, or epoch seconds or milliseconds as a
/// number or numeric text. Absent -> the receive time.
fn timestamp(
    value: Option<Value>,
    context: &Context,
) -> Result<(String, chrono::DateTime<chrono::Utc>), NormalizeError> {
    let (text, time) = match value.and_then(|value| value.kind) {
        None | Some(Kind::NullValue(_)) => return Ok((String::new(), context.received_at)),
        Some(Kind::StringValue(text)) => {
            let time = event::parse_time_text(&text);
            (text, time)
        }
        Some(Kind::NumberValue(number)) => (fields::number_text(number), event::from_epoch(number)),
        Some(other) => {
            return Err(fields::wrong_type(
                "",
                "timestamp",
                "a time or an epoch number",
                Some(&other),
            ));
        }
    };
    match time {
        Some(time) => Ok((text, time)),
        None => Err(NormalizeError::field(
            "timestamp",
            format!("expected an rfc 3339 time or epoch seconds/milliseconds, found {text:?}"),
        )),
    }
}

/// Stands in for every credential-like part of a URL.
const REDACTED: &str = "REDACTED";

/// `destination` is the receiving URL as configured at Abowire, which carries hooknorm's own
/// `?token=` secret (and `origin` might carry one of Abowire's), so the values of its query
/// parameters and any `user:password@` are replaced before the URL is stored and streamed to
/// every subscriber. Parameter names, host and path stay, as they say where the event went.
fn redact_url(url: &str) -> String {
    let (rest, fragment) = match url.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (url, None),
    };
    let (base, query) = match rest.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (rest, None),
    };
    let mut out = String::with_capacity(url.len());
    match base.split_once("://") {
        Some((scheme, after)) => {
            let authority_end = after.find('/').unwrap_or(after.len());
            let (authority, path) = after.split_at(authority_end);
            out.push_str(scheme);
            out.push_str("://");
            match authority.rsplit_once('@') {
                Some((_, host)) => {
                    out.push_str(REDACTED);
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(base),
    }
    if let Some(query) = query {
        out.push('?');
        for (index, pair) in query.split('&').enumerate() {
            if index > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, value)) if !value.is_empty() => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// An optional string field.
fn string(value: Option<Value>, key: &str) -> Result<Option<String>, NormalizeError> {
    value.map_or(Ok(None), |value| fields::into_string(value, "", key))
}

/// An identifier-like v1 field: a string, or a number as text.
fn scalar(value: Option<Value>, key: &str) -> Result<String, NormalizeError> {
    match value.and_then(|value| value.kind) {
        None | Some(Kind::NullValue(_)) => Ok(String::new()),
        Some(Kind::StringValue(text)) => Ok(text),
        Some(Kind::NumberValue(number)) => Ok(fields::number_text(number)),
        Some(other) => Err(fields::wrong_type(
            "",
            key,
            "a string or a number",
            Some(&other),
        )),
    }
}

/// The payload as `data`, with the subject (`kind`/`payload.id`) and, for array payloads, the
/// elements as related resources.
fn payload(
    value: Option<Value>,
    kind: &str,
) -> Result<(Option<Struct>, ResourceRef, Vec<ResourceRef>), NormalizeError> {
    let mut subject_id = String::new();
    let mut related = Vec::new();
    match value.as_ref().and_then(|value| value.kind.as_ref()) {
        Some(Kind::StructValue(object)) => {
            if let Some(id) = fields::optional_scalar(&object.fields, "payload", "id")? {
                subject_id = id.into_owned();
            }
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
    Ok((value.and_then(wrap), resource(kind, subject_id), related))
}

/// A payload as a `Struct`: an object as is, any other value as `{"value": …}`, null as none.
fn wrap(value: Value) -> Option<Struct> {
    match value.kind? {
        Kind::NullValue(_) => None,
        Kind::StructValue(object) => Some(object),
        other => {
            let mut wrapped = Struct::default();
            wrapped
                .fields
                .insert("value".to_owned(), Value { kind: Some(other) });
            Some(wrapped)
        }
    }
}

#[cfg(test)]
mod tests;
