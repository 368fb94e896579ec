//! Client subcommands: `send` signs a sample or file as the provider would and calls the server;
//! `tail` and `events` read the event log.

pub mod events;
pub mod output;
pub mod samples;
pub mod send;
