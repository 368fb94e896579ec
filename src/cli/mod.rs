//! Client subcommands: `send` signs a sample or file as the provider would and calls the server
//! (gRPC, or the HTTP ingress with `--http`); `tail` and `events` read the event log; all
//! connect through [`connect`], which presents the API key.

pub mod connect;
pub mod events;
pub mod http_client;
pub mod output;
pub mod samples;
pub mod send;

/// Largest response the CLI accepts. The server's events may be configured up to any size
/// (`limits.max_event_bytes`), and tonic's 4 MiB default would refuse a stored event the server
/// sends; a CLI reading one response at a time can afford a generous bound.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;
