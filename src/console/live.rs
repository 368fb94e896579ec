//! The live tail: `GET /console/live` with the list's filters, a StreamEvents subscription
//! ([`crate::stream::open`], narrowed to the viewer's sources) sent to the browser as
//! server-sent events. Each event is one SSE message whose `id` is its sequence and whose data
//! is the list row the page would have rendered; the browser's `EventSource` reconnects by
//! itself and sends the last id back (`Last-Event-ID`), so the tail resumes after the last
//! event it got. The script also skips any sequence it has already shown, so the events the
//! page listed and the tail sends are never shown twice.
//!
//! At most [`super::max_live_tails`] are open at once (more are refused with `RATE_LIMITED`), so
//! they never take every ops connection from the probes.
//!
//! Other messages: `ready` once subscribed, `skipped` when retention removed events before they
//! could be sent, `end` when the server ends the stream (the browser then reconnects after the
//! last event it got);
//! heartbeats become SSE comments, which keep proxies from closing an idle stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use prost::Message;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::pages::row;
use super::query::ListQuery;
use super::session::Viewer;
use super::{Console, ConsoleError};
use crate::proto::v1::Event;
use crate::stream::{Queued, Start, StreamEnd, StreamItem};

/// How soon the browser reconnects after the stream ends.
const RETRY: Duration = Duration::from_secs(1);

/// `GET /console/live`.
pub async fn live(
    State(console): State<Console>,
    Extension(Viewer(viewer)): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ConsoleError> {
    let query = ListQuery::parse(uri.query())?;
    let mut filter = query.filter()?;
    viewer.restrict(&mut filter)?;
    let tail = console
        .live_tails
        .clone()
        .try_acquire_owned()
        .map_err(|_| ConsoleError::TooManyTails)?;
    // A reconnect's own cursor wins over the one the page was rendered with.
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let start = last_event_id
        .or(query.after)
        .map_or(Start::Latest, Start::After);
    let subscription = crate::stream::open(
        console.log.clone(),
        filter,
        start,
        console.streams,
        console.shutdown.clone(),
    )
    .await?;
    // A new event has no redeliveries yet, where the log counts them at all.
    let counted = console.log.duplicate_counts(&[]).await?.map(|_| 0);
    let ready = SseEvent::default()
        .event("ready")
        .retry(RETRY)
        .data("subscribed");
    // The permit goes with the stream: the tail counts until its connection is done.
    let messages = ReceiverStream::new(subscription).map(move |queued| {
        let _tail = &tail;
        message(queued, counted)
    });
    let stream = tokio_stream::once(ready)
        .chain(messages)
        .map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).into_response())
}

/// One subscription message as an SSE message.
fn message(queued: Result<Queued, StreamEnd>, duplicates: Option<u64>) -> SseEvent {
    match queued {
        Ok(queued) => match queued.item {
            StreamItem::Event(encoded) => match Event::decode(encoded.bytes) {
                Ok(event) => SseEvent::default()
                    .event("event")
                    .id(event.sequence.to_string())
                    .data(row(&event, duplicates).into_string()),
                Err(error) => {
                    tracing::warn!(sequence = encoded.sequence, %error, "stored event is unreadable");
                    SseEvent::default().comment("an unreadable event was left out")
                }
            },
            StreamItem::Heartbeat { head, .. } => {
                SseEvent::default().comment(format!("heartbeat {head}"))
            }
            StreamItem::Skipped { after, through } => SseEvent::default().event("skipped").data(
                format!("events after {after} through {through} were removed by retention"),
            ),
        },
        // No id: the browser's last id is already the last event it got, which is where it
        // resumes (an end before any event would otherwise send it back to the very start).
        Err(end) => SseEvent::default().event("end").data(end.to_string()),
    }
}
