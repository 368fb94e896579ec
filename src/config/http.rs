//! `[http]`: the webhook ingress's trust and load limits (its address is `server.http_listen`).

use serde::Deserialize;

use super::ConfigError;
use crate::verify::IpAllowlist;

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Peers (CIDRs or addresses) whose `Forwarded` / `X-Forwarded-For` headers are believed when
    /// checking source allowlists: the load balancers or ingress controllers in front of
    /// hooknorm. Empty: the socket peer is always the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Webhooks processed at once; more are answered 429 at once rather than queued, so a burst
    /// cannot hold more than `max_concurrency × limits.max_body_bytes` of bodies in memory.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Webhooks accepted per second (a token bucket holding one second's worth); more get 429.
    /// Unset: no rate limit.
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// A webhook whose upload and processing take longer gets 503, so a slow sender cannot hold
    /// a concurrency slot. Below Abowire's 5 s (and Svix's 15 s) delivery timeout, so the
    /// provider hears our answer rather than timing out.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// The `Retry-After` sent with 429 and 503 answers, in seconds. Abowire honours it (up to
    /// 900 s) and disables a webhook after three failed attempts, so the default is its own
    /// first retry delay: a shorter one would spend those attempts faster.
    #[serde(default = "default_retry_after")]
    pub retry_after_seconds: u64,
    /// A connection must deliver a complete request head within this long, counted from when it
    /// starts waiting for one: from accept for a new connection, from the end of the previous
    /// answer for a kept-alive one. So it also bounds how long an idle keep-alive connection is
    /// kept, and a sender trickling half a head (slowloris) is cut off. Above the 60 s idle
    /// timeout of common load balancers and ingress controllers, so they, not we, close a pooled
    /// connection first and never send a webhook on one we are closing.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_seconds: u64,
    /// Connections open at once; past it new ones wait in the kernel's accept queue until one
    /// closes, so idle or slow connections cannot exhaust file descriptors or memory.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
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

fn default_max_connections() -> usize {
    1024
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            trusted_proxies: Vec::new(),
            max_concurrency: default_max_concurrency(),
            rate_limit_per_second: None,
            request_timeout_seconds: default_request_timeout(),
            retry_after_seconds: default_retry_after(),
            header_read_timeout_seconds: default_header_read_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

impl HttpConfig {
    /// The trusted proxies as networks; errors name the offending entry.
    pub fn trusted_proxies(&self) -> Result<IpAllowlist, ConfigError> {
        IpAllowlist::parse("http.trusted_proxies", &self.trusted_proxies)
    }

    /// Checks what serde cannot; every error names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.trusted_proxies()?;
        if self.max_concurrency == 0 {
            return Err(ConfigError::invalid(
                "http.max_concurrency",
                "must be greater than 0",
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid(
                "http.max_connections",
                "must be greater than 0",
            ));
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
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> HttpConfig {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let config = parse("");
        config.validate().unwrap();
        assert_eq!(config.max_concurrency, 256);
        assert_eq!(config.header_read_timeout_seconds, 75);
        assert_eq!(config.max_connections, 1024);
        assert_eq!(config.rate_limit_per_second, None);
        assert!(config.trusted_proxies.is_empty());
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
        ] {
            let error = parse(toml).validate().unwrap_err().to_string();
            assert!(error.contains(key), "{toml}: {error}");
        }
        assert!(toml::from_str::<HttpConfig>("max_concurency = 3").is_err());
    }
}
