//! The event log contract (`tests/log_contract/`) against the NATS JetStream backend, on one
//! real nats-server (the current release) for the whole file.

mod log_contract;
mod nats_support;

#[path = "nats_support/contract_harness.rs"]
mod contract_harness;

use std::sync::OnceLock;

use contract_harness::NatsHarness;
use nats_support::NatsServer;

/// The file's server; never dropped, so it lives until the test process exits.
fn server() -> &'static NatsServer {
    static SERVER: OnceLock<NatsServer> = OnceLock::new();
    SERVER.get_or_init(NatsServer::start)
}

log_contract::log_contract_tests!(NatsHarness::new(server()));
