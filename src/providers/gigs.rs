//! Gigs: CloudEvents-style JSON (`com.gigs.<resource>.<action>`) delivered by Svix.
//!
//! The envelope's `evt_…` id is the event's identity. The canonical type drops `com.gigs.`, takes
//! the last segment as the action and joins the rest as the resource
//! (`com.gigs.user.address.created` -> `user_address.created`). The subject is `data` itself
//! (`data.object`/`data.id`); `data` objects without an id of their own are about the resource
//! they reference (see [`subject`]). Every other resource `data` references at its first level,
//! as a nested `{object, id}` or as a bare id, is `related`. Envelope fields this version does not
//! know are kept in `detail.extensions`.

use std::collections::BTreeMap;

use prost_types::Value;
use prost_types::value::Kind;

use super::fields::{self, Object};
use super::{Context, NormalizeError, Normalized, PayloadLocation};
use crate::event::{self, Identity, resource};
use crate::proto::v1::event::Detail;
use crate::proto::v1::{Event, GigsDetail, ResourceRef};

const TYPE_PREFIX: &str = "com.gigs.";

/// `data` and, on `*.updated`, `previousData`.
pub const PAYLOAD: PayloadLocation = PayloadLocation::Fields {
    data: "data",
    previous: "previousData",
};

/// For `data` objects with neither an id nor a subscription/SIM reference: the field that
/// identifies one within its project (an installation is one per application).
const NATURAL_KEYS: &[(&str, &str)] = &[("installation", "application")];

/// Normalizes a Gigs event. Its `evt_…` id is unique across Gigs, so it identifies the event.
pub fn normalize(fields: Object, context: &Context<'_>) -> Result<Normalized, NormalizeError> {
    let (mut id, mut provider_type, mut data, mut previous_data, mut time) =
        (None, None, None, None, None);
    let mut detail = GigsDetail::default();
    let mut extensions = Object::new();
    // One pass takes every envelope field: cheaper than removing them one by one. Fields this
    // version does not know (CloudEvents extension attributes, newer Gigs fields) go to
    // `detail.extensions`, as forward compatibility promises nothing is dropped; `object` is
    // always `"event"` and says nothing. `data` keeps all of its own.
    for (key, value) in fields {
        let text = |value| fields::into_string(value, "", &key);
        match key.as_str() {
            "id" => id = text(value)?,
            "type" => provider_type = text(value)?,
            "data" => data = Some(value),
            "previousData" => previous_data = fields::into_object(value, "", &key)?,
            "time" => time = text(value)?,
            "source" => detail.event_source = text(value)?.unwrap_or_default(),
            "specversion" => detail.spec_version = text(value)?.unwrap_or_default(),
            "datacontenttype" => detail.data_content_type = text(value)?.unwrap_or_default(),
            "project" => detail.project = text(value)?.unwrap_or_default(),
            "version" => detail.api_version = text(value)?.unwrap_or_default(),
            "actor" => detail.actor = fields::into_object(value, "", &key)?,
            "object" => {}
            _ => {
                extensions.insert(key, value);
            }
        }
    }
    if !extensions.is_empty() {
        detail.extensions = Some(prost_types::Struct { fields: extensions });
    }
    let id = fields::require_string(id, "", "id")?;
    let provider_type = fields::require_string(provider_type, "", "type")?;
    let canonical = canonical_type(&provider_type)?;
    let resource_name = canonical
        .split_once('.')
        .map_or("", |(resource, _)| resource);
    let data = match data.and_then(|value| value.kind) {
        Some(Kind::StructValue(data)) => data,
        None | Some(Kind::NullValue(_)) => return Err(fields::missing("", "data")),
        Some(other) => return Err(fields::wrong_type("", "data", "an object", Some(&other))),
    };
    let occurred_at = match &time {
        // A missing time is tolerated (the receive time stands in); a malformed one is not.
        None => context.received_at,
        Some(text) => event::parse_rfc3339(text).ok_or_else(|| {
            NormalizeError::field("time", format!("expected an rfc 3339 time, found {text:?}"))
        })?,
    };
    detail.time = time.unwrap_or_default();

    let mut related = references(&data.fields);
    let subject = subject(&data.fields, resource_name, &related)?;
    // The subject is not repeated among the related, nor is any resource twice.
    related.retain(|reference| *reference != subject);
    let mut index = 0;
    while index < related.len() {
        if related[..index].contains(&related[index]) {
            related.remove(index);
        } else {
            index += 1;
        }
    }

    let event = Event {
        provider_event_id: id.clone(),
        id,
        r#type: canonical,
        provider_event_type: provider_type,
        subject: Some(subject),
        related,
        occurred_at: Some(event::timestamp(occurred_at)),
        data: Some(data),
        previous_data,
        detail: Some(Detail::Gigs(detail)),
        ..Event::default()
    };
    Ok(Normalized {
        event,
        identity: Identity::ProviderId,
    })
}

/// `com.gigs.subscriptionChange.applied` -> `subscription_change.applied`.
fn canonical_type(provider_type: &str) -> Result<String, NormalizeError> {
    let Some(name) = provider_type.strip_prefix(TYPE_PREFIX) else {
        return Err(NormalizeError::field(
            "type",
            format!("expected a type starting with \"{TYPE_PREFIX}\", found {provider_type:?}"),
        ));
    };
    event::dotted_type(name).ok_or_else(|| {
        NormalizeError::field(
            "type",
            format!("expected \"{TYPE_PREFIX}<resource>.<action>\", found {provider_type:?}"),
        )
    })
}

/// The resource the event is about.
///
/// `data.object`/`data.id` when `data` has an id. Otherwise the resource it is about: the
/// referenced SIM for objects named after one (`eSimProfile` wraps its `sim`), else the referenced
/// subscription (usage notifications, port-out credentials), else the SIM; failing those a natural
/// key ([`NATURAL_KEYS`]); as a last resort the type's resource with an empty id.
fn subject(
    data: &Object,
    resource_name: &str,
    references: &[ResourceRef],
) -> Result<ResourceRef, NormalizeError> {
    let object_kind = fields::optional_str(data, "data", "object")?.map(event::snake_case);
    if let Some(id) = fields::optional_str(data, "data", "id")? {
        let kind = object_kind.unwrap_or_else(|| resource_name.to_owned());
        return Ok(resource(kind, id));
    }
    let kind = object_kind.as_deref().unwrap_or(resource_name);
    let names_sim = kind.split('_').any(|word| word == "sim");
    let order: [&str; 2] = if names_sim {
        ["sim", "subscription"]
    } else {
        ["subscription", "sim"]
    };
    for anchor in order {
        if let Some(found) = references.iter().find(|reference| reference.kind == anchor) {
            return Ok(found.clone());
        }
    }
    for (natural_kind, key) in NATURAL_KEYS {
        if kind == *natural_kind
            && let Some(id) = fields::optional_str(data, "data", key)?
        {
            return Ok(resource(kind, id));
        }
    }
    Ok(resource(resource_name, ""))
}

/// The resources `data` references at its first level, in key order.
fn references(data: &BTreeMap<String, Value>) -> Vec<ResourceRef> {
    let mut found = Vec::new();
    for (key, value) in data {
        if key == "id" || key == "object" {
            continue;
        }
        let field = Field { key, list: false };
        match &value.kind {
            Some(Kind::StringValue(id)) => found.extend(bare_reference(field, id)),
            Some(Kind::StructValue(nested)) => {
                found.extend(nested_reference(field, &nested.fields))
            }
            Some(Kind::ListValue(list)) => {
                let field = Field { key, list: true };
                for item in &list.values {
                    match &item.kind {
                        Some(Kind::StringValue(id)) => found.extend(bare_reference(field, id)),
                        Some(Kind::StructValue(nested)) => {
                            found.extend(nested_reference(field, &nested.fields));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    found
}

/// The `data` field a value was found under; its kind is looked up only when the value itself
/// does not say (most fields are not references, so most never need it).
#[derive(Clone, Copy)]
struct Field<'a> {
    key: &'a str,
    /// A list of references: the field name is plural (`subscriptionAddons`).
    list: bool,
}

impl Field<'_> {
    fn kind(self) -> Option<&'static str> {
        if !self.list {
            return kind_of_field(self.key);
        }
        [
            self.key.strip_suffix("es"),
            self.key.strip_suffix('s'),
            Some(self.key),
        ]
        .into_iter()
        .flatten()
        .find_map(kind_of_field)
    }
}

/// A bare id string: a reference when its prefix names a kind, or when the field names one and
/// the value looks like an id. Plain values (`"status": "active"`, an ICCID) are not.
fn bare_reference(field: Field<'_>, id: &str) -> Option<ResourceRef> {
    if let Some(kind) = kind_of_id(id) {
        return Some(resource(kind, id));
    }
    // The field's name first: most strings are under fields that name no kind, and a long
    // one (a description, a note) is then never scanned.
    let kind = field.kind()?;
    if id.is_empty() || id.contains(char::is_whitespace) {
        return None;
    }
    Some(resource(kind, id))
}

/// A nested object with an `id`: its kind from its own `object`, else its id's prefix, else the
/// field name.
fn nested_reference(field: Field<'_>, nested: &Object) -> Option<ResourceRef> {
    let Some(Kind::StringValue(id)) = fields::get(nested, "id") else {
        return None;
    };
    if id.is_empty() {
        return None;
    }
    let kind = match fields::get(nested, "object") {
        Some(Kind::StringValue(object)) if !object.is_empty() => event::snake_case(object),
        _ => kind_of_id(id).or_else(|| field.kind())?.to_owned(),
    };
    Some(resource(kind, id))
}

/// The kind a Gigs id's prefix names (`sub_0SNl…` -> `subscription`).
fn kind_of_id(id: &str) -> Option<&'static str> {
    // Every known prefix is 2-3 characters and an underscore; ids are base62 after it.
    let underscore = id.bytes().take(4).position(|b| b == b'_')?;
    let rest = &id[underscore + 1..];
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(match &id[..underscore] {
        "sub" => "subscription",
        "pln" => "plan",
        "sim" => "sim",
        "dev" => "device",
        "usr" => "user",
        "adr" => "user_address",
        "prt" => "porting",
        "sch" => "subscription_change",
        "sad" => "subscription_addon",
        "add" => "addon",
        "ord" => "order",
        "pay" => "payment",
        "pm" => "payment_method",
        "inv" => "invoice",
        "crn" => "credit_note",
        "vou" => "voucher",
        "csn" => "connect_session",
        "ubl" => "usage_balance",
        "apk" => "api_key",
        "mbr" => "member",
        "svp" => "service_provider",
        "org" => "organization",
        _ => return None,
    })
}

/// The kind a field name names (`subscription`, `userAddress` -> `user_address`), if it names a
/// resource. Project and coverage ids carry no prefix (`gigs`, `de`): a bare string is one of
/// those only under its field name.
fn kind_of_field(key: &str) -> Option<&'static str> {
    Some(match key {
        "subscription" => "subscription",
        "plan" => "plan",
        "sim" => "sim",
        "device" => "device",
        "user" => "user",
        "userAddress" | "user_address" => "user_address",
        "porting" => "porting",
        "subscriptionChange" | "subscription_change" => "subscription_change",
        "subscriptionAddon" | "subscription_addon" => "subscription_addon",
        "addon" => "addon",
        "order" => "order",
        "payment" => "payment",
        "paymentMethod" | "payment_method" => "payment_method",
        "invoice" => "invoice",
        "creditNote" | "credit_note" => "credit_note",
        "voucher" => "voucher",
        "connectSession" | "connect_session" => "connect_session",
        "usageBalance" | "usage_balance" => "usage_balance",
        "apiKey" | "api_key" => "api_key",
        "member" => "member",
        "serviceProvider" | "service_provider" => "service_provider",
        "organization" => "organization",
        "project" => "project",
        "coverage" => "coverage",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
