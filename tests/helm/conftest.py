"""Fixtures for the chart's tests: each ci values file, and the Secrets they expect to exist
already, filled with made-up values of the right shape (TLS pairs made by openssl)."""

import base64
import secrets
import subprocess
from pathlib import Path
from typing import Dict

import pytest
from chart import CI_VALUES, load_values


def _tls_secret(directory: Path, name: str) -> Dict[str, str]:
    """A kubernetes.io/tls Secret's data as cert-manager writes it: a self-signed pair that is
    its own CA."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    pem = cert.read_text()
    return {"tls.crt": pem, "tls.key": key.read_text(), "ca.crt": pem}


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@pytest.fixture(scope="session")
def existing_secrets(tmp_path_factory) -> Dict[str, Dict[str, str]]:
    """Every Secret a ci values file names as existingSecret, by name."""
    directory = tmp_path_factory.mktemp("tls")
    creds = (
        "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ.e30.c2ln\n------END NATS USER JWT------\n\n"
        "-----BEGIN USER NKEY SEED-----\nSUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY\n"
        "------END USER NKEY SEED------\n"
    )
    return {
        "hooknorm-webhooks": {
            "gigs-current": _whsec(),
            "gigs-previous": _whsec(),
            "abowire": "existing-abowire-" + secrets.token_hex(8),
            "mobile-manager-password": "existing-mm-" + secrets.token_hex(8),
        },
        "hooknorm-api-keys": {"billing": "existing-billing-" + secrets.token_hex(16)},
        "hooknorm-nats": {"hooknorm.creds": creds},
        "hooknorm-grpc-tls": _tls_secret(directory, "grpc"),
        "hooknorm-http-tls": _tls_secret(directory, "http"),
        "hooknorm-nats-tls": _tls_secret(directory, "nats"),
    }


@pytest.fixture(params=CI_VALUES, ids=lambda path: path.stem)
def values(request):
    """Each values file under helm/hooknorm/ci/ in turn."""
    return load_values(request.param)
