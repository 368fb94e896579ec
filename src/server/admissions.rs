//! Each listener's connection admission, with the caps fitted to the process's open-file limit
//! (raised first where it can be).

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::http::HttpSettings;
use crate::listen::{Admission, Limits, fd_limit};

/// Each listener's connection admission.
pub(super) struct Admissions {
    pub(super) grpc: Arc<Admission>,
    pub(super) http: Arc<Admission>,
    pub(super) ops: Arc<Admission>,
}

impl Admissions {
    /// Raises the open-file limit for the caps, or lowers the ingress and gRPC caps to fit it.
    pub(super) fn new(config: &Config, http: &HttpSettings) -> Admissions {
        let mut http_limits = http.connections;
        let ops_limits = crate::http::ops_limits(&config.ops);
        let grpc_timeout = Duration::from_secs(config.grpc.preface_timeout_seconds);
        let mut grpc_limits = Limits {
            max_connections: config.grpc.max_connections,
            max_waiting_per_address: config.grpc.max_waiting_per_address,
            wait_timeout: grpc_timeout,
            wait_timeout_min: grpc_timeout,
        };
        let wanted = (http_limits.max_connections
            + grpc_limits.max_connections
            + ops_limits.max_connections) as u64
            + fd_limit::RESERVED;
        if let Some(limit) = fd_limit::raise(wanted) {
            let configured = (http_limits.max_connections, grpc_limits.max_connections);
            let ops = ops_limits.max_connections as u64;
            if fd_limit::fit(
                &mut [
                    &mut http_limits.max_connections,
                    &mut grpc_limits.max_connections,
                ],
                limit.saturating_sub(ops),
            ) {
                tracing::warn!(
                    open_file_limit = limit,
                    http_configured = configured.0,
                    http_max_connections = http_limits.max_connections,
                    grpc_configured = configured.1,
                    grpc_max_connections = grpc_limits.max_connections,
                    "connection caps lowered to fit the open-file limit"
                );
            }
        }
        let trusted = Some(http.trusted_proxies.clone());
        Admissions {
            grpc: Admission::new("grpc", grpc_limits, None),
            http: Admission::new("http", http_limits, trusted),
            ops: Admission::new("ops", ops_limits, None),
        }
    }
}
