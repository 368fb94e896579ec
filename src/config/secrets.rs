//! Secrets: written literally, or read from an environment variable or a file (how Kubernetes
//! mounts them), and resolved once at load into [`Secret`], whose `Debug` and `Display` never
//! show the value.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

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

/// Resolves every entry of the list at `key`, naming a failing one by index (`key[1]`).
pub(super) fn resolve_all(key: &str, refs: &[SecretRef]) -> Result<Vec<Secret>, ConfigError> {
    refs.iter()
        .enumerate()
        .map(|(index, secret)| secret.resolve(&format!("{key}[{index}]")))
        .collect()
}

/// As [`resolve_all`] for a token list: an empty one would refuse every webhook.
pub(super) fn resolve_tokens(key: &str, refs: &[SecretRef]) -> Result<Vec<Secret>, ConfigError> {
    if refs.is_empty() {
        return Err(ConfigError::invalid(key, "needs at least one token"));
    }
    resolve_all(key, refs)
}

/// A resolved secret. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used for verification or signing.
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
