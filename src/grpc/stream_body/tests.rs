use bytes::Bytes;
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use prost::Message;
use tokio::sync::mpsc;

use super::*;
use crate::log::EncodedEvent;
use crate::proto::v1::Event;
use crate::stream::StreamEnd;

const LIMIT: usize = 1 << 20;

/// A new event as the writer builds it: its message shares its bytes.
fn event(sequence: u64, id_len: usize) -> EncodedEvent {
    let event = Event {
        id: "x".repeat(id_len),
        sequence,
        ..Event::default()
    };
    EncodedEvent::with_message(sequence, 0, |buffer| event.encode(buffer).unwrap())
}

fn body(items: Vec<Result<StreamItem, StreamEnd>>, limit: usize) -> StreamBody {
    let (tx, rx) = mpsc::channel(items.len().max(1));
    for item in items {
        tx.try_send(item.map(Queued::unbudgeted)).unwrap();
    }
    StreamBody::new(rx, limit)
}

/// Every frame the body yields: its data, then its trailers.
async fn frames(mut body: StreamBody) -> (Vec<Bytes>, HeaderMap) {
    let mut data = Vec::new();
    loop {
        let frame = body.frame().await.expect("a frame").expect("no body error");
        match frame.into_data() {
            Ok(bytes) => data.push(bytes),
            Err(frame) => {
                let trailers = frame.into_trailers().expect("data or trailers");
                assert!(body.is_end_stream());
                assert!(body.frame().await.is_none());
                return (data, trailers);
            }
        }
    }
}

/// The responses in a frame's gRPC messages.
fn responses(mut frame: &[u8]) -> Vec<StreamEventsResponse> {
    let mut responses = Vec::new();
    while !frame.is_empty() {
        assert_eq!(frame[0], 0, "uncompressed");
        let len = u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize;
        responses.push(StreamEventsResponse::decode(&frame[5..5 + len]).unwrap());
        frame = &frame[5 + len..];
    }
    responses
}

fn event_in(response: &StreamEventsResponse) -> &Event {
    match &response.message {
        Some(ResponseMessage::Event(event)) => event,
        other => panic!("not an event: {other:?}"),
    }
}

fn status(trailers: &HeaderMap) -> &str {
    trailers["grpc-status"].to_str().unwrap()
}

#[tokio::test]
async fn a_lone_event_is_sent_as_the_message_the_writer_built() {
    let encoded = event(7, 300);
    let mut body = body(vec![Ok(StreamItem::Event(encoded.clone()))], LIMIT);
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(
        frame.as_ptr(),
        encoded.message().as_ptr(),
        "shared, not copied"
    );
    assert_eq!(event_in(&responses(&frame)[0]).sequence, 7);
}

#[tokio::test]
async fn events_ready_together_go_in_one_frame_and_the_end_after_them() {
    // A read from the store has no built message: it is framed as it is sent.
    let read = EncodedEvent::encode(&Event {
        id: "read".to_owned(),
        sequence: 3,
        ..Event::default()
    });
    let items = vec![
        Ok(StreamItem::Event(event(1, 10))),
        Ok(StreamItem::Heartbeat {
            head: 2,
            at: Utc.timestamp_opt(1_700_000_000, 5).unwrap(),
        }),
        Ok(StreamItem::Event(read)),
        Ok(StreamItem::Skipped {
            after: 3,
            through: 9,
        }),
        Err(StreamEnd::TooSlow { resume_after: 3 }),
    ];
    let (data, trailers) = frames(body(items, LIMIT)).await;
    assert_eq!(data.len(), 1, "one frame for what was ready at once");
    let responses = responses(&data[0]);
    assert_eq!(responses.len(), 4);
    assert_eq!(event_in(&responses[0]).sequence, 1);
    assert_eq!(
        responses[1].message,
        Some(ResponseMessage::Heartbeat(Heartbeat {
            head_sequence: 2,
            sent_at: Some(crate::event::timestamp(
                Utc.timestamp_opt(1_700_000_000, 5).unwrap()
            )),
        }))
    );
    assert_eq!(event_in(&responses[2]).id, "read");
    assert_eq!(
        responses[3].message,
        Some(ResponseMessage::EventsSkipped(EventsSkipped {
            after_sequence: 3,
            last_skipped_sequence: 9,
        }))
    );
    let expected = super::super::stream_end_status(&StreamEnd::TooSlow { resume_after: 3 });
    assert_eq!(status(&trailers), (expected.code() as i32).to_string());
    assert_ne!(status(&trailers), "0");
}

#[tokio::test]
async fn a_frame_stops_filling_at_the_batch_size() {
    // 10 events of ~10 KB: three fit in a 32 KiB frame, the fourth starts the next one.
    let items = (1..=10)
        .map(|sequence| Ok(StreamItem::Event(event(sequence, 10_000))))
        .collect();
    let (data, trailers) = frames(body(items, LIMIT)).await;
    let lengths: Vec<usize> = data.iter().map(|frame| responses(frame).len()).collect();
    assert_eq!(lengths, [3, 3, 3, 1]);
    assert!(data.iter().all(|frame| frame.len() <= BATCH_BYTES));
    let sequences: Vec<u64> = data
        .iter()
        .flat_map(|frame| responses(frame))
        .map(|response| event_in(&response).sequence)
        .collect();
    assert_eq!(sequences, (1..=10).collect::<Vec<_>>());
    assert_eq!(status(&trailers), "0");
}

#[tokio::test]
async fn a_finished_subscription_ends_with_ok() {
    let (data, trailers) = frames(body(vec![], LIMIT)).await;
    assert!(data.is_empty());
    assert_eq!(status(&trailers), "0");
}

#[tokio::test]
async fn a_message_over_the_limit_ends_the_stream() {
    let items = vec![Ok(StreamItem::Event(event(1, 2_000)))];
    let (data, trailers) = frames(body(items, 1_000)).await;
    assert!(data.is_empty());
    assert_eq!(
        status(&trailers),
        (tonic::Code::OutOfRange as i32).to_string()
    );
}
