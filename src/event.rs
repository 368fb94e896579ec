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

pub mod identity;

pub use crate::proto::v1::{Event, ResourceRef};
pub use identity::{EntityKey, Identity};

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

/// Empties what a payload-less view leaves out: `data`, `previous_data`, their exact texts and
/// the provider detail. What identifies and routes the event stays (ids, type, subject,
/// related refs, times, sequence, traceparent).
pub fn strip_payloads(event: &mut Event) {
    event.data = None;
    event.previous_data = None;
    event.data_json = String::new();
    event.previous_data_json = String::new();
    event.detail = None;
}

/// A resource reference.
pub fn resource(kind: impl Into<String>, id: impl Into<String>) -> ResourceRef {
    ResourceRef {
        kind: kind.into(),
        id: id.into(),
    }
}

/// The parts concatenated into one string allocated at its final size (`format!` goes through the
/// formatting machinery and guesses the size): event types and namespaced ids are built this way.
pub fn join(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// Whether `name` is a canonical type: `<resource>.<action>`, each one or more of `[a-z0-9_]`
/// (`^[a-z0-9_]+\.[a-z0-9_]+$`), the shape subscribers' type filters are written against.
pub fn is_canonical_type(name: &str) -> bool {
    let word = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    name.split_once('.')
        .is_some_and(|(resource, action)| word(resource) && word(action))
}

/// Converts a camelCase, PascalCase, kebab-case or spaced name to snake_case.
///
/// An acronym stays one word (`APNId` -> `apn_id`, `SIM` -> `sim`); any run of characters that are
/// not ASCII letters or digits becomes a single `_` (`bulk-enable` -> `bulk_enable`, `SIM.%USED` ->
/// `sim_used`, `Ärger` -> `rger`); leading and trailing separators are dropped. ASCII only, so
/// every canonical type and kind is `[a-z0-9_]` ([`is_canonical_type`]), the alphabet
/// subscribers' filters are written in; the provider's own name is kept beside it.
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
        if !c.is_ascii_alphanumeric() {
            push_separator(&mut out);
            previous = None;
            continue;
        }
        if c.is_ascii_uppercase() {
            let next_is_lower = chars.peek().is_some_and(char::is_ascii_lowercase);
            let boundary = match previous {
                Some(p) => {
                    p.is_ascii_lowercase()
                        || p.is_ascii_digit()
                        || (p.is_ascii_uppercase() && next_is_lower)
                }
                None => false,
            };
            if boundary {
                push_separator(&mut out);
            }
            out.push(c.to_ascii_lowercase());
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
/// IEEE-754 bits (so `7` and `7.0` agree), strings, arrays and objects with their length. It does not depend on
/// the body's whitespace or key order, cannot be made ambiguous by crafted strings, and needs no
/// allocation or escaping pass.
#[derive(Clone)]
pub struct Fingerprint {
    hasher: Sha256,
    /// Small writes gather here and reach the hasher in blocks: most parts are a few bytes and
    /// the hasher's per-call cost would otherwise dominate.
    buffer: [u8; FINGERPRINT_BUFFER],
    buffered: usize,
}

const FINGERPRINT_BUFFER: usize = 256;

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    pub fn new() -> Self {
        Self {
            hasher: Sha256::new(),
            buffer: [0; FINGERPRINT_BUFFER],
            buffered: 0,
        }
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
        let mut lowered = [0u8; 64];
        for chunk in text.as_bytes().chunks(lowered.len()) {
            let lowered = &mut lowered[..chunk.len()];
            lowered.copy_from_slice(chunk);
            lowered.make_ascii_lowercase();
            self.write(lowered);
        }
        self
    }

    /// Adds one number part.
    pub fn number(&mut self, number: f64) -> &mut Self {
        // -0.0 == 0.0 in JSON terms; give them one encoding.
        let number = if number == 0.0 { 0.0 } else { number };
        self.tagged(b'#', number.to_bits());
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
        let mut hasher = self.hasher.clone();
        hasher.update(&self.buffer[..self.buffered]);
        let digest = hasher.finalize();
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
            None | Some(Kind::NullValue(_)) => self.tag(b'n'),
            Some(Kind::BoolValue(true)) => self.tag(b't'),
            Some(Kind::BoolValue(false)) => self.tag(b'f'),
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
        self.write(bytes);
    }

    /// A one-byte tag and a length as a LEB128 varint: one byte for the short strings that make
    /// up most bodies, so the framing adds little to what is hashed.
    fn length(&mut self, tag: u8, length: usize) {
        self.reserve(11);
        let mut at = self.buffered;
        self.buffer[at] = tag;
        at += 1;
        let mut rest = length as u64;
        while rest >= 0x80 {
            self.buffer[at] = (rest as u8) | 0x80;
            rest >>= 7;
            at += 1;
        }
        self.buffer[at] = rest as u8;
        self.buffered = at + 1;
    }

    /// A one-byte tag and a fixed-size word, written in place (no copy call for nine bytes).
    fn tagged(&mut self, tag: u8, word: u64) {
        self.reserve(9);
        let at = self.buffered;
        self.buffer[at] = tag;
        self.buffer[at + 1..at + 9].copy_from_slice(&word.to_le_bytes());
        self.buffered = at + 9;
    }

    fn tag(&mut self, tag: u8) {
        self.reserve(1);
        self.buffer[self.buffered] = tag;
        self.buffered += 1;
    }

    /// Makes room for `length` more bytes in the buffer, handing what it holds to the hasher.
    fn reserve(&mut self, length: usize) {
        if self.buffered + length > FINGERPRINT_BUFFER {
            self.hasher.update(&self.buffer[..self.buffered]);
            self.buffered = 0;
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() > FINGERPRINT_BUFFER {
            self.reserve(FINGERPRINT_BUFFER);
            self.hasher.update(bytes);
            return;
        }
        self.reserve(bytes.len());
        self.buffer[self.buffered..self.buffered + bytes.len()].copy_from_slice(bytes);
        self.buffered += bytes.len();
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
    // The whole part is split in integers: dividing milliseconds by 1000 in f64 would turn
    // `…330512` ms into `…330.512000084` s.
    let whole = number.floor();
    let fraction = number - whole;
    // Out-of-range values saturate in the cast and are then refused by chrono.
    let whole = whole as i64;
    let (seconds, nanos) = if number.abs() >= EPOCH_MILLIS_FROM {
        (
            whole.div_euclid(1000),
            whole.rem_euclid(1000) * 1_000_000 + (fraction * 1e6).round() as i64,
        )
    } else {
        // An f64 near 1.7e9 resolves ~240 ns: keep whole microseconds, not the rounding noise.
        (whole, (fraction * 1e6).round() as i64 * 1000)
    };
    let (seconds, nanos) = if nanos >= 1_000_000_000 {
        (seconds.checked_add(1)?, nanos - 1_000_000_000)
    } else {
        (seconds, nanos)
    };
    DateTime::from_timestamp(seconds, u32::try_from(nanos).ok()?)
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
mod tests;
