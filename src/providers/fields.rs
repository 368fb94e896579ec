//! Typed access to a webhook body's JSON fields for the normalizers.
//!
//! A body arrives as `BTreeMap<String, prost_types::Value>` (a `google.protobuf.Struct`'s fields).
//! These accessors read or take one field with the type a format expects and, when it is missing
//! or of another type, return a [`NormalizeError`] naming the field by its dotted path
//! (`data.id`) and saying why. The `take_*` accessors move the value out, so payload objects
//! reach the event without a copy. A JSON `null` counts as absent everywhere: every format here
//! uses it for "not given".

use std::borrow::Cow;
use std::collections::BTreeMap;

use prost_types::value::Kind;
use prost_types::{Struct, Value};

use super::NormalizeError;
use crate::json::kind_name;

/// A JSON object's fields.
pub type Object = BTreeMap<String, Value>;

/// The dotted path of `key` inside `parent` (the empty string is the body itself).
pub fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The field's value, or `None` when it is absent or null.
pub fn get<'a>(object: &'a Object, key: &str) -> Option<&'a Kind> {
    match object.get(key)?.kind.as_ref()? {
        Kind::NullValue(_) => None,
        kind => Some(kind),
    }
}

/// Whether the field is present and not null.
pub fn has(object: &Object, key: &str) -> bool {
    get(object, key).is_some()
}

/// `field <path>: required`.
pub fn missing(parent: &str, key: &str) -> NormalizeError {
    NormalizeError::field(path(parent, key), "required")
}

/// `field <path>: expected <expected>, found <JSON type>`.
pub fn wrong_type(parent: &str, key: &str, expected: &str, found: Option<&Kind>) -> NormalizeError {
    NormalizeError::field(
        path(parent, key),
        format!("expected {expected}, found {}", kind_name(found)),
    )
}

fn empty(parent: &str, key: &str) -> NormalizeError {
    NormalizeError::field(path(parent, key), "must not be empty")
}

/// An optional string field.
pub fn optional_str<'a>(
    object: &'a Object,
    parent: &str,
    key: &str,
) -> Result<Option<&'a str>, NormalizeError> {
    match get(object, key) {
        None => Ok(None),
        Some(Kind::StringValue(text)) => Ok(Some(text)),
        Some(other) => Err(wrong_type(parent, key, "a string", Some(other))),
    }
}

/// A required, non-empty string field.
pub fn required_str<'a>(
    object: &'a Object,
    parent: &str,
    key: &str,
) -> Result<&'a str, NormalizeError> {
    match optional_str(object, parent, key)? {
        None => Err(missing(parent, key)),
        Some("") => Err(empty(parent, key)),
        Some(text) => Ok(text),
    }
}

/// Takes an optional string field out of the object.
pub fn take_string(
    object: &mut Object,
    parent: &str,
    key: &str,
) -> Result<Option<String>, NormalizeError> {
    object
        .remove(key)
        .map_or(Ok(None), |value| into_string(value, parent, key))
}

/// A field's value, already taken out of its object, as an optional string.
pub fn into_string(
    value: Value,
    parent: &str,
    key: &str,
) -> Result<Option<String>, NormalizeError> {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Ok(None),
        Some(Kind::StringValue(text)) => Ok(Some(text)),
        Some(other) => Err(wrong_type(parent, key, "a string", Some(&other))),
    }
}

/// Takes a required, non-empty string field out of the object.
pub fn take_required_string(
    object: &mut Object,
    parent: &str,
    key: &str,
) -> Result<String, NormalizeError> {
    require_string(take_string(object, parent, key)?, parent, key)
}

/// Requires a string taken earlier (say by a single pass over an object): present, non-empty.
pub fn require_string(
    value: Option<String>,
    parent: &str,
    key: &str,
) -> Result<String, NormalizeError> {
    match value {
        None => Err(missing(parent, key)),
        Some(text) if text.is_empty() => Err(empty(parent, key)),
        Some(text) => Ok(text),
    }
}

/// Takes an optional object field out of the object.
pub fn take_object(
    object: &mut Object,
    parent: &str,
    key: &str,
) -> Result<Option<Struct>, NormalizeError> {
    object
        .remove(key)
        .map_or(Ok(None), |value| into_object(value, parent, key))
}

/// A field's value, already taken out of its object, as an optional object.
pub fn into_object(
    value: Value,
    parent: &str,
    key: &str,
) -> Result<Option<Struct>, NormalizeError> {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Ok(None),
        Some(Kind::StructValue(inner)) => Ok(Some(inner)),
        Some(other) => Err(wrong_type(parent, key, "an object", Some(&other))),
    }
}

/// Takes a required object field out of the object.
pub fn take_required_object(
    object: &mut Object,
    parent: &str,
    key: &str,
) -> Result<Struct, NormalizeError> {
    take_object(object, parent, key)?.ok_or_else(|| missing(parent, key))
}

/// A field's value, already taken out of its object, as an optional boolean.
pub fn into_bool(value: Value, parent: &str, key: &str) -> Result<Option<bool>, NormalizeError> {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Ok(None),
        Some(Kind::BoolValue(flag)) => Ok(Some(flag)),
        Some(other) => Err(wrong_type(parent, key, "a boolean", Some(&other))),
    }
}

/// An optional identifier-like field sent as a string or a number, as text (`7`, not `7.0`).
pub fn optional_scalar<'a>(
    object: &'a Object,
    parent: &str,
    key: &str,
) -> Result<Option<Cow<'a, str>>, NormalizeError> {
    match get(object, key) {
        None => Ok(None),
        Some(kind) => scalar_text(kind)
            .map(Some)
            .ok_or_else(|| wrong_type(parent, key, "a string or a number", Some(kind))),
    }
}

/// A string as is or a number as text; `None` for other JSON types.
pub fn scalar_text(kind: &Kind) -> Option<Cow<'_, str>> {
    match kind {
        Kind::StringValue(text) => Some(Cow::Borrowed(text)),
        Kind::NumberValue(number) => Some(Cow::Owned(number_text(*number))),
        _ => None,
    }
}

/// A number as JSON writes it: `75`, `0.5`.
pub fn number_text(number: f64) -> String {
    let mut text = String::new();
    crate::event::write_number(&mut text, number);
    text
}

/// A number sent as a JSON number or as numeric text (`"75"`, `" 85.5 "`); `None` otherwise.
pub fn lenient_number(kind: Option<&Kind>) -> Option<f64> {
    let number = match kind? {
        Kind::NumberValue(number) => *number,
        Kind::StringValue(text) => text.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

/// Shared by the providers' tests: a fixed context, body parsing and the fixture expectations in
/// `tests/fixtures/expected.json` (which the black-box tests check too, so the two cannot drift).
#[cfg(test)]
pub(crate) mod testing {
    use chrono::{DateTime, Utc};

    use super::Object;
    use crate::proto::v1::{Event, ResourceRef};
    use crate::providers::Context;

    const EXPECTED: &str = include_str!("../../tests/fixtures/expected.json");
    const EVENT_TYPES: &str = include_str!("../../tests/fixtures/event_types.json");

    /// `tests/fixtures/event_types.json`: every documented event type, shared with the
    /// black-box tests in `tests/event_types.rs`.
    pub fn event_types() -> serde_json::Value {
        serde_json::from_str(EVENT_TYPES).unwrap()
    }

    pub fn received_at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_735_787_045, 0).unwrap_or_default()
    }

    pub fn context() -> Context<'static> {
        Context {
            received_at: received_at(),
            payload: crate::providers::PayloadText::default(),
        }
    }

    pub fn parse(body: &str) -> Object {
        crate::json::parse_object(body.as_bytes()).unwrap()
    }

    pub fn reference(kind: &str, id: &str) -> ResourceRef {
        crate::event::resource(kind, id)
    }

    fn expected() -> serde_json::Map<String, serde_json::Value> {
        match serde_json::from_str(EXPECTED).unwrap() {
            serde_json::Value::Object(map) => map,
            other => panic!("expected.json is not an object: {other}"),
        }
    }

    /// The fixture paths expected.json lists under `provider/`.
    pub fn expected_paths(provider: &str) -> Vec<String> {
        let prefix = format!("{provider}/");
        expected()
            .keys()
            .filter(|path| path.starts_with(&prefix))
            .cloned()
            .collect()
    }

    pub fn reference_of(value: &serde_json::Value) -> ResourceRef {
        reference(
            value["kind"].as_str().unwrap(),
            value["id"].as_str().unwrap(),
        )
    }

    /// Checks that `fixtures` (path, body) are exactly expected.json's entries under `provider/`
    /// and that each normalizes (through `run`) to its expected type, subject and related.
    pub fn assert_fixtures(
        provider: &str,
        fixtures: &[(&str, &str)],
        run: impl Fn(&str) -> Result<Event, crate::providers::NormalizeError>,
    ) {
        let mut listed: Vec<&str> = fixtures.iter().map(|(path, _)| *path).collect();
        listed.sort_unstable();
        let mut expected = expected_paths(provider);
        expected.sort_unstable();
        assert_eq!(
            listed, expected,
            "fixtures and expected.json list different files"
        );
        for (path, body) in fixtures {
            let event = run(body).unwrap_or_else(|error| panic!("{path}: {error}"));
            assert_expected(path, &event);
        }
    }

    /// Asserts the event's type, subject and related match expected.json's entry for `path`.
    pub fn assert_expected(path: &str, event: &Event) {
        let all = expected();
        let entry = all
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from expected.json"));
        assert_eq!(
            event.r#type,
            entry["type"].as_str().unwrap(),
            "{path}: type"
        );
        assert_eq!(
            event.subject.as_ref(),
            Some(&reference_of(&entry["subject"])),
            "{path}: subject"
        );
        let related: Vec<ResourceRef> = entry["related"]
            .as_array()
            .unwrap()
            .iter()
            .map(reference_of)
            .collect();
        assert_eq!(event.related, related, "{path}: related");
    }
}

#[cfg(test)]
mod tests {
    use super::testing::parse;
    use super::*;

    #[test]
    fn strings_are_read_taken_and_refused_with_paths() {
        let mut object = parse(r#"{"a":"x","n":1,"z":null,"e":""}"#);
        assert_eq!(optional_str(&object, "", "a"), Ok(Some("x")));
        assert_eq!(optional_str(&object, "", "z"), Ok(None));
        assert_eq!(optional_str(&object, "", "absent"), Ok(None));
        assert_eq!(
            required_str(&object, "data", "n").unwrap_err().to_string(),
            "field `data.n`: expected a string, found a number"
        );
        assert_eq!(
            required_str(&object, "data", "z").unwrap_err().to_string(),
            "field `data.z`: required"
        );
        assert_eq!(
            required_str(&object, "", "e").unwrap_err().to_string(),
            "field `e`: must not be empty"
        );
        assert_eq!(
            take_required_string(&mut object, "", "a"),
            Ok("x".to_owned())
        );
        assert!(!object.contains_key("a"));
        assert_eq!(
            take_required_string(&mut object, "", "a")
                .unwrap_err()
                .to_string(),
            "field `a`: required"
        );
        // A string taken earlier is required the same way: present and not empty.
        assert_eq!(
            require_string(Some(String::new()), "data", "id")
                .unwrap_err()
                .to_string(),
            "field `data.id`: must not be empty"
        );
        assert_eq!(
            require_string(Some("x".to_owned()), "", "id"),
            Ok("x".to_owned())
        );
    }

    #[test]
    fn objects_are_taken_without_copy_and_typed() {
        let mut object = parse(r#"{"data":{"id":"x"},"list":[1],"none":null}"#);
        let data = take_required_object(&mut object, "", "data").unwrap();
        assert!(data.fields.contains_key("id"));
        assert_eq!(take_object(&mut object, "", "none"), Ok(None));
        assert_eq!(
            take_object(&mut object, "", "list")
                .unwrap_err()
                .to_string(),
            "field `list`: expected an object, found an array"
        );
        assert_eq!(
            take_required_object(&mut object, "", "data")
                .unwrap_err()
                .to_string(),
            "field `data`: required"
        );
    }

    #[test]
    fn scalars_booleans_and_lenient_numbers() {
        let object = parse(r#"{"s":"abc","n":7,"f":0.5,"b":true,"o":{},"t":" 85 ","x":"85%"}"#);
        assert_eq!(
            optional_scalar(&object, "", "s").unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(
            optional_scalar(&object, "", "n").unwrap().as_deref(),
            Some("7")
        );
        assert_eq!(
            optional_scalar(&object, "", "f").unwrap().as_deref(),
            Some("0.5")
        );
        assert_eq!(
            optional_scalar(&object, "p", "o").unwrap_err().to_string(),
            "field `p.o`: expected a string or a number, found an object"
        );
        assert_eq!(into_bool(object["b"].clone(), "", "b"), Ok(Some(true)));
        assert_eq!(
            into_bool(object["s"].clone(), "x", "s")
                .unwrap_err()
                .to_string(),
            "field `x.s`: expected a boolean, found a string"
        );
        assert_eq!(lenient_number(get(&object, "t")), Some(85.0));
        assert_eq!(lenient_number(get(&object, "n")), Some(7.0));
        assert_eq!(lenient_number(get(&object, "x")), None);
        assert_eq!(lenient_number(get(&object, "b")), None);
        assert_eq!(lenient_number(get(&object, "absent")), None);
    }
}
