//! Configuration: one TOML file, then `HOOKNORM_*` environment overrides, validated once.
//!
//! The file is parsed into its written form (`ConfigFile` and the `*File` types of the
//! submodules), the overrides are applied to that, and validation turns it into a [`Config`]:
//! secrets resolved, networks parsed, every limit usable. Whoever holds a `Config` may build
//! from it without checking anything again. Every error names the offending key.
//!
//! One file per section (`server`, `http`, `ops`, `grpc`, `limits`, `store` with `nats`,
//! `streams`, `log`, `sources`, `auth`, `tls`, `telemetry`), and `secrets` for how secrets are
//! written, resolved and kept out of `Debug`.

mod auth;
mod grpc;
mod http;
mod limits;
mod log;
mod nats;
mod ops;
mod secrets;
mod server;
mod sources;
mod store;
mod streams;
mod telemetry;
mod tls;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use auth::{AuthConfig, DEFAULT_RECEIVED_AT_SKEW_SECONDS};
pub use grpc::GrpcConfig;
pub use http::{DEFAULT_MAX_CONNECTIONS, HttpConfig};
pub use limits::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_EVENT_BYTES, LimitsConfig};
pub use log::{LogConfig, LogFormat};
pub use nats::{NatsAuth, NatsConfig, NatsTlsConfig};
pub use ops::OpsConfig;
pub use secrets::{Secret, SecretRef};
pub use server::ServerConfig;
pub use sources::{DEFAULT_TOLERANCE_SECONDS, SourceConfig, VerificationConfig};
pub use store::{DEFAULT_DEDUP_WINDOW_SECONDS, StoreBackend, StoreConfig};
pub use streams::StreamsConfig;
pub use telemetry::{ParentlessSampler, TelemetryConfig, TraceSampler};
pub use tls::TlsConfig;

/// Where the config file is looked for when neither `--config` nor `HOOKNORM_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "hooknorm.toml";

/// Why the configuration cannot be used; every message names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The I/O error is the `source`, so it is printed once, after this message.
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Position and message only: the parser's own rendering quotes the offending line, which
    /// may hold a literal secret.
    #[error("invalid config file {path} at line {line}, column {column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The whole configuration, validated. Only [`Config::load`] and friends make one.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub http: HttpConfig,
    pub ops: OpsConfig,
    pub grpc: GrpcConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    pub store: StoreConfig,
    pub streams: StreamsConfig,
    pub sources: Vec<SourceConfig>,
    pub auth: AuthConfig,
    pub tls: TlsConfig,
    pub telemetry: TelemetryConfig,
}

/// The file as written: serde's shape, before overrides and validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    http: http::HttpFile,
    #[serde(default)]
    ops: OpsConfig,
    #[serde(default)]
    grpc: GrpcConfig,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    store: StoreConfig,
    #[serde(default)]
    streams: StreamsConfig,
    #[serde(default)]
    sources: Vec<sources::SourceFile>,
    /// `"none"` or a table: checked in [`auth::validate`], which gives clearer errors than an
    /// untagged enum would.
    #[serde(default)]
    auth: Option<toml::Value>,
    #[serde(default)]
    tls: tls::TlsFile,
    #[serde(default)]
    telemetry: telemetry::TelemetryFile,
}

impl Config {
    /// Reads `path`, applies the `HOOKNORM_*` environment overrides and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_with_env(&text, |name| std::env::var(name).ok()).map_err(|error| {
            match error {
                ConfigError::Parse {
                    line,
                    column,
                    message,
                    ..
                } => ConfigError::Parse {
                    path: path.to_owned(),
                    line,
                    column,
                    message,
                },
                other => other,
            }
        })
    }

    /// Parses and validates TOML text, without environment overrides.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_with_env(text, |_| None)
    }

    /// Parses TOML text, applies the `HOOKNORM_*` overrides `var` returns and validates. Secrets written as `{ env = "NAME" }` are still read from the process
    /// environment.
    pub fn from_toml_with_env(
        text: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut file = ConfigFile::parse(text)?;
        file.apply_env(var)?;
        file.validate()
    }
}

impl ConfigFile {
    /// Parses TOML text; errors give a position and the key, never the offending line.
    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        let parse_error = |error: toml::de::Error, key: Option<String>| {
            let offset = error.span().map_or(0, |span| span.start).min(text.len());
            let before = text.get(..offset).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit('\n')
                .next()
                .map_or(0, |tail| tail.chars().count())
                + 1;
            let message = error.message().trim_end();
            ConfigError::Parse {
                path: PathBuf::new(),
                line,
                column,
                message: match key {
                    Some(key) => format!("key `{key}`: {message}"),
                    None => message.to_owned(),
                },
            }
        };
        let deserializer =
            toml::de::Deserializer::parse(text).map_err(|error| parse_error(error, None))?;
        // The path names the key even where the parser's message does not (a bad address).
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let key = error.path().to_string();
            parse_error(error.into_inner(), (key != ".").then_some(key))
        })
    }

    /// Applies `HOOKNORM_GRPC_LISTEN`, `HOOKNORM_HTTP_LISTEN`, `HOOKNORM_OPS_LISTEN`,
    /// `HOOKNORM_MAX_BODY_BYTES`, `HOOKNORM_STORE_PATH`, `HOOKNORM_STORE_BACKEND`,
    /// `HOOKNORM_NATS_SERVERS` (comma-separated), `HOOKNORM_LOG_FORMAT`, `HOOKNORM_LOG_LEVEL` and the
    /// `OTEL_*` variables of `[telemetry]`; a
    /// bad value is named by its variable.
    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value
                .parse()
                .map_err(|error| ConfigError::invalid(name, format!("{error}")))
        }
        if let Some(value) = var("HOOKNORM_GRPC_LISTEN") {
            self.server.grpc_listen = parsed("HOOKNORM_GRPC_LISTEN", &value)?;
        }
        if let Some(value) = var("HOOKNORM_HTTP_LISTEN") {
            self.server.http_listen = parsed("HOOKNORM_HTTP_LISTEN", &value)?;
        }
        if let Some(value) = var("HOOKNORM_OPS_LISTEN") {
            self.server.ops_listen = parsed("HOOKNORM_OPS_LISTEN", &value)?;
        }
        if let Some(value) = var("HOOKNORM_MAX_BODY_BYTES") {
            self.limits.max_body_bytes = parsed("HOOKNORM_MAX_BODY_BYTES", &value)?;
        }
        if let Some(value) = var("HOOKNORM_STORE_PATH") {
            self.store.path = PathBuf::from(value);
        }
        if let Some(value) = var("HOOKNORM_STORE_BACKEND") {
            self.store.backend = match value.as_str() {
                "sqlite" => StoreBackend::Sqlite,
                "nats" => StoreBackend::Nats,
                _ => {
                    return Err(ConfigError::invalid(
                        "HOOKNORM_STORE_BACKEND",
                        "must be sqlite or nats",
                    ));
                }
            };
        }
        if let Some(value) = var("HOOKNORM_NATS_SERVERS") {
            self.store.nats.servers = value
                .split(',')
                .map(str::trim)
                .filter(|server| !server.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(value) = var("HOOKNORM_LOG_FORMAT") {
            self.log.format = LogFormat::parse("HOOKNORM_LOG_FORMAT", &value)?;
        }
        if let Some(value) = var("HOOKNORM_LOG_LEVEL") {
            log::check_level("HOOKNORM_LOG_LEVEL", &value)?;
            self.log.level = value;
        }
        self.telemetry.apply_env(&var)?;
        Ok(())
    }

    /// Checks what serde cannot, section by section, and resolves the sources' secrets.
    fn validate(mut self) -> Result<Config, ConfigError> {
        self.streams.validate()?;
        self.store.validate()?;
        self.server.validate()?;
        let http = self.http.validate()?;
        self.ops.validate()?;
        self.grpc.validate()?;
        self.limits.validate()?;
        self.log.validate()?;
        let sources = sources::validate(self.sources)?;
        let telemetry = self.telemetry.validate()?;
        // `auth` after the other sections, so that a missing `auth` hides no mistake in them.
        let names = sources.iter().map(|source| source.name.as_str()).collect();
        let auth = auth::validate(self.auth, &names)?;
        let tls = self.tls.validate()?;
        if auth.uses_client_certs
            && tls
                .grpc
                .as_ref()
                .is_none_or(|grpc| grpc.client_ca.is_none())
        {
            return Err(ConfigError::invalid(
                "auth.keys",
                "client_cert_names need tls.grpc.client_ca to verify client certificates against",
            ));
        }
        Ok(Config {
            server: self.server,
            http,
            ops: self.ops,
            grpc: self.grpc,
            limits: self.limits,
            log: self.log,
            store: self.store,
            streams: self.streams,
            sources,
            auth,
            tls,
            telemetry,
        })
    }
}
