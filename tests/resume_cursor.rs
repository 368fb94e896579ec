//! Resume cursors over real gRPC: a cursor past the newest stored event (a reset or restored
//! store) is refused rather than silently waiting past events that will come.

mod common;

use common::{TestServer, gigs_event_request, reason_of};
use hooknorm::proto::v1::StreamEventsRequest;
use hooknorm::proto::v1::stream_events_request::Start;
use hooknorm::proto::v1::stream_events_response::Message;
use tonic_types::StatusExt;

fn after(sequence: u64) -> StreamEventsRequest {
    StreamEventsRequest {
        start: Some(Start::AfterSequence(sequence)),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_cursor_past_the_head_is_out_of_range_and_one_at_the_head_is_live() {
    let mut server = TestServer::start().await;
    for n in 0..3 {
        server
            .client
            .verify_and_normalize(gigs_event_request(n, "subscription.created"))
            .await
            .expect("stored");
    }
    let status = server
        .client
        .stream_events(after(7))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::OutOfRange);
    assert_eq!(reason_of(&status).0, "CURSOR_OUT_OF_RANGE");
    let info = status.get_details_error_info().expect("error info");
    assert_eq!(info.metadata["head_sequence"], "3");

    // At the head is fine: the next event stored is the first one received.
    let mut stream = server
        .client
        .stream_events(after(3))
        .await
        .expect("accepted")
        .into_inner();
    server
        .client
        .verify_and_normalize(gigs_event_request(3, "subscription.created"))
        .await
        .expect("stored");
    loop {
        let message = stream.message().await.expect("ok").expect("open");
        if let Some(Message::Event(event)) = message.message {
            assert_eq!(event.sequence, 4);
            break;
        }
    }
    server.shutdown().await;
}
