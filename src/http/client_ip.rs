//! The client address allowlists are checked against.
//!
//! The socket peer is the client unless it is a configured trusted proxy; then the forwarding
//! headers (`Forwarded`, RFC 7239, and `X-Forwarded-For`) are walked from the right, skipping
//! trusted proxies, and the first address that is not one is the client: everything left of it
//! was written by parties we cannot trust. Anything unreadable on that walk makes the client
//! unknown, which allowlists refuse (fail closed). When both headers are present they must name
//! the same client: a proxy that sets one and passes the other through from the sender would
//! otherwise let a sender choose its own address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::HeaderMap;
use axum::http::header::{FORWARDED, HeaderName};

use crate::verify::IpAllowlist;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client address for allowlists; `None` when it cannot be known.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &IpAllowlist,
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let forwarded = hops(headers, &FORWARDED, forwarded_hops);
    let x_forwarded_for = hops(headers, &X_FORWARDED_FOR, x_forwarded_for_hops);
    match (forwarded, x_forwarded_for) {
        // A trusted proxy speaking for itself (its own health checks, say).
        (None, None) => Some(peer),
        (Some(hops), None) | (None, Some(hops)) => nearest_untrusted(&hops, trusted),
        (Some(forwarded), Some(x_forwarded_for)) => {
            let client = nearest_untrusted(&forwarded, trusted);
            if client == nearest_untrusted(&x_forwarded_for, trusted) {
                client
            } else {
                None
            }
        }
    }
}

/// Every hop of every `name` header in order (`None` for one that cannot be read); `None` when
/// the header is absent.
fn hops(
    headers: &HeaderMap,
    name: &HeaderName,
    parse: fn(&str, &mut Vec<Option<IpAddr>>),
) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        match value.to_str() {
            Ok(text) => parse(text, &mut hops),
            Err(_) => hops.push(None),
        }
    }
    Some(hops)
}

/// Right to left, past trusted proxies; when every hop is one, the leftmost is as far as anyone
/// can see.
fn nearest_untrusted(hops: &[Option<IpAddr>], trusted: &IpAllowlist) -> Option<IpAddr> {
    for hop in hops.iter().rev() {
        match hop {
            Some(address) if trusted.contains(*address) => continue,
            other => return *other,
        }
    }
    hops.first().copied().flatten()
}

/// `X-Forwarded-For: client, proxy1, proxy2`.
fn x_forwarded_for_hops(value: &str, hops: &mut Vec<Option<IpAddr>>) {
    hops.extend(value.split(',').map(parse_node));
}

/// `Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::17]:4711"`: one hop per element,
/// its `for` parameter (an element without one is an unknown hop).
fn forwarded_hops(value: &str, hops: &mut Vec<Option<IpAddr>>) {
    for element in split_outside_quotes(value, ',') {
        let node = split_outside_quotes(element, ';')
            .into_iter()
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
            .map(|(_, value)| unquote(value.trim()));
        hops.push(node.as_deref().and_then(parse_node));
    }
}

/// Splits at `separator` except inside a quoted string (which may hold escaped quotes).
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (index, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..index]);
                start = index + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The value of a token or quoted-string.
fn unquote(value: &str) -> String {
    let Some(inner) = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if c == '\\' && !escaped {
            escaped = true;
        } else {
            out.push(c);
            escaped = false;
        }
    }
    out
}

/// `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80`, or a bare IPv6 address
/// (some proxies write them unbracketed). `unknown` and obfuscated names are `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Some(rest) = node.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return address.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address);
    }
    let (host, _port) = node.rsplit_once(':')?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(cidrs: &[&str]) -> IpAllowlist {
        let cidrs: Vec<String> = cidrs.iter().map(|c| c.to_string()).collect();
        IpAllowlist::parse("http.trusted_proxies", &cidrs).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    const PROXY: &str = "10.0.0.5";

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let list = trusted(&["10.0.0.0/8"]);
        let h = headers(&[
            ("x-forwarded-for", "192.0.2.1"),
            ("forwarded", "for=192.0.2.1"),
        ]);
        assert_eq!(client_ip(ip("203.0.113.9"), &h, &list), ip("203.0.113.9"));
        assert_eq!(client_ip(None, &h, &list), None);
        // No trusted proxies configured: the peer, always.
        assert_eq!(client_ip(ip(PROXY), &h, &trusted(&[])), ip(PROXY));
    }

    #[test]
    fn x_forwarded_for_gives_the_rightmost_untrusted_hop() {
        let list = trusted(&["10.0.0.0/8"]);
        for (value, want) in [
            ("192.0.2.1", "192.0.2.1"),
            // The sender wrote the first entry itself; our proxy appended the real peer.
            ("6.6.6.6, 192.0.2.1", "192.0.2.1"),
            ("192.0.2.1, 10.0.0.7", "192.0.2.1"),
            ("192.0.2.1:5555", "192.0.2.1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            // Every hop trusted: the leftmost.
            ("10.0.0.9, 10.0.0.7", "10.0.0.9"),
        ] {
            let h = headers(&[("x-forwarded-for", value)]);
            assert_eq!(client_ip(ip(PROXY), &h, &list), ip(want), "{value}");
        }
        // Values split over several header lines read as one list.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "192.0.2.1"),
        ]);
        assert_eq!(client_ip(ip(PROXY), &h, &list), ip("192.0.2.1"));
    }

    #[test]
    fn forwarded_elements_and_quoting() {
        let list = trusted(&["10.0.0.0/8", "fd00::/8"]);
        for (value, want) in [
            (
                "for=192.0.2.60;proto=http;by=203.0.113.43",
                ip("192.0.2.60"),
            ),
            ("For=\"[2001:db8:cafe::17]:4711\"", ip("2001:db8:cafe::17")),
            ("for=\"[2001:db8::1]\", for=10.0.0.7", ip("2001:db8::1")),
            ("for=6.6.6.6, for=192.0.2.43;by=\"a,b\"", ip("192.0.2.43")),
            ("proto=https;for=\"192.0.2.43:47011\"", ip("192.0.2.43")),
            ("for=[fd00::1]", ip("fd00::1")),
            // Unknown or obfuscated hops make the client unknown.
            ("for=unknown", None),
            ("for=_hidden, for=10.0.0.7", None),
            ("proto=https", None),
            ("for=\"[2001:db8::1\"", None),
        ] {
            let h = headers(&[("forwarded", value)]);
            assert_eq!(client_ip(ip(PROXY), &h, &list), want, "{value}");
        }
    }

    #[test]
    fn both_headers_must_agree() {
        let list = trusted(&["10.0.0.0/8"]);
        let agree = headers(&[
            ("forwarded", "for=192.0.2.1"),
            ("x-forwarded-for", "192.0.2.1"),
        ]);
        assert_eq!(client_ip(ip(PROXY), &agree, &list), ip("192.0.2.1"));
        let spoofed = headers(&[
            ("forwarded", "for=192.0.2.1"),
            ("x-forwarded-for", "203.0.113.50"),
        ]);
        assert_eq!(client_ip(ip(PROXY), &spoofed, &list), None);
    }

    #[test]
    fn a_trusted_peer_without_headers_is_the_client() {
        let list = trusted(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip(PROXY), &HeaderMap::new(), &list), ip(PROXY));
        // IPv4-mapped peers of a dual-stack socket match IPv4 ranges.
        let h = headers(&[("x-forwarded-for", "192.0.2.1")]);
        assert_eq!(client_ip(ip("::ffff:10.0.0.5"), &h, &list), ip("192.0.2.1"));
    }
}
