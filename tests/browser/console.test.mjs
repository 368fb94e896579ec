// The events console in a real browser: headless Chromium (Debian's, driven by playwright-core)
// against a real `hooknorm serve`. One webhook of each provider is posted to the ingress; the
// console is refused without a key and narrowed for a key of another source; with a read key it
// filters, shows an update's diff (whose copied re-send command brings the same event back),
// follows a resource link, and its live tail shows a new webhook within a second, resuming
// after a crash and a graceful restart without showing anything twice. It takes the README's
// screenshots of the list and a detail page (docs/console-*.png).
//
// Skipped, with the reason printed, where /usr/bin/chromium is missing (scripts/test installs
// it with apt where it can).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import {
  ABOWIRE_TOKEN,
  GIGS_READ_KEY,
  HooknormServer,
  MM_TOKEN,
  READ_KEY,
  REPO,
  binary,
  fixture,
  gigsEvent,
  gigsRequest,
  tokenRequest,
} from "../node/harness.mjs";

const CHROMIUM = process.env.HOOKNORM_TEST_CHROMIUM || "/usr/bin/chromium";
// The machine's network is closed: without these Chromium waits on connections it will never get.
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
// The README's screenshots are rewritten only when asked (HOOKNORM_UPDATE_SCREENSHOTS=1), so a
// test run leaves the work tree as it was; otherwise they go to a temporary directory.
const SCREENSHOTS =
  process.env.HOOKNORM_UPDATE_SCREENSHOTS === "1" ? join(REPO, "docs") : mkdtempSync(join(tmpdir(), "hooknorm-shots-"));

const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;
if (skip) console.log(`# SKIP console browser test: ${skip}`);

let server;
let browser;
const posted = {};

/** Posts a `normalize`-shaped request to the HTTP ingress as the provider would; the answer. */
async function post(request) {
  const headers = Array.isArray(request.headers)
    ? Object.fromEntries(request.headers.flatMap((v, i, all) => (i % 2 ? [] : [[v, all[i + 1]]])))
    : request.headers;
  const response = await fetch(`http://${server.httpAddr}${request.requestUri}`, {
    method: "POST",
    headers,
    body: request.body,
  });
  const answer = await response.json();
  assert.equal(response.status, 200, JSON.stringify(answer));
  return answer;
}

const hostileOrder = Buffer.from(
  JSON.stringify({
    OrderId: "7d5b2f8e-3c41-4a9b-b1e2-6f0a9c8d4e21",
    State: 1,
    Type: 0,
    SimId: "b3e1c7a2-9d4f-4e6b-8a15-2c7f9e0d1b34",
    PoolId: "00000000-0000-0000-0000-000000000000",
    APNId: "00000000-0000-0000-0000-000000000000",
    Note: "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">",
  }),
);

before(async () => {
  if (skip) return;
  server = await HooknormServer.start();
  posted.activated = await post(gigsRequest(fixture("gigs/subscription.activated.json"), { msgId: "msg_c1" }));
  // Svix retries it: the same event, a new message id.
  const retried = await post(gigsRequest(fixture("gigs/subscription.activated.json"), { msgId: "msg_c1b" }));
  assert.equal(retried.duplicate, true);
  posted.device = await post(gigsRequest(fixture("gigs/device.updated.json"), { msgId: "msg_c2" }));
  posted.customer = await post(
    tokenRequest("abowire", ABOWIRE_TOKEN, fixture("abowire/current.customer.updated.json")),
  );
  posted.alert = await post(tokenRequest("mobile-manager", MM_TOKEN, fixture("mobile_manager/alert.on.json")));
  posted.order = await post(tokenRequest("mobile-manager", MM_TOKEN, hostileOrder));
  const { chromium } = createRequire(join(REPO, "tools", "package.json"))("playwright-core");
  // launch() starts Chromium on a fresh temporary profile of its own, removed on close.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (!SCREENSHOTS.startsWith(join(REPO, "docs"))) rmSync(SCREENSHOTS, { recursive: true, force: true });
});

const consoleUrl = (path = "/console") => `http://${server.opsAddr}${path}`;

/** A fresh page (its own cookies) that fails the test on any script dialog or page error. */
async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("dialog", (dialog) => assert.fail(`a dialog opened: ${dialog.message()}`));
  page.on("pageerror", (error) => assert.fail(`page error: ${error.message}`));
  return page;
}

async function logIn(page, key, path = "/console") {
  const response = await page.goto(consoleUrl(path));
  assert.equal(response.status(), 401, "a page without a key is the login form");
  await page.fill("#key", key);
  await Promise.all([page.waitForURL((url) => !url.pathname.endsWith("/login")), page.press("#key", "Enter")]);
}

const rowSequences = (page) =>
  page.$$eval("#events tbody tr", (rows) => rows.map((row) => Number(row.dataset.sequence)));
const rowTexts = (page, column) =>
  page.$$eval(`#events tbody tr td:nth-child(${column})`, (cells) => cells.map((cell) => cell.textContent.trim()));

test("refused without a key, and narrowed to a key's sources", { skip }, async () => {
  const page = await newPage();
  const refused = await page.goto(consoleUrl());
  assert.equal(refused.status(), 401);
  assert.equal(await page.locator("#key").count(), 1);
  const detailPath = `/console/events/${encodeURIComponent(posted.customer.id)}`;
  assert.equal((await page.goto(consoleUrl(detailPath))).status(), 401);

  await logIn(page, "not-a-configured-key");
  assert.match(await page.textContent("[role=alert]"), /matches no configured key/);

  await logIn(page, GIGS_READ_KEY);
  assert.deepEqual(new Set(await rowTexts(page, 4)), new Set(["gigs"]));
  // Another source's event is not found, as if it did not exist.
  const foreign = await page.goto(consoleUrl(detailPath));
  assert.equal(foreign.status(), 404);
  assert.match(await page.textContent("main"), /EVENT_NOT_FOUND/);
  await page.context().close();
});

test("list, filter, detail with diff, resource activity", { skip }, async () => {
  const page = await newPage();
  await logIn(page, READ_KEY);
  const sequences = await rowSequences(page);
  assert.ok(sequences.length >= 5, `${sequences}`);
  assert.deepEqual(sequences, [...sequences].sort((a, b) => b - a), "newest first");
  assert.deepEqual(new Set(await rowTexts(page, 4)), new Set(["gigs", "abowire", "mobile_manager"]));
  const redelivered = await page.textContent(`#events tr[data-sequence="${posted.activated.sequence}"] td:nth-child(8)`);
  assert.equal(redelivered.trim(), "1");
  await page.screenshot({ path: join(SCREENSHOTS, "console-list.png") });
  await page.setViewportSize({ width: 390, height: 844 }); // a phone
  await page.screenshot({ path: join(SCREENSHOTS, "console-list-phone.png") });
  await page.setViewportSize({ width: 1280, height: 900 });

  // By keyboard: `j` and `k` walk the events' links.
  const focused = () => page.evaluate(() => document.activeElement?.closest("tr")?.dataset.sequence);
  await page.keyboard.press("j");
  assert.equal(await focused(), String(sequences[0]));
  await page.keyboard.press("j");
  await page.keyboard.press("j");
  await page.keyboard.press("k");
  assert.equal(await focused(), String(sequences[1]));

  // Filter by provider, then by type: both live in the URL.
  await page.selectOption("select[name=provider]", "gigs");
  await Promise.all([page.waitForURL(/provider=gigs/), page.click("form.filters button[type=submit]")]);
  assert.deepEqual(new Set(await rowTexts(page, 4)), new Set(["gigs"]));
  await page.keyboard.press("/");
  await page.keyboard.type("device.*");
  await Promise.all([page.waitForURL(/type=device\.\*/), page.keyboard.press("Enter")]);
  assert.deepEqual(await rowTexts(page, 6), ["device.updated"]);

  // The update's detail: what changed, the exact payload, the delivery, the CloudEvent.
  await Promise.all([page.waitForURL(/\/console\/events\//), page.click("#events tbody tr td:nth-child(6) a")]);
  const diff = await page.$$eval("table.diff tbody tr", (rows) =>
    rows.map((row) => [...row.children].map((cell) => cell.textContent.trim())),
  );
  assert.deepEqual(diff, [["name", '"iPhone"', '"Anna\'s iPhone 12 Pro"']]);
  assert.match(await page.textContent("#data-json"), /"imei": "492388841798923"/);
  // The copied command re-sends the body byte for byte: the server knows it as the same event.
  const resend = await page.textContent("#resend");
  assert.match(resend, /hooknorm send --source 'gigs' --http --file \/dev\/stdin$/);
  const resent = execFileSync(
    "sh",
    ["-c", `${resend.replace("hooknorm send", `"${binary()}" send`)} --config "${server.config}" --http-server http://${server.httpAddr}`],
    { encoding: "utf8" },
  );
  assert.deepEqual(JSON.parse(resent), { duplicate: true, id: posted.device.id, sequence: posted.device.sequence });
  const headers = await page.textContent("table.headers");
  assert.match(headers, /webhook-signature/);
  // Tall enough for the fields, the changes and the start of the payload.
  await page.setViewportSize({ width: 1280, height: 1060 });
  await page.screenshot({ path: join(SCREENSHOTS, "console-detail.png") });

  // The subject's activity: every event about that device.
  await Promise.all([page.waitForURL(/resource=device/), page.click("dl.fields a.resource")]);
  assert.match(page.url(), /resource=device%3Adev_0SNlurA049MEWV55CrA9qMvI2FVJ/);
  assert.deepEqual(await rowTexts(page, 6), ["device.updated"]);
  // A related ref (the device's user) leads to its activity too.
  await page.goto(consoleUrl(`/console/events/${encodeURIComponent(posted.device.id)}`));
  await Promise.all([page.waitForURL(/resource=user/), page.click("ul.related a.resource >> text=user")]);
  assert.ok((await rowSequences(page)).includes(Number(posted.device.sequence)));
  await page.context().close();
});

test("a provider's markup is shown as text, never run", { skip }, async () => {
  const page = await newPage({ width: 390, height: 844 }); // a phone
  await logIn(page, READ_KEY, `/console/events/${encodeURIComponent(posted.order.id)}`);
  assert.match(await page.textContent("#raw-body"), /<script>window\.pwned = 1<\/script>/);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.equal(await page.locator("main script, main img").count(), 0);
  await page.context().close();
});

test("live tail: a new webhook appears within a second, once, across restarts", { skip }, async () => {
  const page = await newPage();
  await logIn(page, READ_KEY, "/console?provider=gigs");
  await page.check("#live-toggle");
  await page.waitForSelector("#live-status.on");
  assert.match(page.url(), /live=1/);

  const started = Date.now();
  const first = await post(gigsEvent("sim.retired"));
  await page.waitForSelector(`#events tbody tr[data-sequence="${first.sequence}"]`, { timeout: 5_000 });
  const shownAfterMs = Date.now() - started;
  console.log(`# live tail: webhook posted to row shown in ${shownAfterMs} ms`);
  assert.ok(shownAfterMs < 1_000, `shown after ${shownAfterMs} ms`);
  // Other providers' webhooks do not match the filter.
  await post(tokenRequest("mobile-manager", MM_TOKEN, fixture("mobile_manager/alert.off.json")));

  // A crash drops the stream; the browser reconnects with the last id it saw and gets what was
  // stored meanwhile, once.
  await server.restart("SIGKILL");
  const second = await post(gigsEvent("sim.retired"));
  await page.waitForSelector(`#events tbody tr[data-sequence="${second.sequence}"]`, { timeout: 15_000 });
  // A graceful stop ends the stream with `end`; the same again.
  await server.restart("SIGTERM");
  const afterStop = await post(gigsEvent("sim.retired"));
  await page.waitForSelector(`#events tbody tr[data-sequence="${afterStop.sequence}"]`, { timeout: 15_000 });
  // Off and on again: resumes after the last row shown.
  await page.uncheck("#live-toggle");
  const third = await post(gigsEvent("sim.retired"));
  await page.check("#live-toggle");
  await page.waitForSelector(`#events tbody tr[data-sequence="${third.sequence}"]`, { timeout: 5_000 });

  const sequences = await rowSequences(page);
  assert.equal(new Set(sequences).size, sequences.length, `shown twice: ${sequences}`);
  assert.deepEqual(
    sequences.slice(0, 4),
    [third, afterStop, second, first].map((answer) => Number(answer.sequence)),
  );
  assert.deepEqual(new Set(await rowTexts(page, 4)), new Set(["gigs"]));
  await page.context().close();
});
