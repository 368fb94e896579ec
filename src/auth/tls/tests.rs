//! Loading PEM files, refusing bad ones by file name, and reading a certificate's names.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn self_signed(names: &[&str]) -> (String, String, CertificateDer<'static>) {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    (
        certified.cert.pem(),
        certified.key_pair.serialize_pem(),
        certified.cert.der().clone(),
    )
}

#[test]
fn loads_pem_files_and_names_the_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(&["localhost"]);
    let files = TlsFiles {
        cert: write(dir.path(), "tls.crt", &cert),
        key: write(dir.path(), "tls.key", &key),
        client_ca: Some(write(dir.path(), "ca.crt", &cert)),
        require_client_cert: false,
    };
    let config = server_config(&files, GRPC_ALPN).unwrap();
    assert_eq!(config.alpn_protocols, [b"h2".to_vec()]);

    let empty = TlsFiles {
        cert: write(dir.path(), "empty.crt", ""),
        ..files.clone()
    };
    let error = server_config(&empty, GRPC_ALPN).unwrap_err().to_string();
    assert!(
        error.contains("empty.crt") && error.contains("no certificate"),
        "{error}"
    );
    let missing = TlsFiles {
        key: dir.path().join("missing.key"),
        ..files.clone()
    };
    let error = server_config(&missing, GRPC_ALPN).unwrap_err().to_string();
    assert!(error.contains("missing.key"), "{error}");
    let (_, other_key, _) = self_signed(&["localhost"]);
    let mismatched = TlsFiles {
        key: write(dir.path(), "other.key", &other_key),
        ..files
    };
    let error = server_config(&mismatched, GRPC_ALPN)
        .unwrap_err()
        .to_string();
    assert!(!error.contains("PRIVATE KEY"), "{error}");
}

#[test]
fn a_certificate_is_named_by_its_dns_and_uri_names() {
    let mut params = rcgen::CertificateParams::new(vec!["billing.internal".to_owned()]).unwrap();
    params.subject_alt_names.push(rcgen::SanType::URI(
        "spiffe://prod/billing".try_into().unwrap(),
    ));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    assert_eq!(
        client_cert_names(cert.der()),
        ["billing.internal", "spiffe://prod/billing"]
    );
    let (_, _, der) = self_signed(&[]);
    assert!(client_cert_names(&der).is_empty());
}
