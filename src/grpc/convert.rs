//! Request messages -> domain values: webhooks, filters, start positions. Rules about the
//! values (what a filter may say, page sizes and tokens) are the domain's; this only converts.

use std::net::{IpAddr, SocketAddr};

use crate::auth::{ClaimedOrigin, Origin};
use crate::event::from_timestamp;
use crate::log::filter::FilterError;
use crate::log::{EventFilter, View};
use crate::proto::v1::stream_events_request::Start as ProtoStart;
use crate::proto::v1::{self as pb, StartPosition, VerifyAndNormalizeRequest};
use crate::stream::Start;
use crate::webhook::RawWebhook;

/// A request field that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("field `source` is required")]
    MissingSource,
    #[error("field `remote_addr`: `{value}` is not an ip address or ip:port")]
    RemoteAddr { value: String },
    #[error("field `received_at` is out of range")]
    ReceivedAt,
    #[error("field `filter.{field}`: {0}", field = .0.field())]
    Filter(#[from] FilterError),
    #[error("field `{0}` is out of range")]
    Timestamp(&'static str),
    #[error("field `id` is required")]
    MissingId,
    #[error("field `position`: unknown start position {0}")]
    Position(i32),
    #[error("field `view`: unknown view {0}")]
    View(i32),
}

/// The event view asked for; BASIC when unset.
pub fn view(view: i32) -> Result<View, RequestError> {
    match pb::EventView::try_from(view) {
        Ok(pb::EventView::Unspecified | pb::EventView::Basic) => Ok(View::Basic),
        Ok(pb::EventView::Full) => Ok(View::Full),
        Err(_) => Err(RequestError::View(view)),
    }
}

/// Whether a `VerifyAndNormalize` answer carries the event's payloads; FULL when unset.
/// Checked before the webhook is processed, so a bad value never follows a stored event.
pub fn answer_payloads(view: i32) -> Result<bool, RequestError> {
    match pb::VerifyAndNormalizeView::try_from(view) {
        Ok(pb::VerifyAndNormalizeView::Unspecified | pb::VerifyAndNormalizeView::Full) => Ok(true),
        Ok(pb::VerifyAndNormalizeView::Basic) => Ok(false),
        Err(_) => Err(RequestError::View(view)),
    }
}

/// Checks the request's own fields and returns where and when it says the webhook was received
/// (whether that is believed is the caller's [`Principal`](crate::auth::Principal)'s business).
pub fn claimed_origin(request: &VerifyAndNormalizeRequest) -> Result<ClaimedOrigin, RequestError> {
    if request.source.is_empty() {
        return Err(RequestError::MissingSource);
    }
    let received_at = match &request.received_at {
        Some(timestamp) => Some(from_timestamp(timestamp).ok_or(RequestError::ReceivedAt)?),
        None => None,
    };
    Ok(ClaimedOrigin {
        remote_addr: parse_remote_addr(&request.remote_addr)?,
        received_at,
    })
}

/// The webhook of a checked request, received at `origin`.
pub fn raw_webhook(request: VerifyAndNormalizeRequest, origin: Origin) -> RawWebhook {
    RawWebhook {
        source: request.source,
        headers: request
            .headers
            .into_iter()
            .map(|header| (header.name, header.value))
            .collect(),
        body: request.body,
        request_uri: request.request_uri,
        remote_addr: origin.remote_addr,
        received_at: origin.received_at,
    }
}

/// The domain filter of a request's `EventFilter` (absent matches everything).
pub fn filter(filter: Option<pb::EventFilter>) -> Result<EventFilter, RequestError> {
    let Some(filter) = filter else {
        return Ok(EventFilter::default());
    };
    Ok(EventFilter::new(
        filter.providers,
        filter.sources,
        &filter.types,
        filter.resource,
    )?)
}

/// The start position of a `StreamEventsRequest` (LATEST when unset).
pub fn start(start: Option<ProtoStart>) -> Result<Start, RequestError> {
    Ok(match start {
        None => Start::Latest,
        Some(ProtoStart::Position(position)) => match StartPosition::try_from(position) {
            Ok(StartPosition::Earliest) => Start::Earliest,
            Ok(StartPosition::Latest | StartPosition::Unspecified) => Start::Latest,
            Err(_) => return Err(RequestError::Position(position)),
        },
        Some(ProtoStart::AfterSequence(sequence)) => Start::After(sequence),
        Some(ProtoStart::Since(since)) => {
            Start::Since(from_timestamp(&since).ok_or(RequestError::Timestamp("since"))?)
        }
    })
}

/// Accepts `ip`, `ip:port` and `[ipv6]:port`; empty means unknown.
fn parse_remote_addr(value: &str) -> Result<Option<IpAddr>, RequestError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse::<IpAddr>()
        .or_else(|_| value.parse::<SocketAddr>().map(|addr| addr.ip()))
        .map(Some)
        .map_err(|_| RequestError::RemoteAddr {
            value: value.chars().take(64).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_addr_forms() {
        assert_eq!(parse_remote_addr("").unwrap(), None);
        assert_eq!(
            parse_remote_addr("10.0.0.1:443").unwrap(),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            parse_remote_addr("[::1]:80").unwrap(),
            Some("::1".parse().unwrap())
        );
        assert_eq!(
            parse_remote_addr("2001:db8::1").unwrap(),
            Some("2001:db8::1".parse().unwrap())
        );
        assert!(parse_remote_addr("nope").is_err());
    }

    #[test]
    fn filters_and_starts_are_validated() {
        let bad = pb::EventFilter {
            types: vec!["ord*".into()],
            ..pb::EventFilter::default()
        };
        let error = filter(Some(bad)).unwrap_err().to_string();
        assert!(
            error.starts_with("field `filter.types`: type pattern"),
            "{error}"
        );
        let bad = pb::EventFilter {
            resource: Some(pb::ResourceRef {
                kind: "sim".into(),
                id: String::new(),
            }),
            ..pb::EventFilter::default()
        };
        assert_eq!(
            filter(Some(bad)).unwrap_err().to_string(),
            "field `filter.resource`: kind and id are both required"
        );
        assert_eq!(start(None).unwrap(), Start::Latest);
        assert_eq!(
            start(Some(ProtoStart::Position(StartPosition::Earliest as i32))).unwrap(),
            Start::Earliest
        );
        assert_eq!(
            start(Some(ProtoStart::AfterSequence(9))).unwrap(),
            Start::After(9)
        );
        assert!(start(Some(ProtoStart::Position(99))).is_err());
    }

    #[test]
    fn missing_source_is_refused() {
        let request = VerifyAndNormalizeRequest::default();
        assert!(matches!(
            claimed_origin(&request),
            Err(RequestError::MissingSource)
        ));
    }
}
