//! Client subcommands: `send` signs a sample or file as the provider would and calls the server.

pub mod output;
pub mod samples;
pub mod send;
