//! `[server]`: listen addresses and how shutdown proceeds.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listen address.
    #[serde(default = "default_grpc_listen")]
    pub grpc_listen: SocketAddr,
    /// HTTP listen address of the webhook ingress (`POST /webhooks/{source}`), the public one.
    #[serde(default = "default_http_listen")]
    pub http_listen: SocketAddr,
    /// HTTP listen address of the probes (`/healthz`, `/readyz`): a listener of its own, so no
    /// flood of the ingress can fail liveness or readiness. Always on.
    #[serde(default = "default_ops_listen")]
    pub ops_listen: SocketAddr,
    /// How long in-flight requests get to finish after SIGTERM, in seconds.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_seconds: u64,
    /// After SIGTERM, how long readiness already answers "shutting down" while the listeners
    /// keep serving, before they stop accepting. Kubernetes removes a pod from its endpoints
    /// only after the signal, so without it deliveries routed meanwhile are refused at connect.
    /// 0 (the default) stops at once, as a CLI user expects; ~5 s under Kubernetes.
    #[serde(default)]
    pub drain_seconds: u64,
}

fn default_grpc_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}

fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_ops_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

fn default_shutdown_grace() -> u64 {
    20
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            grpc_listen: default_grpc_listen(),
            http_listen: default_http_listen(),
            ops_listen: default_ops_listen(),
            shutdown_grace_seconds: default_shutdown_grace(),
            drain_seconds: 0,
        }
    }
}

impl ServerConfig {
    /// Checks what serde cannot; every error names its key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        // Port 0 picks a free port for each listener, so equal addresses are fine there.
        let clash = |a: SocketAddr, b: SocketAddr| a == b && a.port() != 0;
        if clash(self.http_listen, self.grpc_listen) {
            return Err(ConfigError::invalid(
                "server.http_listen",
                "must differ from server.grpc_listen",
            ));
        }
        for (other, value) in [
            ("server.grpc_listen", self.grpc_listen),
            ("server.http_listen", self.http_listen),
        ] {
            if clash(self.ops_listen, value) {
                return Err(ConfigError::invalid(
                    "server.ops_listen",
                    format!("must differ from {other}"),
                ));
            }
        }
        Ok(())
    }
}
