//! `hooknorm tail` (StreamEvents) and `hooknorm events` (ListEvents / GetEvent): one JSON event
//! per line, for people and `jq`; what is not an event (events skipped) goes to a separate
//! writer, stderr, so the JSON lines stay clean.

use std::io::Write;

use chrono::{DateTime, Utc};

use crate::proto::v1::stream_events_request::Start;
use crate::proto::v1::stream_events_response::Message;
use crate::proto::v1::{
    EventFilter, EventView, GetEventRequest, ListEventsRequest, ResourceRef, StartPosition,
    StreamEventsRequest,
};

use super::connect::{Client, ConnectError};
use super::output::{OutputError, to_json};

/// Filter flags shared by `tail` and `events`.
#[derive(Debug, Clone, Default)]
pub struct FilterArgs {
    /// `gigs`, `abowire` or `mobile_manager`.
    pub providers: Vec<String>,
    pub sources: Vec<String>,
    /// Exact types or `prefix.*`.
    pub types: Vec<String>,
    /// `kind:id`, matching the subject or a related ref.
    pub resource: Option<String>,
}

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unknown provider `{0}` (expected gigs, abowire or mobile_manager)")]
    Provider(String),
    #[error("--resource must be `kind:id`, got `{0}`")]
    Resource(String),
    #[error("--since must be an RFC 3339 time such as 2026-01-02T15:04:05Z: {0}")]
    Since(String),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("server answered {code:?} {reason}: {message}")]
    Status {
        code: tonic::Code,
        reason: String,
        message: String,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    CloudEvent(#[from] crate::cloudevents::CloudEventError),
    #[error("--heartbeats prints heartbeats, which are not cloudevents: use it with --format json")]
    HeartbeatsNotCloudEvents,
    #[error("cannot write output: {0}")]
    Write(#[from] std::io::Error),
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        use tonic_types::StatusExt;
        let info = status.get_details_error_info();
        let mut reason = info.as_ref().map(|i| i.reason.clone()).unwrap_or_default();
        if let Some(resume) = info
            .as_ref()
            .and_then(|i| i.metadata.get("resume_after_sequence"))
        {
            reason = format!("{reason} (resume with --after {resume})");
        }
        ClientError::Status {
            code: status.code(),
            reason,
            message: status.message().to_owned(),
        }
    }
}

impl FilterArgs {
    fn to_proto(&self) -> Result<EventFilter, ClientError> {
        let providers = self
            .providers
            .iter()
            .map(|name| {
                crate::providers::ProviderKind::from_name(name)
                    .map(|kind| kind.proto() as i32)
                    .ok_or_else(|| ClientError::Provider(name.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let resource = match &self.resource {
            None => None,
            Some(text) => match text.split_once(':') {
                Some((kind, id)) if !kind.is_empty() && !id.is_empty() => Some(ResourceRef {
                    kind: kind.to_owned(),
                    id: id.to_owned(),
                }),
                _ => return Err(ClientError::Resource(text.clone())),
            },
        };
        Ok(EventFilter {
            providers,
            sources: self.sources.clone(),
            types: self.types.clone(),
            resource,
        })
    }
}

/// How `tail` prints each event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TailFormat {
    /// The `Event` as canonical proto3 JSON.
    #[default]
    Json,
    /// CloudEvents 1.0 structured-mode JSON (see `crate::cloudevents`).
    Cloudevents,
}

/// Where `tail` starts.
#[derive(Debug, Clone, Default)]
pub struct TailStart {
    pub earliest: bool,
    pub after: Option<u64>,
    pub since: Option<String>,
}

/// Streams events to `out`, one JSON object per line in `format`, until the stream ends; says
/// on `notices` when retention removed events before they could be sent.
pub async fn tail(
    mut client: Client,
    filter: &FilterArgs,
    start: &TailStart,
    format: TailFormat,
    heartbeats: bool,
    out: &mut impl Write,
    notices: &mut impl Write,
) -> Result<(), ClientError> {
    // Every line of a cloudevents tail is a cloudevent, so a consumer can parse each one.
    if heartbeats && format == TailFormat::Cloudevents {
        return Err(ClientError::HeartbeatsNotCloudEvents);
    }
    let start = if let Some(after) = start.after {
        Some(Start::AfterSequence(after))
    } else if let Some(since) = &start.since {
        let time: DateTime<Utc> = DateTime::parse_from_rfc3339(since)
            .map_err(|error| ClientError::Since(error.to_string()))?
            .with_timezone(&Utc);
        Some(Start::Since(crate::event::timestamp(time)))
    } else if start.earliest {
        Some(Start::Position(StartPosition::Earliest as i32))
    } else {
        None
    };
    let request = StreamEventsRequest {
        filter: Some(filter.to_proto()?),
        start,
    };
    let mut stream = client.stream_events(request).await?.into_inner();
    while let Some(response) = stream.message().await? {
        match response.message {
            Some(Message::Event(event)) => {
                let line = match format {
                    TailFormat::Json => to_json("hooknorm.v1.Event", &event, false)?,
                    TailFormat::Cloudevents => crate::cloudevents::to_json(&event)?,
                };
                writeln!(out, "{line}")?;
                out.flush()?;
            }
            Some(Message::Heartbeat(heartbeat)) if heartbeats => {
                writeln!(
                    out,
                    "{}",
                    to_json("hooknorm.v1.Heartbeat", &heartbeat, false)?
                )?;
                out.flush()?;
            }
            Some(Message::EventsSkipped(skipped)) => {
                writeln!(
                    notices,
                    "hooknorm tail: events after sequence {} through {} were removed by \
                     retention before they could be sent; continuing after {}",
                    skipped.after_sequence,
                    skipped.last_skipped_sequence,
                    skipped.last_skipped_sequence
                )?;
                notices.flush()?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Lists events newest first (following pages up to `limit`), or gets one by id (`full`: with
/// its delivery).
pub async fn events(
    mut client: Client,
    filter: &FilterArgs,
    id: Option<&str>,
    full: bool,
    limit: usize,
    out: &mut impl Write,
) -> Result<(), ClientError> {
    if let Some(id) = id {
        let response = client
            .get_event(GetEventRequest {
                id: id.to_owned(),
                view: if full {
                    EventView::Full
                } else {
                    EventView::Basic
                } as i32,
            })
            .await?
            .into_inner();
        if let Some(event) = response.event {
            writeln!(out, "{}", to_json("hooknorm.v1.Event", &event, true)?)?;
        }
        return Ok(());
    }
    let filter = filter.to_proto()?;
    let mut printed = 0;
    let mut page_token = String::new();
    while printed < limit {
        let page_size = i32::try_from((limit - printed).min(1000)).unwrap_or(1000);
        let response = client
            .list_events(ListEventsRequest {
                filter: Some(filter.clone()),
                page_size,
                page_token,
            })
            .await?
            .into_inner();
        for event in &response.events {
            writeln!(out, "{}", to_json("hooknorm.v1.Event", event, false)?)?;
            printed += 1;
        }
        if response.next_page_token.is_empty() || response.events.is_empty() {
            break;
        }
        page_token = response.next_page_token;
    }
    Ok(())
}
