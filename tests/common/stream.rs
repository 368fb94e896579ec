//! StreamEvents and client helpers shared by the event log, slow-subscriber and shutdown tests.

use std::time::Duration;

use hooknorm::cli::connect::BearerKey;
use hooknorm::proto::v1::normalizer_service_client::NormalizerServiceClient;
use hooknorm::proto::v1::stream_events_request::Start;
use hooknorm::proto::v1::stream_events_response::Message;
use hooknorm::proto::v1::{
    Event, EventFilter, ListEventsRequest, StartPosition, StreamEventsRequest, StreamEventsResponse,
};
use tonic::Streaming;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::gigs_event_request;

/// A client that sends the test config's key ([`super::TEST_API_KEY`]) on every call.
pub type Client = NormalizerServiceClient<InterceptedService<Channel, BearerKey>>;
pub type EventStream = Streaming<StreamEventsResponse>;

/// Every stored event, newest first, read page by page with `ListEvents`.
pub async fn list_all(client: &mut Client) -> Vec<Event> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_events(ListEventsRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        page_token = page.next_page_token;
    }
}

/// A client on its own connection to `addr` (`host:port`).
pub async fn connect(addr: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("client connects");
    authenticated(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// A client on `channel` presenting the test config's key.
pub fn authenticated(channel: Channel) -> Client {
    with_key(channel, super::TEST_API_KEY)
}

/// A client on `channel` presenting `key`.
pub fn with_key(channel: Channel, key: &str) -> Client {
    let key = hooknorm::config::Secret::new(key);
    NormalizerServiceClient::with_interceptor(channel, BearerKey::new(Some(&key)).expect("key"))
}

/// A client on its own connection with the smallest HTTP/2 windows, so a stream it does not
/// read backs up to the server after a few kilobytes (as a stalled subscriber's would).
pub async fn connect_paused(addr: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("client connects");
    authenticated(channel)
}

/// Appends the distinct Gigs event `n` and returns its sequence (it must be new).
pub async fn append(client: &mut Client, n: u64, event_type: &str) -> u64 {
    let response = client
        .verify_and_normalize(gigs_event_request(n, event_type))
        .await
        .expect("append ok")
        .into_inner();
    assert!(!response.duplicate, "event {n} unexpectedly duplicate");
    response.event.expect("event").sequence
}

pub async fn open_stream(
    client: &mut Client,
    filter: EventFilter,
    start: Option<Start>,
) -> EventStream {
    client
        .stream_events(StreamEventsRequest {
            filter: Some(filter),
            start,
        })
        .await
        .expect("stream opens")
        .into_inner()
}

/// The next `count` events' sequences (heartbeats skipped), failing after 20 s without one.
pub async fn next_sequences(stream: &mut EventStream, count: usize) -> Vec<u64> {
    let mut sequences = Vec::with_capacity(count);
    while sequences.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {count} events", sequences.len()))
            .expect("stream ok")
            .expect("stream open");
        if let Some(Message::Event(event)) = message.message {
            sequences.push(event.sequence);
        }
    }
    sequences
}

/// Reads past any remaining messages to the status that ends the stream (within `within`).
pub async fn stream_end(stream: &mut EventStream, within: Duration) -> tonic::Status {
    loop {
        match tokio::time::timeout(within, stream.message())
            .await
            .expect("stream ends in time")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream closed without a status"),
            Err(status) => return status,
        }
    }
}

/// The `resume_after_sequence` an ending stream's `ErrorInfo` carries.
pub fn resume_after(status: &tonic::Status) -> u64 {
    use tonic_types::StatusExt;
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("status has no ErrorInfo: {status:?}"));
    info.metadata
        .get("resume_after_sequence")
        .unwrap_or_else(|| panic!("no resume_after_sequence: {info:?}"))
        .parse()
        .expect("resume_after_sequence is a number")
}

pub fn after(sequence: u64) -> Option<Start> {
    Some(Start::AfterSequence(sequence))
}

pub fn earliest() -> Option<Start> {
    Some(Start::Position(StartPosition::Earliest as i32))
}
