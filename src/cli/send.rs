//! `hooknorm send`: authenticates a body exactly as the source's provider would (signature,
//! token, basic auth) using the secrets in the config, then either calls `VerifyAndNormalize`
//! and prints the normalized event as JSON, or (`--http`) posts it to the HTTP ingress as the
//! provider itself would and prints the ingress's answer.

use std::path::PathBuf;

use base64::Engine;
use chrono::Utc;

use crate::auth::Scope;
use crate::config::{Config, Secret, SourceConfig, VerificationConfig};
use crate::proto::v1::{Header, VerifyAndNormalizeRequest, VerifyAndNormalizeView};

use super::connect::{ClientOptions, ConnectError, connect, default_url};

use super::samples;

/// What `send` needs from the command line (also its clap flags).
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// Configured source name.
    #[arg(long)]
    pub source: String,
    /// JSON body to send instead of a built-in sample.
    #[arg(long, conflicts_with = "sample")]
    pub file: Option<PathBuf>,
    /// Built-in sample name (`hooknorm samples` lists them); the provider's default when neither
    /// this nor `--file` is given.
    #[arg(long)]
    pub sample: Option<String>,
    /// Server URL [default: the config's grpc_listen, https:// with tls.grpc].
    #[arg(long, conflicts_with = "http")]
    pub server: Option<String>,
    /// Post through the HTTP ingress (POST /webhooks/{source}) as the provider would.
    #[arg(long, conflicts_with = "dry_run")]
    pub http: bool,
    /// Ingress base URL for --http [default: http:// and the config's http_listen].
    #[arg(long, requires = "http")]
    pub http_server: Option<String>,
    /// Peer address to report, for ip_allowlist sources (gRPC only: over HTTP the server sees
    /// the real one; believed only from a key with `forwarder = true`).
    #[arg(long, default_value = "127.0.0.1")]
    pub remote_addr: String,
    /// Verify and normalize only; store nothing (gRPC only).
    #[arg(long)]
    pub dry_run: bool,
}

/// Why `send` failed before or while calling the server.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("source `{0}` is not in the config")]
    UnknownSource(String),
    #[error("no sample `{name}` for {provider}; samples: {available}")]
    UnknownSample {
        name: String,
        provider: &'static str,
        available: String,
    },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("server refused the webhook: {code:?} {reason}: {message}")]
    Refused {
        code: tonic::Code,
        reason: String,
        message: String,
    },
    #[error(transparent)]
    Http(#[from] super::http_client::HttpClientError),
    #[error("server refused the webhook: HTTP {status} {reason}: {message}")]
    HttpRefused {
        status: u16,
        reason: String,
        message: String,
    },
    #[error(transparent)]
    Output(#[from] super::output::OutputError),
}

/// Sends one webhook and returns the response rendered as JSON.
pub async fn run(
    config: &Config,
    args: &SendArgs,
    options: &ClientOptions,
) -> Result<String, SendError> {
    let source = config
        .sources
        .iter()
        .find(|source| source.name == args.source)
        .ok_or_else(|| SendError::UnknownSource(args.source.clone()))?;
    let body = match &args.file {
        Some(path) => std::fs::read(path).map_err(|source| SendError::ReadFile {
            path: path.clone(),
            source,
        })?,
        None => sample_body(source, args.sample.as_deref())?
            .as_bytes()
            .to_vec(),
    };
    let mut request = authenticated_request(source, body)?;
    if args.http {
        let base = args
            .http_server
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.server.http_listen));
        return post_to_ingress(&base, request).await;
    }
    request.remote_addr = args.remote_addr.clone();
    request.dry_run = args.dry_run;

    let url = args.server.clone().unwrap_or_else(|| default_url(config));
    let key = options.key_for(Some(config), Scope::Ingest);
    let mut client = connect(&url, key.as_ref(), options).await?;
    let response = client
        .verify_and_normalize(request)
        .await
        .map_err(|status| {
            use tonic_types::StatusExt;
            SendError::Refused {
                code: status.code(),
                reason: status
                    .get_details_error_info()
                    .map(|info| info.reason)
                    .unwrap_or_default(),
                message: status.message().to_owned(),
            }
        })?
        .into_inner();
    Ok(super::output::to_json(
        "hooknorm.v1.VerifyAndNormalizeResponse",
        &response,
        true,
    )?)
}

/// Posts the request through the HTTP ingress; the answer's JSON, pretty-printed, on success.
async fn post_to_ingress(
    base: &str,
    request: VerifyAndNormalizeRequest,
) -> Result<String, SendError> {
    let headers: Vec<(String, String)> = request
        .headers
        .into_iter()
        .map(|header| (header.name, header.value))
        .collect();
    let answer =
        super::http_client::post(base, &request.request_uri, &headers, request.body).await?;
    let json: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
    if !answer.status.is_success() {
        let text = |key: &str| {
            json.as_ref()
                .and_then(|json| json["error"][key].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        return Err(SendError::HttpRefused {
            status: answer.status.as_u16(),
            reason: text("reason"),
            message: text("message"),
        });
    }
    Ok(match json {
        Some(json) => serde_json::to_string_pretty(&json).unwrap_or_else(|_| json.to_string()),
        None => String::from_utf8_lossy(&answer.body).into_owned(),
    })
}

fn sample_body(source: &SourceConfig, name: Option<&str>) -> Result<&'static str, SendError> {
    samples::find(source.provider, name)
        .map(|sample| sample.body)
        .ok_or_else(|| SendError::UnknownSample {
            name: name.unwrap_or_default().to_owned(),
            provider: source.provider.name(),
            available: samples::SAMPLES
                .iter()
                .filter(|sample| sample.provider == source.provider)
                .map(|sample| sample.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Builds the request a provider's delivery would produce: headers and URI carrying the
/// source's credentials, signed now with a fresh message id.
pub fn authenticated_request(
    source: &SourceConfig,
    body: Vec<u8>,
) -> Result<VerifyAndNormalizeRequest, SendError> {
    let now = Utc::now();
    let mut headers = vec![Header {
        name: "content-type".into(),
        value: "application/json".into(),
    }];
    let mut request_uri = format!("/webhooks/{}", source.name);
    match &source.verification {
        VerificationConfig::StandardWebhooks { keys, .. } => {
            let signer = keys.signer().ok_or_else(|| {
                SendError::Sign("source has only v1a public keys; send needs an hmac secret".into())
            })?;
            let msg_id = format!("msg_{}", now.timestamp_nanos_opt().unwrap_or_default());
            let timestamp = now.timestamp();
            headers.push(header("webhook-id", &msg_id));
            headers.push(header("webhook-timestamp", &timestamp.to_string()));
            headers.push(header(
                "webhook-signature",
                &signer.sign(&msg_id, timestamp, &body),
            ));
        }
        VerificationConfig::QueryToken { param, tokens } => {
            let token = first_token(tokens)?;
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair(param, token.expose())
                .finish();
            request_uri = format!("{request_uri}?{query}");
        }
        VerificationConfig::HeaderToken {
            header: name,
            prefix,
            tokens,
        } => {
            let token = first_token(tokens)?;
            headers.push(header(
                name.as_str(),
                &format!("{prefix}{}", token.expose()),
            ));
        }
        VerificationConfig::BasicAuth { username, password } => {
            let credentials = base64::engine::general_purpose::STANDARD
                .encode(format!("{username}:{}", password.expose()));
            headers.push(header("authorization", &format!("Basic {credentials}")));
        }
        VerificationConfig::IpAllowlist { .. } | VerificationConfig::None => {}
    }
    Ok(VerifyAndNormalizeRequest {
        source: source.name.clone(),
        headers,
        body,
        request_uri,
        remote_addr: String::new(),
        received_at: None,
        dry_run: false,
        view: VerifyAndNormalizeView::Full.into(),
    })
}

fn first_token(tokens: &[Secret]) -> Result<&Secret, SendError> {
    tokens
        .first()
        .ok_or_else(|| SendError::Sign("source has no token configured".into()))
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}
