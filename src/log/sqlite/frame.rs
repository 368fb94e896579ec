//! What a compressed row holds once decompressed: the layouts `codec` compresses and reads.
//!
//! - A **record** (what rows are written as): `varint(split) ‖ varint(event_len << 1 | has
//!   delivery) ‖ event ‖ delivery`. The event and the webhook it came from in one frame: the
//!   delivery's body repeats the event's payload and every id in it byte for byte, which a
//!   frame of its own has to store again, and a separate `deliveries` row costs its own key
//!   and B-tree cell. Together they take two thirds of the bytes they took apart.
//! - An **event frame** (schema version 6 wrote these; read only): `varint(split) ‖ event`.
//!
//! Either way the event is its prost encoding without its sequence (the row key holds it), and
//! `split` is where the sequence field goes, so that reading it back gives exactly the bytes
//! `Event::encode_to_vec` gives, which is what subscribers are sent.

use prost::Message;

use crate::log::EncodedEvent;
use crate::proto::v1::Event;

/// `Event.sequence` and the stored fields numbered after it (prost writes fields in number
/// order; `prepared_encoding_matches_prost` checks the splice). `delivery` (21) is never in a
/// stored encoding.
const SEQUENCE_FIELD: u32 = 17;
const TRACEPARENT_FIELD: u32 = 18;
const DATA_JSON_FIELD: u32 = 19;
const PREVIOUS_DATA_JSON_FIELD: u32 = 20;

/// An event encoded without its sequence, and the splice that puts one in.
pub(super) struct PreEncoded {
    bytes: Vec<u8>,
    /// Where the sequence field goes: before the fields numbered after it.
    split: usize,
}

impl PreEncoded {
    /// Encodes `event`, whose sequence is 0 (so left out) and which carries no delivery.
    pub(super) fn new(event: &Event) -> PreEncoded {
        let bytes = event.encode_to_vec();
        let tail = string_field_len(TRACEPARENT_FIELD, &event.traceparent)
            + string_field_len(DATA_JSON_FIELD, &event.data_json)
            + string_field_len(PREVIOUS_DATA_JSON_FIELD, &event.previous_data_json);
        PreEncoded {
            split: bytes.len() - tail,
            bytes,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The event's encoding with `sequence` set (what `encode_to_vec` gives for the event with
    /// that sequence, at the cost of a copy), in the buffer of its StreamEvents message.
    pub(super) fn with_sequence(&self, sequence: u64) -> EncodedEvent {
        EncodedEvent::with_message(sequence, self.bytes.len() + SEQUENCE_BYTES, |body| {
            splice_into(body, &self.bytes, self.split, sequence);
        })
    }

    /// The event frame schema version 6 compressed, for tests that write rows as it did.
    #[cfg(test)]
    pub(super) fn event_frame(&self) -> Vec<u8> {
        let mut plain = Vec::with_capacity(self.bytes.len() + 2);
        prost::encoding::encode_varint(self.split as u64, &mut plain);
        plain.extend_from_slice(&self.bytes);
        plain
    }

    /// This event and the encoding of its delivery, as a record.
    pub(super) fn record(&self, delivery: Option<&[u8]>) -> Vec<u8> {
        record(self.split, &self.bytes, delivery)
    }
}

/// A record of `event` (split at `split`) and `delivery`.
pub(super) fn record(split: usize, event: &[u8], delivery: Option<&[u8]>) -> Vec<u8> {
    let delivery_len = delivery.map_or(0, <[u8]>::len);
    let mut plain = Vec::with_capacity(event.len() + delivery_len + 12);
    prost::encoding::encode_varint(split as u64, &mut plain);
    let lengths = ((event.len() as u64) << 1) | u64::from(delivery.is_some());
    prost::encoding::encode_varint(lengths, &mut plain);
    plain.extend_from_slice(event);
    plain.extend_from_slice(delivery.unwrap_or_default());
    plain
}

/// A decompressed record's parts.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Record<'a> {
    split: usize,
    event: &'a [u8],
    pub delivery: Option<&'a [u8]>,
}

impl Record<'_> {
    /// Reads a record, checking every length against what is there.
    pub(super) fn parse(plain: &[u8]) -> Result<Record<'_>, String> {
        let mut rest = plain;
        let split = header_varint(&mut rest, "split")?;
        let lengths = header_varint(&mut rest, "lengths")?;
        let event_len = usize::try_from(lengths >> 1)
            .ok()
            .filter(|len| *len <= rest.len())
            .ok_or("record's event is longer than the record")?;
        let (event, delivery) = rest.split_at(event_len);
        let delivery = match lengths & 1 {
            1 => Some(delivery),
            _ if delivery.is_empty() => None,
            _ => return Err("record without a delivery has bytes after its event".to_owned()),
        };
        Ok(Record {
            split: checked_split(split, event)?,
            event,
            delivery,
        })
    }

    /// The event's encoding with its sequence.
    pub(super) fn event_with_sequence(&self, sequence: u64) -> Vec<u8> {
        splice(self.event, self.split, sequence)
    }
}

/// A version 6 event frame's encoding, sequence included.
pub(super) fn event_frame_with_sequence(plain: &[u8], sequence: u64) -> Result<Vec<u8>, String> {
    let mut event = plain;
    let split = header_varint(&mut event, "split")?;
    Ok(splice(event, checked_split(split, event)?, sequence))
}

fn header_varint(rest: &mut &[u8], what: &str) -> Result<u64, String> {
    prost::encoding::decode_varint(rest)
        .map_err(|error| format!("compressed body without its {what}: {error}"))
}

fn checked_split(split: u64, event: &[u8]) -> Result<usize, String> {
    usize::try_from(split)
        .ok()
        .filter(|split| *split <= event.len())
        .ok_or_else(|| "compressed event's split is past its end".to_owned())
}

fn splice(bytes: &[u8], split: usize, sequence: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes.len() + SEQUENCE_BYTES);
    splice_into(&mut body, bytes, split, sequence);
    body
}

/// The longest sequence field: a two-byte key and a ten-byte varint.
const SEQUENCE_BYTES: usize = 12;

fn splice_into(body: &mut Vec<u8>, bytes: &[u8], split: usize, sequence: u64) {
    body.extend_from_slice(&bytes[..split]);
    prost::encoding::uint64::encode(SEQUENCE_FIELD, &sequence, body);
    body.extend_from_slice(&bytes[split..]);
}

/// The encoded length of a string field as prost writes it (nothing when empty).
fn string_field_len(field: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        prost::encoding::key_len(field)
            + prost::encoding::encoded_len_varint(value.len() as u64)
            + value.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            id: "gigs:evt_1".to_owned(),
            r#type: "subscription.activated".to_owned(),
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
            data_json: r#"{"id":"sub_1"}"#.to_owned(),
            ..Event::default()
        }
    }

    #[test]
    fn a_record_gives_back_its_event_and_delivery() {
        let pre = PreEncoded::new(&event());
        let mut expected = event();
        expected.sequence = 300;
        for delivery in [None, Some(&b""[..]), Some(&b"\x0a\x02{}"[..])] {
            let plain = pre.record(delivery);
            let record = Record::parse(&plain).unwrap();
            assert_eq!(record.delivery, delivery);
            assert_eq!(record.event_with_sequence(300), expected.encode_to_vec());
        }
    }

    #[test]
    fn a_damaged_record_is_refused_not_misread() {
        let plain = PreEncoded::new(&event()).record(Some(b"delivery"));
        // Cut inside the event, and a record claiming no delivery but having bytes after it.
        assert!(Record::parse(&plain[..20]).is_err());
        let mut no_flag = plain.clone();
        no_flag[1] &= !1;
        assert!(Record::parse(&no_flag).is_err());
        // A split past the event's end.
        let mut far_split = vec![0x7f];
        far_split.extend_from_slice(&plain[1..]);
        assert!(Record::parse(&far_split).is_err());
        assert!(Record::parse(&[]).is_err());
    }
}
