//! Client subcommands (in progress).
