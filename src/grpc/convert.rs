//! `VerifyAndNormalizeRequest` -> [`RawWebhook`].

use std::net::{IpAddr, SocketAddr};

use chrono::Utc;

use crate::event::from_timestamp;
use crate::proto::v1::VerifyAndNormalizeRequest;
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
    fn missing_source_is_refused() {
        let request = VerifyAndNormalizeRequest::default();
        assert!(matches!(
            raw_webhook(request),
            Err(RequestError::MissingSource)
        ));
    }
}
