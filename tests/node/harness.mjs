// A real `hooknorm serve` for the Node client suite, and webhooks signed as each provider
// would. The binary is $HOOKNORM_BIN, else target/debug/hooknorm (scripts/test builds it
// first). It listens on free loopback ports; `restart()` brings it back on the same ports with
// the same store, so sequences go on and clients can reconnect.

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const REPO = resolve(fileURLToPath(import.meta.url), "..", "..", "..");
// The client as a consumer gets it: installed into tools/node_modules by scripts/test.
export const hooknorm = createRequire(join(REPO, "tools", "package.json"))("hooknorm");

export const GIGS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
export const ABOWIRE_TOKEN = "abowire-test-token";
export const MM_TOKEN = "mm-test-token";
// The suite's API keys: one that ingests and reads (what the clients present), one that only
// reads, to see a narrow key refused, and one that reads only the `gigs` source.
export const API_KEY = "client-suite-ingest-read-key";
export const READ_KEY = "client-suite-read-only-key";
export const GIGS_READ_KEY = "client-suite-gigs-read-key";

function config(store, storeExtra) {
  return `
[server]
grpc_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
ops_listen = "127.0.0.1:0"
shutdown_grace_seconds = 5

[store]
path = ${JSON.stringify(store)}
${storeExtra}

[streams]
heartbeat_seconds = 1

[[sources]]
name = "gigs"
provider = "gigs"
verification = { secrets = ["${GIGS_SECRET}"] }

[[sources]]
name = "abowire"
provider = "abowire"
verification = { tokens = ["${ABOWIRE_TOKEN}"] }

[[sources]]
name = "mobile-manager"
provider = "mobile_manager"
verification = { scheme = "query_token", param = "token", tokens = ["${MM_TOKEN}"] }

[auth]
[[auth.keys]]
name = "backend"
key = "${API_KEY}"
scopes = ["ingest", "read"]

[[auth.keys]]
name = "reader"
key = "${READ_KEY}"
scopes = ["read"]

[[auth.keys]]
name = "gigs-reader"
key = "${GIGS_READ_KEY}"
scopes = ["read"]
sources = ["gigs"]
`;
}

export function binary() {
  const path = process.env.HOOKNORM_BIN || join(REPO, "target", "debug", "hooknorm");
  accessSync(path, constants.X_OK);
  return path;
}

export class HooknormServer {
  /** Starts a server; `storeExtra` is TOML added to its `[store]` table. */
  static async start({ storeExtra = "" } = {}) {
    const server = new HooknormServer(storeExtra);
    await server.spawn({});
    return server;
  }

  constructor(storeExtra) {
    this.dir = mkdtempSync(join(tmpdir(), "hooknorm-node-"));
    this.config = join(this.dir, "hooknorm.toml");
    writeFileSync(this.config, config(join(this.dir, "store"), storeExtra));
  }

  spawn(env) {
    this.child = spawn(binary(), ["serve", "--config", this.config], {
      env: { ...process.env, HOOKNORM_LOG_FORMAT: "json", RUST_LOG: "warn,hooknorm=info", ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.exited = new Promise((done) => this.child.once("exit", done));
    const lines = createInterface({ input: this.child.stderr });
    return new Promise((resolveStart, rejectStart) => {
      const log = [];
      let grpc = "";
      let http = "";
      let ops = "";
      const timer = setTimeout(() => rejectStart(new Error(`hooknorm did not start: ${log.join("\n")}`)), 30_000);
      // Read for the process's whole life, so a chatty server never blocks on a full pipe.
      lines.on("line", (line) => {
        if (grpc && http && ops) return;
        log.push(line);
        let record;
        try {
          record = JSON.parse(line);
        } catch {
          return;
        }
        if (record.message === "grpc listening") grpc = record.addr;
        if (record.message === "http listening") http = record.addr;
        if (record.message === "ops listening") ops = record.addr;
        if (grpc && http && ops) {
          clearTimeout(timer);
          this.addr = grpc;
          this.httpAddr = http;
          this.opsAddr = ops;
          resolveStart();
        }
      });
      this.child.once("exit", (code) => rejectStart(new Error(`hooknorm exited (${code}): ${log.join("\n")}`)));
    });
  }

  /** SIGTERM is a graceful stop (streams end with SHUTTING_DOWN), SIGKILL a crash. */
  async stop(signal = "SIGTERM") {
    if (!this.child) return;
    this.child.kill(signal);
    await this.exited;
    this.child = null;
  }

  async restart(signal = "SIGTERM") {
    const { addr, httpAddr, opsAddr } = this;
    await this.stop(signal);
    await this.spawn({
      HOOKNORM_GRPC_LISTEN: addr,
      HOOKNORM_HTTP_LISTEN: httpAddr,
      HOOKNORM_OPS_LISTEN: opsAddr,
    });
  }

  async close() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function fixture(rel) {
  return readFileSync(join(REPO, "tests", "fixtures", rel));
}

/** `normalize` arguments for a Gigs webhook signed as Svix signs it (Standard Webhooks). */
export function gigsRequest(body, { secret = GIGS_SECRET, msgId = "msg_test" } = {}) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const mac = createHmac("sha256", key).update(`${msgId}.${timestamp}.`).update(body).digest("base64");
  return {
    source: "gigs",
    body,
    // As node:http gives them in req.rawHeaders.
    headers: [
      "Content-Type", "application/json",
      "webhook-id", msgId,
      "webhook-timestamp", timestamp,
      "webhook-signature", `v1,${mac}`,
    ],
    requestUri: "/webhooks/gigs",
    remoteAddr: "127.0.0.1",
  };
}

/** `normalize` arguments for a webhook authenticated with a `token` query parameter. */
export function tokenRequest(source, token, body) {
  return {
    source,
    body,
    headers: { "content-type": "application/json" },
    requestUri: `/webhooks/${source}?token=${encodeURIComponent(token)}`,
    remoteAddr: "127.0.0.1",
  };
}

export function sampleRequest(provider) {
  if (provider === "gigs") return gigsRequest(fixture("gigs/subscription.activated.json"));
  if (provider === "abowire") return tokenRequest("abowire", ABOWIRE_TOKEN, fixture("abowire/api-key.revoke.json"));
  return tokenRequest("mobile-manager", MM_TOKEN, fixture("mobile_manager/alert.on.json"));
}

let counter = 0;

/**
 * `normalize` arguments for a distinct, minimal Gigs event (`evt_js<n>`), its data padded with
 * `padding` bytes of notes (to make a stream's buffers hold fewer events).
 */
export function gigsEvent(eventType, padding = 0) {
  counter += 1;
  const n = String(counter).padStart(8, "0");
  const body =
    `{"object":"event","id":"evt_js${n}","type":"com.gigs.${eventType}","time":"2026-01-01T00:00:00Z",` +
    `"specversion":"1.0","source":"https://api.gigs.com","project":"test","version":"2025-05-22",` +
    `"datacontenttype":"application/json","data":{"object":"subscription","id":"sub_js${n}",` +
    `"plan":{"object":"plan","id":"pln_shared"},"status":"active"${padding ? `,"notes":"${"x".repeat(padding)}"` : ""}}}`;
  return gigsRequest(Buffer.from(body), { msgId: `msg_js${n}` });
}
