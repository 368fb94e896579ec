//! One group commit: dedup, sequence assignment and the inserts for a batch of appends, all in
//! one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{CachedStatement, Connection, TransactionBehavior};

use super::codec::{Codec, PLAIN, StoredBody};
use super::dedup;
use super::frame::PreEncoded;
use super::read::{event_by_id, event_by_sequence};
use super::schema::sequence_to_sql;
use crate::event::from_timestamp;
use prost::Message;

use crate::event::Identity;
use crate::log::{AppendRequest, Appended, CommittedEvent, EncodedEvent, LogError, View};
use crate::proto::v1::Event;

/// An append as the writer receives it: the event and its delivery already encoded (and, once
/// the store has a dictionary, compressed together as one record) by the caller, on its own
/// thread rather than the writer's; the event without a sequence.
pub(super) struct Prepared {
    event: Event,
    identity: Identity,
    encoded: PreEncoded,
    /// The event and its delivery as their row keeps them, when compressed; a plain row is
    /// `encoded` with its sequence, which the writer makes anyway for the live feed.
    compressed: Option<StoredBody>,
    /// The delivery's encoding: a `deliveries` row of its own beside a plain event, and kept
    /// for compressing again a recurrence the writer renames.
    delivery: Option<Vec<u8>>,
}

impl Prepared {
    /// Encodes `request.event` with sequence 0 (the field is left out) for the writer to splice
    /// the sequence into. A delivery on the event itself is never stored in its encoding: it is
    /// the request's `delivery` that is kept, beside it.
    pub fn new(request: AppendRequest, codec: &Codec) -> Prepared {
        let AppendRequest {
            mut event,
            identity,
            delivery,
        } = request;
        event.sequence = 0;
        event.delivery = None;
        let encoded = PreEncoded::new(&event);
        let delivery = delivery.map(|delivery| delivery.encode_to_vec());
        Prepared {
            compressed: codec.record(&encoded, delivery.as_deref()),
            encoded,
            delivery,
            event,
            identity,
        }
    }

    /// The bytes this append adds to the store: its event and its delivery, as kept.
    pub(super) fn stored_bytes(&self) -> usize {
        match &self.compressed {
            Some(stored) => stored.bytes.len(),
            None => self.encoded.len() + self.delivery.as_ref().map_or(0, Vec::len),
        }
    }
}

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
pub(super) struct Statements<'c> {
    conn: &'c Connection,
    codec: &'c Codec,
    dedup_entry: CachedStatement<'c>,
    insert_event_if_id_free: CachedStatement<'c>,
    insert_ref: CachedStatement<'c>,
    insert_delivery: CachedStatement<'c>,
    insert_names: CachedStatement<'c>,
    upsert_dedup: CachedStatement<'c>,
}

impl<'c> Statements<'c> {
    pub(super) fn prepare(
        conn: &'c Connection,
        codec: &'c Codec,
    ) -> rusqlite::Result<Statements<'c>> {
        Ok(Statements {
            conn,
            codec,
            dedup_entry: conn.prepare_cached(dedup::SELECT)?,
            insert_event_if_id_free: conn.prepare_cached(INSERT_EVENT_IF_ID_FREE)?,
            // OR IGNORE: the same resource as subject and related is one ref.
            insert_ref: conn.prepare_cached(
                "INSERT OR IGNORE INTO refs (kind, id, sequence) VALUES (?1, ?2, ?3)",
            )?,
            insert_delivery: conn.prepare_cached(
                "INSERT INTO deliveries (sequence, body, codec) VALUES (?1, ?2, ?3)",
            )?,
            insert_names: conn.prepare_cached(INSERT_NAMES)?,
            upsert_dedup: conn.prepare_cached(dedup::UPSERT)?,
        })
    }
}

/// One transaction for the whole batch; per-append outcomes in order. An `Err` means the
/// transaction failed and rolled back.
pub(super) fn write_batch(
    conn: &mut Connection,
    codec: &Codec,
    requests: impl Iterator<Item = Prepared>,
    batch: &mut Batch<'_>,
) -> rusqlite::Result<Vec<Result<Outcome, LogError>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(requests.size_hint().0);
    {
        let mut statements = Statements::prepare(&tx, codec)?;
        for request in requests {
            outcomes.push(append_one(&mut statements, request, batch)?);
        }
    }
    // With synchronous=FULL this is the batch's one fsync; dropping `tx` on error rolls back.
    tx.commit()?;
    Ok(outcomes)
}

/// Stores one event unless it is a duplicate. The outer `Err` is a database error that dooms
/// the batch; the inner one concerns this append only.
pub(super) fn append_one(
    statements: &mut Statements<'_>,
    prepared: Prepared,
    batch: &mut Batch<'_>,
) -> rusqlite::Result<Result<Outcome, LogError>> {
    // Earlier appends of this batch are visible here: the transaction reads its own writes.
    let key = dedup::Key::of(&prepared.identity, &prepared.event.id);
    let taken = if key.latest {
        IdTaken::Recurrence
    } else {
        IdTaken::Duplicate
    };
    if let Some(known) = dedup::entry(&mut statements.dedup_entry, &key)? {
        // Within the window a duplicate is recognized even when retention has removed it.
        if known.same_event(&key, &prepared.event.id) && known.created_at >= batch.fresh_since_ms {
            let id = prepared.event.id;
            return duplicate_of(statements.conn, statements.codec, known, id, batch);
        }
    }
    store(statements, prepared, &key, taken, batch)
}

/// The `(codec, body)` a row keeps: compressed, or else the plain encoding made for the live feed.
fn row<'a>(compressed: &'a Option<StoredBody>, encoded: &'a EncodedEvent) -> (i64, &'a [u8]) {
    match compressed {
        Some(stored) => (stored.codec, stored.bytes.as_slice()),
        None => (PLAIN, encoded.bytes.as_ref()),
    }
}

/// What an id already held by a stored event means for a new append with that id.
#[derive(Clone, Copy)]
enum IdTaken {
    /// The same event: the id identifies it for as long as it is retained.
    Duplicate,
    /// A state recurring after another: a new event, named by its sequence as well.
    Recurrence,
}

/// An insert of an event row, `$verb` being `INSERT` or a variant of it. Source and type go in
/// as names and are stored as the ids `names` gives them, which [`INSERT_NAMES`] makes sure
/// exist.
macro_rules! insert_event {
    ($verb:literal) => {
        concat!(
            $verb,
            " INTO events \
            (sequence, id, provider, source_id, type_id, received_at, body, appended_at, codec) \
            VALUES (?1, ?2, ?3, (SELECT id FROM names WHERE name = ?4), \
            (SELECT id FROM names WHERE name = ?5), ?6, ?7, ?8, ?9)"
        )
    };
}

const INSERT_EVENT: &str = insert_event!("INSERT");

/// The same, doing nothing when the id is taken.
const INSERT_EVENT_IF_ID_FREE: &str = insert_event!("INSERT OR IGNORE");

/// An event's source and type, named where they are new. In the batch's transaction, so a
/// rolled-back batch leaves no name behind and no event names one that is missing.
const INSERT_NAMES: &str = "INSERT OR IGNORE INTO names (name) VALUES (?1), (?2)";

/// Inserts the event, its delivery, its refs and its dedup key `key`; when its id is taken, what
/// `taken` says.
fn store(
    statements: &mut Statements<'_>,
    prepared: Prepared,
    key: &dedup::Key,
    taken: IdTaken,
    batch: &mut Batch<'_>,
) -> rusqlite::Result<Result<Outcome, LogError>> {
    let Prepared {
        mut event,
        encoded: pre_encoded,
        mut compressed,
        delivery,
        ..
    } = prepared;
    let sequence = *batch.next_sequence;
    let sql_sequence = sequence_to_sql(sequence)?;
    event.sequence = sequence;
    let received_at_ms = event
        .received_at
        .as_ref()
        .and_then(from_timestamp)
        .map_or(batch.now_ms, |time| time.timestamp_millis());
    let insert = |statement: &mut CachedStatement<'_>, event: &Event, body: (i64, &[u8])| {
        statement.execute((
            sql_sequence,
            &event.id,
            event.provider,
            &event.source,
            &event.r#type,
            received_at_ms,
            body.1,
            // The writer's clock, not the caller's: what retention by age goes by.
            batch.now_ms,
            body.0,
        ))
    };
    // Encoded once: the same bytes are the plain stored body and what every subscriber is sent.
    let mut encoded = pre_encoded.with_sequence(sequence);
    // Optimistic: the id is almost always free, and the unique index answers that while
    // inserting, saving a separate lookup per append.
    // The id a redelivery repeats: a recurrence's fingerprint, not the name it is stored by.
    let mut fingerprint = None;
    statements
        .insert_names
        .execute((&event.source, &event.r#type))?;
    if insert(
        &mut statements.insert_event_if_id_free,
        &event,
        row(&compressed, &encoded),
    )? == 0
    {
        match taken {
            IdTaken::Duplicate => {
                return duplicate_by_id(statements.conn, statements.codec, &event.id);
            }
            IdTaken::Recurrence => {
                // `<fingerprint>-<sequence>` is free: a fingerprint is hex after its source's
                // name, so holds no `-`, and sequences are never reused.
                let named = crate::event::join(&[&event.id, "-", &sequence.to_string()]);
                fingerprint = Some(std::mem::replace(&mut event.id, named));
                event.sequence = 0;
                let renamed = PreEncoded::new(&event);
                event.sequence = sequence;
                compressed = statements.codec.record(&renamed, delivery.as_deref());
                encoded = renamed.with_sequence(sequence);
                insert(
                    &mut statements.conn.prepare_cached(INSERT_EVENT)?,
                    &event,
                    row(&compressed, &encoded),
                )?;
            }
        }
    }
    // A record holds its delivery; a plain event's is a row of its own.
    if let (None, Some(delivery)) = (&compressed, &delivery) {
        statements
            .insert_delivery
            .execute((sql_sequence, delivery.as_slice(), PLAIN))?;
    }
    for resource in event.subject.iter().chain(&event.related) {
        statements
            .insert_ref
            .execute((&resource.kind, &resource.id, sql_sequence))?;
    }
    dedup::remember(
        &mut statements.upsert_dedup,
        key,
        sql_sequence,
        fingerprint.as_deref().unwrap_or(&event.id),
        batch.now_ms,
    )?;
    *batch.next_sequence += 1;
    batch.stored_index.insert(sequence, batch.stored.len());
    let committed = Arc::new(CommittedEvent { event, encoded });
    batch.stored.push(Arc::clone(&committed));
    Ok(Ok(Outcome::Stored(committed)))
}

/// The answer for a duplicate: the event as first stored or, when retention has removed it, a
/// minimal event with its id (`id`, the redelivery's: the same, or it would be no duplicate) and
/// sequence.
fn duplicate_of(
    conn: &Connection,
    codec: &Codec,
    known: dedup::Entry,
    id: String,
    batch: &Batch<'_>,
) -> rusqlite::Result<Result<Outcome, LogError>> {
    // Counted in the same transaction; nothing to count once retention removed the event.
    conn.prepare_cached("UPDATE events SET duplicates = duplicates + 1 WHERE sequence = ?1")?
        .execute([sequence_to_sql(known.sequence)?])?;
    let in_batch = batch
        .stored_index
        .get(&known.sequence)
        .and_then(|index| batch.stored.get(*index));
    let event = match in_batch {
        Some(committed) => committed.event.clone(),
        None => match event_by_sequence(conn, codec, known.sequence) {
            Ok(Some(event)) => event,
            Ok(None) => Event {
                id,
                sequence: known.sequence,
                ..Event::default()
            },
            Err(error) => return Ok(Err(error)),
        },
    };
    Ok(Ok(Outcome::Duplicate(Box::new(event))))
}

/// The answer for a redelivery whose id a retained event holds: that event, as first stored.
fn duplicate_by_id(
    conn: &Connection,
    codec: &Codec,
    id: &str,
) -> rusqlite::Result<Result<Outcome, LogError>> {
    Ok(event_by_id(conn, codec, id, View::Basic).and_then(|event| {
        event
            .map(|event| Outcome::Duplicate(Box::new(event)))
            .ok_or_else(|| LogError::Unavailable {
                reason: format!("event {id} holds its id but cannot be read"),
            })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{ResourceRef, WebhookDelivery};

    #[test]
    fn prepared_encoding_matches_prost() {
        let tails = [
            ("", "", ""),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "",
                "",
            ),
            ("", r#"{"cents": 9007199254740993}"#, ""),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                r#"{"a": 1}"#,
                r#"{"a": 0}"#,
            ),
        ];
        for (traceparent, data_json, previous_data_json) in tails {
            let mut event = Event {
                id: "evt_1".to_owned(),
                source: "gigs".to_owned(),
                r#type: "subscription.activated".to_owned(),
                subject: Some(ResourceRef {
                    kind: "subscription".to_owned(),
                    id: "sub_1".to_owned(),
                }),
                traceparent: traceparent.to_owned(),
                data_json: data_json.to_owned(),
                previous_data_json: previous_data_json.to_owned(),
                sequence: 99,
                ..Event::default()
            };
            let prepared = Prepared::new(
                AppendRequest {
                    event: event.clone(),
                    identity: Identity::ProviderId,
                    delivery: None,
                },
                &Codec::new(false),
            );
            for sequence in [1, 127, 128, 1 << 40] {
                event.sequence = sequence;
                assert_eq!(
                    prepared.encoded.with_sequence(sequence).bytes,
                    event.encode_to_vec()
                );
            }
        }
    }

    // What a failed commit asks the probe to find room for: the event and its delivery.
    #[test]
    fn stored_bytes_are_the_event_and_its_delivery_encoded() {
        let event = Event {
            id: "evt_1".to_owned(),
            data_json: r#"{"a": 1}"#.to_owned(),
            ..Event::default()
        };
        let delivery = WebhookDelivery {
            body: vec![b'x'; 300],
            request_path: "/webhooks/gigs".to_owned(),
            ..WebhookDelivery::default()
        };
        let alone = Prepared::new(
            AppendRequest {
                event: event.clone(),
                identity: Identity::ProviderId,
                delivery: None,
            },
            &Codec::new(false),
        );
        assert_eq!(alone.stored_bytes(), event.encode_to_vec().len());
        let with_delivery = Prepared::new(
            AppendRequest {
                event: event.clone(),
                identity: Identity::ProviderId,
                delivery: Some(delivery.clone()),
            },
            &Codec::new(false),
        );
        assert_eq!(
            with_delivery.stored_bytes(),
            event.encode_to_vec().len() + delivery.encode_to_vec().len()
        );
    }
}
