//! How event and delivery bodies are kept on disk.
//!
//! A row's `codec` column says how its body is kept: [`PLAIN`] is the prost encoding as is (for
//! an event, with its sequence; every row written before schema version 6 is plain), any other
//! value is the id of the zstd dictionary (`dictionaries` table) its body was compressed with.
//! The dictionary's kind says what the frame holds (see `frame`): new rows are **records**, an
//! event and its delivery in one frame in the `events` row; schema version 6 compressed events
//! and deliveries apart, and those rows read as they are.
//!
//! Webhooks of one provider share most of their bytes (field names, enumerations, URLs), but a
//! single body is too small for a compressor to find that on its own: a dictionary trained on
//! the store's own first events (see `train`) is what makes a 1 KiB body compress several
//! times over. Rows stay plain until one exists, and keep their codec for life, so
//! dictionaries are never changed or removed once rows name them.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use prost::Message;
use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe::{self, CCtx, DCtx};

use super::frame::{self, PreEncoded, Record};
use crate::proto::v1::ResourceRef;

/// The `codec` of a body kept as its prost encoding.
pub(super) const PLAIN: i64 = 0;

/// zstd's default level: with a dictionary, higher levels gain a few percent on bodies this
/// small for several times the CPU, which the ingest path pays.
const LEVEL: i32 = 3;

/// The largest body a row may decompress to: far above any webhook the ingress accepts, so a
/// damaged frame header cannot make a read allocate without bound.
const MAX_PLAIN_BYTES: u64 = 64 * 1024 * 1024;

/// The resources an event names (`Event.subject` and `Event.related`, same tags), decoded
/// without the rest of the event: prost skips the other fields. Retention deletes an event's
/// refs by them, since no index finds refs by sequence.
#[derive(Clone, PartialEq, prost::Message)]
struct EventRefs {
    #[prost(message, optional, tag = "7")]
    subject: Option<ResourceRef>,
    #[prost(message, repeated, tag = "8")]
    related: Vec<ResourceRef>,
}

/// What a dictionary's frames hold (`dictionaries.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// An event and its delivery (what new rows are).
    Record,
    /// An event alone (schema version 6).
    Event,
    /// A delivery alone, in `deliveries` (schema version 6).
    Delivery,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Record, Kind::Event, Kind::Delivery];

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Record => "record",
            Kind::Event => "event",
            Kind::Delivery => "delivery",
        }
    }

    fn parse(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|known| known.as_str() == kind)
    }
}

/// A body as a row keeps it.
#[derive(Debug, Clone)]
pub(super) struct StoredBody {
    pub codec: i64,
    pub bytes: Vec<u8>,
}

/// One trained dictionary, prepared for both directions.
struct Dictionary {
    id: i64,
    kind: Kind,
    encoder: EncoderDictionary<'static>,
    decoder: DecoderDictionary<'static>,
}

thread_local! {
    // A context per thread: creating one per body would cost more than compressing it.
    static COMPRESSOR: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    static DECOMPRESSOR: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

impl Dictionary {
    fn new(id: i64, kind: Kind, content: &[u8]) -> Dictionary {
        Dictionary {
            id,
            kind,
            encoder: EncoderDictionary::copy(content, LEVEL),
            decoder: DecoderDictionary::copy(content),
        }
    }

    fn compress(&self, plain: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(zstd_safe::compress_bound(plain.len()));
        COMPRESSOR.with_borrow_mut(|context| {
            context
                .compress_using_cdict(&mut out, plain, self.encoder.as_cdict())
                .map_err(|code| zstd_safe::get_error_name(code).to_owned())
        })?;
        Ok(out)
    }

    fn decompress(&self, stored: &[u8]) -> Result<Vec<u8>, String> {
        let size = zstd_safe::get_frame_content_size(stored)
            .map_err(|_| "not a zstd frame".to_owned())?
            .ok_or("zstd frame without a content size")?;
        if size > MAX_PLAIN_BYTES {
            return Err(format!("zstd frame claims {size} bytes"));
        }
        let mut out = Vec::with_capacity(usize::try_from(size).map_err(|e| e.to_string())?);
        DECOMPRESSOR.with_borrow_mut(|context| {
            context
                .decompress_using_ddict(&mut out, stored, self.decoder.as_ddict())
                .map_err(|code| zstd_safe::get_error_name(code).to_owned())
        })?;
        if out.len() as u64 != size {
            return Err(format!("zstd frame gave {} of its {size} bytes", out.len()));
        }
        Ok(out)
    }
}

#[derive(Default)]
struct Dictionaries {
    /// What new rows are compressed with: the newest record dictionary.
    current: Option<Arc<Dictionary>>,
    /// Every dictionary rows may name.
    by_id: HashMap<i64, Arc<Dictionary>>,
}

/// The store's dictionaries, shared by the callers that compress, the writer that installs new
/// ones, and the readers that decompress.
#[derive(Clone)]
pub(super) struct Codec {
    /// Whether new rows are compressed at all (reads decompress either way).
    enabled: bool,
    dictionaries: Arc<RwLock<Dictionaries>>,
}

/// A stored row opened: its event's encoding (sequence included) and, when asked for and the
/// row is a record holding one, its delivery's.
pub(super) struct Opened<'a> {
    pub(super) event: Cow<'a, [u8]>,
    pub(super) delivery: Option<Vec<u8>>,
}

impl Codec {
    pub(super) fn new(enabled: bool) -> Codec {
        Codec {
            enabled,
            dictionaries: Arc::default(),
        }
    }

    /// Loads every dictionary of the store; the newest record one compresses new rows.
    pub(super) fn load(&self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        let mut statement =
            conn.prepare("SELECT id, kind, content FROM dictionaries ORDER BY id")?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })?;
        for row in rows {
            let (id, kind, content) = row?;
            match Kind::parse(&kind) {
                Some(kind) => self.install(id, kind, &content),
                None => tracing::warn!(id, kind, "dictionary of an unknown kind, ignored"),
            }
        }
        Ok(())
    }

    /// Makes a stored dictionary known; a record dictionary compresses new rows from now on.
    pub(super) fn install(&self, id: i64, kind: Kind, content: &[u8]) {
        let dictionary = Arc::new(Dictionary::new(id, kind, content));
        let mut dictionaries = self.write();
        dictionaries.by_id.insert(id, Arc::clone(&dictionary));
        if self.enabled && kind == Kind::Record {
            dictionaries.current = Some(dictionary);
        }
    }

    /// Whether new rows would be stored plain for want of a dictionary.
    pub(super) fn wants_dictionary(&self) -> bool {
        self.enabled && self.read().current.is_none()
    }

    /// `event` and the encoding of its delivery compressed as one record with the current
    /// dictionary, `None` when there is none (or it failed): then the row keeps the event
    /// plain, and its delivery goes to `deliveries`, as rows always did.
    pub(super) fn record(&self, event: &PreEncoded, delivery: Option<&[u8]>) -> Option<StoredBody> {
        let dictionary = self.read().current.clone()?;
        match dictionary.compress(&event.record(delivery)) {
            Ok(bytes) => Some(StoredBody {
                codec: dictionary.id,
                bytes,
            }),
            Err(error) => {
                tracing::warn!(%error, "cannot compress an event, storing it plain");
                None
            }
        }
    }

    /// A stored event's encoding, sequence included.
    pub(super) fn event_encoding<'a>(
        &self,
        codec: i64,
        sequence: u64,
        stored: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, String> {
        self.event_and_delivery(codec, sequence, stored, false)
            .map(|opened| opened.event)
    }

    /// A stored event's encoding, sequence included, and, when `with_delivery` and the row is a
    /// record holding one, the delivery's encoding: one decompression for both.
    pub(super) fn event_and_delivery<'a>(
        &self,
        codec: i64,
        sequence: u64,
        stored: &'a [u8],
        with_delivery: bool,
    ) -> Result<Opened<'a>, String> {
        if codec == PLAIN {
            return Ok(Opened {
                event: Cow::Borrowed(stored),
                delivery: None,
            });
        }
        let (kind, plain) = self.decompress(codec, stored)?;
        match kind {
            Kind::Record => {
                let record = Record::parse(&plain)?;
                let delivery = record.delivery.filter(|_| with_delivery);
                Ok(Opened {
                    event: Cow::Owned(record.event_with_sequence(sequence)),
                    delivery: delivery.map(<[u8]>::to_vec),
                })
            }
            Kind::Event => Ok(Opened {
                event: Cow::Owned(frame::event_frame_with_sequence(&plain, sequence)?),
                delivery: None,
            }),
            Kind::Delivery => Err(format!("event names delivery dictionary {codec}")),
        }
    }

    /// The resources a stored event names (its subject first), as its refs rows hold them.
    pub(super) fn event_refs(
        &self,
        codec: i64,
        sequence: u64,
        stored: &[u8],
    ) -> Result<Vec<ResourceRef>, String> {
        let encoding = self.event_encoding(codec, sequence, stored)?;
        let refs = EventRefs::decode(&*encoding).map_err(|error| error.to_string())?;
        Ok(refs.subject.into_iter().chain(refs.related).collect())
    }

    /// A `deliveries` row's encoding.
    pub(super) fn delivery_encoding<'a>(
        &self,
        codec: i64,
        stored: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, String> {
        if codec == PLAIN {
            return Ok(Cow::Borrowed(stored));
        }
        match self.decompress(codec, stored)? {
            (Kind::Delivery, plain) => Ok(Cow::Owned(plain)),
            (kind, _) => Err(format!(
                "delivery names {} dictionary {codec}",
                kind.as_str()
            )),
        }
    }

    fn decompress(&self, codec: i64, stored: &[u8]) -> Result<(Kind, Vec<u8>), String> {
        let dictionary = self.read().by_id.get(&codec).cloned();
        match dictionary {
            Some(dictionary) => Ok((dictionary.kind, dictionary.decompress(stored)?)),
            None => Err(format!("no dictionary {codec}")),
        }
    }

    // The guarded maps are only ever inserted into whole, so a poisoned lock is harmless.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Dictionaries> {
        self.dictionaries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Dictionaries> {
        self.dictionaries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::resource;
    use crate::proto::v1::Event;

    /// `EventRefs` reads the subject and related resources of a whole event: its tags are the
    /// event's.
    #[test]
    fn event_refs_are_the_events_subject_and_related() {
        let event = Event {
            id: "gigs:evt_1".to_owned(),
            subject: Some(resource("subscription", "sub_1")),
            related: vec![resource("plan", "pln_1"), resource("user", "usr_1")],
            data_json: r#"{"id":"sub_1"}"#.to_owned(),
            sequence: 7,
            ..Event::default()
        };
        let refs = Codec::new(false)
            .event_refs(PLAIN, 7, &event.encode_to_vec())
            .unwrap();
        let expected: Vec<ResourceRef> = event
            .subject
            .iter()
            .chain(&event.related)
            .cloned()
            .collect();
        assert_eq!(refs, expected);
    }
}
