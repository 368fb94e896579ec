//! `[store.nats]`: the NATS JetStream backend (`store.backend = "nats"`): which servers, how to
//! authenticate, TLS, the stream and its limits, and how long an append may wait. Secrets are
//! resolved at load like every other secret; a bad value is an error naming its key.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use super::secrets::{Secret, SecretRef};

/// `[store.nats]`, as written and, after validation, with its credentials resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`, or `host:port`); the client connects
    /// to any one and learns the rest of the cluster from it.
    #[serde(default = "default_servers")]
    pub servers: Vec<String>,
    /// The connection's name as the servers list it (monitoring, `nats server report`).
    #[serde(default = "default_client_name")]
    pub client_name: String,
    /// User name for user/password authentication (with `password`).
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Token authentication.
    #[serde(default)]
    pub token: Option<SecretRef>,
    /// NKey authentication: the user's seed (`SU…`).
    #[serde(default)]
    pub nkey_seed: Option<SecretRef>,
    /// JWT authentication: the contents of a `.creds` file (usually `{ file = "/…/user.creds" }`).
    #[serde(default)]
    pub credentials: Option<SecretRef>,
    #[serde(default)]
    pub tls: NatsTlsConfig,
    /// The JetStream stream that holds the log.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subjects are `<prefix>.events.<source>.<type>` and `<prefix>.retention`.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// Copies JetStream keeps of every message: 1, or 3 on a cluster of three or more servers.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// The stream's own limit on message age, in seconds (0: none). At least
    /// `store.dedup_window_seconds` when set, so a replica rebuilt from the stream knows every
    /// delivery that can still be recognized.
    #[serde(default)]
    pub max_age_seconds: u64,
    /// The stream's limit on its size, in bytes (0: none); the oldest messages go first.
    #[serde(default)]
    pub max_bytes: u64,
    /// Whether hooknorm creates the stream when it is missing (true), or refuses to start
    /// without it (false, for streams an operator manages). An existing stream is never altered:
    /// one with other settings is a start-up error.
    #[serde(default = "default_true")]
    pub create_stream: bool,
    /// How long connecting at start-up may take, in seconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_seconds: u64,
    /// How long an append waits for JetStream to acknowledge the write (replicated), and the
    /// local index to apply it, in seconds; past it the caller gets 503 and retries.
    #[serde(default = "default_append_timeout")]
    pub append_timeout_seconds: u64,
    /// Where this replica keeps its local index (an SQLite file rebuilt from the stream when
    /// missing); `store.path` when unset.
    #[serde(default)]
    pub index_path: Option<PathBuf>,
    /// Filled in by validation from the fields above.
    #[serde(skip)]
    pub auth: NatsAuth,
}

/// `[store.nats.tls]`: TLS to the servers (on whenever any of these is set, or a `tls://` URL).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTlsConfig {
    /// PEM file of the CA(s) that signed the servers' certificates (the system roots otherwise).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) and its key, for servers that verify clients.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Require TLS even with `nats://` URLs.
    #[serde(default)]
    pub required: bool,
}

impl NatsTlsConfig {
    pub fn enabled(&self) -> bool {
        self.required || self.ca_file.is_some() || self.cert_file.is_some()
    }
}

/// How the client authenticates, resolved at load.
#[derive(Debug, Clone, Default)]
pub enum NatsAuth {
    #[default]
    None,
    UserPassword {
        user: String,
        password: Secret,
    },
    Token(Secret),
    NKey(Secret),
    Credentials(Secret),
}

fn default_servers() -> Vec<String> {
    vec!["nats://127.0.0.1:4222".to_owned()]
}

fn default_client_name() -> String {
    "hooknorm".to_owned()
}

fn default_stream() -> String {
    "HOOKNORM".to_owned()
}

fn default_subject_prefix() -> String {
    "hooknorm".to_owned()
}

fn default_replicas() -> usize {
    1
}

fn default_true() -> bool {
    true
}

fn default_connect_timeout() -> u64 {
    5
}

/// Under Abowire's 5 s answer budget with the request's other work.
fn default_append_timeout() -> u64 {
    3
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            servers: default_servers(),
            client_name: default_client_name(),
            user: None,
            password: None,
            token: None,
            nkey_seed: None,
            credentials: None,
            tls: NatsTlsConfig::default(),
            stream: default_stream(),
            subject_prefix: default_subject_prefix(),
            replicas: default_replicas(),
            max_age_seconds: 0,
            max_bytes: 0,
            create_stream: true,
            connect_timeout_seconds: default_connect_timeout(),
            append_timeout_seconds: default_append_timeout(),
            index_path: None,
            auth: NatsAuth::None,
        }
    }
}

impl NatsConfig {
    /// Checks what serde cannot and resolves the credentials; every error names its key.
    pub(super) fn validate(&mut self, dedup_window_seconds: u64) -> Result<(), ConfigError> {
        if self.servers.is_empty() {
            return Err(ConfigError::invalid(
                "store.nats.servers",
                "needs at least one server",
            ));
        }
        for (index, server) in self.servers.iter().enumerate() {
            server.parse::<async_nats::ServerAddr>().map_err(|error| {
                ConfigError::invalid(format!("store.nats.servers[{index}]"), error.to_string())
            })?;
        }
        if !valid_stream_name(&self.stream) {
            return Err(ConfigError::invalid(
                "store.nats.stream",
                "must be non-empty without spaces, `.`, `*`, `>`, `/` or `\\`",
            ));
        }
        if !valid_subject_prefix(&self.subject_prefix) {
            return Err(ConfigError::invalid(
                "store.nats.subject_prefix",
                "must be dot-separated tokens of letters, digits, `_` and `-`",
            ));
        }
        if !matches!(self.replicas, 1 | 3) {
            return Err(ConfigError::invalid(
                "store.nats.replicas",
                "must be 1 or 3",
            ));
        }
        if self.max_age_seconds != 0 && self.max_age_seconds < dedup_window_seconds {
            return Err(ConfigError::invalid(
                "store.nats.max_age_seconds",
                format!(
                    "must be 0 or at least store.dedup_window_seconds ({dedup_window_seconds}): \
                     a replica rebuilt from the stream must see every delivery still in the window"
                ),
            ));
        }
        if i64::try_from(self.max_bytes).is_err() {
            return Err(ConfigError::invalid("store.nats.max_bytes", "is too large"));
        }
        for (key, value) in [
            (
                "store.nats.connect_timeout_seconds",
                self.connect_timeout_seconds,
            ),
            (
                "store.nats.append_timeout_seconds",
                self.append_timeout_seconds,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        self.validate_tls()?;
        self.auth = self.resolve_auth()?;
        Ok(())
    }

    fn validate_tls(&self) -> Result<(), ConfigError> {
        let tls = &self.tls;
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err(ConfigError::invalid(
                "store.nats.tls.key_file",
                "cert_file and key_file go together",
            ));
        }
        for (key, path) in [
            ("store.nats.tls.ca_file", &tls.ca_file),
            ("store.nats.tls.cert_file", &tls.cert_file),
            ("store.nats.tls.key_file", &tls.key_file),
        ] {
            if let Some(path) = path
                && let Err(error) = std::fs::metadata(path)
            {
                return Err(ConfigError::invalid(
                    key,
                    format!("cannot read {}: {error}", path.display()),
                ));
            }
        }
        Ok(())
    }

    fn resolve_auth(&self) -> Result<NatsAuth, ConfigError> {
        let given = [
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
            self.nkey_seed.is_some(),
            self.credentials.is_some(),
        ];
        if given.iter().filter(|given| **given).count() > 1 {
            return Err(ConfigError::invalid(
                "store.nats",
                "set at most one of user/password, token, nkey_seed and credentials",
            ));
        }
        if let Some(token) = &self.token {
            return Ok(NatsAuth::Token(token.resolve("store.nats.token")?));
        }
        if let Some(seed) = &self.nkey_seed {
            let seed = seed.resolve("store.nats.nkey_seed")?;
            if !seed.expose().starts_with("SU") {
                return Err(ConfigError::invalid(
                    "store.nats.nkey_seed",
                    "is not a user seed (it starts with `SU`)",
                ));
            }
            return Ok(NatsAuth::NKey(seed));
        }
        if let Some(credentials) = &self.credentials {
            let credentials = credentials.resolve("store.nats.credentials")?;
            if !credentials.expose().contains("NATS USER JWT") {
                return Err(ConfigError::invalid(
                    "store.nats.credentials",
                    "is not a .creds file (no `NATS USER JWT` section)",
                ));
            }
            return Ok(NatsAuth::Credentials(credentials));
        }
        match (&self.user, &self.password) {
            (Some(user), Some(password)) if !user.is_empty() => Ok(NatsAuth::UserPassword {
                user: user.clone(),
                password: password.resolve("store.nats.password")?,
            }),
            (None, None) => Ok(NatsAuth::None),
            (_, None) => Err(ConfigError::invalid(
                "store.nats.password",
                "is required with store.nats.user",
            )),
            _ => Err(ConfigError::invalid(
                "store.nats.user",
                "is required with store.nats.password",
            )),
        }
    }
}

fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        })
}

fn valid_subject_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        })
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{load as load_toml, load_with_env};
    use crate::config::{Config, NatsAuth, StoreBackend};

    fn load(nats: &str) -> Result<Config, String> {
        load_toml(&format!(
            "[store]\nbackend = \"nats\"\n\n[store.nats]\n{nats}"
        ))
        .map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_and_credentials_resolve_at_load() {
        let config = load("").unwrap();
        assert_eq!(config.store.backend, StoreBackend::Nats);
        let nats = &config.store.nats;
        assert_eq!(nats.servers, ["nats://127.0.0.1:4222"]);
        assert_eq!((nats.stream.as_str(), nats.replicas), ("HOOKNORM", 1));
        assert!(nats.create_stream);
        assert!(matches!(nats.auth, NatsAuth::None));

        let config = load(
            "servers = [\"nats://a:4222\", \"tls://b:4222\", \"c\"]\nuser = \"hn\"\n\
             password = \"s3cret\"\nreplicas = 3\n",
        )
        .unwrap();
        match &config.store.nats.auth {
            NatsAuth::UserPassword { user, password } => {
                assert_eq!((user.as_str(), password.expose()), ("hn", "s3cret"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "secrets stay hidden"
        );
        let config = load("token = { env = \"PATH\" }\n").unwrap();
        assert!(matches!(config.store.nats.auth, NatsAuth::Token(_)));
    }

    #[test]
    fn bad_settings_name_their_key() {
        for (nats, key) in [
            ("servers = []\n", "store.nats.servers"),
            ("servers = [\"nats://h:port\"]\n", "store.nats.servers[0]"),
            ("replicas = 2\n", "store.nats.replicas"),
            ("stream = \"a.b\"\n", "store.nats.stream"),
            ("subject_prefix = \"a.>\"\n", "store.nats.subject_prefix"),
            ("max_age_seconds = 60\n", "store.nats.max_age_seconds"),
            (
                "append_timeout_seconds = 0\n",
                "store.nats.append_timeout_seconds",
            ),
            ("user = \"hn\"\n", "store.nats.password"),
            ("token = \"t\"\nnkey_seed = \"SUAB\"\n", "store.nats"),
            ("nkey_seed = \"UAB\"\n", "store.nats.nkey_seed"),
            (
                "credentials = \"not a creds file\"\n",
                "store.nats.credentials",
            ),
            (
                "token = { env = \"HOOKNORM_NO_SUCH_VAR\" }\n",
                "store.nats.token",
            ),
            (
                "tls = { cert_file = \"/etc/hostname\" }\n",
                "store.nats.tls.key_file",
            ),
            (
                "tls = { ca_file = \"/no/such/ca.pem\" }\n",
                "store.nats.tls.ca_file",
            ),
            ("no_such_key = 1\n", "no_such_key"),
        ] {
            let error = load(nats).expect_err(nats);
            assert!(error.contains(key), "{nats:?}: {error}");
        }
    }

    #[test]
    fn the_backend_and_servers_come_from_the_environment_too() {
        let config = load_with_env("", |name| match name {
            "HOOKNORM_STORE_BACKEND" => Some("nats".into()),
            "HOOKNORM_NATS_SERVERS" => Some("nats://a:4222, nats://b:4222".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.store.backend, StoreBackend::Nats);
        assert_eq!(
            config.store.nats.servers,
            ["nats://a:4222", "nats://b:4222"]
        );
        let error = load_with_env("", |name| {
            (name == "HOOKNORM_STORE_BACKEND").then(|| "postgres".into())
        })
        .unwrap_err();
        assert!(
            error.to_string().contains("HOOKNORM_STORE_BACKEND"),
            "{error}"
        );
    }

    #[test]
    fn the_nats_table_is_ignored_by_the_embedded_backend() {
        let config = load_toml("[store.nats]\nreplicas = 2\n").unwrap();
        assert_eq!(config.store.backend, StoreBackend::Sqlite);
    }
}
