//! `[ops]`: the ops listener's connection limits (its address is `server.ops_listen`). It serves
//! the probes (`/healthz`, `/readyz`) apart from the public ingress, so that no flood of the
//! ingress can fail them; it is meant for the kubelet and the cluster, not the internet.

use serde::Deserialize;

use super::ConfigError;

/// `[ops]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// Connections open at once. At the cap the oldest connection waiting for a request is
    /// closed to make room, so a probe always gets in.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection must deliver a request head within this long of waiting for one (probes
    /// send theirs at once); also how long an idle keep-alive connection is kept.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_seconds: u64,
}

fn default_max_connections() -> usize {
    64
}

fn default_header_read_timeout() -> u64 {
    10
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            max_connections: default_max_connections(),
            header_read_timeout_seconds: default_header_read_timeout(),
        }
    }
}

impl OpsConfig {
    /// Checks what serde cannot; every error names its key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::invalid(
                "ops.max_connections",
                "must be greater than 0",
            ));
        }
        if self.header_read_timeout_seconds == 0 {
            return Err(ConfigError::invalid(
                "ops.header_read_timeout_seconds",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}
