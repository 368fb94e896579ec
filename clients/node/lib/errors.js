// Typed errors: a hooknorm gRPC status with the reason of its google.rpc.ErrorInfo (domain
// `hooknorm`; README, "Error reasons"), and whether a retry can succeed.
"use strict";

const { status: Code } = require("@grpc/grpc-js");
const { Status, ErrorInfo } = require("./protos");

const DOMAIN = "hooknorm";

// The reasons a verifier refuses a webhook with: the sender's credentials, not the caller's.
const VERIFICATION_REASONS = new Set([
  "MISSING_SIGNATURE",
  "MALFORMED_SIGNATURE",
  "SIGNATURE_MISMATCH",
  "TIMESTAMP_OUT_OF_TOLERANCE",
  "MISSING_TOKEN",
  "TOKEN_MISMATCH",
  "ADDRESS_NOT_ALLOWED",
]);

// Codes whose cause is expected to pass: the server is stopping, overloaded or unreachable.
const RETRYABLE_CODES = new Set([Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED]);

/**
 * A call to hooknorm failed. `code` is the gRPC status code, `reason` the ErrorInfo reason
 * (empty when the status had none, e.g. a connection failure), `metadata` the ErrorInfo
 * metadata (a stream end's `resume_after_sequence`), `retryable` whether the same call may
 * succeed later (VerifyAndNormalize is idempotent: a retried stored webhook is a duplicate).
 */
class HooknormError extends Error {
  constructor(code, message, reason = "", metadata = {}) {
    super(`${reason || Code[code] || code}: ${message}`);
    this.name = this.constructor.name;
    this.code = code;
    this.details = message;
    this.reason = reason;
    this.metadata = metadata;
  }

  get retryable() {
    return RETRYABLE_CODES.has(this.code) || this.reason === "SUBSCRIBER_TOO_SLOW";
  }
}

/** The webhook failed verification (signature, token, allowlist): not from the provider. */
class VerificationError extends HooknormError {}
/** `UNKNOWN_SOURCE` (no such configured source) or `EVENT_NOT_FOUND`. */
class NotFoundError extends HooknormError {}
/** `MALFORMED_PAYLOAD`, `PAYLOAD_TOO_LARGE`, `INVALID_REQUEST`: retrying cannot help. */
class InvalidRequestError extends HooknormError {}
/** The caller itself was refused (missing or wrong API key, not permitted). */
class AccessDeniedError extends HooknormError {}
/** Retry later: `STORE_UNAVAILABLE`, `SHUTTING_DOWN`, `RATE_LIMITED`, a connection failure. */
class UnavailableError extends HooknormError {}
/** The stream's buffer stayed full too long; resume after `resume_after_sequence`. */
class SubscriberTooSlowError extends HooknormError {}
/** The resume cursor is past the newest stored event (`metadata.head_sequence`). */
class CursorOutOfRangeError extends HooknormError {}

/**
 * Retention removed events a subscription had not received yet. Thrown by a subscription
 * without an `onSkipped` callback, so the loss is never silent: events after `afterSequence`
 * through `lastSkippedSequence` are gone; subscribe again with `after: lastSkippedSequence`.
 */
class EventsSkippedError extends Error {
  constructor(afterSequence, lastSkippedSequence) {
    super(
      `events after sequence ${afterSequence} through ${lastSkippedSequence} ` +
        "were removed by retention before they could be sent",
    );
    this.name = "EventsSkippedError";
    this.afterSequence = afterSequence;
    this.lastSkippedSequence = lastSkippedSequence;
  }
}

/** The hooknorm ErrorInfo in a grpc-js error's status details, if any. */
function errorInfo(error) {
  const [bytes] = error.metadata ? error.metadata.get("grpc-status-details-bin") : [];
  if (!bytes) return null;
  try {
    const status = Status.decode(bytes);
    for (const detail of status.details) {
      if (detail.type_url.endsWith("/google.rpc.ErrorInfo")) {
        const info = ErrorInfo.decode(detail.value);
        if (info.domain === DOMAIN) return info;
      }
    }
  } catch {
    // Undecodable details: the status alone says what happened.
  }
  return null;
}

/** The typed error for a failed call (a grpc-js ServiceError). */
function fromGrpcError(error) {
  const code = error.code ?? Code.UNKNOWN;
  const message = error.details ?? error.message ?? "";
  const info = errorInfo(error);
  const reason = info ? info.reason : "";
  const metadata = info ? { ...info.metadata } : {};
  let Type = HooknormError;
  if (VERIFICATION_REASONS.has(reason)) Type = VerificationError;
  else if (reason === "SUBSCRIBER_TOO_SLOW") Type = SubscriberTooSlowError;
  else if (reason === "CURSOR_OUT_OF_RANGE") Type = CursorOutOfRangeError;
  else if (code === Code.NOT_FOUND) Type = NotFoundError;
  else if (code === Code.INVALID_ARGUMENT) Type = InvalidRequestError;
  else if (code === Code.UNAUTHENTICATED || code === Code.PERMISSION_DENIED) Type = AccessDeniedError;
  else if (RETRYABLE_CODES.has(code)) Type = UnavailableError;
  return new Type(code, message, reason, metadata);
}

module.exports = {
  AccessDeniedError,
  CursorOutOfRangeError,
  EventsSkippedError,
  HooknormError,
  InvalidRequestError,
  NotFoundError,
  SubscriberTooSlowError,
  UnavailableError,
  VerificationError,
  fromGrpcError,
};
