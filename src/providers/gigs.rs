//! Gigs: CloudEvents-style JSON (`com.gigs.<resource>.<action>`) delivered by Svix.
//!
//! The envelope's `evt_…` id is the event's identity. The canonical type drops `com.gigs.`, takes
//! the last segment as the action and joins the rest as the resource
//! (`com.gigs.user.address.created` -> `user_address.created`). The subject is `data` itself
//! (`data.object`/`data.id`); `data` objects without an id of their own are about the resource
//! they reference (see [`subject`]). Every other resource `data` references at its first level,
//! as a nested `{object, id}` or as a bare id, is `related`.

use std::collections::BTreeMap;

use prost_types::Value;
use prost_types::value::Kind;

use super::fields::{self, Object};
use super::{Context, NormalizeError};
use crate::event::{self, resource};
use crate::proto::v1::event::Detail;
use crate::proto::v1::{Event, GigsDetail, ResourceRef};

const TYPE_PREFIX: &str = "com.gigs.";

/// Gigs id prefixes (from the API reference) and the resource kind each names.
const ID_PREFIXES: &[(&str, &str)] = &[
    ("sub_", "subscription"),
    ("pln_", "plan"),
    ("sim_", "sim"),
    ("dev_", "device"),
    ("usr_", "user"),
    ("adr_", "user_address"),
    ("prt_", "porting"),
    ("sch_", "subscription_change"),
    ("sad_", "subscription_addon"),
    ("add_", "addon"),
    ("ord_", "order"),
    ("pay_", "payment"),
    ("pm_", "payment_method"),
    ("inv_", "invoice"),
    ("crn_", "credit_note"),
    ("vou_", "voucher"),
    ("csn_", "connect_session"),
    ("ubl_", "usage_balance"),
    ("apk_", "api_key"),
    ("mbr_", "member"),
    ("svp_", "service_provider"),
    ("org_", "organization"),
];

/// Kinds whose ids carry no prefix (`"project": "gigs"`, coverage `de`): a bare string under one
/// of these keys is a reference even though its value alone does not say so.
const UNPREFIXED_KINDS: &[&str] = &["project", "coverage"];

/// For `data` objects with neither an id nor a subscription/SIM reference: the field that
/// identifies one within its project (an installation is one per application).
const NATURAL_KEYS: &[(&str, &str)] = &[("installation", "application")];

/// Normalizes a Gigs event.
pub fn normalize(mut fields: Object, context: &Context) -> Result<Event, NormalizeError> {
    let id = fields::take_required_string(&mut fields, "", "id")?;
    let provider_type = fields::take_required_string(&mut fields, "", "type")?;
    let (resource_name, canonical) = canonical_type(&provider_type)?;
    let data = match fields.remove("data").and_then(|value| value.kind) {
        Some(Kind::StructValue(data)) => data,
        None | Some(Kind::NullValue(_)) => return Err(fields::missing("", "data")),
        Some(other) => return Err(fields::wrong_type("", "data", "an object", Some(&other))),
    };
    let previous_data = fields::take_object(&mut fields, "", "previousData")?;
    let time = fields::take_string(&mut fields, "", "time")?;
    let occurred_at = match &time {
        // A missing time is tolerated (the receive time stands in); a malformed one is not.
        None => context.received_at,
        Some(text) => event::parse_rfc3339(text).ok_or_else(|| {
            NormalizeError::field("time", format!("expected an rfc 3339 time, found {text:?}"))
        })?,
    };

    let references = references(&data.fields);
    let subject = subject(&data.fields, &resource_name, &references)?;
    let mut related: Vec<ResourceRef> = Vec::with_capacity(references.len());
    for reference in references {
        if reference != subject && !related.contains(&reference) {
            related.push(reference);
        }
    }

    let detail = GigsDetail {
        event_source: fields::take_string(&mut fields, "", "source")?.unwrap_or_default(),
        spec_version: fields::take_string(&mut fields, "", "specversion")?.unwrap_or_default(),
        data_content_type: fields::take_string(&mut fields, "", "datacontenttype")?
            .unwrap_or_default(),
        project: fields::take_string(&mut fields, "", "project")?.unwrap_or_default(),
        api_version: fields::take_string(&mut fields, "", "version")?.unwrap_or_default(),
        actor: fields::take_object(&mut fields, "", "actor")?,
        time: time.unwrap_or_default(),
    };

    Ok(Event {
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
    })
}

/// `com.gigs.subscriptionChange.applied` -> (`subscription_change`, `subscription_change.applied`).
fn canonical_type(provider_type: &str) -> Result<(String, String), NormalizeError> {
    let Some(name) = provider_type.strip_prefix(TYPE_PREFIX) else {
        return Err(NormalizeError::field(
            "type",
            format!("expected a type starting with \"{TYPE_PREFIX}\", found {provider_type:?}"),
        ));
    };
    let canonical = event::dotted_type(name).ok_or_else(|| {
        NormalizeError::field(
            "type",
            format!("expected \"{TYPE_PREFIX}<resource>.<action>\", found {provider_type:?}"),
        )
    })?;
    let resource_name = canonical
        .split_once('.')
        .map(|(resource_name, _)| resource_name.to_owned())
        .unwrap_or_default();
    Ok((resource_name, canonical))
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
        match &value.kind {
            Some(Kind::StringValue(id)) => found.extend(bare_reference(kind_of_key(key), id)),
            Some(Kind::StructValue(nested)) => {
                found.extend(nested_reference(kind_of_key(key), &nested.fields));
            }
            Some(Kind::ListValue(list)) => {
                let key_kind = kind_of_list_key(key);
                for item in &list.values {
                    match &item.kind {
                        Some(Kind::StringValue(id)) => {
                            found.extend(bare_reference(key_kind.clone(), id));
                        }
                        Some(Kind::StructValue(nested)) => {
                            found.extend(nested_reference(key_kind.clone(), &nested.fields));
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

/// A bare id string: a reference when its prefix names a kind, or when the key names one and
/// the value looks like an id. Plain values (`"status": "active"`, an ICCID) are not.
fn bare_reference(key_kind: Option<String>, id: &str) -> Option<ResourceRef> {
    if let Some(kind) = kind_of_id(id) {
        return Some(resource(kind, id));
    }
    let looks_like_id = !id.is_empty() && !id.contains(char::is_whitespace);
    key_kind
        .filter(|_| looks_like_id)
        .map(|kind| resource(kind, id))
}

/// A nested object with an `id`: its kind from its own `object`, else its id's prefix, else the key.
fn nested_reference(key_kind: Option<String>, nested: &Object) -> Option<ResourceRef> {
    let Some(Kind::StringValue(id)) = fields::get(nested, "id") else {
        return None;
    };
    if id.is_empty() {
        return None;
    }
    let kind = match fields::get(nested, "object") {
        Some(Kind::StringValue(object)) if !object.is_empty() => event::snake_case(object),
        _ => kind_of_id(id).map(str::to_owned).or(key_kind)?,
    };
    Some(resource(kind, id))
}

/// The kind a Gigs id's prefix names (`sub_0SNl…` -> `subscription`).
fn kind_of_id(id: &str) -> Option<&'static str> {
    ID_PREFIXES.iter().find_map(|(prefix, kind)| {
        let rest = id.strip_prefix(prefix)?;
        (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(*kind)
    })
}

fn is_known_kind(kind: &str) -> bool {
    UNPREFIXED_KINDS.contains(&kind) || ID_PREFIXES.iter().any(|(_, known)| *known == kind)
}

/// The kind a field name names (`subscription`, `userAddress` -> `user_address`), if known.
fn kind_of_key(key: &str) -> Option<String> {
    Some(event::snake_case(key)).filter(|kind| is_known_kind(kind))
}

/// The singular kind a list field names (`subscriptionAddons` -> `subscription_addon`).
fn kind_of_list_key(key: &str) -> Option<String> {
    let plural = event::snake_case(key);
    [
        plural.strip_suffix("es"),
        plural.strip_suffix('s'),
        Some(plural.as_str()),
    ]
    .into_iter()
    .flatten()
    .find(|kind| is_known_kind(kind))
    .map(str::to_owned)
}

#[cfg(test)]
mod tests;
