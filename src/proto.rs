//! The generated `hooknorm.v1` protobuf types and the descriptor set served by reflection.
//!
//! The only `include_proto!` in the crate. Messages are plain prost data and are used as the
//! domain's event representation too; the tonic service stubs inside are used only by `grpc`.

#![allow(clippy::all, missing_docs)]

/// `hooknorm.v1`.
pub mod v1 {
    tonic::include_proto!("hooknorm.v1");
}

/// `hooknorm.bench.v1`: the bare echo service `hooknorm bench` compares against (bench only).
pub mod bench {
    pub mod v1 {
        tonic::include_proto!("hooknorm.bench.v1");
    }
}

/// Encoded `FileDescriptorSet` of the contract (and the well-known types it imports).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hooknorm_descriptor");
