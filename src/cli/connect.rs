//! The gRPC client the subcommands share: the server's URL (`https://` for TLS, trusting the
//! `--ca-cert` bundle) and the API key sent as `authorization: Bearer <key>` on every call: the
//! one from `--api-key`/`HOOKNORM_API_KEY`, else the config's first key with the scope needed.

use std::path::PathBuf;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::auth::Scope;
use crate::config::{Config, Secret};
use crate::proto::v1::normalizer_service_client::NormalizerServiceClient;

/// A connected client that authenticates every call.
pub type Client = NormalizerServiceClient<InterceptedService<Channel, BearerKey>>;

/// How to reach and authenticate to the server, from the command line.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// `--api-key` / `HOOKNORM_API_KEY`.
    pub api_key: Option<Secret>,
    /// `--ca-cert`: PEM CA certificates to trust for `https://` URLs.
    pub ca_cert: Option<PathBuf>,
}

impl ClientOptions {
    /// The key to present for `scope`: the command line's, else the config's (if loaded).
    pub fn key_for(&self, config: Option<&Config>, scope: Scope) -> Option<Secret> {
        self.api_key
            .clone()
            .or_else(|| config?.auth.client_key(scope).cloned())
    }
}

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        source: tonic::transport::Error,
    },
    #[error("cannot read --ca-cert {path}: {source}")]
    CaCert {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Says nothing of the key's value.
    #[error("the api key is not a valid header value")]
    Key,
}

/// Adds `authorization: Bearer <key>` to every request.
#[derive(Clone)]
pub struct BearerKey(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for BearerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerKey(<redacted>)")
    }
}

impl BearerKey {
    /// Sends no `authorization` (for `auth = "none"` servers).
    pub fn none() -> BearerKey {
        BearerKey(None)
    }

    pub fn new(key: Option<&Secret>) -> Result<BearerKey, ConnectError> {
        key.map(|key| {
            let mut value: MetadataValue<Ascii> = format!("Bearer {}", key.expose())
                .parse()
                .map_err(|_| ConnectError::Key)?;
            value.set_sensitive(true);
            Ok(value)
        })
        .transpose()
        .map(BearerKey)
    }
}

impl Interceptor for BearerKey {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Connects to `url`, presenting `key` on every call.
pub async fn connect(
    url: &str,
    key: Option<&Secret>,
    options: &ClientOptions,
) -> Result<Client, ConnectError> {
    let connect_error = |source| ConnectError::Connect {
        url: url.to_owned(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned()).map_err(connect_error)?;
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(path) = &options.ca_cert {
            let pem = tokio::fs::read(path)
                .await
                .map_err(|source| ConnectError::CaCert {
                    path: path.clone(),
                    source,
                })?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).map_err(connect_error)?;
    }
    let channel = endpoint.connect().await.map_err(connect_error)?;
    Ok(
        NormalizerServiceClient::with_interceptor(channel, BearerKey::new(key)?)
            .max_decoding_message_size(super::MAX_RESPONSE_BYTES),
    )
}

/// The URL of the config's gRPC listener: `https://` when it has TLS.
pub fn default_url(config: &Config) -> String {
    let scheme = if config.tls.grpc.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", config.server.grpc_listen)
}
