// The hooknorm client: `normalize` a webhook as received, `subscribe` to events. A thin layer
// over the service loaded from proto/hooknorm/v1: it adds only the channel with its API key and
// TLS, typed errors (./errors) and a subscription that resumes on its own (./subscription).
"use strict";

const grpc = require("@grpc/grpc-js");
const { hooknormV1 } = require("./protos");
const { fromGrpcError } = require("./errors");
const { Subscription } = require("./subscription");

// hooknorm may be configured to store events larger than gRPC's 4 MiB default; the CLI accepts
// the same bound.
const MAX_RECEIVE_BYTES = 256 * 1024 * 1024;

const PROVIDERS = {
  gigs: "PROVIDER_GIGS",
  abowire: "PROVIDER_ABOWIRE",
  mobile_manager: "PROVIDER_MOBILE_MANAGER",
  "mobile-manager": "PROVIDER_MOBILE_MANAGER",
};

// What a normalize answer carries (VerifyAndNormalizeView), by the names `normalize` takes.
const VIEWS = {
  full: "VERIFY_AND_NORMALIZE_VIEW_FULL",
  basic: "VERIFY_AND_NORMALIZE_VIEW_BASIC",
};

function pem(value) {
  return value == null ? null : Buffer.isBuffer(value) ? value : Buffer.from(value);
}

/**
 * A connection to one hooknorm server.
 *
 * `target` is `host:port`; an `https://` prefix turns TLS on, `http://` is plaintext.
 * Options: `apiKey` (sent on every call as `authorization: Bearer <key>`); `tls` (true for the
 * system's CAs, or `{ rootCerts, certChain, privateKey, serverName }` as PEM strings or
 * Buffers, the last two for mutual TLS); `credentials` (grpc.ChannelCredentials of your own);
 * `timeoutMs` (unary calls; 30 s); `channelOptions` (passed to grpc-js).
 */
class Client {
  constructor(target = "127.0.0.1:50051", options = {}) {
    let tls = options.tls ?? false;
    if (target.startsWith("https://")) {
      target = target.slice("https://".length);
      tls = tls || true;
    } else if (target.startsWith("http://")) {
      target = target.slice("http://".length);
    }
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.metadata = new grpc.Metadata();
    if (options.apiKey) this.metadata.set("authorization", `Bearer ${options.apiKey}`);
    const channelOptions = {
      "grpc.max_receive_message_length": MAX_RECEIVE_BYTES,
      // A subscription sees a silently dead connection within ~40 s, not never.
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      ...options.channelOptions,
    };
    let credentials = options.credentials;
    if (!credentials && tls) {
      const settings = tls === true ? {} : tls;
      credentials = grpc.credentials.createSsl(
        pem(settings.rootCerts),
        pem(settings.privateKey),
        pem(settings.certChain),
      );
      if (settings.serverName) channelOptions["grpc.ssl_target_name_override"] = settings.serverName;
    }
    const { NormalizerService } = hooknormV1();
    /** The loaded service client, for calls this class does not wrap (getEvent, listEvents). */
    this.stub = new NormalizerService(
      target,
      credentials ?? grpc.credentials.createInsecure(),
      channelOptions,
    );
  }

  close() {
    this.stub.close();
  }

  /** A unary call as a promise, failing with a typed error. */
  unary(method, request, timeoutMs = this.timeoutMs) {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + timeoutMs);
      this.stub[method](request, this.metadata, { deadline }, (error, response) => {
        if (error) reject(fromGrpcError(error));
        else resolve(response);
      });
    });
  }

  /**
   * Verifies, normalizes and stores one webhook exactly as it was received, and resolves to the
   * stored Event (for a redelivery, the event as first stored).
   *
   * `body`: the raw bytes (Buffer; never re-serialized JSON: signatures are over the bytes).
   * `headers`: `req.rawHeaders` (best: repeats and order kept), `req.headers`, a fetch
   * `Headers`, or `[name, value]` pairs. `requestUri`: path and query (`req.url`; query tokens
   * live there). `remoteAddr`: the peer (`req.socket.remoteAddress`). `view: "basic"` answers
   * without the payloads (`data`, `previousData`, their `Json` texts and the provider detail),
   * for callers that only acknowledge and read events from a subscription. Throws a TypeError
   * for another view; rejects with a
   * VerificationError, NotFoundError (`UNKNOWN_SOURCE`), InvalidRequestError or a retryable
   * UnavailableError.
   */
  async normalize({ source, body, headers = [], requestUri = "", remoteAddr = "", receivedAt, dryRun = false, view = "full", timeoutMs }) {
    if (!Object.hasOwn(VIEWS, view)) {
      throw new TypeError(`view must be one of ${Object.keys(VIEWS).join(", ")}, not ${JSON.stringify(view)}`);
    }
    const request = {
      source,
      headers: headerPairs(headers).map(([name, value]) => ({ name, value })),
      body: typeof body === "string" ? Buffer.from(body) : Buffer.from(body ?? []),
      requestUri,
      remoteAddr: remoteAddr ?? "",
      dryRun,
      view: VIEWS[view],
    };
    if (receivedAt) request.receivedAt = timestamp(receivedAt);
    const response = await this.unary("verifyAndNormalize", request, timeoutMs);
    return response.event;
  }

  /**
   * Events matching `filter`, in sequence order, resuming across disconnects: an async
   * iterable (`for await (const event of client.subscribe(...))`).
   *
   * `filter`: `{ providers, sources, types, resource }` (types exact or `prefix.*`, resource
   * `"kind:id"`). Options: `after` (the cursor you persisted; sequence as string, number or
   * bigint), `since` (a Date), or `position: "earliest"`; by default events stored after this
   * call. Heartbeats are consumed; when the stream ends with UNAVAILABLE (a restart,
   * SHUTTING_DOWN, a lost connection) or SUBSCRIBER_TOO_SLOW it reconnects after a jittered
   * exponential backoff (`minBackoffMs` 100 to `maxBackoffMs` 10000) with `after_sequence` =
   * the last event yielded, so no event comes twice or is skipped. Other errors are thrown.
   * When retention removed events before they could be sent, `onSkipped(eventsSkipped)` is
   * called and the subscription goes on; without it an EventsSkippedError is thrown.
   * `subscription.cursor` is the sequence (a string) to persist and pass as `after`.
   */
  subscribe(filter = {}, options = {}) {
    const starts = ["after", "since", "position"].filter((key) => options[key] != null);
    if (starts.length > 1) throw new TypeError("give at most one of after, since and position");
    if (options.position != null && !["earliest", "latest"].includes(options.position)) {
      throw new TypeError(`position must be "earliest" or "latest", got ${options.position}`);
    }
    return new Subscription(this, eventFilter(filter), options);
  }
}

/** An EventFilter from `{ providers, sources, types, resource }`. */
function eventFilter({ providers = [], sources = [], types = [], resource, ...rest } = {}) {
  const unknown = Object.keys(rest);
  if (unknown.length) throw new TypeError(`unknown filter keys: ${unknown.join(", ")}`);
  const filter = {
    providers: providers.map((name) => {
      if (!PROVIDERS[name]) {
        throw new TypeError(`unknown provider ${name} (expected gigs, abowire or mobile_manager)`);
      }
      return PROVIDERS[name];
    }),
    sources,
    types,
  };
  if (resource) {
    const [kind, id] = typeof resource === "string" ? splitOnce(resource, ":") : [resource.kind, resource.id];
    if (!kind || !id) throw new TypeError(`resource must be "kind:id", got ${JSON.stringify(resource)}`);
    filter.resource = { kind, id };
  }
  return filter;
}

function splitOnce(text, separator) {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + separator.length)];
}

function headerPairs(headers) {
  if (Array.isArray(headers)) {
    // `req.rawHeaders` is flat: name, value, name, value.
    if (headers.every((item) => typeof item === "string")) {
      const pairs = [];
      for (let i = 0; i + 1 < headers.length; i += 2) pairs.push([headers[i], headers[i + 1]]);
      return pairs;
    }
    return headers.map(([name, value]) => [String(name), String(value)]);
  }
  if (typeof headers.entries === "function" && typeof headers.get === "function") {
    return [...headers.entries()];
  }
  return Object.entries(headers).flatMap(([name, value]) =>
    Array.isArray(value) ? value.map((one) => [name, String(one)]) : value == null ? [] : [[name, String(value)]],
  );
}

function timestamp(date) {
  const millis = date.getTime();
  return { seconds: String(Math.floor(millis / 1000)), nanos: (((millis % 1000) + 1000) % 1000) * 1e6 };
}

module.exports = { Client, eventFilter, timestamp };
