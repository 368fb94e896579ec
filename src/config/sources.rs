//! `[[sources]]`: the names webhooks are addressed to, the provider format each parses and the
//! scheme each authenticates with.
//!
//! A source is checked whole at load: its name, its allowlist, its scheme's parameters, and its
//! secrets, which are resolved and (for Standard Webhooks) decoded. What comes out,
//! [`SourceConfig`], holds only typed values, so building its verifier cannot fail.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::secrets::{Secret, SecretRef, resolve_all, resolve_tokens};
use crate::providers::ProviderKind;
use crate::verify::IpAllowlist;
use crate::verify::standard_webhooks::StandardWebhooksKeys;

/// One validated `[[sources]]` entry. `Debug` shows no secret: [`Secret`] and
/// [`StandardWebhooksKeys`] redact themselves.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name; the `source` of requests and the `{source}` of ingress URLs.
    pub name: String,
    /// How to parse and normalize the body.
    pub provider: ProviderKind,
    /// How to authenticate.
    pub verification: VerificationConfig,
    /// Networks the peer address must be in, checked in addition to the scheme; `None` when
    /// `allowed_cidrs` is empty.
    pub allowed_cidrs: Option<IpAllowlist>,
}

/// A source's verification scheme with its parameters checked and its secrets resolved.
#[derive(Debug, Clone)]
pub enum VerificationConfig {
    /// Standard Webhooks / Svix signatures.
    StandardWebhooks {
        /// The decoded `whsec_…` secrets and `whpk_…` public keys.
        keys: StandardWebhooksKeys,
        /// Accepted clock difference, both directions.
        tolerance: Duration,
    },
    /// A secret token in a query parameter.
    QueryToken {
        /// Never empty.
        param: String,
        /// At least one; several during a rotation.
        tokens: Vec<Secret>,
    },
    /// A secret token in a header (optionally after a prefix such as `Bearer `).
    HeaderToken {
        header: ::http::HeaderName,
        prefix: String,
        /// At least one; several during a rotation.
        tokens: Vec<Secret>,
    },
    /// HTTP Basic authentication.
    BasicAuth { username: String, password: Secret },
    /// Only the peer address is checked, against these networks (at least one).
    IpAllowlist { cidrs: IpAllowlist },
    /// No authentication at all; chosen explicitly and warned about at start-up.
    None,
}

/// Svix and the Standard Webhooks libraries accept five minutes either way.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

/// One `[[sources]]` entry as written. No `Debug`: the table holds literal secrets.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SourceFile {
    name: String,
    provider: ProviderKind,
    /// A table rather than a [`SchemeFile`] so `scheme` may be omitted and default to the
    /// provider's, which serde alone cannot do.
    verification: Option<toml::Table>,
    #[serde(default)]
    allowed_cidrs: Vec<String>,
}

/// A `verification` table as written, `scheme` filled in.
#[derive(Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
enum SchemeFile {
    StandardWebhooks {
        #[serde(default)]
        secrets: Vec<SecretRef>,
        #[serde(default)]
        public_keys: Vec<SecretRef>,
        #[serde(default = "default_tolerance")]
        tolerance_seconds: u64,
    },
    QueryToken {
        #[serde(default = "default_token_param")]
        param: String,
        tokens: Vec<SecretRef>,
    },
    HeaderToken {
        header: String,
        #[serde(default)]
        prefix: String,
        tokens: Vec<SecretRef>,
    },
    BasicAuth {
        username: String,
        password: SecretRef,
    },
    IpAllowlist {
        cidrs: Vec<String>,
    },
    /// A struct variant so `deny_unknown_fields` refuses stray keys (a `tokens` list written
    /// under `none` was meant for another scheme).
    None {},
}

fn default_tolerance() -> u64 {
    DEFAULT_TOLERANCE_SECONDS
}

fn default_token_param() -> String {
    "token".to_owned()
}

/// Validates every source; errors name the entry by index (`sources[2].verification.tokens`).
/// Names are checked for all sources before any source's secrets are read.
pub(super) fn validate(sources: Vec<SourceFile>) -> Result<Vec<SourceConfig>, ConfigError> {
    let mut seen = HashSet::new();
    for (index, source) in sources.iter().enumerate() {
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
    sources
        .into_iter()
        .enumerate()
        .map(|(index, source)| source.validate(&format!("sources[{index}]")))
        .collect()
}

impl SourceFile {
    /// `key` is the source's own (`sources[2]`).
    fn validate(self, key: &str) -> Result<SourceConfig, ConfigError> {
        let allowed_cidrs = if self.allowed_cidrs.is_empty() {
            None
        } else {
            Some(IpAllowlist::parse(
                &format!("{key}.allowed_cidrs"),
                &self.allowed_cidrs,
            )?)
        };
        let vkey = format!("{key}.verification");
        let verification = self.scheme(&vkey)?.validate(&vkey)?;
        Ok(SourceConfig {
            name: self.name,
            provider: self.provider,
            verification,
            allowed_cidrs,
        })
    }

    /// The verification table as a [`SchemeFile`], `scheme` defaulting to the provider's
    /// (`standard_webhooks` for Gigs, `query_token` otherwise).
    fn scheme(&self, vkey: &str) -> Result<SchemeFile, ConfigError> {
        let Some(table) = &self.verification else {
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
        SchemeFile::deserialize(toml::Value::Table(table.clone())).map_err(|error| {
            ConfigError::invalid(vkey, redact_quoted_values(error.message(), &table))
        })
    }
}

impl SchemeFile {
    /// Checks the parameters and resolves the secrets; `vkey` is `sources[N].verification`.
    fn validate(self, vkey: &str) -> Result<VerificationConfig, ConfigError> {
        Ok(match self {
            SchemeFile::StandardWebhooks {
                secrets,
                public_keys,
                tolerance_seconds,
            } => VerificationConfig::StandardWebhooks {
                keys: StandardWebhooksKeys::decode(
                    &resolve_all(&format!("{vkey}.secrets"), &secrets)?,
                    &resolve_all(&format!("{vkey}.public_keys"), &public_keys)?,
                )
                .map_err(|reason| ConfigError::invalid(vkey, reason))?,
                tolerance: Duration::from_secs(tolerance_seconds),
            },
            SchemeFile::QueryToken { param, tokens } => {
                if param.is_empty() {
                    return Err(ConfigError::invalid(format!("{vkey}.param"), "is empty"));
                }
                VerificationConfig::QueryToken {
                    tokens: resolve_tokens(&format!("{vkey}.tokens"), &tokens)?,
                    param,
                }
            }
            SchemeFile::HeaderToken {
                header,
                prefix,
                tokens,
            } => {
                let key = format!("{vkey}.header");
                if header.is_empty() {
                    return Err(ConfigError::invalid(key, "is empty"));
                }
                // A name no request can carry would refuse every webhook, silently.
                let header = ::http::HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| ConfigError::invalid(key, "is not a valid http header name"))?;
                VerificationConfig::HeaderToken {
                    header,
                    prefix,
                    tokens: resolve_tokens(&format!("{vkey}.tokens"), &tokens)?,
                }
            }
            SchemeFile::BasicAuth { username, password } => VerificationConfig::BasicAuth {
                username,
                password: password.resolve(&format!("{vkey}.password"))?,
            },
            SchemeFile::IpAllowlist { cidrs } => {
                let key = format!("{vkey}.cidrs");
                if cidrs.is_empty() {
                    return Err(ConfigError::invalid(key, "needs at least one cidr"));
                }
                VerificationConfig::IpAllowlist {
                    cidrs: IpAllowlist::parse(&key, &cidrs)?,
                }
            }
            SchemeFile::None {} => VerificationConfig::None,
        })
    }
}

/// Replaces every string of `table` that `message` quotes: serde's type errors quote the value
/// they refused (`invalid type: string "whsec_…", expected a sequence`), and a misplaced secret
/// must not reach the start-up log.
pub(super) fn redact_quoted_values(message: &str, table: &toml::Table) -> String {
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
