// The hooknorm.v1 definitions, loaded at run time from the .proto files with
// @grpc/proto-loader (no generated or hand-written message classes), and the google.rpc
// messages a status's details are decoded with.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

/** proto/ inside the package (a packed or installed copy), else the repository's proto/. */
function protoRoot() {
  const candidates = [
    path.join(__dirname, "..", "proto"),
    path.join(__dirname, "..", "..", "..", "proto"),
  ];
  const found = candidates.find((dir) => fs.existsSync(path.join(dir, "hooknorm", "v1")));
  if (!found) {
    throw new Error(`hooknorm: no proto/hooknorm/v1 in ${candidates.join(" or ")}`);
  }
  return found;
}

// The form messages take in JavaScript: camelCase fields, enums by name, 64-bit integers as
// decimal strings (a sequence may pass 2^53), every field present, oneofs named.
const LOADER_OPTIONS = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

let loaded;

/** The hooknorm.v1 package: `NormalizerService` (a client constructor) and message types. */
function hooknormV1() {
  if (!loaded) {
    const root = protoRoot();
    const files = fs
      .readdirSync(path.join(root, "hooknorm", "v1"))
      .filter((name) => name.endsWith(".proto"))
      .map((name) => `hooknorm/v1/${name}`);
    const definition = protoLoader.loadSync(files, { ...LOADER_OPTIONS, includeDirs: [root] });
    loaded = grpc.loadPackageDefinition(definition).hooknorm.v1;
  }
  return loaded;
}

// google.rpc.Status and ErrorInfo as published in googleapis (google/rpc/status.proto,
// google/rpc/error_details.proto): only the fields read here.
const rpc = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Any: { fields: { type_url: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } } },
          },
        },
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: "int32", id: 1 },
                message: { type: "string", id: 2 },
                details: { rule: "repeated", type: "google.protobuf.Any", id: 3 },
              },
            },
            ErrorInfo: {
              fields: {
                reason: { type: "string", id: 1 },
                domain: { type: "string", id: 2 },
                metadata: { keyType: "string", type: "string", id: 3 },
              },
            },
          },
        },
      },
    },
  },
});

const Status = rpc.lookupType("google.rpc.Status");
const ErrorInfo = rpc.lookupType("google.rpc.ErrorInfo");

module.exports = { hooknormV1, protoRoot, Status, ErrorInfo };
