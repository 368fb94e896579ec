//! Client subcommands: `send` signs a sample or file as the provider would and calls the server
//! (gRPC, or the HTTP ingress with `--http`); `tail` and `events` read the event log.

pub mod events;
pub mod http_client;
pub mod output;
pub mod samples;
pub mod send;
