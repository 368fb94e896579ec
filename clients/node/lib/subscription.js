// A resumable event subscription over StreamEvents. The stream can end at any time: the server
// restarts (SHUTTING_DOWN), the connection drops (UNAVAILABLE), or this reader falls behind
// (SUBSCRIBER_TOO_SLOW). Each time, a new stream opens with `after_sequence` = the last
// sequence yielded, so the caller sees every matching event once, in order.
//
// Not the end's `resume_after_sequence`: grpc-js reports a failed status as soon as it arrives,
// dropping messages it had received but not yet handed over, so the server's cursor can be
// ahead of the last event this side saw. Resuming from our own costs the server a re-scan of
// events the filter leaves out, never an event.
"use strict";

const { EventsSkippedError, fromGrpcError } = require("./errors");

function later(a, b) {
  if (a == null) return b == null ? null : String(b);
  if (b == null) return String(a);
  return BigInt(a) >= BigInt(b) ? String(a) : String(b);
}

class Subscription {
  constructor(client, filter, options) {
    this.client = client;
    this.filter = filter;
    /** The sequence (a decimal string) after which the stream resumes; null until known. */
    this.cursor = options.after != null ? String(BigInt(options.after)) : null;
    this.since = options.since ?? null;
    this.earliest = options.position === "earliest";
    this.onSkipped = options.onSkipped ?? null;
    this.minBackoffMs = options.minBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 10_000;
    /** How many times the subscription has reconnected, for logs and tests. */
    this.reconnects = 0;
    this.closed = false;
    this.call = null;
    this.wake = null;
    this.pinned = false;
    // "From now on" means from this call, not from the first iteration; if the server is
    // unreachable now, the first connection pins it.
    this.pinning = this.pinLatest().catch(() => {});
  }

  /** Ends the iteration (from anywhere). */
  close() {
    this.closed = true;
    if (this.call) this.call.cancel();
    if (this.wake) this.wake();
  }

  /**
   * Pins "from now on" to the newest stored sequence, so a stream that ends before its first
   * event resumes from there instead of from a later "latest", losing what came in between.
   */
  async pinLatest() {
    if (this.pinned || this.cursor != null || this.since != null || this.earliest) return;
    let page;
    try {
      page = await this.client.unary("listEvents", { pageSize: 1 });
    } catch (error) {
      if (error.retryable) throw error;
      // Not allowed to list (an API key scoped to streams): LATEST, unpinned.
      this.pinned = true;
      return;
    }
    // An empty log (or one retention emptied) has no sequence to pin: LATEST it is.
    if (page.events.length > 0 && this.cursor == null) this.cursor = page.events[0].sequence;
  }

  request() {
    const request = { filter: this.filter };
    if (this.cursor != null) request.afterSequence = this.cursor;
    else if (this.since != null) {
      const millis = this.since.getTime();
      request.since = { seconds: String(Math.floor(millis / 1000)), nanos: (millis % 1000) * 1e6 };
    } else request.position = this.earliest ? "START_POSITION_EARLIEST" : "START_POSITION_LATEST";
    return request;
  }

  async *[Symbol.asyncIterator]() {
    await this.pinning;
    let attempt = 0;
    while (!this.closed) {
      try {
        await this.pinLatest();
        this.call = this.client.stub.streamEvents(this.request(), this.client.metadata);
        if (this.closed) this.call.cancel();
        for await (const response of this.call) {
          attempt = 0;
          if (response.message === "event") {
            const event = response.event;
            if (this.cursor != null && BigInt(event.sequence) <= BigInt(this.cursor)) continue;
            this.cursor = event.sequence;
            yield event;
          } else if (response.message === "eventsSkipped") {
            this.skipped(response.eventsSkipped);
          }
          // Heartbeats only prove the connection is alive.
        }
        // A stream the server ended without an error: resume like any other end.
      } catch (raw) {
        if (this.closed) return;
        if (raw instanceof EventsSkippedError) throw raw;
        const error = raw.retryable === undefined ? fromGrpcError(raw) : raw;
        if (!error.retryable) throw error;
      } finally {
        // Also when the caller stops iterating: the server stops sending.
        if (this.call) this.call.cancel();
        this.call = null;
      }
      await this.sleep(this.delay(attempt));
      attempt += 1;
      this.reconnects += 1;
    }
  }

  skipped(notice) {
    if (!this.onSkipped) throw new EventsSkippedError(notice.afterSequence, notice.lastSkippedSequence);
    this.onSkipped(notice);
    this.cursor = later(this.cursor, notice.lastSkippedSequence);
  }

  /**
   * Exponential backoff with jitter, so subscribers cut off together (a restart) do not all
   * reconnect in the same instant.
   */
  delay(attempt) {
    const ceiling = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(attempt, 30));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

module.exports = { Subscription };
