//! The `Event` as a CloudEvents 1.0 event in structured-mode JSON (`application/cloudevents+json`),
//! for `hooknorm tail --format cloudevents` and anything else that speaks CloudEvents.
//!
//! The mapping (README, "CloudEvents"; the Python client's `to_cloudevent` is the same):
//!
//! | CloudEvents | from the `Event` |
//! | --- | --- |
//! | `specversion` | `1.0` |
//! | `id` | `id` (unique per hooknorm, so also per `source`) |
//! | `source` | `/hooknorm/<source>` |
//! | `type` | [`TYPE_PREFIX`] + canonical `type`, e.g. `io.hooknorm.subscription.activated` |
//! | `subject` | `<subject.kind>/<subject.id>` (`<kind>` alone when the id is empty) |
//! | `time` | `occurred_at`, RFC 3339 in UTC |
//! | `datacontenttype` | `application/json` |
//! | `data` | `data_json`, the payload as the provider sent it (every number as written), less the whitespace between tokens, so one event is one line |
//! | `sequence` | `sequence`, zero-padded to 20 digits (the Sequence extension compares as strings) |
//! | `provider` | `gigs`, `abowire` or `mobile_manager` |
//! | `providereventtype` | `provider_event_type` |
//! | `traceparent` | `traceparent` (Distributed Tracing extension), when there is one |

use prost_types::value::Kind;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::event::from_timestamp;
use crate::proto::v1::Event;
use crate::providers::ProviderKind;

/// The reverse-DNS prefix of every CloudEvents `type` hooknorm emits.
pub const TYPE_PREFIX: &str = "io.hooknorm.";

/// Why an event could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum CloudEventError {
    #[error("event `{id}` has a data_json that is not json: {source}")]
    DataJson {
        id: String,
        source: serde_json::Error,
    },
    #[error("cannot render cloudevent: {0}")]
    Render(#[from] serde_json::Error),
}

/// One structured-mode CloudEvent; field order is the order written.
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    source: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    datacontenttype: Option<&'static str>,
    sequence: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'static str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    providereventtype: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    traceparent: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Data>,
}

/// The payload: its text as sent when the event carries it, else rebuilt from the `Struct`
/// (events stored before `data_json` existed; their large integers are already rounded).
#[derive(Serialize)]
#[serde(untagged)]
enum Data {
    Exact(Box<RawValue>),
    Rebuilt(serde_json::Value),
}

/// Renders `event` as one line of CloudEvents structured-mode JSON.
pub fn to_json(event: &Event) -> Result<String, CloudEventError> {
    let data = if !event.data_json.is_empty() {
        let raw = RawValue::from_string(crate::json::text::compact(&event.data_json)).map_err(
            |source| CloudEventError::DataJson {
                id: event.id.clone(),
                source,
            },
        )?;
        Some(Data::Exact(raw))
    } else {
        event
            .data
            .as_ref()
            .map(|data| Data::Rebuilt(struct_to_json(data)))
    };
    let cloud_event = CloudEvent {
        specversion: "1.0",
        id: &event.id,
        source: format!("/hooknorm/{}", event.source),
        kind: format!("{TYPE_PREFIX}{}", event.r#type),
        subject: event.subject.as_ref().map(|subject| {
            if subject.id.is_empty() {
                subject.kind.clone()
            } else {
                format!("{}/{}", subject.kind, subject.id)
            }
        }),
        time: event
            .occurred_at
            .as_ref()
            .and_then(from_timestamp)
            .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        datacontenttype: data.is_some().then_some("application/json"),
        sequence: format!("{:020}", event.sequence),
        provider: ProviderKind::from_proto(event.provider).map(ProviderKind::name),
        providereventtype: &event.provider_event_type,
        traceparent: &event.traceparent,
        data,
    };
    Ok(serde_json::to_string(&cloud_event)?)
}

/// The payload `Struct` as JSON (for events stored before `data_json` existed).
pub fn struct_to_json(data: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        data.fields
            .iter()
            .map(|(name, value)| (name.clone(), value_to_json(value)))
            .collect(),
    )
}

fn value_to_json(value: &prost_types::Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        // A whole double is written as an integer, as the provider most likely sent it.
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 => {
            serde_json::Value::from(*n as i64)
        }
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(data)) => struct_to_json(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{Provider, ResourceRef};

    fn event() -> Event {
        Event {
            id: "gigs:evt_1".into(),
            provider: Provider::Gigs as i32,
            source: "gigs-eu".into(),
            r#type: "subscription.activated".into(),
            provider_event_type: "com.gigs.subscription.activated".into(),
            subject: Some(ResourceRef {
                kind: "subscription".into(),
                id: "sub_1".into(),
            }),
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 120_000_000,
            }),
            sequence: 42,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            data_json: "{\n  \"id\": \"sub 1\\\" \\n\",\n\t\"big\": 12345678901234567891, \"price\": 1.10\r\n}"
                .into(),
            ..Event::default()
        }
    }

    #[test]
    fn maps_every_attribute() {
        let json: serde_json::Value = serde_json::from_str(&to_json(&event()).unwrap()).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["id"], "gigs:evt_1");
        assert_eq!(json["source"], "/hooknorm/gigs-eu");
        assert_eq!(json["type"], "io.hooknorm.subscription.activated");
        assert_eq!(json["subject"], "subscription/sub_1");
        assert_eq!(json["time"], "2023-11-14T22:13:20.120Z");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["sequence"], "00000000000000000042");
        assert_eq!(json["provider"], "gigs");
        assert_eq!(json["providereventtype"], "com.gigs.subscription.activated");
        assert_eq!(
            json["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn data_is_the_payload_text_as_sent_on_one_line() {
        let line = to_json(&event()).unwrap();
        let expected = r#""data":{"id":"sub 1\" \n","big":12345678901234567891,"price":1.10}}"#;
        assert!(line.ends_with(expected), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn optional_attributes_are_left_out_when_empty() {
        let mut event = event();
        event.traceparent.clear();
        event.subject = Some(ResourceRef {
            kind: "project".into(),
            id: String::new(),
        });
        event.data_json.clear();
        let json: serde_json::Value = serde_json::from_str(&to_json(&event).unwrap()).unwrap();
        assert_eq!(json["subject"], "project");
        assert!(json.get("traceparent").is_none());
        assert!(json.get("data").is_none());
        assert!(json.get("datacontenttype").is_none());
    }

    #[test]
    fn without_data_json_the_struct_is_rebuilt() {
        let mut event = event();
        event.data_json.clear();
        event.data = Some(prost_types::Struct {
            fields: [
                ("n".to_owned(), Kind::NumberValue(3.0)),
                ("x".to_owned(), Kind::NumberValue(0.5)),
                ("s".to_owned(), Kind::StringValue("a".into())),
            ]
            .into_iter()
            .map(|(name, kind)| (name, prost_types::Value { kind: Some(kind) }))
            .collect(),
        });
        let json: serde_json::Value = serde_json::from_str(&to_json(&event).unwrap()).unwrap();
        assert_eq!(
            json["data"],
            serde_json::json!({"n": 3, "x": 0.5, "s": "a"})
        );
    }

    #[test]
    fn data_json_that_is_not_json_is_an_error() {
        let mut event = event();
        event.data_json = "{not json".into();
        assert!(matches!(
            to_json(&event),
            Err(CloudEventError::DataJson { .. })
        ));
    }
}
