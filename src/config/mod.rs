//! Configuration: one TOML file, then `HOOKNORM_*` environment overrides, validated once.
//!
//! Secrets may be written literally, or read from an environment variable or a file (how
//! Kubernetes mounts them). Resolved secrets are held in [`Secret`], whose `Debug` never shows
//! the value.

mod http;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::providers::ProviderKind;

pub use http::HttpConfig;

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

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub streams: StreamsConfig,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// `[server]`: listen addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listen address.
    #[serde(default = "default_grpc_listen")]
    pub grpc_listen: SocketAddr,
    /// HTTP listen address: webhook ingress (`POST /webhooks/{source}`) and the `/healthz`,
    /// `/readyz` probes. Always on: probes need it even where only gRPC takes webhooks.
    #[serde(default = "default_http_listen")]
    pub http_listen: SocketAddr,
    /// How long in-flight requests get to finish after SIGTERM, in seconds.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace_seconds: u64,
    /// After SIGTERM, how long readiness already answers "shutting down" while both listeners
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

fn default_shutdown_grace() -> u64 {
    20
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            grpc_listen: default_grpc_listen(),
            http_listen: default_http_listen(),
            shutdown_grace_seconds: default_shutdown_grace(),
            drain_seconds: 0,
        }
    }
}

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

/// `[store]`: the durable event log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Which backend keeps the log.
    #[serde(default)]
    pub backend: StoreBackend,
    /// Directory the embedded store keeps its files in (created if missing).
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// How long a redelivered webhook is still recognized as a duplicate, in seconds. Svix
    /// retries Gigs webhooks for about 1.2 days, so the default (7 days) leaves ample margin.
    #[serde(default = "default_dedup_window")]
    pub dedup_window_seconds: u64,
    /// Events stored longer ago than this are removed (seconds, by the server's clock at append,
    /// not the caller's `received_at`; unset keeps them by age).
    #[serde(default)]
    pub retention_max_age_seconds: Option<u64>,
    /// At most this many events are kept (unset keeps them by count).
    #[serde(default)]
    pub retention_max_count: Option<u64>,
    /// How often retention runs, in seconds.
    #[serde(default = "default_retention_interval")]
    pub retention_interval_seconds: u64,
    /// Most appends one group commit may hold.
    #[serde(default = "default_group_commit_max")]
    pub group_commit_max: usize,
    /// Committed events kept in memory for live subscribers (shared by all of them); one that
    /// falls further behind continues by reading the log.
    #[serde(default = "default_live_events")]
    pub live_events: usize,
    /// Bytes of events the live feed holds for subscribers that have not read them yet; past
    /// this, events are announced by sequence only and read from the log by whoever needs them.
    #[serde(default = "default_live_bytes")]
    pub live_bytes: usize,
}

/// `[streams]`: StreamEvents subscriptions.
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

/// The event log backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// One SQLite file (WAL mode) under `store.path`.
    #[default]
    Sqlite,
}

fn default_store_path() -> PathBuf {
    PathBuf::from("hooknorm-data")
}

/// 7 days.
pub const DEFAULT_DEDUP_WINDOW_SECONDS: u64 = 7 * 24 * 3600;

fn default_dedup_window() -> u64 {
    DEFAULT_DEDUP_WINDOW_SECONDS
}

fn default_retention_interval() -> u64 {
    60
}

fn default_group_commit_max() -> usize {
    1024
}

/// About four seconds at 1,000 events/s, so a subscriber that stalls briefly (a GC pause, a
/// burst of other work) catches up from memory rather than with reads of its own.
fn default_live_events() -> usize {
    4096
}

/// Room for the default `live_events` of 2 KiB events; large events make the count moot.
fn default_live_bytes() -> usize {
    16 * 1024 * 1024
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::default(),
            path: default_store_path(),
            dedup_window_seconds: DEFAULT_DEDUP_WINDOW_SECONDS,
            retention_max_age_seconds: None,
            retention_max_count: None,
            retention_interval_seconds: default_retention_interval(),
            group_commit_max: default_group_commit_max(),
            live_events: default_live_events(),
            live_bytes: default_live_bytes(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` for people, `json` for log pipelines.
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `hooknorm=debug,info`.
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// One `[[sources]]` entry: a name webhooks are addressed to, the provider format to parse and
/// the scheme to authenticate with.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name; the `source` of requests and the `{source}` of ingress URLs.
    pub name: String,
    /// How to parse and normalize the body.
    pub provider: ProviderKind,
    /// How to authenticate. Kept as a table so `scheme` may be omitted and default to the
    /// provider's; see [`SourceConfig::verification`].
    #[serde(rename = "verification")]
    pub verification_table: Option<toml::Table>,
    /// CIDRs the peer address must be in, checked in addition to the scheme.
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
}

/// A source's verification scheme and its parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerificationConfig {
    /// Standard Webhooks / Svix signatures.
    StandardWebhooks {
        /// `whsec_…` HMAC secrets (several during rotation).
        #[serde(default)]
        secrets: Vec<SecretRef>,
        /// `whpk_…` ed25519 public keys for `v1a` signatures.
        #[serde(default)]
        public_keys: Vec<SecretRef>,
        /// Accepted clock difference in seconds, both directions.
        #[serde(default = "default_tolerance")]
        tolerance_seconds: u64,
    },
    /// A secret token in a query parameter.
    QueryToken {
        #[serde(default = "default_token_param")]
        param: String,
        tokens: Vec<SecretRef>,
    },
    /// A secret token in a header (optionally after a prefix such as `Bearer `).
    HeaderToken {
        header: String,
        #[serde(default)]
        prefix: String,
        tokens: Vec<SecretRef>,
    },
    /// HTTP Basic authentication.
    BasicAuth {
        username: String,
        password: SecretRef,
    },
    /// Only the peer address is checked.
    IpAllowlist { cidrs: Vec<String> },
    /// No authentication at all; must be chosen explicitly and is warned about at start-up.
    /// A struct variant so `deny_unknown_fields` refuses stray keys (a `tokens` list written
    /// under `none` was meant for another scheme).
    None {},
}

/// Svix and the Standard Webhooks libraries accept five minutes either way.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

fn default_tolerance() -> u64 {
    DEFAULT_TOLERANCE_SECONDS
}

fn default_token_param() -> String {
    "token".to_owned()
}

/// A secret as written in the config: literal, `{ env = "NAME" }` or `{ file = "/path" }`.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum SecretRef {
    Literal(String),
    Env { env: String },
    File { file: PathBuf },
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Literal(_) => f.write_str("Literal(<redacted>)"),
            SecretRef::Env { env } => f.debug_struct("Env").field("env", env).finish(),
            SecretRef::File { file } => f.debug_struct("File").field("file", file).finish(),
        }
    }
}

impl SecretRef {
    /// Reads the secret; `key` names it in errors.
    pub fn resolve(&self, key: &str) -> Result<Secret, ConfigError> {
        let value = match self {
            SecretRef::Literal(value) => value.clone(),
            SecretRef::Env { env } => std::env::var(env).map_err(|_| {
                ConfigError::invalid(key, format!("environment variable {env} is not set"))
            })?,
            SecretRef::File { file } => std::fs::read_to_string(file)
                .map_err(|error| {
                    ConfigError::invalid(key, format!("cannot read {}: {error}", file.display()))
                })?
                // Mounted secret files usually end in a newline that is not part of the secret.
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        };
        if value.is_empty() {
            return Err(ConfigError::invalid(key, "secret is empty"));
        }
        Ok(Secret(value))
    }
}

/// A resolved secret. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used for verification.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The verification table holds literal secrets as written, so only its scheme is shown.
impl std::fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self
            .verification_table
            .as_ref()
            .and_then(|table| table.get("scheme"))
            .and_then(toml::Value::as_str)
            .unwrap_or_else(|| self.provider.default_scheme());
        f.debug_struct("SourceConfig")
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("scheme", &scheme)
            .field("allowed_cidrs", &self.allowed_cidrs)
            .finish_non_exhaustive()
    }
}

/// Replaces every string of `table` that `message` quotes: serde's type errors quote the value
/// they refused (`invalid type: string "whsec_…", expected a sequence`), and a misplaced secret
/// must not reach the start-up log.
fn redact_quoted_values(message: &str, table: &toml::Table) -> String {
    fn strings<'t>(value: &'t toml::Value, out: &mut Vec<&'t str>) {
        match value {
            toml::Value::String(text) => out.push(text),
            toml::Value::Array(items) => items.iter().for_each(|item| strings(item, out)),
            toml::Value::Table(table) => table.values().for_each(|item| strings(item, out)),
            _ => {}
        }
    }
    let mut values = Vec::new();
    table.values().for_each(|value| strings(value, &mut values));
    let mut message = message.to_owned();
    for value in values.into_iter().filter(|value| !value.is_empty()) {
        message = message.replace(&format!("\"{value}\""), "\"<redacted>\"");
    }
    message
}

impl SourceConfig {
    /// The verification scheme and parameters, with `scheme` defaulting to the provider's
    /// (`standard_webhooks` for Gigs, `query_token` otherwise). `key` prefixes error keys.
    pub fn verification(&self, key: &str) -> Result<VerificationConfig, ConfigError> {
        let vkey = format!("{key}.verification");
        let Some(table) = &self.verification_table else {
            return Err(ConfigError::invalid(
                vkey,
                format!(
                    "is required: {} sources use `scheme = \"{}\"` unless told otherwise, and need \
                     its secrets; write `scheme = \"none\"` to accept unauthenticated webhooks",
                    self.provider.name(),
                    self.provider.default_scheme()
                ),
            ));
        };
        let mut table = table.clone();
        table
            .entry("scheme")
            .or_insert_with(|| toml::Value::String(self.provider.default_scheme().to_owned()));
        VerificationConfig::deserialize(toml::Value::Table(table.clone())).map_err(|error| {
            ConfigError::invalid(vkey, redact_quoted_values(error.message(), &table))
        })
    }
}

impl Config {
    /// Reads `path`, applies `HOOKNORM_*` overrides and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::from_toml(&text).map_err(|error| match error {
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
        })?;
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text without environment overrides or validation.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
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

    /// Applies `HOOKNORM_GRPC_LISTEN`, `HOOKNORM_HTTP_LISTEN`, `HOOKNORM_MAX_BODY_BYTES`, `HOOKNORM_STORE_PATH`,
    /// `HOOKNORM_LOG_FORMAT` and `HOOKNORM_LOG_LEVEL`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(value) = var("HOOKNORM_GRPC_LISTEN") {
            self.server.grpc_listen = value.parse().map_err(|error| {
                ConfigError::invalid("HOOKNORM_GRPC_LISTEN", format!("{error}"))
            })?;
        }
        if let Some(value) = var("HOOKNORM_HTTP_LISTEN") {
            self.server.http_listen = value.parse().map_err(|error| {
                ConfigError::invalid("HOOKNORM_HTTP_LISTEN", format!("{error}"))
            })?;
        }
        if let Some(value) = var("HOOKNORM_MAX_BODY_BYTES") {
            self.limits.max_body_bytes = value.parse().map_err(|error| {
                ConfigError::invalid("HOOKNORM_MAX_BODY_BYTES", format!("{error}"))
            })?;
        }
        if let Some(value) = var("HOOKNORM_STORE_PATH") {
            self.store.path = PathBuf::from(value);
        }
        if let Some(value) = var("HOOKNORM_LOG_FORMAT") {
            self.log.format = match value.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::invalid(
                        "HOOKNORM_LOG_FORMAT",
                        "expected `text` or `json`",
                    ));
                }
            };
        }
        if let Some(value) = var("HOOKNORM_LOG_LEVEL") {
            self.log.level = value;
        }
        Ok(())
    }

    /// Checks what serde cannot: unique source names and usable limits. Scheme parameters are
    /// checked when the verifiers are built (`pipeline::Sources::from_config`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.streams.heartbeat_seconds == 0 {
            return Err(ConfigError::invalid(
                "streams.heartbeat_seconds",
                "must be greater than 0",
            ));
        }
        if self.streams.buffer == 0 {
            return Err(ConfigError::invalid(
                "streams.buffer",
                "must be greater than 0",
            ));
        }
        // Zero would end healthy streams whenever their buffer is momentarily full.
        if self.streams.slow_subscriber_timeout_seconds == 0 {
            return Err(ConfigError::invalid(
                "streams.slow_subscriber_timeout_seconds",
                "must be greater than 0",
            ));
        }
        if self.streams.buffer_bytes == 0 {
            return Err(ConfigError::invalid(
                "streams.buffer_bytes",
                "must be greater than 0",
            ));
        }
        if self.store.dedup_window_seconds == 0 {
            return Err(ConfigError::invalid(
                "store.dedup_window_seconds",
                "must be greater than 0",
            ));
        }
        if self.store.retention_max_count == Some(0) {
            return Err(ConfigError::invalid(
                "store.retention_max_count",
                "must be greater than 0 (leave it unset to keep every event)",
            ));
        }
        for (key, value) in [
            (
                "store.retention_interval_seconds",
                self.store.retention_interval_seconds,
            ),
            ("store.group_commit_max", self.store.group_commit_max as u64),
            ("store.live_events", self.store.live_events as u64),
            ("store.live_bytes", self.store.live_bytes as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.server.http_listen == self.server.grpc_listen && self.server.http_listen.port() != 0
        {
            return Err(ConfigError::invalid(
                "server.http_listen",
                "must differ from server.grpc_listen",
            ));
        }
        self.http.validate()?;
        if self.limits.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "limits.max_body_bytes",
                "must be greater than 0",
            ));
        }
        if self.limits.max_event_bytes < MIN_MAX_EVENT_BYTES {
            return Err(ConfigError::invalid(
                "limits.max_event_bytes",
                format!("must be at least {MIN_MAX_EVENT_BYTES}"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (index, source) in self.sources.iter().enumerate() {
            let key = format!("sources[{index}].name");
            if source.name.is_empty()
                || !source
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::invalid(
                    key,
                    "must be non-empty and use only letters, digits, `-` and `_`",
                ));
            }
            if !seen.insert(source.name.as_str()) {
                return Err(ConfigError::invalid(
                    key,
                    format!("duplicate source name `{}`", source.name),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        [server]
        grpc_listen = "127.0.0.1:0"

        [[sources]]
        name = "gigs"
        provider = "gigs"
        verification = { scheme = "standard_webhooks", secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }

        [[sources]]
        name = "abowire"
        provider = "abowire"
        verification = { scheme = "query_token", tokens = [{ env = "HN_TEST_TOKEN" }] }

        [[sources]]
        name = "mm"
        provider = "mobile_manager"
    "#;

    #[test]
    fn parses_sources_with_defaults() {
        let config = Config::from_toml(SAMPLE).unwrap();
        config.validate().unwrap();
        assert_eq!(config.limits.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(config.sources.len(), 3);
        assert!(matches!(
            config.sources[0].verification("sources[0]").unwrap(),
            VerificationConfig::StandardWebhooks {
                tolerance_seconds: 300,
                ..
            }
        ));
        match config.sources[1].verification("sources[1]").unwrap() {
            VerificationConfig::QueryToken { param, tokens } => {
                assert_eq!(param, "token");
                assert_eq!(tokens.len(), 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        let error = config.sources[2].verification("sources[2]").unwrap_err();
        assert!(
            error.to_string().contains("sources[2].verification"),
            "{error}"
        );
    }

    #[test]
    fn scheme_defaults_to_the_providers() {
        let config = Config::from_toml(
            "[[sources]]\nname = \"g\"\nprovider = \"gigs\"\nverification = { secrets = [\"whsec_x\"] }\n\
             [[sources]]\nname = \"a\"\nprovider = \"abowire\"\nverification = { tokens = [\"t\"] }\n\
             [[sources]]\nname = \"m\"\nprovider = \"mobile_manager\"\nverification = { tokens = [\"t\"], bogus = 1 }",
        )
        .unwrap();
        assert!(matches!(
            config.sources[0].verification("sources[0]").unwrap(),
            VerificationConfig::StandardWebhooks { .. }
        ));
        assert!(matches!(
            config.sources[1].verification("sources[1]").unwrap(),
            VerificationConfig::QueryToken { .. }
        ));
        let error = config.sources[2]
            .verification("sources[2]")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("sources[2].verification") && error.contains("bogus"),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = Config::from_toml("[server]\ngrpc_lsten = \"x\"").unwrap_err();
        assert!(error.to_string().contains("grpc_lsten"), "{error}");
        let error =
            Config::from_toml("[[sources]]\nname = \"a\"\nprovider = \"nope\"").unwrap_err();
        assert!(error.to_string().contains("nope"), "{error}");
    }

    #[test]
    fn duplicate_and_bad_names_are_refused() {
        let config = Config::from_toml(
            "[[sources]]\nname = \"a\"\nprovider = \"gigs\"\n[[sources]]\nname = \"a\"\nprovider = \"abowire\"",
        )
        .unwrap();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("sources[1].name"), "{error}");
        let config = Config::from_toml("[[sources]]\nname = \"a b\"\nprovider = \"gigs\"").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("sources[0].name")
        );
    }

    #[test]
    fn secrets_resolve_from_env_and_file_and_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let file = SecretRef::File { file: path };
        assert_eq!(file.resolve("k").unwrap().expose(), "from-file");
        let missing = SecretRef::Env {
            env: "HN_SURELY_NOT_SET_123".into(),
        };
        let error = missing
            .resolve("sources[0].verification.tokens[0]")
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("sources[0].verification.tokens[0]")
        );
        let literal = SecretRef::Literal("hunter2".into());
        assert!(!format!("{literal:?}").contains("hunter2"));
        let secret = literal.resolve("k").unwrap();
        assert!(!format!("{secret:?} {secret}").contains("hunter2"));
    }

    #[test]
    fn literal_secrets_reach_neither_debug_nor_errors() {
        let config = Config::from_toml(
            r#"
[[sources]]
name = "gigs"
provider = "gigs"
verification = { secrets = ["whsec_SUPERSECRETVALUE"] }
"#,
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("SUPERSECRET"), "{shown}");
        assert!(shown.contains("standard_webhooks"), "{shown}");

        // A secret where a list belongs: the key is named, the value is not.
        let misplaced = Config::from_toml(
            r#"
[[sources]]
name = "gigs"
provider = "gigs"
verification = { secrets = "whsec_SUPERSECRETVALUE" }
"#,
        )
        .unwrap();
        let error = misplaced.sources[0]
            .verification("sources[0]")
            .unwrap_err()
            .to_string();
        assert!(error.contains("sources[0].verification"), "{error}");
        assert!(!error.contains("SUPERSECRET"), "{error}");

        // A syntax error on a secret's line gives its position, not the line.
        let error = Config::from_toml("[[sources]]\nname = \"x\"\ntoken = \"SUPERSECRET\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("line 3"), "{error}");
        assert!(!error.contains("SUPERSECRET"), "{error}");
    }

    #[test]
    fn scheme_parameters_that_cannot_work_are_refused() {
        for (verification, key) in [
            (
                r#"{ scheme = "none", tokens = ["t"] }"#,
                "sources[0].verification",
            ),
            (
                r#"{ scheme = "query_token", param = "", tokens = ["t"] }"#,
                "sources[0].verification.param",
            ),
            (
                r#"{ scheme = "header_token", header = "x-token\nx-evil", tokens = ["t"] }"#,
                "sources[0].verification.header",
            ),
        ] {
            let config = Config::from_toml(&format!(
                "[[sources]]\nname = \"a\"\nprovider = \"abowire\"\nverification = {verification}\n"
            ))
            .unwrap();
            let error = crate::pipeline::build_sources(&config)
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{verification}: {error}");
        }
    }

    #[test]
    fn zero_stream_settings_are_refused() {
        for key in [
            "heartbeat_seconds",
            "buffer",
            "slow_subscriber_timeout_seconds",
        ] {
            let config = Config::from_toml(&format!("[streams]\n{key} = 0\n")).unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(&format!("streams.{key}")), "{error}");
        }
    }

    #[test]
    fn a_missing_file_is_explained_once() {
        let error = Config::load(Path::new("/surely/not/here.toml")).unwrap_err();
        let shown = format!("{:#}", anyhow::Error::from(error));
        assert_eq!(shown.matches("No such file").count(), 1, "{shown}");
    }

    #[test]
    fn env_overrides_apply_and_are_checked() {
        let mut config = Config::from_toml(SAMPLE).unwrap();
        config
            .apply_env(|name| match name {
                "HOOKNORM_GRPC_LISTEN" => Some("127.0.0.1:9999".into()),
                "HOOKNORM_HTTP_LISTEN" => Some("[::1]:8081".into()),
                "HOOKNORM_LOG_FORMAT" => Some("json".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.server.grpc_listen.port(), 9999);
        assert_eq!(config.server.http_listen, "[::1]:8081".parse().unwrap());
        assert_eq!(config.log.format, LogFormat::Json);
        let error = config
            .apply_env(|name| (name == "HOOKNORM_MAX_BODY_BYTES").then(|| "lots".into()))
            .unwrap_err();
        assert!(error.to_string().contains("HOOKNORM_MAX_BODY_BYTES"));
    }
}
