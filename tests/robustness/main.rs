//! The service under hostile input and a failing disk, against the real binary: 10,000
//! malformed requests over both transports ([`malformed`]) and a store filled to the last byte
//! under load ([`disk_full`]). One test binary for both, since each adds minutes of linking.

#[path = "../common/mod.rs"]
mod common;

mod disk_full;
mod malformed;

const BIN: &str = env!("CARGO_BIN_EXE_hooknorm");
