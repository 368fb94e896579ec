//! `[http]`: the webhook ingress's trust, load and connection limits (its address is
//! `server.http_listen`).

use serde::Deserialize;

use super::ConfigError;
use crate::verify::IpAllowlist;

/// `[http]`, validated: the proxies are parsed networks and every limit is usable.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Peers whose `Forwarded` / `X-Forwarded-For` headers are believed when checking source
    /// allowlists: the load balancers or ingress controllers in front of hooknorm. Empty: the
    /// socket peer is always the client.
    pub trusted_proxies: IpAllowlist,
    /// Webhooks processed at once, counted from when the body is in (an upload trickled in holds
    /// no slot); more are answered 429 at once rather than queued. Bodies in flight, uploading
    /// or processed, share a budget of `max_concurrency × limits.max_body_bytes` bytes, so a
    /// burst cannot hold more than that in memory either; a body that finds it spent gets 429.
    pub max_concurrency: usize,
    /// Webhooks accepted per second (a token bucket holding one second's worth); more get 429.
    /// `None`: no rate limit.
    pub rate_limit_per_second: Option<u32>,
    /// A webhook whose upload and processing take longer gets 503, so a slow sender cannot hold
    /// a concurrency slot. Below Abowire's 5 s (and Svix's 15 s) delivery timeout, so the
    /// provider hears our answer rather than timing out.
    pub request_timeout_seconds: u64,
    /// The `Retry-After` sent with 429 and 503 answers, in seconds. Abowire honours it (up to
    /// 900 s) and disables a webhook after three failed attempts, so the default is its own
    /// first retry delay: a shorter one would spend those attempts faster.
    pub retry_after_seconds: u64,
    /// A connection must deliver a complete request head within this long, counted from when it
    /// starts waiting for one: from accept for a new connection, from the end of the previous
    /// answer for a kept-alive one. So it also bounds how long an idle keep-alive connection is
    /// kept, and a sender trickling half a head (slowloris) is cut off. Above the 60 s idle
    /// timeout of common load balancers and ingress controllers, so they, not we, close a pooled
    /// connection first and never send a webhook on one we are closing. This is the deadline
    /// while at most half of `max_connections` are open; see `header_read_timeout_min_seconds`.
    pub header_read_timeout_seconds: u64,
    /// The head deadline at `max_connections`: from half full to full it shrinks linearly from
    /// `header_read_timeout_seconds` to this, so under a flood of idle or slow connections each
    /// is closed sooner, while without pressure pooled keep-alive connections are kept. 5 s by
    /// default (`header_read_timeout_seconds` if that is lower): a sender's head arrives in one
    /// packet right after it connects.
    pub header_read_timeout_min_seconds: u64,
    /// Connections open at once. Every connection is accepted at once; at the cap the address
    /// holding the most waiting connections gives one up (its oldest, or the newcomer if it
    /// comes from there), and a newcomer is refused only when no connection is waiting. By default 2,730: that many of the costliest waiting connections (a nearly
    /// full 16 KiB head buffer) cost 64 MiB (see the README).
    pub max_connections: usize,
    /// Connections waiting for a complete request (new, sending a head or a body, or idle
    /// keep-alive) that one client address may hold; past it, its new connections are refused
    /// at once. IPv6 addresses count per /64. `trusted_proxies` are exempt: they carry many
    /// clients.
    pub max_waiting_per_address: usize,
}

/// `[http]` as written; [`HttpFile::validate`] turns it into an [`HttpConfig`], whose fields
/// document the keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpFile {
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default = "default_max_concurrency")]
    max_concurrency: usize,
    #[serde(default)]
    rate_limit_per_second: Option<u32>,
    #[serde(default = "default_request_timeout")]
    request_timeout_seconds: u64,
    #[serde(default = "default_retry_after")]
    retry_after_seconds: u64,
    #[serde(default = "default_header_read_timeout")]
    header_read_timeout_seconds: u64,
    /// Unset: the default, or `header_read_timeout_seconds` if that is lower.
    #[serde(default)]
    header_read_timeout_min_seconds: Option<u64>,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_max_waiting_per_address")]
    max_waiting_per_address: usize,
}

fn default_max_concurrency() -> usize {
    256
}

fn default_request_timeout() -> u64 {
    4
}

fn default_retry_after() -> u64 {
    300
}

fn default_header_read_timeout() -> u64 {
    75
}

fn default_header_read_timeout_min() -> u64 {
    5
}

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

/// What the ingress's open connections may cost at most by default.
const CONNECTION_MEMORY_BUDGET: usize = 64 << 20;

/// The most one waiting connection was measured to cost (BENCHMARKS.md, "Connections"): one
/// that has sent 15 KiB of a head, nearly filling its 16 KiB read buffer, 23.6 KiB of server
/// memory, rounded up. A silent one costs 11.6 KiB, an idle keep-alive one 13.0 KiB.
const WORST_CONNECTION_BYTES: usize = 24 << 10;

/// 64 MiB / 24 KiB: the cap is sized from measured memory, so a flood that fills it with the
/// costliest connections still holds no more than the budget.
pub const DEFAULT_MAX_CONNECTIONS: usize = CONNECTION_MEMORY_BUDGET / WORST_CONNECTION_BYTES;

fn default_max_waiting_per_address() -> usize {
    64
}

impl Default for HttpFile {
    fn default() -> Self {
        HttpFile {
            trusted_proxies: Vec::new(),
            max_concurrency: default_max_concurrency(),
            rate_limit_per_second: None,
            request_timeout_seconds: default_request_timeout(),
            retry_after_seconds: default_retry_after(),
            header_read_timeout_seconds: default_header_read_timeout(),
            header_read_timeout_min_seconds: None,
            max_connections: default_max_connections(),
            max_waiting_per_address: default_max_waiting_per_address(),
        }
    }
}

impl HttpFile {
    /// Parses the proxies and checks what serde cannot; every error names its key.
    pub(super) fn validate(self) -> Result<HttpConfig, ConfigError> {
        let trusted_proxies = IpAllowlist::parse("http.trusted_proxies", &self.trusted_proxies)?;
        if self.max_concurrency == 0 {
            return Err(ConfigError::invalid(
                "http.max_concurrency",
                "must be greater than 0",
            ));
        }
        for (key, value) in [
            ("http.max_connections", self.max_connections),
            ("http.max_waiting_per_address", self.max_waiting_per_address),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.rate_limit_per_second == Some(0) {
            return Err(ConfigError::invalid(
                "http.rate_limit_per_second",
                "must be greater than 0 (leave it unset for no rate limit)",
            ));
        }
        for (key, value) in [
            ("http.request_timeout_seconds", self.request_timeout_seconds),
            ("http.retry_after_seconds", self.retry_after_seconds),
            (
                "http.header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            (
                "http.header_read_timeout_min_seconds",
                self.header_read_timeout_min_seconds.unwrap_or(1),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        let header_read_timeout_min_seconds = match self.header_read_timeout_min_seconds {
            Some(min) if min > self.header_read_timeout_seconds => {
                return Err(ConfigError::invalid(
                    "http.header_read_timeout_min_seconds",
                    "must not exceed http.header_read_timeout_seconds",
                ));
            }
            Some(min) => min,
            None => default_header_read_timeout_min().min(self.header_read_timeout_seconds),
        };
        Ok(HttpConfig {
            trusted_proxies,
            max_concurrency: self.max_concurrency,
            rate_limit_per_second: self.rate_limit_per_second,
            request_timeout_seconds: self.request_timeout_seconds,
            retry_after_seconds: self.retry_after_seconds,
            header_read_timeout_seconds: self.header_read_timeout_seconds,
            header_read_timeout_min_seconds,
            max_connections: self.max_connections,
            max_waiting_per_address: self.max_waiting_per_address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(toml: &str) -> Result<HttpConfig, ConfigError> {
        toml::from_str::<HttpFile>(toml).unwrap().validate()
    }

    #[test]
    fn defaults_are_valid() {
        let config = validate("").unwrap();
        assert_eq!(config.max_concurrency, 256);
        assert_eq!(config.header_read_timeout_seconds, 75);
        assert_eq!(config.header_read_timeout_min_seconds, 5);
        assert_eq!(config.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(config.max_waiting_per_address, 64);
        assert_eq!(config.rate_limit_per_second, None);
        assert!(!config.trusted_proxies.contains([10, 0, 0, 1].into()));
    }

    #[test]
    fn the_pressure_deadline_never_exceeds_the_head_deadline() {
        let config = validate("header_read_timeout_seconds = 2").unwrap();
        assert_eq!(config.header_read_timeout_min_seconds, 2);
        let config = validate("header_read_timeout_min_seconds = 30").unwrap();
        assert_eq!(config.header_read_timeout_min_seconds, 30);
    }

    #[test]
    fn trusted_proxies_are_parsed_at_load() {
        let config = validate("trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]").unwrap();
        assert!(config.trusted_proxies.contains([10, 1, 2, 3].into()));
        assert!(config.trusted_proxies.contains([192, 0, 2, 7].into()));
        assert!(!config.trusted_proxies.contains([192, 0, 2, 8].into()));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (toml, key) in [
            (
                "trusted_proxies = [\"10.0.0.0/8\", \"nope\"]",
                "http.trusted_proxies[1]",
            ),
            ("max_concurrency = 0", "http.max_concurrency"),
            ("rate_limit_per_second = 0", "http.rate_limit_per_second"),
            (
                "request_timeout_seconds = 0",
                "http.request_timeout_seconds",
            ),
            ("retry_after_seconds = 0", "http.retry_after_seconds"),
            (
                "header_read_timeout_seconds = 0",
                "http.header_read_timeout_seconds",
            ),
            ("max_connections = 0", "http.max_connections"),
            (
                "max_waiting_per_address = 0",
                "http.max_waiting_per_address",
            ),
            (
                "header_read_timeout_min_seconds = 0",
                "http.header_read_timeout_min_seconds",
            ),
            (
                "header_read_timeout_seconds = 4\nheader_read_timeout_min_seconds = 5",
                "http.header_read_timeout_min_seconds",
            ),
        ] {
            let error = validate(toml).unwrap_err().to_string();
            assert!(error.contains(key), "{toml}: {error}");
        }
        assert!(toml::from_str::<HttpFile>("max_concurency = 3").is_err());
    }
}
