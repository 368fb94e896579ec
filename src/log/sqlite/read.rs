//! Reads: the translation of an [`EventFilter`] into SQL so the database, not Rust, skips what
//! does not match, and the decoding of the rows read (on `read_pool`'s connections).

use std::borrow::Cow;

use bytes::Bytes;
use prost::Message;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::codec::{Codec, Opened};
use super::schema;
use crate::log::{EncodedBatch, EncodedEvent, EventFilter, LogError, TypePattern, View};
use crate::proto::v1::{Event, WebhookDelivery};

/// Which side of a sequence a read wants.
#[derive(Debug, Clone, Copy)]
pub(super) enum Range {
    /// Greater than, ascending.
    After(u64),
    /// Less than (everything when `None`), descending.
    Before(Option<u64>),
}

/// A filtered read, built on the async side and run on a blocking thread.
#[derive(Debug)]
pub(super) struct EventQuery {
    sql: String,
    params: Vec<Value>,
}

impl EventQuery {
    /// The query for `filter` over `range`, or `None` when it cannot match anything.
    pub(super) fn build(filter: &EventFilter, range: Range, limit: usize) -> Option<EventQuery> {
        if limit == 0 {
            return None;
        }
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        // A resource filter walks the refs index, which is already in sequence order, and
        // looks up only the events it names.
        let (from, sequence) = match &filter.resource {
            Some(resource) => {
                conditions.push("r.kind = ?".to_owned());
                conditions.push("r.id = ?".to_owned());
                params.push(Value::Text(resource.kind.clone()));
                params.push(Value::Text(resource.id.clone()));
                (
                    // CROSS JOIN makes SQLite keep refs as the outer loop.
                    "refs AS r CROSS JOIN events AS e ON e.sequence = r.sequence",
                    "r.sequence",
                )
            }
            None => ("events AS e", "e.sequence"),
        };
        let order = match range {
            Range::After(after) => {
                // Sequences are stored as i64; nothing lies beyond i64::MAX.
                let after = i64::try_from(after).ok()?;
                conditions.push(format!("{sequence} > ?"));
                params.push(Value::Integer(after));
                "ASC"
            }
            Range::Before(before) => {
                if let Some(before) = before {
                    conditions.push(format!("{sequence} < ?"));
                    params.push(Value::Integer(i64::try_from(before).unwrap_or(i64::MAX)));
                }
                "DESC"
            }
        };
        if !filter.providers.is_empty() {
            conditions.push(format!(
                "e.provider IN ({})",
                placeholders(filter.providers.len())
            ));
            params.extend(
                filter
                    .providers
                    .iter()
                    .map(|provider| Value::Integer(i64::from(*provider))),
            );
        }
        // Sources and types are stored as the ids of their names.
        if !filter.sources.is_empty() {
            conditions.push(format!(
                "e.source_id IN (SELECT id FROM names WHERE name IN ({}))",
                placeholders(filter.sources.len())
            ));
            params.extend(filter.sources.iter().cloned().map(Value::Text));
        }
        if let Some(types) = type_condition(&filter.types, &mut params) {
            conditions.push(types);
        }
        let mut sql = format!("SELECT e.sequence, e.body, e.codec FROM {from}");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY {sequence} {order} LIMIT ?"));
        params.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        Some(EventQuery { sql, params })
    }

    pub(super) fn run(&self, conn: &Connection, codec: &Codec) -> Result<Vec<Event>, LogError> {
        let mut statement = conn.prepare_cached(&self.sql).map_err(unavailable)?;
        let mut rows = statement
            .query(params_from_iter(self.params.iter()))
            .map_err(unavailable)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(unavailable)? {
            events.push(decode_row(row, codec)?);
        }
        Ok(events)
    }

    /// As [`EventQuery::run`], returning each event's encoding without decoding it: a plain
    /// body is exactly what subscribers are sent (one copy out of SQLite's page), a compressed
    /// one is decompressed into it.
    fn run_encoded(&self, conn: &Connection, codec: &Codec) -> Result<Vec<EncodedEvent>, LogError> {
        let mut statement = conn.prepare_cached(&self.sql).map_err(unavailable)?;
        let mut rows = statement
            .query(params_from_iter(self.params.iter()))
            .map_err(unavailable)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(unavailable)? {
            let (sequence, encoding) = stored_event(row, codec)?;
            events.push(EncodedEvent::new(
                sequence,
                match encoding {
                    Cow::Borrowed(bytes) => Bytes::copy_from_slice(bytes),
                    Cow::Owned(bytes) => Bytes::from(bytes),
                },
            ));
        }
        Ok(events)
    }
}

/// A catch-up read: `query`'s events (none when it cannot match) and, in the same read
/// transaction, how far retention had gone, so the two describe one state of the file.
pub(super) fn encoded_batch(
    conn: &Connection,
    codec: &Codec,
    query: Option<&EventQuery>,
) -> Result<EncodedBatch, LogError> {
    let snapshot = conn.unchecked_transaction().map_err(unavailable)?;
    let events = match query {
        Some(query) => query.run_encoded(&snapshot, codec)?,
        None => Vec::new(),
    };
    let removed_through = removed_through(&snapshot)?;
    // Read-only: ending the transaction either way just lets go of the snapshot.
    snapshot.commit().map_err(unavailable)?;
    Ok(EncodedBatch {
        removed_through,
        events,
    })
}

/// The newest sequence retention removed (0 when none). Sequences have no holes and retention
/// removes only the oldest events, so that is everything below the oldest stored event, or
/// the high-water mark when none is left.
pub(super) fn removed_through(conn: &Connection) -> Result<u64, LogError> {
    let oldest = conn
        .prepare_cached("SELECT MIN(sequence) FROM events")
        .and_then(|mut statement| {
            statement.query_row([], |row| schema::optional_sequence_column(row, 0))
        })
        .map_err(unavailable)?;
    match oldest {
        Some(oldest) => Ok(oldest.saturating_sub(1)),
        None => schema::last_sequence(conn).map_err(unavailable),
    }
}

/// `e.type_id IN (SELECT id FROM names WHERE name = ? OR (name >= ? AND name < ?) ...)`, or
/// `None` when any type matches.
///
/// A prefix is matched as a range of strings rather than with `LIKE`: the range is exact (`LIKE`
/// folds ASCII case and would need `%` and `_` escaped), and it walks the names' index.
fn type_condition(types: &[TypePattern], params: &mut Vec<Value>) -> Option<String> {
    let matches_all =
        |pattern: &TypePattern| matches!(pattern, TypePattern::Prefix(p) if p.is_empty());
    if types.is_empty() || types.iter().any(matches_all) {
        return None;
    }
    let mut alternatives = Vec::with_capacity(types.len());
    for pattern in types {
        match pattern {
            TypePattern::Exact(name) => {
                alternatives.push("name = ?");
                params.push(Value::Text(name.clone()));
            }
            TypePattern::Prefix(prefix) => {
                params.push(Value::Text(prefix.clone()));
                match prefix_upper_bound(prefix) {
                    Some(upper) => {
                        alternatives.push("(name >= ? AND name < ?)");
                        params.push(Value::Text(upper));
                    }
                    None => alternatives.push("name >= ?"),
                }
            }
        }
    }
    Some(format!(
        "e.type_id IN (SELECT id FROM names WHERE {})",
        alternatives.join(" OR ")
    ))
}

/// The least string greater than every string starting with `prefix` (`order.` -> `order/`), or
/// `None` when there is none. SQLite compares text bytewise, and UTF-8 byte order is code point
/// order, so `[prefix, upper)` is exactly the strings starting with `prefix`.
pub(super) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            // Skip the surrogate gap, which holds no chars.
            0xD800 => Some('\u{E000}'),
            next => char::from_u32(next),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
        // `char::MAX` cannot be incremented: bump the char before it instead.
    }
    None
}

fn placeholders(count: usize) -> String {
    let mut out = String::with_capacity(count * 3);
    for index in 0..count {
        if index > 0 {
            out.push_str(", ");
        }
        out.push('?');
    }
    out
}

/// The stored event with this id; with `View::Full`, its delivery too (where one was kept).
pub(super) fn event_by_id(
    conn: &Connection,
    codec: &Codec,
    id: &str,
    view: View,
) -> Result<Option<Event>, LogError> {
    let sql = match view {
        View::Basic => "SELECT sequence, body, codec, NULL, NULL FROM events WHERE id = ?1",
        View::Full => {
            "SELECT e.sequence, e.body, e.codec, d.body, d.codec FROM events e \
             LEFT JOIN deliveries d ON d.sequence = e.sequence WHERE e.id = ?1"
        }
    };
    let mut statement = conn.prepare_cached(sql).map_err(unavailable)?;
    let mut rows = statement.query([id]).map_err(unavailable)?;
    let Some(row) = rows.next().map_err(unavailable)? else {
        return Ok(None);
    };
    let full = matches!(view, View::Full);
    let (sequence, opened) = stored_parts(row, codec, full)?;
    let mut event = from_encoding(sequence, &opened.event)?;
    if full {
        event.delivery = delivery_of(row, codec, opened.delivery)?;
    }
    Ok(Some(event))
}

/// The delivery of a `(sequence, body, codec, delivery body, delivery codec)` row: the
/// `deliveries` row beside a plain event (or one schema version 6 compressed apart), or `kept`,
/// the one the event's record holds.
fn delivery_of(
    row: &rusqlite::Row<'_>,
    codec: &Codec,
    kept: Option<Vec<u8>>,
) -> Result<Option<WebhookDelivery>, LogError> {
    let sequence: i64 = row.get(0).map_err(unavailable)?;
    let apart = row.get_ref(3).map_err(unavailable)?;
    let encoding = match apart.as_blob() {
        Ok(apart) => {
            let apart_codec: i64 = row.get(4).map_err(unavailable)?;
            let encoding = codec
                .delivery_encoding(apart_codec, apart)
                .map_err(|error| corrupt(sequence, &error))?;
            Some(encoding.into_owned())
        }
        Err(_) => kept,
    };
    encoding
        .map(|encoding| WebhookDelivery::decode(encoding.as_slice()))
        .transpose()
        .map_err(|error| corrupt(sequence, &error))
}

/// The stored event with this sequence.
pub(super) fn event_by_sequence(
    conn: &Connection,
    codec: &Codec,
    sequence: u64,
) -> Result<Option<Event>, LogError> {
    let sql_sequence = schema::sequence_to_sql(sequence).map_err(unavailable)?;
    let mut statement = conn
        .prepare_cached("SELECT sequence, body, codec FROM events WHERE sequence = ?1")
        .map_err(unavailable)?;
    let mut rows = statement.query([sql_sequence]).map_err(unavailable)?;
    match rows.next().map_err(unavailable)? {
        Some(row) => decode_row(row, codec).map(Some),
        None => Ok(None),
    }
}

/// The redeliveries counted for each of these events, where there were any.
pub(super) fn duplicate_counts(
    conn: &Connection,
    sequences: &[u64],
) -> Result<std::collections::HashMap<u64, u64>, LogError> {
    let mut counts = std::collections::HashMap::new();
    // Pages are at most 1000 events; chunks keep far below SQLite's variable limit anyway.
    for chunk in sequences.chunks(500) {
        let sql = format!(
            "SELECT sequence, duplicates FROM events WHERE duplicates > 0 AND sequence IN ({})",
            placeholders(chunk.len())
        );
        let values = chunk
            .iter()
            .map(|sequence| Value::Integer(i64::try_from(*sequence).unwrap_or(i64::MAX)));
        let mut statement = conn.prepare_cached(&sql).map_err(unavailable)?;
        let mut rows = statement
            .query(params_from_iter(values))
            .map_err(unavailable)?;
        while let Some(row) = rows.next().map_err(unavailable)? {
            let sequence: i64 = row.get(0).map_err(unavailable)?;
            let duplicates: i64 = row.get(1).map_err(unavailable)?;
            counts.insert(
                u64::try_from(sequence).unwrap_or(0),
                u64::try_from(duplicates).unwrap_or(0),
            );
        }
    }
    Ok(counts)
}

/// The smallest sequence received at or after `since_ms`. Events may be stored out of receive
/// order (a caller-supplied receive time), so this is the minimum over all of them, which the
/// `received_at` index (carrying the rowid) answers without touching the table.
pub(super) fn first_sequence_received_since(
    conn: &Connection,
    since_ms: i64,
) -> Result<Option<u64>, LogError> {
    conn.prepare_cached("SELECT MIN(sequence) FROM events WHERE received_at >= ?1")
        .and_then(|mut statement| {
            statement.query_row([since_ms], |row| schema::optional_sequence_column(row, 0))
        })
        .map_err(unavailable)
}

/// The sequence of the `rank`-th newest stored event (1 = newest), `None` when there are fewer.
pub(super) fn sequence_ranked(conn: &Connection, rank: u64) -> Result<Option<u64>, LogError> {
    let offset = i64::try_from(rank.saturating_sub(1)).unwrap_or(i64::MAX);
    conn.prepare_cached("SELECT sequence FROM events ORDER BY sequence DESC LIMIT 1 OFFSET ?1")
        .and_then(|mut statement| {
            statement
                .query_row([offset], |row| schema::sequence_column(row, 0))
                .optional()
        })
        .map_err(unavailable)
}

/// A `(sequence, body, codec)` row's event encoding, sequence included.
fn stored_event<'r>(
    row: &'r rusqlite::Row<'_>,
    codec: &Codec,
) -> Result<(u64, Cow<'r, [u8]>), LogError> {
    stored_parts(row, codec, false).map(|(sequence, opened)| (sequence, opened.event))
}

/// A `(sequence, body, codec)` row's event encoding and, when `with_delivery` and the row is a
/// record holding one, the delivery's encoding, from one decompression.
fn stored_parts<'r>(
    row: &'r rusqlite::Row<'_>,
    codec: &Codec,
    with_delivery: bool,
) -> Result<(u64, Opened<'r>), LogError> {
    let sequence: i64 = row.get(0).map_err(unavailable)?;
    let body = row.get_ref(1).map_err(unavailable)?;
    let body = body.as_blob().map_err(|error| corrupt(sequence, &error))?;
    let body_codec: i64 = row.get(2).map_err(unavailable)?;
    let stored_sequence = u64::try_from(sequence).map_err(|error| corrupt(sequence, &error))?;
    let opened = codec
        .event_and_delivery(body_codec, stored_sequence, body, with_delivery)
        .map_err(|error| corrupt(sequence, &error))?;
    Ok((stored_sequence, opened))
}

/// Decodes a `(sequence, body, codec)` row.
fn decode_row(row: &rusqlite::Row<'_>, codec: &Codec) -> Result<Event, LogError> {
    let (sequence, encoding) = stored_event(row, codec)?;
    from_encoding(sequence, &encoding)
}

/// Decodes an event's encoding; the row's sequence is the one that counts.
fn from_encoding(sequence: u64, encoding: &[u8]) -> Result<Event, LogError> {
    let mut event = Event::decode(encoding)
        .map_err(|error| corrupt(i64::try_from(sequence).unwrap_or(i64::MAX), &error))?;
    event.sequence = sequence;
    Ok(event)
}

fn corrupt(sequence: i64, error: &dyn std::fmt::Display) -> LogError {
    LogError::Corrupt {
        sequence: u64::try_from(sequence).unwrap_or(0),
        reason: error.to_string(),
    }
}

pub(super) fn unavailable(error: rusqlite::Error) -> LogError {
    LogError::Unavailable {
        reason: error.to_string(),
    }
}
