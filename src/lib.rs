//! hooknorm: receives webhooks from Gigs, Abowire and Mobile Manager, verifies them, normalizes
//! them into one protobuf `Event`, stores them durably and serves them over gRPC; providers post
//! to its HTTP ingress or backends pass webhooks on over gRPC.
//!
//! Module map (data walks one way: transport -> pipeline -> verify -> provider):
//! - [`config`]: the TOML configuration, `HOOKNORM_*` overrides, secrets and their redaction,
//!   validated once at load into typed values.
//! - [`error`]: refusal reasons and the one table mapping them to transport statuses.
//! - [`webhook`]: `RawWebhook` (as received) and `VerifiedWebhook` (the type that gates the rest).
//! - [`verify`]: verification schemes, one file each (Standard Webhooks, tokens, basic auth, IPs).
//! - [`json`]: one-pass parse of a body into `google.protobuf.Struct` values, depth-bounded.
//! - [`providers`]: provider formats, one file each: parse and normalize into an `Event`.
//! - [`event`]: canonical type and time rules shared by the providers.
//! - [`auth`]: who may call the gRPC API: API keys and client certificates, scopes, sources,
//!   forwarded fields; TLS for both listeners, reloaded as certificates rotate.
//! - [`pipeline`]: the one path every entry point uses: look up source, verify, normalize, store.
//! - [`proto`]: the generated `hooknorm.v1` types and the reflection descriptor set.
//! - [`log`]: the durable event log (`EventLog` trait; embedded SQLite backend, NATS JetStream
//!   backend for several replicas) and retention.
//! - [`stream`]: event subscriptions: replay from the log, then live, with no gap at the seam.
//! - [`grpc`]: the tonic service: proto <-> domain conversion and status mapping only.
//! - [`http`]: the axum ingress (`POST /webhooks/{source}`) and the probes' ops app: HTTP <->
//!   domain only.
//! - [`listen`]: connection admission for every listener: caps, deadlines that tighten under
//!   pressure, who is closed first, and the log of it; the gRPC listener's preface gate and
//!   its watch for HTTP/2 rapid reset, with a penalty for the addresses caught.
//! - [`console`]: the operators' events console on the ops listener: list, filter, inspect and
//!   live-tail events in a browser, with a read key.
//! - [`readiness`]: one readiness answer for `/readyz` and the gRPC health service.
//! - [`server`]: `hooknorm serve`: the listeners, health, reflection, graceful shutdown.
//! - [`cloudevents`]: the `Event` as a CloudEvents 1.0 structured-mode JSON event.
//! - [`telemetry`]: tracing set up once: the log, OTLP span export, W3C trace context in and
//!   out (a gRPC caller's parent, a webhook's link).
//! - [`metrics`]: the Prometheus registry every layer records into, served at `/metrics`.
//! - [`cli`]: client subcommands (`send`, `tail`, `events`) and the built-in provider samples.
//! - `fuzzing` (hidden): the fuzz targets' entry points, shared by `fuzz/` and the unit tests
//!   that replay its seeds and every input that once failed.
//! - [`bench`]: `hooknorm bench`, the load generator (and its echo server) behind BENCHMARKS.md.

#![forbid(unsafe_code)]

pub mod auth;
pub mod bench;
pub mod cli;
pub mod cloudevents;
pub mod config;
pub mod console;
pub mod error;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod http;
pub mod json;
pub mod listen;
pub mod log;
pub mod metrics;
pub mod pipeline;
pub mod proto;
pub mod providers;
pub mod readiness;
pub mod server;
pub mod stream;
pub mod telemetry;
pub mod verify;
pub mod webhook;
