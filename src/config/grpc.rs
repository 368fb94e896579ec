//! `[grpc]`: the gRPC listener's connection limits and its guard against HTTP/2 rapid reset
//! (its address is `server.grpc_listen`).

use serde::Deserialize;

use super::ConfigError;

/// `[grpc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Connections open at once, established or not. At the cap a connection that has not sent
    /// its HTTP/2 preface yet is closed to make room (the oldest of the address holding the
    /// most); when every open connection is established, the new one is refused.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections that have not sent the HTTP/2 preface yet that one client address (IPv6: one
    /// /64) may hold; past it, that address's oldest one is closed.
    #[serde(default = "default_max_waiting_per_address")]
    pub max_waiting_per_address: usize,
    /// A connection must send the HTTP/2 preface within this long of being accepted (clients
    /// send it at once); hyper itself would wait forever.
    #[serde(default = "default_preface_timeout")]
    pub preface_timeout_seconds: u64,
    /// Rapid resets (a stream reset by the client within 100 ms of opening it) a connection
    /// may send per second, and at once; past it the connection is closed (HTTP/2 rapid reset,
    /// CVE-2023-44487). Below h2's own limit (20 resets of streams not yet accepted), so that
    /// this one, with its penalty, acts first. A client cancelling a call resets a stream that
    /// has been open for longer, which is never counted; an attack resets thousands a second.
    #[serde(default = "default_max_stream_resets_per_second")]
    pub max_stream_resets_per_second: u32,
    /// After a connection is closed for resetting streams, new connections from its address
    /// (IPv6: its /64) are refused for this long, so that reconnecting buys no fresh allowance.
    /// 0: no penalty.
    #[serde(default = "default_reset_penalty")]
    pub reset_penalty_seconds: u64,
    /// `VerifyAndNormalize` calls processed at once; past it a call is answered `RATE_LIMITED`
    /// at once, not queued, so a store that stalls cannot pile up calls (and memory) without
    /// bound. The counterpart of `http.max_concurrency`.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
}

fn default_max_connections() -> usize {
    1024
}

fn default_max_waiting_per_address() -> usize {
    64
}

fn default_preface_timeout() -> u64 {
    10
}

fn default_max_stream_resets_per_second() -> u32 {
    10
}

fn default_reset_penalty() -> u64 {
    10
}

fn default_max_concurrency() -> usize {
    1024
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            max_connections: default_max_connections(),
            max_waiting_per_address: default_max_waiting_per_address(),
            preface_timeout_seconds: default_preface_timeout(),
            max_stream_resets_per_second: default_max_stream_resets_per_second(),
            reset_penalty_seconds: default_reset_penalty(),
            max_concurrency: default_max_concurrency(),
        }
    }
}

impl GrpcConfig {
    /// Checks what serde cannot; every error names its key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("grpc.max_connections", self.max_connections as u64),
            (
                "grpc.max_waiting_per_address",
                self.max_waiting_per_address as u64,
            ),
            ("grpc.preface_timeout_seconds", self.preface_timeout_seconds),
            ("grpc.max_concurrency", self.max_concurrency as u64),
            (
                "grpc.max_stream_resets_per_second",
                u64::from(self.max_stream_resets_per_second),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        Ok(())
    }
}
