//! gRPC transport (in progress).
