"""A real `hooknorm serve` for the client suites, and webhooks signed as each provider would.

The binary is $HOOKNORM_BIN, else target/debug/hooknorm (scripts/test builds it first). It
listens on free loopback ports chosen by the kernel; `restart()` brings it back on the same
ports with the same store, so sequences go on and clients can reconnect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
GIGS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ABOWIRE_TOKEN = "abowire-test-token"
MM_TOKEN = "mm-test-token"
# The suites' API keys: one that ingests and reads (what the clients present), one that only
# reads, to see a narrow key refused.
API_KEY = "client-suite-ingest-read-key"
READ_KEY = "client-suite-read-only-key"

CONFIG = """
[server]
grpc_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
ops_listen = "127.0.0.1:0"
shutdown_grace_seconds = 5

[store]
path = "{store}"
{store_extra}

[streams]
heartbeat_seconds = 1

[[sources]]
name = "gigs"
provider = "gigs"
verification = {{ secrets = ["{gigs_secret}"] }}

[[sources]]
name = "abowire"
provider = "abowire"
verification = {{ tokens = ["{abowire_token}"] }}

[[sources]]
name = "mobile-manager"
provider = "mobile_manager"
verification = {{ scheme = "query_token", param = "token", tokens = ["{mm_token}"] }}

[auth]
[[auth.keys]]
name = "backend"
key = "{api_key}"
scopes = ["ingest", "read"]

[[auth.keys]]
name = "reader"
key = "{read_key}"
scopes = ["read"]
"""


def binary() -> str:
    path = os.environ.get("HOOKNORM_BIN") or str(REPO / "target" / "debug" / "hooknorm")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no hooknorm binary at {path}: run `cargo build` (or set HOOKNORM_BIN)")
    return path


class HooknormServer:
    """One `hooknorm serve` child; `addr` is its gRPC `host:port`."""

    def __init__(self, workdir: Path, store_extra: str = "") -> None:
        self.workdir = workdir
        self.config = workdir / "hooknorm.toml"
        self.config.write_text(
            CONFIG.format(
                store=workdir / "store",
                store_extra=store_extra,
                gigs_secret=GIGS_SECRET,
                abowire_token=ABOWIRE_TOKEN,
                mm_token=MM_TOKEN,
                api_key=API_KEY,
                read_key=READ_KEY,
            )
        )
        self.addr = ""
        self.http_addr = ""
        self.process: Optional[subprocess.Popen] = None
        self._start({})

    def _start(self, env: Dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [binary(), "serve", "--config", str(self.config)],
            env={**os.environ, "HOOKNORM_LOG_FORMAT": "json", "RUST_LOG": "warn,hooknorm=info", **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: "queue.Queue[str]" = queue.Queue()
        stderr = self.process.stderr
        # Drained for the process's whole life, so a chatty server never blocks on a full pipe.
        threading.Thread(target=lambda: [lines.put(line) for line in stderr], daemon=True).start()
        deadline = time.monotonic() + 30
        grpc_addr = http_addr = ""
        log: List[str] = []
        while not (grpc_addr and http_addr):
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"hooknorm did not start; log: {log}") from None
            log.append(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("message") == "grpc listening":
                grpc_addr = record["addr"]
            elif record.get("message") == "http listening":
                http_addr = record["addr"]
        self.addr, self.http_addr = grpc_addr, http_addr

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stops the server: SIGTERM is a graceful stop (streams end with SHUTTING_DOWN and a
        resume cursor), SIGKILL a crash (connections just drop)."""
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stops the server and starts it again on the same ports with the same store."""
        addr, http_addr = self.addr, self.http_addr
        self.stop(sig)
        self._start({"HOOKNORM_GRPC_LISTEN": addr, "HOOKNORM_HTTP_LISTEN": http_addr})


def fixture(rel: str) -> bytes:
    return (FIXTURES / rel).read_bytes()


def gigs_request(body: bytes, *, secret: str = GIGS_SECRET, msg_id: str = "msg_test") -> dict:
    """`normalize` arguments for a Gigs webhook signed as Svix signs it (Standard Webhooks)."""
    timestamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "source": "gigs",
        "body": body,
        "headers": {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        },
        "request_uri": "/webhooks/gigs",
        "remote_addr": "127.0.0.1:40000",
    }


def token_request(source: str, token: str, body: bytes) -> dict:
    """`normalize` arguments for a webhook authenticated with a `token` query parameter."""
    return {
        "source": source,
        "body": body,
        "headers": [("content-type", "application/json")],
        "request_uri": f"/webhooks/{source}?token={token}",
        "remote_addr": "127.0.0.1:40001",
    }


def sample_request(provider: str) -> dict:
    """`normalize` arguments for each provider's default sample, authenticated as it would be."""
    if provider == "gigs":
        return gigs_request(fixture("gigs/subscription.activated.json"))
    if provider == "abowire":
        return token_request("abowire", ABOWIRE_TOKEN, fixture("abowire/api-key.revoke.json"))
    return token_request("mobile-manager", MM_TOKEN, fixture("mobile_manager/alert.on.json"))


def gigs_event(n: int, event_type: str, extra: str = "") -> dict:
    """`normalize` arguments for a distinct, minimal Gigs event (`evt_py<n>`)."""
    body = (
        '{"object":"event","id":"evt_py%08d","type":"com.gigs.%s","time":"2026-01-01T00:00:00Z",'
        '"specversion":"1.0","source":"https://api.gigs.com","project":"test","version":"2025-05-22",'
        '"datacontenttype":"application/json","data":{"object":"subscription","id":"sub_%d",'
        '"plan":{"object":"plan","id":"pln_shared"},"status":"active"%s}}'
    ) % (n, event_type, n, extra)
    return gigs_request(body.encode(), msg_id=f"msg_py{n}")
