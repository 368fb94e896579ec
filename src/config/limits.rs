//! `[limits]`: the largest webhook body accepted and the largest event stored.

use serde::Deserialize;

use super::ConfigError;

/// `[limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted webhook body in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest normalized event, protobuf-encoded, that is stored. JSON can grow several times
    /// over as a `google.protobuf.Struct` (`[1,1,…]` about fivefold); an event past this is
    /// refused with `PAYLOAD_TOO_LARGE` rather than stored and then too large to send.
    #[serde(default = "default_max_event")]
    pub max_event_bytes: usize,
}

/// 1 MiB: far above any documented provider payload, small enough to refuse abuse cheaply.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

/// Below this even small events of every provider would be refused.
const MIN_MAX_EVENT_BYTES: usize = 16 * 1024;

/// Room for any 1 MiB body of ordinary JSON, while the event with its response around it stays
/// under the 4 MiB that gRPC clients in every language accept by default.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;

fn default_max_event() -> usize {
    DEFAULT_MAX_EVENT_BYTES
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

impl LimitsConfig {
    /// Checks what serde cannot; every error names its key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "limits.max_body_bytes",
                "must be greater than 0",
            ));
        }
        if self.max_event_bytes < MIN_MAX_EVENT_BYTES {
            return Err(ConfigError::invalid(
                "limits.max_event_bytes",
                format!("must be at least {MIN_MAX_EVENT_BYTES}"),
            ));
        }
        Ok(())
    }
}
