// A subscription whose events retention removed hears of it: an EventsSkippedError by default,
// `onSkipped` when given one. Its own server: retention keeps only the newest events.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { API_KEY, HooknormServer, gigsEvent, hooknorm } from "./harness.mjs";

const { Client, errors } = hooknorm;

let server;
let client;

before(async () => {
  server = await HooknormServer.start({ storeExtra: "retention_max_count = 3\nretention_interval_seconds = 1" });
  client = new Client(server.addr, { apiKey: API_KEY });
});

after(async () => {
  client?.close();
  await server?.close();
});

test("events removed by retention are reported, not skipped silently", async () => {
  const sent = [];
  for (let i = 0; i < 8; i += 1) sent.push(await client.normalize(gigsEvent("sim.retired")));
  // Retention runs every second; wait until the oldest are gone.
  let kept = [];
  for (let tries = 0; tries < 75; tries += 1) {
    const page = await client.unary("listEvents", { pageSize: 10 });
    kept = page.events.map((event) => event.sequence).reverse();
    if (kept.length <= 3) break;
    await sleep(200);
  }
  assert.deepEqual(
    kept,
    sent.slice(-3).map((event) => event.sequence),
  );
  const firstKept = BigInt(kept[0]);

  await assert.rejects(
    (async () => {
      for await (const event of client.subscribe({}, { after: 0 })) assert.fail(`no event before the notice: ${event.sequence}`);
    })(),
    (error) => {
      assert.ok(error instanceof errors.EventsSkippedError);
      assert.equal(error.afterSequence, "0");
      assert.equal(error.lastSkippedSequence, String(firstKept - 1n));
      return true;
    },
  );

  const notices = [];
  const got = [];
  for await (const event of client.subscribe({}, { after: 0, onSkipped: (notice) => notices.push(notice) })) {
    got.push(event.sequence);
    if (event.sequence === kept.at(-1)) break;
  }
  assert.deepEqual(got, kept);
  assert.deepEqual(
    notices.map((notice) => [notice.afterSequence, notice.lastSkippedSequence]),
    [["0", String(firstKept - 1n)]],
  );
});
