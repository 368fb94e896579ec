"""Signs and verifies Standard Webhooks messages with the official `svix` Python library.

Reads one JSON object from stdin: {"sign": [cases], "verify": [cases]} where a case is
{"secret", "msg_id", "timestamp", "body_b64"} and verify cases also carry "signature".
Writes {"signatures": [...], "verified": [bool, ...]} to stdout.
"""

import base64
import datetime
import json
import sys

from svix.webhooks import Webhook, WebhookVerificationError


def when(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)


def main():
    request = json.load(sys.stdin)
    signatures = []
    for case in request.get("sign", []):
        body = base64.b64decode(case["body_b64"]).decode("utf-8")
        signatures.append(
            Webhook(case["secret"]).sign(case["msg_id"], when(case["timestamp"]), body)
        )
    verified = []
    for case in request.get("verify", []):
        body = base64.b64decode(case["body_b64"])
        headers = {
            "svix-id": case["msg_id"],
            "svix-timestamp": str(case["timestamp"]),
            "svix-signature": case["signature"],
        }
        try:
            # svix checks the timestamp against the current time: the cases are signed now.
            Webhook(case["secret"]).verify(body, headers)
            verified.append(True)
        except WebhookVerificationError:
            verified.append(False)
    json.dump({"signatures": signatures, "verified": verified}, sys.stdout)


if __name__ == "__main__":
    main()
