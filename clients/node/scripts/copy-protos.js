// Copies the repository's proto/hooknorm into the package (proto/), so a packed or installed
// copy carries the .proto files it loads at run time. Outside the repository (an installed
// tarball) the copy is already there and this does nothing.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const from = path.join(__dirname, "..", "..", "..", "proto", "hooknorm");
const to = path.join(__dirname, "..", "proto", "hooknorm");
if (fs.existsSync(from)) {
  fs.rmSync(to, { recursive: true, force: true });
  fs.cpSync(from, to, { recursive: true });
}
