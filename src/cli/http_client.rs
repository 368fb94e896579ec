//! A minimal plain-HTTP/1.1 client for `send --http`: one POST on one connection, as a
//! provider's delivery would be. No TLS on purpose: the ingress is plain HTTP behind whatever
//! terminates TLS.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long the whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a POST could not be made or answered.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("`{url}` is not a usable http:// url: {why}")]
    Url { url: String, why: String },
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("http exchange with {authority} failed: {source}")]
    Exchange {
        authority: String,
        source: hyper::Error,
    },
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),
    #[error("no answer from {authority} within {seconds} s")]
    Timeout { authority: String, seconds: u64 },
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: http::StatusCode,
    pub body: Bytes,
}

/// POSTs `body` with `headers` to `base` (`http://host:port`, optionally with a path prefix)
/// joined with `path_and_query`.
pub async fn post(
    base: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<HttpAnswer, HttpClientError> {
    let bad = |why: &str| HttpClientError::Url {
        url: base.to_owned(),
        why: why.to_owned(),
    };
    let uri: Uri = base.parse().map_err(|_| bad("does not parse"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad(
            "only http:// is supported (terminate TLS in front of hooknorm)",
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| bad("has no host"))?
        .to_string();
    let target = format!("{}{path_and_query}", uri.path().trim_end_matches('/'));
    let connect_to = if uri.port().is_some() {
        authority.clone()
    } else {
        format!("{authority}:80")
    };

    let exchange = async {
        let stream =
            TcpStream::connect(&connect_to)
                .await
                .map_err(|source| HttpClientError::Connect {
                    authority: authority.clone(),
                    source,
                })?;
        // Best effort: without it the small request may wait on a delayed ACK; never fatal.
        let _ = stream.set_nodelay(true);
        let exchange_error = |source| HttpClientError::Exchange {
            authority: authority.clone(),
            source,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(exchange_error)?;
        // The connection is driven on its own task; it ends when the answer has been read.
        let driver = tokio::spawn(connection);
        // HTTP/1.1 needs a Host header, and this low-level client does not add one.
        let mut request = Request::post(target).header(header::HOST, &authority);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request.body(Full::new(Bytes::from(body)))?;
        let response = sender.send_request(request).await.map_err(exchange_error)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(exchange_error)?
            .to_bytes();
        driver.abort();
        Ok(HttpAnswer { status, body })
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| HttpClientError::Timeout {
            authority: authority.clone(),
            seconds: TIMEOUT.as_secs(),
        })?
}
