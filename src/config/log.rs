//! `[log]`: the format and filter of hooknorm's own log lines.

use serde::Deserialize;

use super::ConfigError;

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

impl LogFormat {
    /// Parses `text` or `json`, as in the file; `key` names the setting in errors.
    pub(super) fn parse(key: &str, value: &str) -> Result<LogFormat, ConfigError> {
        match value {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(ConfigError::invalid(key, "expected `text` or `json`")),
        }
    }
}

impl LogConfig {
    /// Checks the filter here, so a typo fails at load (and in `check-config`) even when
    /// `RUST_LOG` overrides it on this run.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        check_level("log.level", &self.level)
    }
}

/// Checks that `level` is a `tracing` filter directive; `key` names the setting in errors.
pub(super) fn check_level(key: &str, level: &str) -> Result<(), ConfigError> {
    tracing_subscriber::EnvFilter::try_new(level)
        .map(drop)
        .map_err(|error| ConfigError::invalid(key, format!("`{level}`: {error}")))
}
