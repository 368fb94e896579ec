//! What hooknorm publishes to its stream, and reads back: subjects, `Nats-Msg-Id`s, and the
//! protobuf records (`hooknorm.v1.StreamRecord`, `hooknorm.v1.RetentionRecord`), documented in
//! `proto/hooknorm/v1/stream_record.proto` for consumers outside hooknorm.

use bytes::Bytes;
use prost::Message;

use crate::event::{EntityKey, Identity};
use crate::log::AppendRequest;
use crate::log::sqlite::{IndexEntry, IndexEntryKind};
use crate::proto::v1::{DedupRule, RetentionRecord, StreamRecord};

/// The subjects of one deployment's stream.
#[derive(Debug, Clone)]
pub(super) struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: &str) -> Subjects {
        Subjects {
            prefix: prefix.to_owned(),
        }
    }

    /// What the stream must capture: every event subject and the retention subject.
    pub fn stream_subjects(&self) -> Vec<String> {
        vec![format!("{}.events.>", self.prefix), self.retention()]
    }

    /// `<prefix>.events.<source>.<type>`: the type's own dots make tokens, so consumers can
    /// filter with wildcards (`hooknorm.events.gigs.subscription.>`).
    pub fn event(&self, source: &str, event_type: &str) -> String {
        let mut subject =
            String::with_capacity(self.prefix.len() + source.len() + event_type.len() + 10);
        subject.push_str(&self.prefix);
        subject.push_str(".events.");
        push_token(&mut subject, source);
        for token in event_type.split('.') {
            subject.push('.');
            push_token(&mut subject, token);
        }
        subject
    }

    pub fn retention(&self) -> String {
        format!("{}.retention", self.prefix)
    }

    fn events_prefix_len(&self) -> usize {
        self.prefix.len() + ".events.".len()
    }

    /// Reads one stream message into an index entry. Anything that is not hooknorm's (another
    /// subject on a shared stream, a record that does not decode) is skipped, the same way on
    /// every replica.
    pub fn entry(
        &self,
        sequence: u64,
        subject: &str,
        payload: Bytes,
    ) -> (IndexEntry, Option<String>) {
        let skip = IndexEntry {
            sequence,
            kind: IndexEntryKind::Skip,
        };
        if subject == self.retention() {
            return match RetentionRecord::decode(payload) {
                Ok(record) => (
                    IndexEntry {
                        sequence,
                        kind: IndexEntryKind::RemoveBelow {
                            sequence: record.remove_below,
                        },
                    },
                    None,
                ),
                Err(error) => {
                    tracing::warn!(%error, sequence, "unreadable retention record skipped");
                    (skip, None)
                }
            };
        }
        let ours = subject.len() > self.events_prefix_len()
            && subject.starts_with(&self.prefix)
            && subject[self.prefix.len()..].starts_with(".events.");
        if !ours {
            return (skip, None);
        }
        match decode_append(payload) {
            Ok((request, accepted_at_ms, append_id)) => (
                IndexEntry {
                    sequence,
                    kind: IndexEntryKind::Append {
                        request,
                        accepted_at_ms,
                        reply: None,
                    },
                },
                Some(append_id),
            ),
            Err(reason) => {
                tracing::warn!(%reason, sequence, subject, "unreadable stream record skipped");
                (skip, None)
            }
        }
    }
}

/// A subject token as the source or type gives it, with anything a subject cannot hold (`.`,
/// wildcards, whitespace, control and non-ASCII characters) as `_`; an empty one as `_`.
fn push_token(subject: &mut String, token: &str) {
    if token.is_empty() {
        subject.push('_');
        return;
    }
    subject.extend(token.chars().map(|c| {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '@' | '+' | '=') {
            c
        } else {
            '_'
        }
    }));
}

/// The `Nats-Msg-Id` of a delivery: its dedup key where a repeat within JetStream's duplicate
/// window is always the same event (a provider id, a content fingerprint), so JetStream drops
/// fast retries and racing replicas before they reach the stream. None for states: the same
/// state legitimately recurs (on, off, on), and only the ordered applier can tell.
pub(super) fn message_id(request: &AppendRequest) -> Option<String> {
    match request.identity {
        Identity::ProviderId | Identity::Fingerprint => {
            Some(crate::event::join(&["id:", &request.event.id]))
        }
        Identity::LatestState(_) => None,
    }
}

/// The `Nats-Msg-Id` of a retention record: replicas deciding the same cut publish it once.
pub(super) fn retention_message_id(below: u64) -> String {
    format!("retention:{below}")
}

/// Encodes an append as its stream record.
pub(super) fn encode_append(
    request: &AppendRequest,
    accepted_at_ms: i64,
    append_id: &str,
) -> Bytes {
    let mut event = request.event.clone();
    event.sequence = 0;
    event.delivery = None;
    let (dedup_rule, entity) = match &request.identity {
        Identity::ProviderId => (DedupRule::ProviderId, String::new()),
        Identity::Fingerprint => (DedupRule::Fingerprint, String::new()),
        Identity::LatestState(entity) => (DedupRule::LatestState, entity.as_str().to_owned()),
    };
    let record = StreamRecord {
        event: Some(event),
        dedup_rule: dedup_rule as i32,
        entity,
        delivery: request.delivery.clone(),
        accepted_at_ms,
        append_id: append_id.to_owned(),
    };
    Bytes::from(record.encode_to_vec())
}

pub(super) fn encode_retention(below: u64) -> Bytes {
    Bytes::from(
        RetentionRecord {
            remove_below: below,
        }
        .encode_to_vec(),
    )
}

fn decode_append(payload: Bytes) -> Result<(AppendRequest, i64, String), String> {
    let record = StreamRecord::decode(payload).map_err(|error| error.to_string())?;
    let event = record.event.ok_or("no event")?;
    let identity = match DedupRule::try_from(record.dedup_rule) {
        Ok(DedupRule::ProviderId) => Identity::ProviderId,
        Ok(DedupRule::Fingerprint) => Identity::Fingerprint,
        Ok(DedupRule::LatestState) => Identity::LatestState(EntityKey::from_stored(record.entity)),
        _ => return Err(format!("unknown dedup rule {}", record.dedup_rule)),
    };
    Ok((
        AppendRequest {
            event,
            identity,
            delivery: record.delivery,
        },
        record.accepted_at_ms,
        record.append_id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::Event;

    #[test]
    fn subjects_keep_the_types_dots_and_nothing_else_a_subject_cannot_hold() {
        let subjects = Subjects::new("hooknorm");
        assert_eq!(
            subjects.event("gigs", "subscription.activated"),
            "hooknorm.events.gigs.subscription.activated"
        );
        assert_eq!(
            subjects.event("my src", "a.*.>..b"),
            "hooknorm.events.my_src.a._._._.b"
        );
        assert_eq!(subjects.event("", "ü"), "hooknorm.events._._");
    }

    #[test]
    fn records_round_trip_and_foreign_messages_are_skipped() {
        let subjects = Subjects::new("hn.test");
        let request = AppendRequest {
            event: Event {
                id: "mm:abc".to_owned(),
                source: "mm".to_owned(),
                r#type: "alert.on".to_owned(),
                sequence: 9,
                ..Event::default()
            },
            identity: Identity::LatestState(EntityKey::new("alert").part("1")),
            delivery: None,
        };
        let payload = encode_append(&request, 42, "r-1");
        let (entry, id) = subjects.entry(7, &subjects.event("mm", "alert.on"), payload.clone());
        assert_eq!(id.as_deref(), Some("r-1"));
        match entry.kind {
            IndexEntryKind::Append {
                request: read,
                accepted_at_ms,
                ..
            } => {
                assert_eq!(accepted_at_ms, 42);
                assert_eq!(read.event.sequence, 0);
                assert_eq!(read.event.id, "mm:abc");
                assert_eq!(read.identity, request.identity);
            }
            _ => panic!("expected an append"),
        }
        let (entry, _) = subjects.entry(8, "other.subject", payload);
        assert!(matches!(entry.kind, IndexEntryKind::Skip));
        let (entry, _) = subjects.entry(9, "hn.test.retention", encode_retention(5));
        assert!(matches!(
            entry.kind,
            IndexEntryKind::RemoveBelow { sequence: 5 }
        ));
        assert_eq!(message_id(&request), None);
    }
}
