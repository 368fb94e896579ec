#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from tests/fixtures/ and a few
hand-written inputs. Run it again after adding fixtures; the seeds are checked in, and the
service's unit tests (src/fuzzing/tests.rs) replay them through every target.

Inputs that carry headers are `name: value` lines, an empty line, then the body (the format
`hooknorm::fuzzing` reads). The secret and receive time match hooknorm::fuzzing's constants.
"""

import base64
import hashlib
import hmac
import json
import pathlib
import shutil
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SEEDS = ROOT / "fuzz" / "seeds"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RECEIVED_AT = 1_700_000_000


def write(target, name, data):
    directory = SEEDS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def sign(msg_id, timestamp, body):
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def page_token(before, sources):
    """hooknorm's page token for a filter naming only `sources` (log/page.rs `filter_hash`)."""
    value = 0xCBF29CE484222325
    data = b""
    for source in sorted(set(sources)):
        data += b"s" + struct.pack("<Q", len(source)) + source.encode()
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) % 2**64
    raw = f"v1:{before}:{value:016x}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    fixtures = sorted(FIXTURES.glob("*/*.json"))
    for path in fixtures:
        body = path.read_bytes()
        name = f"{path.parent.name}-{path.name}"
        write(f"normalize_{path.parent.name}", path.name, body)
        write("json_struct", name, body)
    # Each provider's target also sees the others' bodies: a wrong provider is a likely mistake.
    for path in fixtures[::5]:
        for provider in ("gigs", "abowire", "mobile_manager"):
            if path.parent.name != provider:
                write(f"normalize_{provider}", f"{path.parent.name}-{path.name}", path.read_bytes())

    # At the nesting limit (32 levels, the body being one): an unknown envelope field sits a
    # level deeper in the event (detail.extensions) than `data` does, nearest protobuf's 100.
    def nest(depth, kind):
        value = 1
        for _ in range(depth):
            value = {"a": value} if kind == "o" else [value]
        return value

    sim = json.loads((FIXTURES / "gigs" / "sim.retired.json").read_text())
    for kind in "oa":
        write("normalize_gigs", f"deep-extension-{kind}", json.dumps({**sim, "deepExtension": nest(31, kind)}))
        deep_data = {**sim, "data": {**sim["data"], "deep": nest(30, kind)}}
        write("normalize_gigs", f"deep-data-{kind}", json.dumps(deep_data))

    gigs = sorted((FIXTURES / "gigs").glob("*.json"))
    for index, path in enumerate(gigs[:4]):
        body = path.read_bytes()
        msg_id = f"msg_{index}"
        headers = [
            f"webhook-id: {msg_id}",
            f"webhook-timestamp: {RECEIVED_AT - index * 100}",
            f"webhook-signature: v1,bm90IGEgc2lnbmF0dXJl {sign(msg_id, RECEIVED_AT - index * 100, body)}",
        ]
        if index % 2:
            headers = [line.replace("webhook-", "svix-") for line in headers]
        write("standard_webhooks", f"signed-{path.name}", "\n".join(headers).encode() + b"\n\n" + body)
    write("standard_webhooks", "stale", f"webhook-id: a\nwebhook-timestamp: {RECEIVED_AT - 301}\nwebhook-signature: v1,AAAA\n\n{{}}")
    write("standard_webhooks", "v1a-malformed", f"webhook-id: a\nwebhook-timestamp: {RECEIVED_AT}\nwebhook-signature: v1a,{'A' * 86}== v2,x\n\n{{}}")
    write("standard_webhooks", "missing", "webhook-id: a\n\n{}")

    write("config", "dev.toml", (ROOT / "hooknorm.toml").read_bytes())
    write("config", "sources.toml", """
[server]
data_dir = "/tmp/hooknorm-fuzz"

[[sources]]
name = "gigs"
provider = "gigs"
verification = { scheme = "standard_webhooks", secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }

[[sources]]
name = "abowire"
provider = "abowire"
allowed_cidrs = ["192.0.2.0/24"]
verification = { scheme = "query_token", tokens = ["t"] }

[[sources]]
name = "mm"
provider = "mobile_manager"
verification = { scheme = "basic_auth", username = "u", password = "p" }
""")

    for name, lines in {
        "xff": ["X-Forwarded-For: 203.0.113.7, 10.0.0.2"],
        "forwarded": ['Forwarded: for=203.0.113.7;proto=https, for="[2001:db8::17]:4711"'],
        "both-agree": ["Forwarded: for=203.0.113.7", "X-Forwarded-For: 203.0.113.7"],
        "both-differ": ['Forwarded: for="_hidden", for=10.1.2.3', "X-Forwarded-For: 198.51.100.1:80"],
        "quoted": ['Forwarded: for="\\"[fd00::1]\\";by=x", for=unknown;host=a'],
    }.items():
        write("forwarded", name, "\n".join(lines))

    for name, value in {
        "json": "application/json",
        "charset": "Application/JSON; charset=utf-8",
        "suffix": "application/cloudevents+json",
        "text": "text/plain",
        "twice": "application/json\nContent-Type: application/json",
    }.items():
        write("content_type", name, f"Content-Type: {value}")

    write("page_token", "issued", page_token(42, ["fuzz"]))
    write("page_token", "other-filter", page_token(42, []))
    write("page_token", "garbage", "djE6OjA")


if __name__ == "__main__":
    main()
