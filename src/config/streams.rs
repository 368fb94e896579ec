//! `[streams]`: how StreamEvents subscriptions are buffered, kept alive and ended.

use serde::Deserialize;

use super::ConfigError;

/// `[streams]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsConfig {
    /// Seconds without a message after which a heartbeat is sent.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: u64,
    /// Messages buffered per subscriber between the log and its connection.
    #[serde(default = "default_stream_buffer")]
    pub buffer: usize,
    /// Encoded event bytes buffered per subscriber (a single larger event still goes alone);
    /// bounds what a slow subscriber holds whatever the event sizes.
    #[serde(default = "default_stream_buffer_bytes")]
    pub buffer_bytes: usize,
    /// A subscriber that reads nothing for this many seconds while messages wait is ended with
    /// a status telling it where to resume.
    #[serde(default = "default_slow_subscriber_timeout")]
    pub slow_subscriber_timeout_seconds: u64,
}

fn default_heartbeat() -> u64 {
    15
}

fn default_stream_buffer() -> usize {
    256
}

fn default_stream_buffer_bytes() -> usize {
    crate::stream::DEFAULT_BUFFER_BYTES
}

fn default_slow_subscriber_timeout() -> u64 {
    60
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            heartbeat_seconds: default_heartbeat(),
            buffer: default_stream_buffer(),
            buffer_bytes: default_stream_buffer_bytes(),
            slow_subscriber_timeout_seconds: default_slow_subscriber_timeout(),
        }
    }
}

impl StreamsConfig {
    /// Checks what serde cannot; every error names its key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        // A zero slow-subscriber timeout would end healthy streams whenever their buffer is
        // momentarily full.
        for (key, value) in [
            ("streams.heartbeat_seconds", self.heartbeat_seconds),
            ("streams.buffer", self.buffer as u64),
            (
                "streams.slow_subscriber_timeout_seconds",
                self.slow_subscriber_timeout_seconds,
            ),
            ("streams.buffer_bytes", self.buffer_bytes as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        Ok(())
    }
}
