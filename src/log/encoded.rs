//! An event as subscribers receive it: its prost encoding, made once when it is stored and
//! shared, never copied, by every subscriber it is sent to.
//!
//! The writer also builds each new event's StreamEvents message around those bytes, in the same
//! buffer: a gRPC message header (compression flag, big-endian length) and the
//! `StreamEventsResponse.event` tag and length, in front of the event. A subscriber's connection
//! then sends the message as one reference-counted buffer, where framing it per subscriber
//! would copy the whole event once per subscriber per event. The log knows this framing only
//! because it is the one place that makes the shared bytes; transports send them as they are.

use bytes::{BufMut, Bytes};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use crate::proto::v1::Event;

/// `StreamEventsResponse.event`'s field number.
const EVENT_FIELD: u32 = 1;

/// A gRPC message header: a compression flag and a four-byte big-endian length.
pub const MESSAGE_HEADER_BYTES: usize = 5;

/// The longest prefix a message puts in front of an event: the gRPC header, the event's tag
/// and a length of up to five bytes (events are far below 4 GiB).
const MAX_PREFIX_BYTES: usize = MESSAGE_HEADER_BYTES + 1 + 5;

/// A stored event's encoding (sequence included).
#[derive(Clone)]
pub struct EncodedEvent {
    pub sequence: u64,
    /// The encoded `hooknorm.v1.Event`; cloning it bumps a reference count.
    pub bytes: Bytes,
    /// `bytes` as a StreamEvents message, sharing their buffer, when the writer built them so.
    message: Option<Bytes>,
}

/// The event, not how it was built: the message is the same bytes behind a prefix.
impl std::fmt::Debug for EncodedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedEvent")
            .field("sequence", &self.sequence)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// Two encodings are equal when they hold the same event; how it was built does not matter.
impl PartialEq for EncodedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.sequence == other.sequence && self.bytes == other.bytes
    }
}

impl Eq for EncodedEvent {}

impl EncodedEvent {
    /// Bytes read back from a store: their message is framed when sent ([`Self::message`]).
    pub fn new(sequence: u64, bytes: Bytes) -> EncodedEvent {
        EncodedEvent {
            sequence,
            bytes,
            message: None,
        }
    }

    /// Encodes `event` (whose sequence must already be assigned).
    pub fn encode(event: &Event) -> EncodedEvent {
        EncodedEvent::new(event.sequence, Bytes::from(event.encode_to_vec()))
    }

    /// An event whose encoding `write` appends to the buffer it is given, with its StreamEvents
    /// message built around it in the same buffer: what the writer makes once per new event.
    pub fn with_message(
        sequence: u64,
        capacity: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> EncodedEvent {
        let mut buffer = Vec::with_capacity(MAX_PREFIX_BYTES + capacity);
        buffer.resize(MAX_PREFIX_BYTES, 0);
        write(&mut buffer);
        let len = buffer.len() - MAX_PREFIX_BYTES;
        // The prefix's length depends on the event's, so it is written after the event, right
        // against it, and the message starts wherever the prefix does.
        let start = MAX_PREFIX_BYTES - prefix_len(len);
        write_prefix(len, &mut &mut buffer[start..MAX_PREFIX_BYTES]);
        let buffer = Bytes::from(buffer);
        EncodedEvent {
            sequence,
            bytes: buffer.slice(MAX_PREFIX_BYTES..),
            message: Some(buffer.slice(start..)),
        }
    }

    /// The event as a StreamEvents message on the wire (a gRPC message holding
    /// `StreamEventsResponse { event }`): shared when the writer built it, copied otherwise.
    pub fn message(&self) -> Bytes {
        match &self.message {
            Some(message) => message.clone(),
            None => {
                let mut message = Vec::with_capacity(self.message_len());
                self.write_message(&mut message);
                Bytes::from(message)
            }
        }
    }

    /// How long [`Self::message`] is.
    pub fn message_len(&self) -> usize {
        prefix_len(self.bytes.len()) + self.bytes.len()
    }

    /// Appends [`Self::message`] to `dst`, as one message of a batch.
    pub fn write_message(&self, dst: &mut impl BufMut) {
        match &self.message {
            Some(message) => dst.put_slice(message),
            None => {
                write_prefix(self.bytes.len(), dst);
                dst.put_slice(&self.bytes);
            }
        }
    }
}

/// The bytes in front of an event of `len` bytes in its message.
fn prefix_len(len: usize) -> usize {
    MESSAGE_HEADER_BYTES + key_len(EVENT_FIELD) + encoded_len_varint(len as u64)
}

fn write_prefix(len: usize, dst: &mut impl BufMut) {
    write_message_header(
        key_len(EVENT_FIELD) + encoded_len_varint(len as u64) + len,
        dst,
    );
    encode_key(EVENT_FIELD, WireType::LengthDelimited, dst);
    encode_varint(len as u64, dst);
}

/// The header of an uncompressed gRPC message whose payload is `payload_len` bytes long.
pub fn write_message_header(payload_len: usize, dst: &mut impl BufMut) {
    dst.put_u8(0);
    // Messages are bounded far below 4 GiB (`limits.max_event_bytes`, the page size).
    dst.put_u32(u32::try_from(payload_len).unwrap_or(u32::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::StreamEventsResponse;
    use crate::proto::v1::stream_events_response::Message as ResponseMessage;

    fn event(id_len: usize) -> Event {
        Event {
            id: "x".repeat(id_len),
            source: "gigs".to_owned(),
            sequence: 42,
            ..Event::default()
        }
    }

    /// Splits a gRPC message into its header's flag and length and its payload.
    fn unframe(message: &[u8]) -> (u8, usize, &[u8]) {
        let length = u32::from_be_bytes(message[1..5].try_into().unwrap()) as usize;
        (message[0], length, &message[5..])
    }

    #[test]
    fn a_message_is_a_grpc_message_of_what_prost_encodes() {
        // 100,000 bytes need a three-byte length, 10 a one-byte one.
        for id_len in [0, 10, 200, 100_000] {
            let event = event(id_len);
            let expected = StreamEventsResponse {
                message: Some(ResponseMessage::Event(event.clone())),
            }
            .encode_to_vec();
            let built = EncodedEvent::with_message(42, 0, |buffer| event.encode(buffer).unwrap());
            let read = EncodedEvent::encode(&event);
            assert_eq!(built, read);
            assert_eq!(built.bytes, event.encode_to_vec());
            for encoded in [&built, &read] {
                let message = encoded.message();
                assert_eq!(message.len(), encoded.message_len());
                let (flag, length, payload) = unframe(&message);
                assert_eq!((flag, length), (0, payload.len()));
                assert_eq!(payload, expected.as_slice(), "id of {id_len} bytes");
                let mut batch = Vec::new();
                encoded.write_message(&mut batch);
                assert_eq!(batch, message);
            }
        }
    }

    #[test]
    fn a_built_message_shares_the_event_bytes() {
        let event = event(300);
        let built = EncodedEvent::with_message(42, 0, |buffer| event.encode(buffer).unwrap());
        let message = built.message();
        let tail = &message[message.len() - built.bytes.len()..];
        assert_eq!(tail.as_ptr(), built.bytes.as_ptr());
        assert_eq!(message.as_ptr(), built.message().as_ptr());
    }
}
