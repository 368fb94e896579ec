"""Typed errors: a hooknorm gRPC status, with the reason of its ``google.rpc.ErrorInfo``.

Every refusal hooknorm sends is a status whose details carry an ``ErrorInfo`` (domain
``hooknorm``, a reason such as ``SIGNATURE_MISMATCH``; README, "Error reasons"). These classes
put that reason on the exception and say whether a retry can succeed, so callers branch on
types instead of parsing status details.
"""

from __future__ import annotations

from typing import Dict, Optional

import grpc

DOMAIN = "hooknorm"

# The reasons a verifier refuses a webhook with: the sender's credentials, not the caller's.
VERIFICATION_REASONS = frozenset(
    {
        "MISSING_SIGNATURE",
        "MALFORMED_SIGNATURE",
        "SIGNATURE_MISMATCH",
        "TIMESTAMP_OUT_OF_TOLERANCE",
        "MISSING_TOKEN",
        "TOKEN_MISMATCH",
        "ADDRESS_NOT_ALLOWED",
    }
)

# Codes whose cause is expected to pass: the server is stopping, overloaded or unreachable.
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)


class HooknormError(Exception):
    """A call to hooknorm failed.

    ``code`` is the gRPC status code, ``reason`` the ``ErrorInfo`` reason (empty when the status
    carried none, e.g. a connection failure), ``metadata`` the ``ErrorInfo`` metadata (for a
    stream end, ``resume_after_sequence``), ``retryable`` whether the same call may succeed later
    (VerifyAndNormalize is idempotent: a retried webhook that was stored answers as a duplicate).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        metadata: Optional[Dict[str, str]] = None,
    ) -> None:
        super().__init__(f"{reason or code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES or self.reason == "SUBSCRIBER_TOO_SLOW"


class VerificationError(HooknormError):
    """The webhook failed verification (signature, token, allowlist): not from the provider."""


class NotFoundError(HooknormError):
    """``UNKNOWN_SOURCE`` (no such configured source) or ``EVENT_NOT_FOUND``."""


class InvalidRequestError(HooknormError):
    """``MALFORMED_PAYLOAD``, ``PAYLOAD_TOO_LARGE``, ``INVALID_REQUEST``: retrying cannot help."""


class AccessDeniedError(HooknormError):
    """The caller itself was refused (missing or wrong API key, not permitted)."""


class UnavailableError(HooknormError):
    """Retry later: ``STORE_UNAVAILABLE``, ``SHUTTING_DOWN``, ``RATE_LIMITED``, a connection failure."""


class SubscriberTooSlowError(HooknormError):
    """The stream's buffer stayed full too long; resume after ``resume_after_sequence``."""


class CursorOutOfRangeError(HooknormError):
    """The resume cursor is past the newest stored event (``metadata["head_sequence"]``)."""


class EventsSkippedError(Exception):
    """Retention removed events a subscription had not received yet.

    Raised by a subscription without an ``on_skipped`` callback, so the loss is never silent.
    Events after ``after_sequence`` up to and including ``last_skipped_sequence`` are gone;
    subscribe again with ``after=last_skipped_sequence`` to go on.
    """

    def __init__(self, after_sequence: int, last_skipped_sequence: int) -> None:
        super().__init__(
            f"events after sequence {after_sequence} through {last_skipped_sequence} "
            "were removed by retention before they could be sent"
        )
        self.after_sequence = after_sequence
        self.last_skipped_sequence = last_skipped_sequence


def _error_info(error: grpc.RpcError):
    """The hooknorm ``ErrorInfo`` in the status details, if any."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except ValueError:
        # Details that disagree with the status code or message: use the status alone.
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == DOMAIN:
                return info
    return None


def from_rpc_error(error: grpc.RpcError) -> HooknormError:
    """The typed error for a failed call."""
    code = error.code()  # type: ignore[attr-defined]
    message = error.details() or ""  # type: ignore[attr-defined]
    info = _error_info(error)
    reason = info.reason if info is not None else ""
    metadata = dict(info.metadata) if info is not None else {}
    if reason in VERIFICATION_REASONS:
        cls: type = VerificationError
    elif reason == "SUBSCRIBER_TOO_SLOW":
        cls = SubscriberTooSlowError
    elif reason == "CURSOR_OUT_OF_RANGE":
        cls = CursorOutOfRangeError
    elif code == grpc.StatusCode.NOT_FOUND:
        cls = NotFoundError
    elif code == grpc.StatusCode.INVALID_ARGUMENT:
        cls = InvalidRequestError
    elif code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        cls = AccessDeniedError
    elif code in RETRYABLE_CODES:
        cls = UnavailableError
    else:
        cls = HooknormError
    return cls(code, message, reason, metadata)
