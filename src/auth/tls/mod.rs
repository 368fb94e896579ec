//! TLS for both listeners: a rustls server configuration built from PEM files (certificate
//! chain, private key and, for mTLS, the CA bundle client certificates must chain to), kept
//! current by [`reload`] as the files change, and the identity a client certificate carries.
//!
//! The crypto provider is always *ring*, named explicitly rather than taken from the process
//! default, so a build that links another provider too behaves the same.

mod accept;
mod reload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use accept::{HANDSHAKE_TIMEOUT, handshake_failed};
pub use reload::{ReloadingTls, TlsReloader};

/// What the gRPC listener offers in ALPN: HTTP/2 only (gRPC clients such as grpcio insist on it).
pub const GRPC_ALPN: &[&[u8]] = &[b"h2"];

/// What the HTTP listener offers in ALPN: it serves HTTP/1.1 only.
pub const HTTP_ALPN: &[&[u8]] = &[b"http/1.1"];

/// One listener's TLS files, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that client certificates are verified against (mTLS); `None`: no
    /// client certificates are asked for.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse a handshake without a client certificate (else one is optional
    /// and the caller may authenticate with an API key instead).
    pub require_client_cert: bool,
}

/// Why TLS files cannot be used. Names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("{path}: no certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("certificate and key do not make a usable tls configuration: {0}")]
    Config(rustls::Error),
    #[error("{path}: cannot verify client certificates against it: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// The bytes of a listener's files, read together so a change of any is one reload.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Snapshot {
    /// Reads the files (blocking).
    pub(crate) fn read(files: &TlsFiles) -> Result<Snapshot, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        Ok(Snapshot {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
            client_ca: files.client_ca.as_deref().map(read).transpose()?,
        })
    }
}

/// The rustls configuration the files make, offering `alpn` (`h2` for gRPC, `http/1.1` for the
/// HTTP listener). Reads the files (blocking): call at start-up or off the async workers.
pub fn server_config(files: &TlsFiles, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    build(files, &Snapshot::read(files)?, alpn)
}

pub(crate) fn build(
    files: &TlsFiles,
    snapshot: &Snapshot,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    fn pem(path: &Path) -> impl Fn(rustls_pki_types::pem::Error) -> TlsError + '_ {
        move |error| TlsError::Pem {
            path: path.to_owned(),
            reason: error.to_string(),
        }
    }
    let chain = CertificateDer::pem_slice_iter(&snapshot.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem(&files.cert))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&snapshot.key).map_err(pem(&files.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = match (&files.client_ca, &snapshot.client_ca) {
        (Some(path), Some(bundle)) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(bundle) {
                roots
                    .add(cert.map_err(pem(path))?)
                    .map_err(|error| TlsError::ClientCa {
                        path: path.clone(),
                        reason: error.to_string(),
                    })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if files.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|error| TlsError::ClientCa {
                path: path.clone(),
                reason: error.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The names a verified client certificate identifies its holder by: its DNS and URI subject
/// alternative names (`billing.internal`, `spiffe://prod/billing`), which `[[auth.keys]]`
/// entries list in `client_cert_names`. The subject's common name is not used: it is not
/// checked by anyone and is deprecated for names.
pub fn client_cert_names(leaf: &CertificateDer<'_>) -> Vec<String> {
    match webpki::EndEntityCert::try_from(leaf) {
        Ok(cert) => cert
            .valid_dns_names()
            .chain(cert.valid_uri_names())
            .map(str::to_owned)
            .collect(),
        Err(error) => {
            // rustls verified it already, so this does not happen; it identifies no one.
            tracing::warn!(%error, "cannot read a verified client certificate's names");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
