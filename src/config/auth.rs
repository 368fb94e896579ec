//! `[auth]`: who may call the gRPC API. Either `auth = "none"` (written explicitly, warned
//! about at start-up) or `[[auth.keys]]` entries, each a key (a secret reference, or only its
//! SHA-256 digest) and/or client-certificate names, with the scopes, sources and forwarder
//! permission they grant. Resolved at load into an [`Authenticator`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::secrets::{Secret, SecretRef};
use crate::auth::{Authenticator, KeyDigest, Principal, Scope};

/// How far a forwarder's `received_at` may be from now by default: the five minutes Standard
/// Webhooks allows for signatures, so a forwarder cannot stretch a provider's own tolerance.
pub const DEFAULT_RECEIVED_AT_SKEW_SECONDS: u64 = 300;

/// Keys shorter than this are refused: an API key must be unguessable.
const MIN_KEY_LENGTH: usize = 16;

/// `[auth]`, validated.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub authenticator: Authenticator,
    /// Whether any key lists `client_cert_names` (then gRPC TLS must verify client certificates).
    pub uses_client_certs: bool,
    /// The keys whose value the config holds (not only a digest), in config order: what the
    /// CLI presents when given no `--api-key`.
    pub client_keys: Vec<(Secret, Arc<Principal>)>,
}

impl AuthConfig {
    /// The key a client of this config should present for `scope`: the first with the scope,
    /// preferring one that may use every source. `None` with `auth = "none"` (none needed) or
    /// when the config holds only digests.
    pub fn client_key(&self, scope: Scope) -> Option<&Secret> {
        let with_scope = || {
            self.client_keys
                .iter()
                .filter(move |(_, principal)| principal.scopes.contains(&scope))
        };
        with_scope()
            .find(|(_, principal)| principal.sources.is_none())
            .or_else(|| with_scope().next())
            .map(|(key, _)| key)
    }
}

/// `[auth]` as written, after `auth` turned out to be a table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    keys: Vec<KeyFile>,
    #[serde(default = "default_skew")]
    received_at_skew_seconds: u64,
}

fn default_skew() -> u64 {
    DEFAULT_RECEIVED_AT_SKEW_SECONDS
}

/// One `[[auth.keys]]` entry as written. No `Debug`: it may hold a literal key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    name: String,
    #[serde(default)]
    key: Option<SecretRef>,
    #[serde(default)]
    key_sha256: Option<String>,
    #[serde(default)]
    client_cert_names: Vec<String>,
    scopes: Vec<Scope>,
    #[serde(default)]
    sources: Option<Vec<String>>,
    #[serde(default)]
    forwarder: bool,
}

/// Validates `auth` as written (`None`: the key is absent) against the configured `sources`.
pub(super) fn validate(
    value: Option<toml::Value>,
    sources: &HashSet<&str>,
) -> Result<AuthConfig, ConfigError> {
    let table = match value {
        None => {
            return Err(ConfigError::invalid(
                "auth",
                "is required: configure `[[auth.keys]]`, or write `auth = \"none\"` (before any \
                 table) to let any caller that reaches the grpc port ingest and read",
            ));
        }
        Some(toml::Value::String(mode)) if mode == "none" => {
            return Ok(AuthConfig {
                authenticator: Authenticator::open(),
                uses_client_certs: false,
                client_keys: Vec::new(),
            });
        }
        Some(toml::Value::Table(table)) => table,
        Some(_) => {
            return Err(ConfigError::invalid(
                "auth",
                "must be the string \"none\" or an [auth] table",
            ));
        }
    };
    let file = AuthFile::deserialize(toml::Value::Table(table.clone())).map_err(|error| {
        ConfigError::invalid(
            "auth",
            super::sources::redact_quoted_values(error.message(), &table),
        )
    })?;
    if file.keys.is_empty() {
        return Err(ConfigError::invalid(
            "auth.keys",
            "needs at least one key (or write `auth = \"none\"`)",
        ));
    }
    if file.received_at_skew_seconds == 0 {
        return Err(ConfigError::invalid(
            "auth.received_at_skew_seconds",
            "must be greater than 0",
        ));
    }
    let skew = Duration::from_secs(file.received_at_skew_seconds);
    let mut names = HashSet::new();
    let mut digests: Vec<(KeyDigest, Arc<Principal>)> = Vec::new();
    let mut cert_names = HashMap::new();
    let mut client_keys = Vec::new();
    for (index, key) in file.keys.into_iter().enumerate() {
        let at = format!("auth.keys[{index}]");
        if key.name.is_empty() || !names.insert(key.name.clone()) {
            return Err(ConfigError::invalid(
                format!("{at}.name"),
                "must be non-empty and unique",
            ));
        }
        let secret = key_secret(&at, key.key.as_ref(), key.key_sha256.as_deref())?;
        let digest = match (&secret, key.key_sha256.as_deref()) {
            (Some(secret), _) => Some(KeyDigest::of(secret.expose())),
            (None, Some(hex)) => Some(KeyDigest::from_hex(hex).ok_or_else(|| {
                ConfigError::invalid(
                    format!("{at}.key_sha256"),
                    "must be 64 hex digits (e.g. `printf %s \"$KEY\" | sha256sum`)",
                )
            })?),
            (None, None) => None,
        };
        if digest.is_none() && key.client_cert_names.is_empty() {
            return Err(ConfigError::invalid(
                at,
                "needs `key`, `key_sha256` or `client_cert_names`",
            ));
        }
        let principal = Arc::new(principal(&at, &key, skew, sources)?);
        if let Some(digest) = digest {
            if digests.iter().any(|(seen, _)| *seen == digest) {
                return Err(ConfigError::invalid(
                    format!("{at}.key"),
                    "is the same key as an earlier entry's",
                ));
            }
            digests.push((digest, principal.clone()));
        }
        if let Some(secret) = secret {
            client_keys.push((secret, principal.clone()));
        }
        for name in key.client_cert_names {
            if cert_names.insert(name.clone(), principal.clone()).is_some() {
                return Err(ConfigError::invalid(
                    format!("{at}.client_cert_names"),
                    format!("`{name}` is listed by an earlier entry too"),
                ));
            }
        }
    }
    Ok(AuthConfig {
        uses_client_certs: !cert_names.is_empty(),
        authenticator: Authenticator::with_keys(digests, cert_names),
        client_keys,
    })
}

/// The entry's key, resolved, if it gives one (`key_sha256` gives only its digest); at most
/// one of the two.
fn key_secret(
    at: &str,
    key: Option<&SecretRef>,
    key_sha256: Option<&str>,
) -> Result<Option<Secret>, ConfigError> {
    match (key, key_sha256) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            at,
            "has both `key` and `key_sha256`; keep one",
        )),
        (Some(key), None) => {
            let key_at = format!("{at}.key");
            let secret = key.resolve(&key_at)?;
            if secret.expose().len() < MIN_KEY_LENGTH {
                return Err(ConfigError::invalid(
                    key_at,
                    format!(
                        "is shorter than {MIN_KEY_LENGTH} characters; use a random one, e.g. \
                         `openssl rand -hex 32`"
                    ),
                ));
            }
            Ok(Some(secret))
        }
        (None, _) => Ok(None),
    }
}

fn principal(
    at: &str,
    key: &KeyFile,
    skew: Duration,
    sources: &HashSet<&str>,
) -> Result<Principal, ConfigError> {
    let scopes: BTreeSet<Scope> = key.scopes.iter().copied().collect();
    if scopes.is_empty() {
        return Err(ConfigError::invalid(
            format!("{at}.scopes"),
            "needs at least one of \"ingest\", \"read\"",
        ));
    }
    let allowed = match &key.sources {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ConfigError::invalid(
                format!("{at}.sources"),
                "is empty; leave it out to allow every source",
            ));
        }
        Some(list) => {
            if let Some((index, unknown)) = list
                .iter()
                .enumerate()
                .find(|(_, name)| !sources.contains(name.as_str()))
            {
                return Err(ConfigError::invalid(
                    format!("{at}.sources[{index}]"),
                    format!("`{unknown}` is not a configured source"),
                ));
            }
            Some(list.iter().cloned().collect())
        }
    };
    Ok(Principal {
        name: key.name.clone(),
        scopes,
        sources: allowed,
        forwarder: key.forwarder,
        received_at_skew: Some(skew),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use crate::auth::Scope;

    const SOURCES: &str = "[[sources]]\nname = \"gigs\"\nprovider = \"gigs\"\n\
                           verification = { secrets = [\"whsec_eA==\"] }\n";

    fn load(auth: &str) -> Result<Config, String> {
        Config::from_toml(&format!("{SOURCES}{auth}")).map_err(|error| error.to_string())
    }

    fn entry(text: &str) -> String {
        format!("[auth]\n[[auth.keys]]\nname = \"a\"\n{text}\n")
    }

    #[test]
    fn auth_must_be_configured_or_none_explicitly() {
        let error = load("").unwrap_err();
        assert!(
            error.contains("`auth`") && error.contains("auth = \"none\""),
            "{error}"
        );
        let open = Config::from_toml(&format!("auth = \"none\"\n{SOURCES}")).unwrap();
        assert!(open.auth.authenticator.is_open());
        let error = Config::from_toml(&format!("auth = \"nobody\"\n{SOURCES}")).unwrap_err();
        assert!(error.to_string().contains("`auth`"), "{error}");
        assert!(load("[auth]\n").unwrap_err().contains("auth.keys"));
    }

    #[test]
    fn keys_resolve_and_the_cli_gets_one_with_the_scope() {
        let digest = hex::encode(crate::auth::KeyDigest::of("digest-only-key-0123").0);
        let config = load(&format!(
            "[auth]\n\
             [[auth.keys]]\nname = \"narrow\"\nkey = \"narrow-key-0123456789\"\n\
             scopes = [\"read\"]\nsources = [\"gigs\"]\n\
             [[auth.keys]]\nname = \"wide\"\nkey = \"wide-key-0123456789\"\n\
             scopes = [\"read\", \"ingest\"]\n\
             [[auth.keys]]\nname = \"hashed\"\nkey_sha256 = \"{digest}\"\nscopes = [\"read\"]\n"
        ))
        .unwrap();
        let auth = &config.auth;
        let found = |key: &str| {
            auth.authenticator
                .authenticate(Some(key), [])
                .map(|p| p.name.clone())
        };
        assert_eq!(found("narrow-key-0123456789").unwrap(), "narrow");
        assert_eq!(found("digest-only-key-0123").unwrap(), "hashed");
        assert!(found("wide-key-012345678").is_err());
        let key = |scope| auth.client_key(scope).map(|key| key.expose().to_owned());
        assert_eq!(key(Scope::Read).as_deref(), Some("wide-key-0123456789"));
        assert_eq!(key(Scope::Ingest).as_deref(), Some("wide-key-0123456789"));
        assert!(!format!("{config:?}").contains("key-0123456789"));
    }

    #[test]
    fn bad_keys_name_their_key_and_never_show_a_secret() {
        for (text, key) in [
            ("key = \"short\"\nscopes = [\"read\"]", "auth.keys[0].key"),
            (
                "key = \"long-enough-key-0123\"\nkey_sha256 = \"00\"\nscopes = [\"read\"]",
                "auth.keys[0]",
            ),
            (
                "key_sha256 = \"abc\"\nscopes = [\"read\"]",
                "auth.keys[0].key_sha256",
            ),
            ("scopes = [\"read\"]", "auth.keys[0]"),
            (
                "key = \"long-enough-key-0123\"\nscopes = []",
                "auth.keys[0].scopes",
            ),
            (
                "key = \"long-enough-key-0123\"\nscopes = [\"read\"]\nsources = [\"gigs\", \"nope\"]",
                "auth.keys[0].sources[1]",
            ),
            (
                "key = \"long-enough-key-0123\"\nscopes = [\"read\"]\nsources = []",
                "auth.keys[0].sources",
            ),
            (
                "key = { env = \"HN_SURELY_UNSET_KEY_VAR\" }\nscopes = [\"read\"]",
                "auth.keys[0].key",
            ),
            (
                "key = \"long-enough-key-0123\"\nscopes = [\"read\"]\nclient_cert_names = [\"x\"]",
                "auth.keys",
            ),
        ] {
            let error = load(&entry(text)).unwrap_err();
            assert!(error.contains(key), "{text}: {error}");
            assert!(!error.contains("long-enough"), "{error}");
        }
        let error = load(&entry(
            "key = \"long-enough-key-0123\"\nscopes = [\"write\"]",
        ))
        .unwrap_err();
        assert!(
            error.contains("auth") && !error.contains("long-enough"),
            "{error}"
        );
        let error = load(&entry("key = \"long-enough-key-0123\"\nscope = [\"read\"]")).unwrap_err();
        assert!(
            error.contains("auth") && !error.contains("long-enough"),
            "{error}"
        );
        let twice = format!(
            "{}[[auth.keys]]\nname = \"b\"\nkey = \"long-enough-key-0123\"\nscopes = [\"read\"]\n",
            entry("key = \"long-enough-key-0123\"\nscopes = [\"read\"]")
        );
        let error = load(&twice).unwrap_err();
        assert!(error.contains("auth.keys[1].key"), "{error}");
        let same_name = twice.replace(
            "name = \"b\"\nkey = \"long-enough-key-0123\"",
            "name = \"a\"\nkey = \"other-long-key-0123\"",
        );
        assert!(load(&same_name).unwrap_err().contains("auth.keys[1].name"));
    }

    #[test]
    fn tls_files_are_checked_at_load() {
        let auth = "auth = \"none\"\n";
        let error = Config::from_toml(&format!(
            "{auth}[tls.grpc]\ncert = \"/surely/not/here.crt\"\nkey = \"/surely/not/here.key\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("tls.grpc") && error.contains("here.crt"),
            "{error}"
        );
        let error = Config::from_toml(&format!(
            "{auth}[tls.grpc]\ncert = \"a\"\nkey = \"b\"\nrequire_client_cert = true\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("tls.grpc.require_client_cert"), "{error}");
        let error = Config::from_toml(&format!("{auth}[tls]\nreload_interval_seconds = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("tls.reload_interval_seconds"), "{error}");
        let error = Config::from_toml(&format!(
            "{auth}[tls.http]\ncert = \"a\"\nkey = \"b\"\nclient_ca = \"c\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("client_ca"), "{error}");
    }
}
