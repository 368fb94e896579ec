// hooknorm's Node.js client: `new Client(target, { apiKey, tls })`, `normalize(...)` to forward
// a webhook as received, `subscribe(filter, { after })` for a resumable stream of events, and
// typed errors carrying the server's reason. The service and messages are loaded from
// proto/hooknorm/v1 at run time.
"use strict";

const errors = require("./lib/errors");
const { Client, eventFilter } = require("./lib/client");
const { Subscription } = require("./lib/subscription");

module.exports = { Client, Subscription, eventFilter, errors, ...errors };
