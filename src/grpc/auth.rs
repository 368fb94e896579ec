//! Authentication in front of `hooknorm.v1.NormalizerService`: reads `authorization: Bearer
//! <key>` and the TLS client certificate, asks [`Authenticator`] who the caller is, checks the
//! method's scope, and passes the [`Caller`] to the handlers in the request's extensions. Every
//! method of the service passes through it, StreamEvents' own route included; health and
//! reflection are mounted beside it and stay open (probes, and `grpcurl list`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::Service;

use crate::auth::{AuthError, Authenticator, Principal, Scope, tls};
use crate::error::log_refusal;

/// The method paths and the scope each needs.
const SCOPES: [(&str, Scope); 4] = [
    (
        "/hooknorm.v1.NormalizerService/VerifyAndNormalize",
        Scope::Ingest,
    ),
    ("/hooknorm.v1.NormalizerService/StreamEvents", Scope::Read),
    ("/hooknorm.v1.NormalizerService/ListEvents", Scope::Read),
    ("/hooknorm.v1.NormalizerService/GetEvent", Scope::Read),
];

/// Who is calling, from where: what the handlers authorize against.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Arc<Principal>,
    /// The connection's peer (over TLS too).
    pub peer: Option<SocketAddr>,
}

impl Caller {
    /// The caller of a request that passed [`Authenticated`]. Absent only if the service was
    /// mounted without it: then nobody is authenticated, and the call is refused.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Caller, AuthError> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or(AuthError::MissingKey)
    }
}

/// Wraps the service; see the module docs.
#[derive(Debug, Clone)]
pub struct Authenticated<S> {
    inner: S,
    authenticator: Arc<Authenticator>,
}

impl<S> Authenticated<S> {
    pub fn new(inner: S, authenticator: Arc<Authenticator>) -> Self {
        Authenticated {
            inner,
            authenticator,
        }
    }
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let scope = SCOPES
            .iter()
            .find(|(method, _)| *method == path)
            .map(|(_, scope)| *scope);
        match authorize(&self.authenticator, &request, scope) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err((error, peer)) => {
                let reason = error.reason();
                if scope == Some(Scope::Ingest) {
                    // The source is in the body, not read yet: unknown here.
                    log_refusal("", reason, peer.map(|peer| peer.ip()), &error);
                } else {
                    let peer = peer.map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
                    // The `grpc` span around this names the method.
                    tracing::info!(%reason, %peer, %error, "call refused");
                }
                let status = super::status(reason, error.to_string(), HashMap::new());
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

/// The caller of `request`, or why it may not call; the peer either way, for the log.
fn authorize<B>(
    authenticator: &Authenticator,
    request: &http::Request<B>,
    scope: Option<Scope>,
) -> Result<Caller, (AuthError, Option<SocketAddr>)> {
    let extensions = request.extensions();
    let plain = extensions.get::<TcpConnectInfo>();
    let secure = extensions.get::<TlsConnectInfo<TcpConnectInfo>>();
    let peer = plain
        .or_else(|| secure.map(TlsConnectInfo::get_ref))
        .and_then(TcpConnectInfo::remote_addr);
    let fail = |error| (error, peer);
    let key = match request.headers().get(http::header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(crate::auth::bearer)
                .ok_or_else(|| fail(AuthError::UnknownKey))?,
        ),
    };
    // Only looked at without a key: parsing the certificate is work a key makes unneeded.
    let cert_names = match (key, secure.and_then(TlsConnectInfo::peer_certs)) {
        (None, Some(certs)) => certs.first().map(tls::client_cert_names),
        _ => None,
    };
    let principal = authenticator
        .authenticate(key, cert_names.iter().flatten().map(String::as_str))
        .map_err(fail)?;
    if let Some(scope) = scope {
        principal.require(scope).map_err(fail)?;
    }
    Ok(Caller { principal, peer })
}
