//! One group commit: dedup, sequence assignment and the inserts for a batch of appends, all in
//! one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use rusqlite::{CachedStatement, Connection, OptionalExtension, TransactionBehavior};

use super::read::decode;
use super::schema::{sequence_column, sequence_to_sql};
use crate::event::from_timestamp;
use prost::Message;

use crate::log::{AppendRequest, Appended, CommittedEvent, DedupRule, EncodedEvent, LogError};
use crate::proto::v1::Event;

/// An append as the writer receives it: the request, and the event already encoded by the
/// caller (on its own thread, not the writer's) without a sequence.
pub(super) struct Prepared {
    pub request: AppendRequest,
    encoded: PreEncoded,
}

impl Prepared {
    /// Encodes `request.event` with sequence 0 (the field is left out) for the writer to splice
    /// the sequence into.
    pub fn new(mut request: AppendRequest) -> Prepared {
        request.event.sequence = 0;
        let bytes = request.event.encode_to_vec();
        let traceparent = &request.event.traceparent;
        let tail = if traceparent.is_empty() {
            0
        } else {
            prost::encoding::string::encoded_len(TRACEPARENT_FIELD, traceparent)
        };
        Prepared {
            encoded: PreEncoded {
                split: bytes.len() - tail,
                bytes,
            },
            request,
        }
    }
}

/// An event encoded without its sequence.
struct PreEncoded {
    bytes: Vec<u8>,
    /// Where the sequence field goes: before `traceparent`, the only field numbered after it.
    split: usize,
}

impl PreEncoded {
    /// The event's encoding with `sequence` set: what `encode_to_vec` gives for the event with
    /// that sequence, at the cost of a copy.
    fn with_sequence(&self, sequence: u64) -> Bytes {
        let mut body = Vec::with_capacity(self.bytes.len() + 11);
        body.extend_from_slice(&self.bytes[..self.split]);
        prost::encoding::uint64::encode(SEQUENCE_FIELD, &sequence, &mut body);
        body.extend_from_slice(&self.bytes[self.split..]);
        Bytes::from(body)
    }
}

/// `Event.sequence` and `Event.traceparent`, the two highest field numbers (prost writes fields
/// in number order; `prepared_encoding_matches_prost` checks the splice).
const SEQUENCE_FIELD: u32 = 17;
const TRACEPARENT_FIELD: u32 = 18;

/// What one append did, as the writer reports it.
pub(super) enum Outcome {
    /// Shared with the live broadcast; the caller takes the event out (without a copy when no
    /// subscriber holds it any more).
    Stored(Arc<CommittedEvent>),
    /// Boxed: duplicates are rare, and the common answer stays a pointer wide.
    Duplicate(Box<Event>),
}

impl Outcome {
    pub fn into_appended(self) -> Appended {
        match self {
            Outcome::Stored(committed) => Appended {
                event: Arc::unwrap_or_clone(committed).event,
                duplicate: false,
            },
            Outcome::Duplicate(event) => Appended {
                event: *event,
                duplicate: true,
            },
        }
    }
}

/// State shared by the appends of one batch.
pub(super) struct Batch<'a> {
    pub now_ms: i64,
    /// Dedup keys created at or after this are within the window.
    pub fresh_since_ms: i64,
    pub next_sequence: &'a mut u64,
    /// Events this batch stored, with the encoding written to `body`, in sequence order (to
    /// broadcast after commit).
    pub stored: &'a mut Vec<Arc<CommittedEvent>>,
    /// Sequence -> index in `stored`: a duplicate of an event of the same batch is answered
    /// from memory rather than decoded back.
    pub stored_index: HashMap<u64, usize>,
}

/// The statements every append runs, prepared once per batch rather than looked up in the
/// statement cache for each append.
struct Statements<'c> {
    conn: &'c Connection,
    dedup_entry: CachedStatement<'c>,
    insert_event_if_id_free: CachedStatement<'c>,
    insert_ref: CachedStatement<'c>,
    upsert_dedup: CachedStatement<'c>,
}

impl<'c> Statements<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Statements<'c>> {
        Ok(Statements {
            conn,
            dedup_entry: conn
                .prepare_cached("SELECT sequence, id, created_at FROM dedup WHERE key = ?1")?,
            insert_event_if_id_free: conn.prepare_cached(INSERT_EVENT_IF_ID_FREE)?,
            // OR IGNORE: the same resource as subject and related is one ref.
            insert_ref: conn.prepare_cached(
                "INSERT OR IGNORE INTO refs (kind, id, sequence) VALUES (?1, ?2, ?3)",
            )?,
            upsert_dedup: conn.prepare_cached(
                "INSERT INTO dedup (key, sequence, id, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key) DO UPDATE SET sequence = excluded.sequence, \
                 id = excluded.id, created_at = excluded.created_at",
            )?,
        })
    }
}

/// One transaction for the whole batch; per-append outcomes in order. An `Err` means the
/// transaction failed and rolled back.
pub(super) fn write_batch(
    conn: &mut Connection,
    requests: impl Iterator<Item = Prepared>,
    batch: &mut Batch<'_>,
) -> rusqlite::Result<Vec<Result<Outcome, LogError>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(requests.size_hint().0);
    {
        let mut statements = Statements::prepare(&tx)?;
        for request in requests {
            outcomes.push(append_one(&mut statements, request, batch)?);
        }
    }
    // With synchronous=FULL this is the batch's one fsync; dropping `tx` on error rolls back.
    tx.commit()?;
    Ok(outcomes)
}

/// A row of the dedup table.
struct DedupEntry {
    sequence: u64,
    /// The event id (fingerprint) as received.
    id: String,
    created_at: i64,
}

/// Stores one event unless it is a duplicate. The outer `Err` is a database error that dooms
/// the batch; the inner one concerns this append only.
fn append_one(
    statements: &mut Statements<'_>,
    prepared: Prepared,
    batch: &mut Batch<'_>,
) -> rusqlite::Result<Result<Outcome, LogError>> {
    let Prepared {
        request: AppendRequest { mut event, dedup },
        encoded,
    } = prepared;
    let fingerprint = std::mem::take(&mut event.id);
    let sequence = *batch.next_sequence;
    if fingerprint.is_empty() {
        // Nothing to recognize it by: always new, named by its sequence (so the caller's
        // encoding, with another id, cannot be used).
        event.id = sequence.to_string();
        return store(statements, event, None, None, batch).map(Ok);
    }

    // Earlier appends of this batch are visible here: the transaction reads its own writes.
    let key = match &dedup {
        DedupRule::EventId => format!("id:{fingerprint}"),
        DedupRule::LatestForEntity(entity) => format!("latest:{entity}"),
    };
    if let Some(known) = dedup_entry(statements, &key)? {
        let same = match dedup {
            DedupRule::EventId => true,
            DedupRule::LatestForEntity(_) => known.id == fingerprint,
        };
        if same && known.created_at >= batch.fresh_since_ms {
            return duplicate_of(statements.conn, known, batch);
        }
    }
    event.id.clone_from(&fingerprint);
    store(
        statements,
        event,
        Some(&encoded),
        Some((&key, &fingerprint)),
        batch,
    )
    .map(Ok)
}

const INSERT_EVENT: &str = "INSERT INTO events \
    (sequence, id, provider, source, type, received_at, body, appended_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// The same, doing nothing when the id is taken.
const INSERT_EVENT_IF_ID_FREE: &str = "INSERT OR IGNORE INTO events \
    (sequence, id, provider, source, type, received_at, body, appended_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Inserts the event, its refs and its dedup key (`(key, fingerprint)`). When `event.id` is
/// taken, the event is stored under a unique variant of it.
fn store(
    statements: &mut Statements<'_>,
    mut event: Event,
    pre_encoded: Option<&PreEncoded>,
    dedup: Option<(&str, &str)>,
    batch: &mut Batch<'_>,
) -> rusqlite::Result<Outcome> {
    let sequence = *batch.next_sequence;
    let sql_sequence = sequence_to_sql(sequence)?;
    event.sequence = sequence;
    let received_at_ms = event
        .received_at
        .as_ref()
        .and_then(from_timestamp)
        .map_or(batch.now_ms, |time| time.timestamp_millis());
    let insert = |statement: &mut CachedStatement<'_>, event: &Event, body: &[u8]| {
        statement.execute((
            sql_sequence,
            &event.id,
            event.provider,
            &event.source,
            &event.r#type,
            received_at_ms,
            body,
            // The writer's clock, not the caller's: what retention by age goes by.
            batch.now_ms,
        ))
    };
    // Encoded once: the same bytes are the stored body and what every subscriber is sent.
    let mut encoded = match pre_encoded {
        Some(pre_encoded) => EncodedEvent {
            sequence,
            bytes: pre_encoded.with_sequence(sequence),
        },
        None => EncodedEvent::encode(&event),
    };
    // Optimistic: the id is almost always free, and the unique index answers that while
    // inserting, saving a separate lookup per append.
    if insert(
        &mut statements.insert_event_if_id_free,
        &event,
        &encoded.bytes,
    )? == 0
    {
        event.id = unique_id(statements.conn, &event.id, sequence)?;
        encoded = EncodedEvent::encode(&event);
        insert(
            &mut statements.conn.prepare_cached(INSERT_EVENT)?,
            &event,
            &encoded.bytes,
        )?;
    }
    for resource in event.subject.iter().chain(&event.related) {
        statements
            .insert_ref
            .execute((&resource.kind, &resource.id, sql_sequence))?;
    }
    if let Some((key, fingerprint)) = dedup {
        statements
            .upsert_dedup
            .execute((key, sql_sequence, fingerprint, batch.now_ms))?;
    }
    *batch.next_sequence += 1;
    batch.stored_index.insert(sequence, batch.stored.len());
    let committed = Arc::new(CommittedEvent { event, encoded });
    batch.stored.push(Arc::clone(&committed));
    Ok(Outcome::Stored(committed))
}

fn dedup_entry(statements: &mut Statements<'_>, key: &str) -> rusqlite::Result<Option<DedupEntry>> {
    statements
        .dedup_entry
        .query_row([key], |row| {
            Ok(DedupEntry {
                sequence: sequence_column(row, 0)?,
                id: row.get(1)?,
                created_at: row.get(2)?,
            })
        })
        .optional()
}

/// The answer for a duplicate: the event as first stored or, when retention has removed it, a
/// minimal event with the remembered id and sequence.
fn duplicate_of(
    conn: &Connection,
    known: DedupEntry,
    batch: &Batch<'_>,
) -> rusqlite::Result<Result<Outcome, LogError>> {
    let in_batch = batch
        .stored_index
        .get(&known.sequence)
        .and_then(|index| batch.stored.get(*index));
    let event = match in_batch {
        Some(committed) => committed.event.clone(),
        None => {
            let body: Option<Vec<u8>> = conn
                .prepare_cached("SELECT body FROM events WHERE sequence = ?1")?
                .query_row([sequence_to_sql(known.sequence)?], |row| row.get(0))
                .optional()?;
            match body {
                Some(body) => {
                    let sequence = i64::try_from(known.sequence).unwrap_or(i64::MAX);
                    match decode(sequence, &body) {
                        Ok(event) => event,
                        Err(error) => return Ok(Err(error)),
                    }
                }
                None => Event {
                    id: known.id,
                    sequence: known.sequence,
                    ..Event::default()
                },
            }
        }
    };
    Ok(Ok(Outcome::Duplicate(Box::new(event))))
}

/// `<id>-<sequence>` for an id that is taken (the same state seen again, or an id redelivered
/// after its dedup window), with a counter in the unlikely case that is taken too.
fn unique_id(conn: &Connection, fingerprint: &str, sequence: u64) -> rusqlite::Result<String> {
    let mut candidate = format!("{fingerprint}-{sequence}");
    let mut attempt = 1u32;
    while id_taken(conn, &candidate)? {
        attempt += 1;
        candidate = format!("{fingerprint}-{sequence}-{attempt}");
    }
    Ok(candidate)
}

fn id_taken(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM events WHERE id = ?1")?
        .exists([id])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::ResourceRef;

    #[test]
    fn prepared_encoding_matches_prost() {
        for traceparent in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let mut event = Event {
                id: "evt_1".to_owned(),
                source: "gigs".to_owned(),
                r#type: "subscription.activated".to_owned(),
                subject: Some(ResourceRef {
                    kind: "subscription".to_owned(),
                    id: "sub_1".to_owned(),
                }),
                traceparent: traceparent.to_owned(),
                sequence: 99,
                ..Event::default()
            };
            let prepared = Prepared::new(AppendRequest {
                event: event.clone(),
                dedup: DedupRule::EventId,
            });
            for sequence in [1, 127, 128, 1 << 40] {
                event.sequence = sequence;
                assert_eq!(
                    prepared.encoded.with_sequence(sequence),
                    event.encode_to_vec()
                );
            }
        }
    }
}
