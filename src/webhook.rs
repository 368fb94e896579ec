//! A webhook as received ([`RawWebhook`]) and as proven authentic ([`VerifiedWebhook`]).
//!
//! `VerifiedWebhook` has no public constructor: the only way to get one is
//! [`RawWebhook::verify`], so nothing downstream (normalization, storage) can be handed a request
//! that skipped verification.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::verify::{Verifier, VerifyError};

/// A webhook exactly as it arrived, not yet trusted.
#[derive(Clone)]
pub struct RawWebhook {
    /// Configured source name it was addressed to.
    pub source: String,
    /// Headers as received; names may repeat and are matched case-insensitively.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
    /// Path and query as received (`/webhooks/abowire?token=…`).
    pub request_uri: String,
    /// The peer address, when the transport knows it.
    pub remote_addr: Option<IpAddr>,
    /// When the webhook was received; timestamp tolerance is checked against it.
    pub received_at: DateTime<Utc>,
}

// Headers and the URI carry secrets (tokens, basic auth), so Debug shows only their shape.
impl std::fmt::Debug for RawWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawWebhook")
            .field("source", &self.source)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .field("path", &self.path())
            .field("remote_addr", &self.remote_addr)
            .field("received_at", &self.received_at)
            .finish()
    }
}

impl RawWebhook {
    /// The first header with this name (case-insensitive).
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers_named(name).next()
    }

    /// Every header with this name (case-insensitive), in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request path without the query.
    pub fn path(&self) -> &str {
        self.request_uri
            .split_once('?')
            .map_or(self.request_uri.as_str(), |(path, _)| path)
    }

    /// Every value of a query parameter, percent-decoded, in order.
    pub fn query_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Cow<'a, str>> + 'a {
        let query = self
            .request_uri
            .split_once('?')
            .map_or("", |(_, query)| query);
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        form_urlencoded::parse(query.as_bytes())
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The W3C `traceparent` header, when it is valid Trace Context; `None` when it is absent,
    /// sent more than once or invalid (an invalid one is dropped, never a reason to refuse).
    pub fn traceparent(&self) -> Option<&str> {
        let mut values = self.headers_named("traceparent");
        let value = values.next()?.trim();
        // Two would be combined into one list, which is not a traceparent.
        if values.next().is_some() {
            return None;
        }
        is_valid_traceparent(value).then_some(value)
    }

    /// Checks the webhook against its source's verification scheme; the only way to obtain a
    /// [`VerifiedWebhook`].
    pub fn verify(self, verifier: &Verifier) -> Result<VerifiedWebhook, VerifyError> {
        verifier.check(&self)?;
        Ok(VerifiedWebhook { raw: self })
    }
}

/// W3C Trace Context `traceparent`: `version-traceid-parentid-flags`, all lowercase hex; version
/// not `ff`; trace-id (32) and parent-id (16) not all zeros. Version `00` is exactly those 55
/// characters; a later version may append `-`-separated fields, which a level-1 parser skips.
fn is_valid_traceparent(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.len() < 55 {
        return false;
    }
    let (head, rest) = bytes.split_at(55);
    let lower_hex = |part: &[u8]| part.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let not_all_zeros = |part: &[u8]| part.iter().any(|&b| b != b'0');
    let (version, trace_id, parent_id, flags) =
        (&head[0..2], &head[3..35], &head[36..52], &head[53..55]);
    let fields_ok = head[2] == b'-'
        && head[35] == b'-'
        && head[52] == b'-'
        && lower_hex(version)
        && version != b"ff"
        && lower_hex(trace_id)
        && not_all_zeros(trace_id)
        && lower_hex(parent_id)
        && not_all_zeros(parent_id)
        && lower_hex(flags);
    let tail_ok = if version == b"00" {
        rest.is_empty()
    } else {
        rest.is_empty() || rest[0] == b'-'
    };
    fields_ok && tail_ok
}

/// A webhook whose authenticity its source's scheme has confirmed.
#[derive(Debug)]
pub struct VerifiedWebhook {
    raw: RawWebhook,
}

impl VerifiedWebhook {
    /// The request as received.
    pub fn raw(&self) -> &RawWebhook {
        &self.raw
    }

    /// The body, byte for byte.
    pub fn body(&self) -> &[u8] {
        &self.raw.body
    }

    /// The request as received, given up once it is no longer needed as proof.
    pub fn into_raw(self) -> RawWebhook {
        self.raw
    }
}

#[cfg(test)]
impl RawWebhook {
    /// A bodiless webhook to source `s`, received now, for unit tests of headers and URIs.
    pub(crate) fn for_test(uri: &str, headers: &[(&str, &str)]) -> RawWebhook {
        RawWebhook {
            source: "s".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            request_uri: uri.into(),
            remote_addr: None,
            received_at: Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(uri: &str, headers: &[(&str, &str)]) -> RawWebhook {
        RawWebhook::for_test(uri, headers)
    }

    #[test]
    fn headers_match_case_insensitively_and_repeat() {
        let r = raw("/", &[("Webhook-Id", "a"), ("webhook-id", "b"), ("x", "c")]);
        assert_eq!(r.header("WEBHOOK-ID"), Some("a"));
        assert_eq!(
            r.headers_named("webhook-id").collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(r.header("missing"), None);
    }

    #[test]
    fn query_values_are_decoded() {
        let r = raw("/webhooks/abowire?a=1&token=s%2Fe+c&token=t#frag", &[]);
        assert_eq!(r.query_values("token").collect::<Vec<_>>(), ["s/e c", "t"]);
        assert_eq!(r.path(), "/webhooks/abowire");
        assert_eq!(raw("/x", &[]).query_values("token").count(), 0);
    }

    #[test]
    fn debug_hides_query_and_headers() {
        let r = raw(
            "/w?token=supersecret",
            &[("authorization", "Basic c2VjcmV0")],
        );
        let shown = format!("{r:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
    }

    #[test]
    fn traceparent_follows_w3c_trace_context() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = |value: &str| {
            raw("/", &[("traceparent", value)])
                .traceparent()
                .map(str::to_owned)
        };
        for valid in [
            good,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            // A later version may carry more fields.
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds",
        ] {
            assert_eq!(trace(valid).as_deref(), Some(valid), "{valid}");
        }
        for invalid in [
            "garbage",
            "",
            // Uppercase hex anywhere.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            // Version ff is forbidden.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // All-zero ids.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Version 00 has exactly four fields.
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            // A later version's extra fields start with a dash.
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            // Wrong lengths and separators.
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-1",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "0-04bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-é1",
        ] {
            assert_eq!(trace(invalid), None, "{invalid}");
        }
        // Sent twice: not one traceparent.
        let twice = raw("/", &[("traceparent", good), ("Traceparent", good)]);
        assert_eq!(twice.traceparent(), None);
    }
}
