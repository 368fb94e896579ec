//! `[tls]`: TLS for the gRPC listener (`[tls.grpc]`, optionally verifying client certificates)
//! and the HTTP listener (`[tls.http]`), from PEM files. Without a table, that listener is plain
//! TCP (for local use, or behind a proxy that terminates TLS). The files are loaded once at
//! validation, so `check-config` catches a bad certificate or key, and re-read while serving.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::auth::tls::{self, TlsFiles};

/// `[tls]`, validated: each listener's files load.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    pub grpc: Option<TlsFiles>,
    pub http: Option<TlsFiles>,
    /// How often the files are re-read to pick up rotated certificates.
    pub reload_interval: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    #[serde(default)]
    grpc: Option<ListenerFile>,
    #[serde(default)]
    http: Option<HttpListenerFile>,
    #[serde(default = "default_reload_interval")]
    reload_interval_seconds: u64,
}

impl Default for TlsFile {
    fn default() -> Self {
        TlsFile {
            grpc: None,
            http: None,
            reload_interval_seconds: default_reload_interval(),
        }
    }
}

fn default_reload_interval() -> u64 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerFile {
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    client_ca: Option<PathBuf>,
    #[serde(default)]
    require_client_cert: bool,
}

/// The HTTP listener takes no client certificates: providers do not send any.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpListenerFile {
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFile {
    /// Loads each listener's files (blocking: at start-up); errors name the key.
    pub(super) fn validate(self) -> Result<TlsConfig, ConfigError> {
        if self.reload_interval_seconds == 0 {
            return Err(ConfigError::invalid(
                "tls.reload_interval_seconds",
                "must be greater than 0",
            ));
        }
        let grpc = match self.grpc {
            None => None,
            Some(file) => {
                if file.require_client_cert && file.client_ca.is_none() {
                    return Err(ConfigError::invalid(
                        "tls.grpc.require_client_cert",
                        "needs tls.grpc.client_ca",
                    ));
                }
                Some(checked(
                    "tls.grpc",
                    TlsFiles {
                        cert: file.cert,
                        key: file.key,
                        client_ca: file.client_ca,
                        require_client_cert: file.require_client_cert,
                    },
                )?)
            }
        };
        let http = match self.http {
            None => None,
            Some(file) => Some(checked(
                "tls.http",
                TlsFiles {
                    cert: file.cert,
                    key: file.key,
                    client_ca: None,
                    require_client_cert: false,
                },
            )?),
        };
        Ok(TlsConfig {
            grpc,
            http,
            reload_interval: Duration::from_secs(self.reload_interval_seconds),
        })
    }
}

fn checked(key: &str, files: TlsFiles) -> Result<TlsFiles, ConfigError> {
    tls::server_config(&files, &[])
        .map_err(|error| ConfigError::invalid(key, error.to_string()))?;
    Ok(files)
}
