// The Node client against a real `hooknorm serve`: normalize, typed errors, filtered and
// resumable subscriptions.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import {
  API_KEY,
  HooknormServer,
  READ_KEY,
  gigsEvent,
  gigsRequest,
  hooknorm,
  sampleRequest,
} from "./harness.mjs";

const { Client, errors } = hooknorm;

let server;
let client;

before(async () => {
  server = await HooknormServer.start();
  client = new Client(server.addr, { apiKey: API_KEY });
});

after(async () => {
  client?.close();
  await server?.close();
});

/** The newest stored sequence (as a BigInt; 0n for an empty log). */
async function head() {
  const page = await client.unary("listEvents", { pageSize: 1 });
  return page.events.length ? BigInt(page.events[0].sequence) : 0n;
}

/** Events of `subscription` up to the one with sequence `last`; closes it after `timeoutMs`. */
async function takeUntil(subscription, last, { timeoutMs = 30_000, each } = {}) {
  const watchdog = setTimeout(() => subscription.close(), timeoutMs);
  const seen = [];
  try {
    for await (const event of subscription) {
      seen.push(event);
      if (each) await each(event);
      if (BigInt(event.sequence) >= BigInt(last)) break;
    }
  } finally {
    clearTimeout(watchdog);
    subscription.close();
  }
  return seen;
}

describe("normalize", () => {
  const cases = [
    ["gigs", "subscription.activated", "subscription", "PROVIDER_GIGS", (body) => body.data],
    ["abowire", "api_key.revoked", "api_key", "PROVIDER_ABOWIRE", (body) => body.payload],
    ["mobile_manager", "alert.triggered", "sim", "PROVIDER_MOBILE_MANAGER", (body) => body],
  ];
  for (const [provider, type, subjectKind, enumName, payloadOf] of cases) {
    test(`normalizes the ${provider} sample`, async () => {
      const request = sampleRequest(provider);
      const event = await client.normalize(request);
      assert.equal(event.provider, enumName);
      assert.equal(event.type, type);
      assert.equal(event.subject.kind, subjectKind);
      assert.ok(BigInt(event.sequence) > 0n);
      assert.deepEqual(JSON.parse(event.dataJson), payloadOf(JSON.parse(request.body)));
      // A redelivery is answered with the event as first stored.
      assert.equal((await client.normalize(request)).sequence, event.sequence);
    });
  }

  test("the basic view answers without payloads, and the event is stored whole", async () => {
    const request = gigsEvent("subscription.activated");
    const event = await client.normalize({ ...request, view: "basic" });
    assert.ok(BigInt(event.sequence) > 0n && event.id);
    assert.equal(event.type, "subscription.activated");
    assert.equal(event.dataJson, "");
    assert.equal(event.data ?? null, null);
    assert.equal(event.detail ?? null, null);
    // The redelivery asking for the full view gets the payload, as first stored.
    const full = await client.normalize(request);
    assert.equal(full.sequence, event.sequence);
    assert.match(JSON.parse(full.dataJson).id, /^sub_js/);
    await assert.rejects(client.normalize({ ...request, view: "everything" }), TypeError);
  });

  test("a bad signature is a VerificationError", async () => {
    const request = gigsRequest(Buffer.from('{"object":"event","id":"evt_forged"}'), {
      secret: `whsec_${"A".repeat(32)}`,
    });
    await assert.rejects(client.normalize(request), (error) => {
      assert.ok(error instanceof errors.VerificationError);
      assert.ok(error instanceof errors.HooknormError);
      assert.equal(error.reason, "SIGNATURE_MISMATCH");
      assert.equal(error.code, 16); // UNAUTHENTICATED
      assert.equal(error.retryable, false);
      return true;
    });
  });

  test("an unknown source is a NotFoundError", async () => {
    const request = { ...sampleRequest("abowire"), source: "no-such-source" };
    await assert.rejects(client.normalize(request), (error) => {
      assert.ok(error instanceof errors.NotFoundError);
      assert.equal(error.reason, "UNKNOWN_SOURCE");
      assert.equal(error.code, 5); // NOT_FOUND
      assert.equal(error.metadata.source, "no-such-source");
      assert.equal(error.retryable, false);
      return true;
    });
  });

  test("a missing or narrow API key is an AccessDeniedError", async () => {
    const anonymous = new Client(server.addr);
    const reader = new Client(server.addr, { apiKey: READ_KEY });
    try {
      await assert.rejects(anonymous.normalize(gigsEvent("subscription.activated")), (error) => {
        assert.ok(error instanceof errors.AccessDeniedError);
        assert.equal(error.reason, "MISSING_API_KEY");
        assert.equal(error.code, 16); // UNAUTHENTICATED
        assert.equal(error.retryable, false);
        return true;
      });
      await assert.rejects(reader.normalize(gigsEvent("subscription.activated")), (error) => {
        assert.ok(error instanceof errors.AccessDeniedError);
        assert.equal(error.reason, "PERMISSION_DENIED");
        assert.equal(error.code, 7); // PERMISSION_DENIED
        return true;
      });
      const page = await reader.unary("listEvents", { pageSize: 1 });
      assert.ok(Array.isArray(page.events), "the read key reads");
    } finally {
      anonymous.close();
      reader.close();
    }
  });
});

describe("subscribe", () => {
  test("a filtered subscription gets only matching events, in order", async () => {
    const start = await head();
    const sent = [];
    for (const type of ["subscription.activated", "sim.retired", "subscriptionChange.applied", "subscription.ended"]) {
      sent.push(await client.normalize(gigsEvent(type)));
    }
    sent.push(await client.normalize(sampleRequest("abowire")));
    const sentinel = await client.normalize(gigsEvent("subscription.canceled"));
    sent.push(sentinel);
    const subscription = client.subscribe({ types: ["subscription.*"], sources: ["gigs"] }, { after: start });
    const got = await takeUntil(subscription, sentinel.sequence);
    const expected = sent
      .filter((event) => event.type.startsWith("subscription.") && BigInt(event.sequence) > start)
      .map((event) => event.sequence);
    assert.deepEqual(
      got.map((event) => event.sequence),
      expected,
    );
    assert.equal(subscription.cursor, sentinel.sequence);
  });

  test("by default it starts after the events stored before subscribing", async () => {
    await client.normalize(gigsEvent("subscription.activated"));
    const subscription = client.subscribe({ sources: ["gigs"] });
    await subscription.pinning;
    const next = await client.normalize(gigsEvent("subscription.activated"));
    const got = await takeUntil(subscription, next.sequence);
    assert.deepEqual(
      got.map((event) => event.sequence),
      [next.sequence],
    );
  });

  test("cut off by restarts mid-stream, it gets every event exactly once, in order", async () => {
    const start = await head();
    const first = [];
    // 2 KiB events: far more than the server's stream buffer, the HTTP/2 window and the client's
    // read-ahead hold, so both restarts cut the stream while stored events are still to come.
    for (let i = 0; i < 200; i += 1) first.push(await client.normalize(gigsEvent("subscription.activated", 2048)));
    const subscription = client.subscribe({ sources: ["gigs"] }, { after: start, minBackoffMs: 50, maxBackoffMs: 500 });
    const received = [];
    const more = [];
    let restarted = false;
    const restarter = (async () => {
      while (received.length < 40) await sleep(5);
      await server.restart("SIGKILL"); // a crash: the connection just drops
      while (received.length < 100) await sleep(5);
      await server.restart("SIGTERM"); // a graceful stop: SHUTTING_DOWN with a resume cursor
      const publisher = new Client(server.addr, { apiKey: API_KEY });
      for (let i = 0; i < 50; i += 1) more.push(await publisher.normalize(gigsEvent("subscription.activated")));
      publisher.close();
      restarted = true;
    })();
    const watchdog = setTimeout(() => subscription.close(), 60_000);
    try {
      for await (const event of subscription) {
        received.push(event.sequence);
        await sleep(10);
        if (restarted && event.sequence === more.at(-1).sequence) break;
      }
    } finally {
      clearTimeout(watchdog);
      subscription.close();
      await restarter;
    }
    const expected = [...first, ...more].map((event) => event.sequence);
    assert.deepEqual(received, expected, "every event exactly once, in order");
    assert.ok(subscription.reconnects >= 2, `reconnects: ${subscription.reconnects}`);
    assert.equal(subscription.cursor, expected.at(-1));
  });
});
