//! Mobile Manager (Jola): order updates (`OrderId`, `State`, `Type`, …) and alert on/off events
//! (`AlertId`, `AlertTriggerType`, …), told apart by their fields.
//!
//! Neither carries an event id or a time: the local id is a fingerprint of the event's identity
//! (normalized, so a state sent as `1` or `"Complete"` gives the same id) and the occurrence time
//! is the receive time. The whole body is the event's `data`. Since a state may be sent again
//! and may also recur (an alert on, off, on), an event is a redelivery only when it repeats the
//! latest state of its order, or of its alert on its entity.
//!
//! Order `Type`/`State` arrive as numbers (JSON numbers or numeric text) or names
//! (case-insensitive). A value this version does not know still normalizes: its enum is
//! UNSPECIFIED, its `*_name` holds what was sent and the type is `order.state_<n>` or
//! `order.<name>`. All-zero GUIDs mean "not applicable" and are left out. `State` is required (it
//! decides the type); `Type` is optional. Alerts require `AlertId`, `AlertTargetType`,
//! `AlertTriggerType` and `EntityId`; thresholds that are not numeric are left unset.

use std::borrow::Cow;

use prost_types::Struct;
use prost_types::value::Kind;

use super::fields::{self, Object};
use super::{Context, NormalizeError, Normalized, PayloadLocation};
use crate::event::{self, EntityKey, Fingerprint, Identity, resource};
use crate::proto::v1::event::Detail;
use crate::proto::v1::{
    Event, MobileManagerAlertDetail, MobileManagerAlertTarget, MobileManagerAlertTrigger,
    MobileManagerOrderDetail,
};

/// Provider order types by provider value (`Activate = 0`). The proto enum value is index + 1.
const ORDER_TYPES: [&str; 15] = [
    "Activate",
    "Cease",
    "Bar",
    "BoltOn",
    "TariffChange",
    "SimSwap",
    "UnBar",
    "ConditionalBar",
    "CPE",
    "PoolRegrade",
    "PoolActivation",
    "PoolCease",
    "APNActivation",
    "APNChangeRequest",
    "FullBar",
];

/// Provider order states by provider value (`Open = 0`). The proto enum value is index + 1.
const ORDER_STATES: [&str; 6] = [
    "Open",
    "Complete",
    "Failed",
    "Stalled",
    "Cancelled",
    "Pending",
];

/// The canonical action of each order state, by provider value.
const ORDER_ACTIONS: [&str; 6] = [
    "opened",
    "completed",
    "failed",
    "stalled",
    "cancelled",
    "pending",
];

/// The body is the payload.
pub const PAYLOAD: PayloadLocation = PayloadLocation::WholeBody;

/// Normalizes a Mobile Manager webhook.
pub fn normalize(fields: Object, context: &Context<'_>) -> Result<Normalized, NormalizeError> {
    if fields::has(&fields, "OrderId") {
        order(fields, context)
    } else if fields::has(&fields, "AlertId") || fields::has(&fields, "AlertTriggerType") {
        alert(fields, context)
    } else {
        Err(NormalizeError::field(
            "OrderId",
            "required (neither an order update `OrderId` nor an alert `AlertId`/`AlertTriggerType` present)",
        ))
    }
}

/// A provider enum value as sent.
#[derive(Debug, PartialEq, Eq)]
enum Code<'a> {
    /// A value this version knows: the provider's number.
    Known(usize),
    /// A number this version does not know.
    UnknownNumber(u32),
    /// A name this version does not know, as sent (trimmed).
    UnknownName(&'a str),
}

impl Code<'_> {
    /// The proto enum value: provider value + 1, or 0 (UNSPECIFIED) when unknown.
    fn proto(&self) -> i32 {
        match self {
            Code::Known(index) => *index as i32 + 1,
            _ => 0,
        }
    }

    /// The provider's name, or what was sent when unknown.
    fn name(&self, names: &[&str]) -> String {
        match self {
            Code::Known(index) => names[*index].to_owned(),
            Code::UnknownNumber(number) => number.to_string(),
            Code::UnknownName(name) => (*name).to_owned(),
        }
    }

    /// Adds the code to a fingerprint the same way whether it was sent as a number or a name.
    fn identify(&self, fingerprint: &mut Fingerprint) {
        match self {
            Code::Known(index) => fingerprint.number(*index as f64),
            Code::UnknownNumber(number) => fingerprint.number(f64::from(*number)),
            Code::UnknownName(name) => fingerprint.text_lowercase(name),
        };
    }
}

/// Reads an order `Type` or `State`: a whole number (JSON or text) or a case-insensitive name.
fn code<'a>(
    fields: &'a Object,
    key: &str,
    names: &[&str],
) -> Result<Option<Code<'a>>, NormalizeError> {
    let expected = "a whole number 0 or greater or a name";
    let number = match fields::get(fields, key) {
        None => return Ok(None),
        Some(Kind::NumberValue(number)) => *number,
        Some(Kind::StringValue(text)) => {
            let text = text.trim();
            if text.is_empty() {
                return Err(NormalizeError::field(key, "must not be empty"));
            }
            if !text.bytes().all(|b| b.is_ascii_digit()) {
                let known = names
                    .iter()
                    .position(|name| name.eq_ignore_ascii_case(text));
                return Ok(Some(known.map_or(Code::UnknownName(text), Code::Known)));
            }
            // All digits: parses, at worst to infinity, which the range check refuses.
            text.parse::<f64>().unwrap_or(f64::INFINITY)
        }
        Some(other) => return Err(fields::wrong_type("", key, expected, Some(other))),
    };
    // u32 bounds the cast; larger values would be as unknown as any other.
    if number.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&number) {
        return Err(NormalizeError::field(
            key,
            format!("expected {expected}, found {}", fields::number_text(number)),
        ));
    }
    let number = number as u32;
    Ok(Some(match usize::try_from(number) {
        Ok(index) if index < names.len() => Code::Known(index),
        _ => Code::UnknownNumber(number),
    }))
}

/// A GUID field; empty when absent or the all-zero GUID ("not applicable").
fn guid<'a>(fields: &'a Object, key: &str) -> Result<&'a str, NormalizeError> {
    let text = fields::optional_str(fields, "", key)?.unwrap_or_default();
    Ok(if is_zero_guid(text) { "" } else { text.trim() })
}

/// `00000000-0000-0000-0000-000000000000`, with or without dashes or braces.
fn is_zero_guid(text: &str) -> bool {
    text.contains('0')
        && text
            .trim()
            .bytes()
            .all(|b| matches!(b, b'0' | b'-' | b'{' | b'}'))
}

fn order(fields: Object, context: &Context<'_>) -> Result<Normalized, NormalizeError> {
    let order_id = fields::required_str(&fields, "", "OrderId")?;
    let state =
        code(&fields, "State", &ORDER_STATES)?.ok_or_else(|| fields::missing("", "State"))?;
    let order_type = code(&fields, "Type", &ORDER_TYPES)?;
    let sim_id = guid(&fields, "SimId")?;
    let pool_id = guid(&fields, "PoolId")?;
    let apn_id = guid(&fields, "APNId")?;

    let action: Cow<'_, str> = match &state {
        Code::Known(index) => ORDER_ACTIONS[*index].into(),
        Code::UnknownNumber(number) => format!("state_{number}").into(),
        Code::UnknownName(name) => {
            let action = event::snake_case(name);
            if action.is_empty() {
                return Err(NormalizeError::field(
                    "State",
                    format!("expected a state name, found {name:?}"),
                ));
            }
            action.into()
        }
    };
    // Case-insensitive GUIDs: the same order in another case is the same order.
    let mut fingerprint = Fingerprint::new();
    fingerprint.text_lowercase(order_id);
    match &order_type {
        Some(order_type) => order_type.identify(&mut fingerprint),
        None => {
            fingerprint.text("");
        }
    }
    state.identify(&mut fingerprint);
    fingerprint
        .text_lowercase(sim_id)
        .text_lowercase(pool_id)
        .text_lowercase(apn_id);
    let id = fingerprint.finish("mmo_");
    let related = [("sim", sim_id), ("pool", pool_id), ("apn", apn_id)]
        .into_iter()
        .filter(|(_, id)| !id.is_empty())
        .map(|(kind, id)| resource(kind, id))
        .collect();
    let detail = MobileManagerOrderDetail {
        order_id: order_id.to_owned(),
        r#type: order_type.as_ref().map(Code::proto).unwrap_or_default(),
        type_name: order_type
            .as_ref()
            .map(|code| code.name(&ORDER_TYPES))
            .unwrap_or_default(),
        state: state.proto(),
        state_name: state.name(&ORDER_STATES),
        sim_id: sim_id.to_owned(),
        pool_id: pool_id.to_owned(),
        apn_id: apn_id.to_owned(),
    };
    let identity = Identity::LatestState(EntityKey::new("order").part_lowercase(order_id));
    let event = Event {
        id,
        r#type: event::join(&["order.", &action]),
        provider_event_type: "orders_update".to_owned(),
        subject: Some(resource("order", order_id)),
        related,
        occurred_at: Some(event::timestamp(context.received_at)),
        data: Some(Struct { fields }),
        detail: Some(Detail::MobileManagerOrder(detail)),
        ..Event::default()
    };
    Ok(Normalized { event, identity })
}

fn alert(fields: Object, context: &Context<'_>) -> Result<Normalized, NormalizeError> {
    let alert_id = fields::required_str(&fields, "", "AlertId")?;
    let target_name = fields::required_str(&fields, "", "AlertTargetType")?;
    let trigger_name = fields::required_str(&fields, "", "AlertTriggerType")?;
    let entity_id = fields::required_str(&fields, "", "EntityId")?;

    let (target, kind): (_, Cow<'_, str>) = match target_name.trim() {
        name if name.eq_ignore_ascii_case("sim") => (MobileManagerAlertTarget::Sim, "sim".into()),
        name if name.eq_ignore_ascii_case("pool") => {
            (MobileManagerAlertTarget::Pool, "pool".into())
        }
        name => (
            MobileManagerAlertTarget::Unspecified,
            event::snake_case(name).into(),
        ),
    };
    let (trigger, action): (_, Cow<'_, str>) = match trigger_name.trim() {
        name if name.eq_ignore_ascii_case("on") => {
            (MobileManagerAlertTrigger::On, "triggered".into())
        }
        name if name.eq_ignore_ascii_case("off") => {
            (MobileManagerAlertTrigger::Off, "cleared".into())
        }
        name => (
            MobileManagerAlertTrigger::Unspecified,
            event::snake_case(name).into(),
        ),
    };
    if kind.is_empty() {
        return Err(NormalizeError::field(
            "AlertTargetType",
            format!("expected a target name, found {target_name:?}"),
        ));
    }
    if action.is_empty() {
        return Err(NormalizeError::field(
            "AlertTriggerType",
            format!("expected a trigger name, found {trigger_name:?}"),
        ));
    }

    // Identity is the alert, the entity and the trigger (not the observed value): a redelivery
    // repeats those, and the log tells On, Off, On apart by comparing with the latest state.
    let mut fingerprint = Fingerprint::new();
    fingerprint
        .text_lowercase(alert_id)
        .text_lowercase(entity_id)
        .text_lowercase(trigger_name.trim());
    let id = fingerprint.finish("mma_");
    let related = if is_zero_guid(alert_id) {
        Vec::new()
    } else {
        vec![resource("alert", alert_id)]
    };
    let detail = MobileManagerAlertDetail {
        alert_id: alert_id.to_owned(),
        alert_name: fields::optional_str(&fields, "", "AlertName")?
            .unwrap_or_default()
            .to_owned(),
        target: target as i32,
        target_name: target_name.to_owned(),
        trigger: trigger as i32,
        trigger_name: trigger_name.to_owned(),
        entity_id: entity_id.to_owned(),
        stat_name: fields::optional_str(&fields, "", "AlertStatName")?
            .unwrap_or_default()
            .to_owned(),
        condition: fields::optional_str(&fields, "", "AlertCondition")?
            .unwrap_or_default()
            .to_owned(),
        conditional_value: fields::lenient_number(fields::get(&fields, "AlertConditionalValue")),
        trigger_value: fields::lenient_number(fields::get(&fields, "AlertTriggerValue")),
    };
    let identity = Identity::LatestState(
        EntityKey::new("alert")
            .part_lowercase(alert_id)
            .part_lowercase(entity_id),
    );
    let event = Event {
        id,
        r#type: event::join(&["alert.", &action]),
        provider_event_type: "alert".to_owned(),
        subject: Some(resource(kind, entity_id)),
        related,
        occurred_at: Some(event::timestamp(context.received_at)),
        data: Some(Struct { fields }),
        detail: Some(Detail::MobileManagerAlert(detail)),
        ..Event::default()
    };
    Ok(Normalized { event, identity })
}

#[cfg(test)]
mod tests;
