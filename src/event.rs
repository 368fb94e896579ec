//! Canonical event rules shared by every provider: type naming, content fingerprints and time
//! conversion.
//!
//! The event itself is the generated `hooknorm.v1.Event` (plain prost data, no transport code),
//! so a normalized event goes to storage and onto the wire without another copy.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use prost_types::Value;
use prost_types::value::Kind;
use sha2::{Digest, Sha256};

pub use crate::proto::v1::{Event, ResourceRef};

/// Converts a UTC time to a protobuf timestamp.
pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// Converts a protobuf timestamp to UTC, or `None` when out of range.
pub fn from_timestamp(timestamp: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    u32::try_from(timestamp.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(timestamp.seconds, nanos))
}

/// A resource reference.
pub fn resource(kind: impl Into<String>, id: impl Into<String>) -> ResourceRef {
    ResourceRef {
        kind: kind.into(),
        id: id.into(),
    }
}

/// Converts a camelCase, PascalCase, kebab-case or spaced name to snake_case.
///
/// An acronym stays one word (`APNId` -> `apn_id`, `SIM` -> `sim`); any run of characters that are
/// not letters or digits becomes a single `_` (`bulk-enable` -> `bulk_enable`, `SIM.%USED` ->
/// `sim_used`); leading and trailing separators are dropped.
pub fn snake_case(name: &str) -> String {
    // Most names are already canonical; skip the rebuild for them.
    if !name.is_empty()
        && !name.starts_with('_')
        && !name.ends_with('_')
        && !name.contains("__")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous: Option<char> = None;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if !c.is_alphanumeric() {
            push_separator(&mut out);
            previous = None;
            continue;
        }
        if c.is_uppercase() {
            let next_is_lower = chars.peek().is_some_and(|next| next.is_lowercase());
            let boundary = match previous {
                Some(p) => {
                    p.is_lowercase() || p.is_numeric() || (p.is_uppercase() && next_is_lower)
                }
                None => false,
            };
            if boundary {
                push_separator(&mut out);
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        previous = Some(c);
    }
    if out.ends_with('_') {
        out.pop();
    }
    out
}

fn push_separator(out: &mut String) {
    if !out.is_empty() && !out.ends_with('_') {
        out.push('_');
    }
}

/// The canonical `<resource>.<action>` for a dotted provider name: the last segment is the action,
/// the others (each snake_cased) joined with `_` are the resource: `user.address.created` ->
/// `user_address.created`. `None` when there are fewer than two segments or one is empty.
pub fn dotted_type(name: &str) -> Option<String> {
    let (resource, action) = name.rsplit_once('.')?;
    let mut canonical = String::with_capacity(name.len() + 8);
    for segment in resource.split('.') {
        let segment = snake_case(segment);
        if segment.is_empty() {
            return None;
        }
        if !canonical.is_empty() {
            canonical.push('_');
        }
        canonical.push_str(&segment);
    }
    let action = snake_case(action);
    if action.is_empty() {
        return None;
    }
    canonical.push('.');
    canonical.push_str(&action);
    Some(canonical)
}

/// An Abowire verb in the past tense, snake_cased: `revoke` -> `revoked`, `bulk-enable` ->
/// `bulk_enabled`. Verbs already in the past tense (`accepted`, `declined`) and verbs this version
/// does not know pass through snake_cased, so a new verb still yields a well-formed type.
pub fn past_tense(verb: &str) -> String {
    let verb = snake_case(verb);
    let past = match verb.as_str() {
        "create" => "created",
        "update" => "updated",
        "revoke" => "revoked",
        "enable" => "enabled",
        "disable" => "disabled",
        "bulk_enable" => "bulk_enabled",
        "bulk_disable" => "bulk_disabled",
        _ => return verb,
    };
    past.to_owned()
}

/// A content fingerprint: SHA-256 over a canonical serialization, for providers whose events carry
/// no trustworthy id. Equal content gives an equal fingerprint, so redeliveries deduplicate.
///
/// The serialization is a tagged, length-prefixed encoding of the JSON value: object keys in
/// sorted order (a `Struct` is a `BTreeMap`, so iteration order already is), numbers as their
/// IEEE-754 bits (so `7` and `7.0` agree), strings with their byte length. It does not depend on
/// the body's whitespace or key order, cannot be made ambiguous by crafted strings, and needs no
/// allocation or escaping pass.
#[derive(Clone, Default)]
pub struct Fingerprint {
    hasher: Sha256,
}

impl Fingerprint {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one string part; parts are length-prefixed, so `("ab", "c")` differs from
    /// `("a", "bc")`.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.string(text.as_bytes());
        self
    }

    /// Adds one string part, ASCII-lowercased (identifiers such as GUIDs whose case carries no
    /// meaning), without allocating.
    pub fn text_lowercase(&mut self, text: &str) -> &mut Self {
        self.length(b's', text.len());
        let mut buffer = [0u8; 64];
        for chunk in text.as_bytes().chunks(buffer.len()) {
            let lowered = &mut buffer[..chunk.len()];
            lowered.copy_from_slice(chunk);
            lowered.make_ascii_lowercase();
            self.hasher.update(lowered);
        }
        self
    }

    /// Adds one number part.
    pub fn number(&mut self, number: f64) -> &mut Self {
        // -0.0 == 0.0 in JSON terms; give them one encoding.
        let number = if number == 0.0 { 0.0 } else { number };
        self.hasher.update([b'#']);
        self.hasher.update(number.to_bits().to_le_bytes());
        self
    }

    /// Adds a whole JSON object.
    pub fn object(&mut self, fields: &BTreeMap<String, Value>) -> &mut Self {
        self.length(b'{', fields.len());
        for (key, value) in fields {
            self.string(key.as_bytes());
            self.value(value);
        }
        self
    }

    /// `prefix` followed by the first 32 hex digits (128 bits) of the digest.
    pub fn finish(&self, prefix: &str) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = self.hasher.clone().finalize();
        let mut id = String::with_capacity(prefix.len() + 32);
        id.push_str(prefix);
        for byte in &digest[..16] {
            id.push(char::from(HEX[usize::from(byte >> 4)]));
            id.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        id
    }

    fn value(&mut self, value: &Value) {
        match &value.kind {
            None | Some(Kind::NullValue(_)) => self.hasher.update([b'n']),
            Some(Kind::BoolValue(true)) => self.hasher.update([b't']),
            Some(Kind::BoolValue(false)) => self.hasher.update([b'f']),
            Some(Kind::NumberValue(number)) => {
                self.number(*number);
            }
            Some(Kind::StringValue(text)) => self.string(text.as_bytes()),
            Some(Kind::ListValue(list)) => {
                self.length(b'[', list.values.len());
                for item in &list.values {
                    self.value(item);
                }
            }
            Some(Kind::StructValue(object)) => {
                self.object(&object.fields);
            }
        }
    }

    fn string(&mut self, bytes: &[u8]) {
        self.length(b's', bytes.len());
        self.hasher.update(bytes);
    }

    fn length(&mut self, tag: u8, length: usize) {
        self.hasher.update([tag]);
        self.hasher.update((length as u64).to_le_bytes());
    }
}

/// Writes a number the way it is written in JSON: integral values without a fraction (`7`, not
/// `7.0`), others in Rust's shortest round-trip form.
pub fn write_number(out: &mut String, number: f64) {
    // 2^53: beyond it f64 no longer holds every integer, so the integer form would be a guess.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    // Writing to a String cannot fail.
    let _ = if number.fract() == 0.0 && number.abs() <= EXACT {
        write!(out, "{}", number as i64)
    } else {
        write!(out, "{number}")
    };
}

/// Parses an RFC 3339 time, with or without fractional seconds (`2022-03-16T14:12:42Z`,
/// `2022-03-16T14:12:42.0Z`, `2022-03-16T15:12:42+01:00`).
pub fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// At or above this magnitude an epoch number is milliseconds: 1e11 seconds is the year 5138,
/// while 1e11 milliseconds is March 1973, so every plausible time of either unit is told apart.
const EPOCH_MILLIS_FROM: f64 = 1e11;

/// Converts Unix epoch seconds or milliseconds (told apart by magnitude) to UTC.
pub fn from_epoch(number: f64) -> Option<DateTime<Utc>> {
    if !number.is_finite() {
        return None;
    }
    let seconds = if number.abs() >= EPOCH_MILLIS_FROM {
        number / 1000.0
    } else {
        number
    };
    let whole = seconds.floor();
    let mut nanos = ((seconds - whole) * 1e9).round();
    let mut whole = whole;
    if nanos >= 1e9 {
        whole += 1.0;
        nanos = 0.0;
    }
    // Out-of-range values saturate in the cast and are then refused by chrono.
    DateTime::from_timestamp(whole as i64, nanos as u32)
}

/// Parses a time sent as text: epoch seconds or milliseconds in decimal (`"1700000000"`,
/// `"1700000000123"`), otherwise RFC 3339.
pub fn parse_time_text(text: &str) -> Option<DateTime<Utc>> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return trimmed.parse::<f64>().ok().and_then(from_epoch);
    }
    parse_rfc3339(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{ListValue, Struct};

    fn utc(text: &str) -> DateTime<Utc> {
        parse_rfc3339(text).unwrap()
    }

    #[test]
    fn snake_case_handles_camel_pascal_acronyms_and_separators() {
        for (input, expected) in [
            ("subscriptionChange", "subscription_change"),
            ("usageThreshold", "usage_threshold"),
            ("disputeLost", "dispute_lost"),
            ("thresholdReached", "threshold_reached"),
            ("eSimProfile", "e_sim_profile"),
            ("portOutCredentials", "port_out_credentials"),
            ("PoolRegrade", "pool_regrade"),
            ("APNChangeRequest", "apn_change_request"),
            ("APNId", "apn_id"),
            ("CPE", "cpe"),
            ("SIM", "sim"),
            ("UnBar", "un_bar"),
            ("bulk-enable", "bulk_enable"),
            ("api-key", "api_key"),
            ("SIM.%USED", "sim_used"),
            ("Greater Than", "greater_than"),
            ("already_snake", "already_snake"),
            ("__x__y__", "x_y"),
            ("e164Number", "e164_number"),
            ("", ""),
            ("--", ""),
        ] {
            assert_eq!(snake_case(input), expected, "{input}");
        }
    }

    #[test]
    fn dotted_type_joins_resource_segments() {
        assert_eq!(
            dotted_type("user.address.created").as_deref(),
            Some("user_address.created")
        );
        assert_eq!(
            dotted_type("customer.created").as_deref(),
            Some("customer.created")
        );
        assert_eq!(
            dotted_type("usageBalance.thresholdReached").as_deref(),
            Some("usage_balance.threshold_reached")
        );
        assert_eq!(dotted_type("created"), None);
        assert_eq!(dotted_type("customer."), None);
        assert_eq!(dotted_type(".created"), None);
        assert_eq!(dotted_type("a..b"), None);
    }

    #[test]
    fn past_tense_maps_known_verbs_and_passes_others_through() {
        for (verb, past) in [
            ("create", "created"),
            ("update", "updated"),
            ("revoke", "revoked"),
            ("enable", "enabled"),
            ("disable", "disabled"),
            ("bulk-enable", "bulk_enabled"),
            ("bulk-disable", "bulk_disabled"),
            ("accepted", "accepted"),
            ("declined", "declined"),
            ("Create", "created"),
            ("archive", "archive"),
            ("re-send", "re_send"),
        ] {
            assert_eq!(past_tense(verb), past, "{verb}");
        }
    }

    fn object(pairs: &[(&str, Kind)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(key, kind)| {
                (
                    (*key).to_owned(),
                    Value {
                        kind: Some(kind.clone()),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn fingerprint_is_stable_and_content_sensitive() {
        let a = object(&[
            ("b", Kind::NumberValue(7.0)),
            ("a", Kind::StringValue("x\"\n".into())),
            (
                "c",
                Kind::ListValue(ListValue {
                    values: vec![Value {
                        kind: Some(Kind::BoolValue(true)),
                    }],
                }),
            ),
            ("d", Kind::StructValue(Struct::default())),
            ("e", Kind::NullValue(0)),
        ]);
        let first = Fingerprint::new().object(&a).finish("abw_");
        assert_eq!(first, Fingerprint::new().object(&a.clone()).finish("abw_"));
        assert!(first.starts_with("abw_"));
        assert_eq!(first.len(), 4 + 32);
        assert!(first[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        let mut b = a.clone();
        b.insert(
            "b".into(),
            Value {
                kind: Some(Kind::NumberValue(8.0)),
            },
        );
        assert_ne!(first, Fingerprint::new().object(&b).finish("abw_"));
        assert_ne!(
            Fingerprint::new().text("ab").text("c").finish(""),
            Fingerprint::new().text("a").text("bc").finish("")
        );
        assert_eq!(
            Fingerprint::new()
                .text_lowercase(&"AbC-".repeat(40))
                .finish(""),
            Fingerprint::new().text(&"abc-".repeat(40)).finish("")
        );
        assert_eq!(
            Fingerprint::new().number(7.0).number(-0.0).finish(""),
            Fingerprint::new().number(7.0).number(0.0).finish("")
        );
        // A number and a string of its digits are different content.
        assert_ne!(
            Fingerprint::new().number(7.0).finish(""),
            Fingerprint::new().text("7").finish("")
        );
    }

    #[test]
    fn numbers_are_written_as_in_json() {
        for (number, text) in [(7.0, "7"), (-2.5, "-2.5"), (0.1, "0.1"), (1e300, "1e300")] {
            let mut out = String::new();
            write_number(&mut out, number);
            // Rust prints large floats in full; accept either form for 1e300.
            if number == 1e300 {
                assert_eq!(out.parse::<f64>().unwrap(), number);
            } else {
                assert_eq!(out, text);
            }
        }
    }

    #[test]
    fn rfc3339_with_and_without_fraction_and_offsets() {
        let whole = utc("2022-03-16T14:12:42Z");
        assert_eq!(whole.timestamp(), 1_647_439_962);
        assert_eq!(parse_rfc3339("2022-03-16T14:12:42.0Z"), Some(whole));
        assert_eq!(parse_rfc3339("2022-03-16T15:12:42+01:00"), Some(whole));
        assert_eq!(
            parse_rfc3339("2022-03-16T14:12:42.250Z").map(|t| t.timestamp_subsec_millis()),
            Some(250)
        );
        assert_eq!(parse_rfc3339("2022-03-16"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn epoch_seconds_and_millis_are_told_apart_by_magnitude() {
        let whole = utc("2023-11-14T22:13:20Z");
        assert_eq!(from_epoch(1_700_000_000.0), Some(whole));
        assert_eq!(from_epoch(1_700_000_000_000.0), Some(whole));
        assert_eq!(
            from_epoch(1_700_000_000_250.0).map(|t| t.timestamp_subsec_millis()),
            Some(250)
        );
        assert_eq!(
            from_epoch(1_700_000_000.5).map(|t| t.timestamp_subsec_millis()),
            Some(500)
        );
        assert_eq!(from_epoch(f64::NAN), None);
        assert_eq!(from_epoch(1e300), None);
        assert_eq!(parse_time_text("1700000000"), Some(whole));
        assert_eq!(parse_time_text(" 1700000000000 "), Some(whole));
        assert_eq!(parse_time_text("2023-11-14T22:13:20.000Z"), Some(whole));
        assert_eq!(parse_time_text("1e9"), None);
        assert_eq!(parse_time_text(""), None);
    }

    #[test]
    fn timestamps_round_trip() {
        let time = utc("2022-03-16T14:12:42.123456789Z");
        assert_eq!(from_timestamp(&timestamp(time)), Some(time));
    }
}
