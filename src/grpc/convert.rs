//! Request messages -> domain values: webhooks, filters, start positions, page tokens.

use std::net::{IpAddr, SocketAddr};

use base64::Engine;
use chrono::Utc;

use crate::event::from_timestamp;
use crate::log::{EventFilter, TypePattern, View};
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
    #[error("field `filter.types`: {0}")]
    TypePattern(String),
    #[error("field `filter.resource`: kind and id are both required")]
    Resource,
    #[error("field `{0}` is out of range")]
    Timestamp(&'static str),
    #[error("field `page_size` must not be negative")]
    PageSize,
    #[error("field `page_token` is not a token this server issued for this filter")]
    PageToken,
    #[error("field `id` is required")]
    MissingId,
    #[error("field `position`: unknown start position {0}")]
    Position(i32),
    #[error("field `view`: unknown event view {0}")]
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

/// Converts the request, defaulting `received_at` to now.
pub fn raw_webhook(request: VerifyAndNormalizeRequest) -> Result<RawWebhook, RequestError> {
    if request.source.is_empty() {
        return Err(RequestError::MissingSource);
    }
    let remote_addr = parse_remote_addr(&request.remote_addr)?;
    let received_at = match &request.received_at {
        Some(timestamp) => from_timestamp(timestamp).ok_or(RequestError::ReceivedAt)?,
        None => Utc::now(),
    };
    Ok(RawWebhook {
        source: request.source,
        headers: request
            .headers
            .into_iter()
            .map(|header| (header.name, header.value))
            .collect(),
        body: request.body,
        request_uri: request.request_uri,
        remote_addr,
        received_at,
    })
}

/// The domain filter of a request's `EventFilter` (absent matches everything).
pub fn filter(filter: Option<pb::EventFilter>) -> Result<EventFilter, RequestError> {
    let Some(filter) = filter else {
        return Ok(EventFilter::default());
    };
    let types = filter
        .types
        .iter()
        .map(|pattern| TypePattern::parse(pattern).map_err(RequestError::TypePattern))
        .collect::<Result<Vec<_>, _>>()?;
    let resource = match filter.resource {
        Some(resource) if resource.kind.is_empty() || resource.id.is_empty() => {
            return Err(RequestError::Resource);
        }
        other => other,
    };
    Ok(EventFilter {
        providers: filter.providers,
        sources: filter.sources,
        types,
        resource,
    })
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

/// Page size for ListEvents: 50 by default, capped at 1000 (AIP-158).
pub fn page_size(requested: i32) -> Result<usize, RequestError> {
    match requested {
        0 => Ok(50),
        n if n < 0 => Err(RequestError::PageSize),
        n => Ok(usize::try_from(n).unwrap_or(1000).min(1000)),
    }
}

/// Page tokens bind the cursor to the filter they were issued for, so a token replayed with a
/// different filter is refused rather than silently skipping events.
pub fn page_token(before: u64, filter: &EventFilter) -> String {
    let raw = format!("v1:{before}:{:016x}", filter_hash(filter));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The `before` cursor of a page token, checked against the filter.
pub fn parse_page_token(token: &str, filter: &EventFilter) -> Result<Option<u64>, RequestError> {
    if token.is_empty() {
        return Ok(None);
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| RequestError::PageToken)?;
    let raw = String::from_utf8(raw).map_err(|_| RequestError::PageToken)?;
    let mut parts = raw.split(':');
    let (Some("v1"), Some(before), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::PageToken);
    };
    if hash != format!("{:016x}", filter_hash(filter)) {
        return Err(RequestError::PageToken);
    }
    before
        .parse()
        .map(Some)
        .map_err(|_| RequestError::PageToken)
}

/// A hash of the filter that outlives deploys: FNV-1a over bytes this function lays out itself
/// (std's `Hash` impls and `DefaultHasher` are not guaranteed stable across Rust releases), with
/// lists sorted, since the order a client lists providers or sources in does not change the
/// events it gets.
fn filter_hash(filter: &EventFilter) -> u64 {
    struct Fnv(u64);
    impl Fnv {
        fn bytes(&mut self, bytes: &[u8]) {
            for byte in bytes {
                self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        /// Length-prefixed, so `["ab", "c"]` and `["a", "bc"]` differ.
        fn text(&mut self, tag: u8, text: &str) {
            self.bytes(&[tag]);
            self.bytes(&(text.len() as u64).to_le_bytes());
            self.bytes(text.as_bytes());
        }
    }
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    let mut providers = filter.providers.clone();
    providers.sort_unstable();
    providers.dedup();
    for provider in providers {
        hasher.bytes(b"p");
        hasher.bytes(&provider.to_le_bytes());
    }
    let mut sources: Vec<&str> = filter.sources.iter().map(String::as_str).collect();
    sources.sort_unstable();
    sources.dedup();
    for source in sources {
        hasher.text(b's', source);
    }
    let mut types: Vec<(u8, &str)> = filter
        .types
        .iter()
        .map(|pattern| match pattern {
            TypePattern::Exact(name) => (b'=', name.as_str()),
            TypePattern::Prefix(prefix) => (b'*', prefix.as_str()),
        })
        .collect();
    types.sort_unstable();
    types.dedup();
    for (tag, text) in types {
        hasher.text(tag, text);
    }
    if let Some(resource) = &filter.resource {
        hasher.text(b'k', &resource.kind);
        hasher.text(b'i', &resource.id);
    }
    hasher.0
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
    fn page_tokens_are_stable_across_builds_and_list_order() {
        let filter = |sources: [&str; 2]| EventFilter {
            providers: vec![2, 1],
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
            types: vec![TypePattern::Prefix("order.".into())],
            resource: None,
        };
        let token = page_token(42, &filter(["mm", "gigs"]));
        assert_eq!(token, page_token(42, &filter(["gigs", "mm"])));
        // Pinned: a token issued before a deploy must parse after it.
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token)
            .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), PINNED_TOKEN);
        assert_eq!(
            parse_page_token(&token, &filter(["gigs", "mm"])).unwrap(),
            Some(42)
        );
    }

    const PINNED_TOKEN: &str = "v1:42:8cd22e326508e6d6";

    #[test]
    fn page_tokens_round_trip_and_bind_the_filter() {
        let filter = EventFilter {
            sources: vec!["gigs".into()],
            ..EventFilter::default()
        };
        let token = page_token(42, &filter);
        assert_eq!(parse_page_token(&token, &filter).unwrap(), Some(42));
        assert_eq!(parse_page_token("", &filter).unwrap(), None);
        assert!(parse_page_token(&token, &EventFilter::default()).is_err());
        assert!(parse_page_token("garbage!", &filter).is_err());
    }

    #[test]
    fn filters_and_starts_are_validated() {
        let bad = pb::EventFilter {
            types: vec!["ord*".into()],
            ..pb::EventFilter::default()
        };
        assert!(filter(Some(bad)).is_err());
        let bad = pb::EventFilter {
            resource: Some(pb::ResourceRef {
                kind: "sim".into(),
                id: String::new(),
            }),
            ..pb::EventFilter::default()
        };
        assert!(filter(Some(bad)).is_err());
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
        assert_eq!(page_size(0).unwrap(), 50);
        assert_eq!(page_size(5000).unwrap(), 1000);
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn missing_source_is_refused() {
        let request = VerifyAndNormalizeRequest::default();
        assert!(matches!(
            raw_webhook(request),
            Err(RequestError::MissingSource)
        ));
    }
}
