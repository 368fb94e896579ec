//! Parses a webhook body straight into `google.protobuf.Struct` values in one pass.
//!
//! Building `prost_types::Value` from the JSON tokens (rather than via `serde_json::Value`) means
//! every string is allocated once, which keeps normalization close to the cost of the parse
//! itself. Nesting is bounded at [`MAX_DEPTH`], so a hostile 10,000-deep body is a clean error
//! rather than a stack overflow, and every accepted body still decodes once stored.

pub mod text;

use std::collections::BTreeMap;
use std::fmt;

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The deepest nesting of objects and arrays accepted, the body itself being level 1.
///
/// Protobuf decoders (prost, and the official Python, Java and C++ runtimes) refuse messages
/// nested more than 100 deep, and each JSON object costs three levels as a `Struct` (`Struct`,
/// its map entry, `Value`) under `StreamEventsResponse` and `Event`. At 32 the deepest event
/// still decodes everywhere; at 33 it would be stored and then be unreadable by every client.
pub const MAX_DEPTH: usize = 32;

/// The message a too-deep body fails with inside the parse, told apart from syntax errors.
const TOO_DEEP: &str = "json nesting is deeper than 32 levels";

/// Why a body is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("body is empty")]
    Empty,
    #[error("body is not valid utf-8 (first invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
    #[error("{TOO_DEEP}")]
    TooDeep,
    #[error("body is not json: {detail}")]
    Syntax { detail: String },
    #[error("body is json but not an object (found {found})")]
    NotObject { found: &'static str },
}

/// Parses `body` as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<BTreeMap<String, Value>, JsonError> {
    parse_object_keeping(body, &[]).map(|parsed| parsed.fields)
}

/// A JSON object's fields, with the exact text of some of them.
#[derive(Debug)]
pub struct ParsedObject<'a> {
    pub fields: BTreeMap<String, Value>,
    /// The JSON text of each kept field present in the body, byte for byte as sent (the last
    /// one where a key repeats, as in `fields`).
    pub kept: Vec<(&'static str, &'a str)>,
}

impl<'a> ParsedObject<'a> {
    /// The exact text of a kept field, if present.
    pub fn kept(&self, key: &str) -> Option<&'a str> {
        self.kept
            .iter()
            .find(|(kept, _)| *kept == key)
            .map(|(_, text)| *text)
    }
}

/// Parses `body` as a JSON object and also returns the exact text of the fields named in
/// `keep`: a `Struct` holds numbers as doubles, and the text is how a payload reaches consumers
/// without loss. Kept fields are scanned twice (once as text, once into values); the others
/// once.
pub fn parse_object_keeping<'a>(
    body: &'a [u8],
    keep: &[&'static str],
) -> Result<ParsedObject<'a>, JsonError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(JsonError::Empty);
    }
    // serde_json validates UTF-8 itself (every byte outside a string is ASCII syntax and every
    // string is checked), so a separate pass over the body is needed only to explain a failure.
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let top = deserializer
        .deserialize_any(TopVisitor { keep })
        .and_then(|top| deserializer.end().map(|()| top))
        .map_err(|error| {
            if let Err(invalid) = std::str::from_utf8(body) {
                JsonError::NotUtf8 {
                    offset: invalid.valid_up_to(),
                }
            } else if error.to_string().starts_with(TOO_DEEP)
                || error.to_string().starts_with("recursion limit exceeded")
            {
                JsonError::TooDeep
            } else {
                JsonError::Syntax {
                    detail: error.to_string(),
                }
            }
        })?;
    match top {
        Top::Object(parsed) => Ok(parsed),
        Top::Other(found) => Err(JsonError::NotObject { found }),
    }
}

/// What the body turned out to be.
enum Top<'a> {
    Object(ParsedObject<'a>),
    /// Not an object: the JSON type name, for the error.
    Other(&'static str),
}

/// The body itself: an object whose kept members are captured as text before being parsed.
struct TopVisitor<'k> {
    keep: &'k [&'static str],
}

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::Other("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top<'de>, E> {
        Ok(Top::Other("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
        // Still read to the end, so a too-deep or broken array is reported as such.
        let member = ValueSeed { depth: 1 };
        while seq.next_element_seed(member)?.is_some() {}
        Ok(Top::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let member = ValueSeed { depth: 1 };
        let mut fields = BTreeMap::new();
        let mut kept: Vec<(&'static str, &'de str)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let item = match self.keep.iter().find(|kept| **kept == key) {
                Some(&name) => {
                    let text: &'de serde_json::value::RawValue = map.next_value()?;
                    let text = text.get();
                    let item = member
                        .deserialize(&mut serde_json::Deserializer::from_str(text))
                        .map_err(de::Error::custom)?;
                    kept.retain(|(other, _)| *other != name);
                    kept.push((name, text));
                    item
                }
                None => map.next_value_seed(member)?,
            };
            // Duplicate keys: the last wins, as in serde_json::Value and JavaScript.
            fields.insert(key, item);
        }
        Ok(Top::Object(ParsedObject { fields, kept }))
    }
}

/// A JSON type name for error messages.
pub fn kind_name(kind: Option<&Kind>) -> &'static str {
    match kind {
        None | Some(Kind::NullValue(_)) => "null",
        Some(Kind::BoolValue(_)) => "a boolean",
        Some(Kind::NumberValue(_)) => "a number",
        Some(Kind::StringValue(_)) => "a string",
        Some(Kind::ListValue(_)) => "an array",
        Some(Kind::StructValue(_)) => "an object",
    }
}

/// A value at `depth` objects and arrays below the top (0 for the body itself).
#[derive(Clone, Copy)]
struct ValueSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor { depth: self.depth })
    }
}

struct ValueVisitor {
    depth: usize,
}

impl ValueVisitor {
    /// The seed for the members of this container, refusing one level too many.
    fn members<E: de::Error>(&self) -> Result<ValueSeed, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(TOO_DEEP));
        }
        Ok(ValueSeed {
            depth: self.depth + 1,
        })
    }
}

fn value(kind: Kind) -> Value {
    Value { kind: Some(kind) }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(value(Kind::BoolValue(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(value(Kind::NumberValue(v as f64)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(value(Kind::NumberValue(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(value(Kind::NumberValue(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(value(Kind::StringValue(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(value(Kind::StringValue(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(value(Kind::NullValue(0)))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(value(Kind::NullValue(0)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let member = self.members::<A::Error>()?;
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(member)? {
            values.push(item);
        }
        Ok(value(Kind::ListValue(ListValue { values })))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let member = self.members::<A::Error>()?;
        let mut fields = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let item = map.next_value_seed(member)?;
            // Duplicate keys: the last wins, as in serde_json::Value and JavaScript.
            fields.insert(key, item);
        }
        Ok(value(Kind::StructValue(Struct { fields })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_objects() {
        let fields = parse_object(br#"{"a":{"b":[1,"x",true,null]},"n":-2.5}"#).unwrap();
        let Some(Kind::StructValue(a)) = &fields["a"].kind else {
            panic!("a is not an object")
        };
        let Some(Kind::ListValue(list)) = &a.fields["b"].kind else {
            panic!("b is not a list")
        };
        assert_eq!(list.values.len(), 4);
        assert_eq!(fields["n"].kind, Some(Kind::NumberValue(-2.5)));
    }

    #[test]
    fn kept_fields_are_the_exact_text_as_sent() {
        let body = br#"{"payload" : {"cents": 9007199254740993, "big": 12345678901234567891,
            "s": "\u00e9"}, "n": 1, "previousPayload": null, "payload": {"cents":  1.50}}"#;
        let parsed = parse_object_keeping(body, &["payload", "previousPayload", "x"]).unwrap();
        // The last of a repeated key, as in `fields`.
        assert_eq!(parsed.kept("payload"), Some(r#"{"cents":  1.50}"#));
        assert_eq!(parsed.kept("previousPayload"), Some("null"));
        assert_eq!(parsed.kept("x"), None);
        assert_eq!(parsed.fields.len(), 3);
        let first = br#"{"payload": {"cents": 9007199254740993}}"#;
        let parsed = parse_object_keeping(first, &["payload"]).unwrap();
        assert_eq!(
            parsed.kept("payload"),
            Some(r#"{"cents": 9007199254740993}"#)
        );
        let Some(Kind::StructValue(payload)) = &parsed.fields["payload"].kind else {
            panic!("payload is not an object")
        };
        assert_eq!(
            payload.fields["cents"].kind,
            Some(Kind::NumberValue(9007199254740992.0))
        );
    }

    #[test]
    fn kept_fields_are_depth_bounded_like_the_rest() {
        let body = format!("{{\"data\":{}}}", nested_objects(MAX_DEPTH));
        assert_eq!(
            parse_object_keeping(body.as_bytes(), &["data"]).map(|parsed| parsed.kept.len()),
            Err(JsonError::TooDeep)
        );
        let body = format!("{{\"data\":{}}}", nested_objects(MAX_DEPTH - 1));
        assert!(parse_object_keeping(body.as_bytes(), &["data"]).is_ok());
    }

    #[test]
    fn rejects_each_bad_shape_specifically() {
        assert_eq!(parse_object(b"  "), Err(JsonError::Empty));
        assert_eq!(
            parse_object(b"{\"a\":\"\xff\"}"),
            Err(JsonError::NotUtf8 { offset: 6 })
        );
        assert_eq!(
            parse_object(b"[1,2]"),
            Err(JsonError::NotObject { found: "an array" })
        );
        assert!(matches!(
            parse_object(b"{\"a\":1} trailing"),
            Err(JsonError::Syntax { .. })
        ));
        assert!(matches!(
            parse_object(b"not json"),
            Err(JsonError::Syntax { .. })
        ));
    }

    /// `levels` objects nested in each other, the body being the first.
    fn nested_objects(levels: usize) -> String {
        format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels))
    }

    #[test]
    fn the_deepest_accepted_body_still_decodes_as_a_streamed_event() {
        use prost::Message;

        use crate::proto::v1::{Event, StreamEventsResponse, stream_events_response};

        let fields = parse_object(nested_objects(MAX_DEPTH).as_bytes()).unwrap();
        let response = StreamEventsResponse {
            message: Some(stream_events_response::Message::Event(Event {
                data: Some(Struct { fields }),
                ..Event::default()
            })),
        };
        let decoded = StreamEventsResponse::decode(response.encode_to_vec().as_slice());
        assert_eq!(decoded.unwrap(), response);
        assert_eq!(
            parse_object(nested_objects(MAX_DEPTH + 1).as_bytes()),
            Err(JsonError::TooDeep)
        );
        let arrays = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(parse_object(arrays.as_bytes()), Err(JsonError::TooDeep));
    }

    #[test]
    fn deep_nesting_is_refused_without_overflow() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_object(deep.as_bytes()), Err(JsonError::TooDeep));
        let deep_objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        assert_eq!(
            parse_object(deep_objects.as_bytes()),
            Err(JsonError::TooDeep)
        );
    }
}
