//! Compiles the public protobuf contract with protox (pure Rust, so no system `protoc`) and writes
//! the descriptor set that server reflection serves; also the load generator's echo service.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/hooknorm/v1/event.proto",
        "proto/hooknorm/v1/normalizer_service.proto",
        "proto/hooknorm/v1/stream_record.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("hooknorm_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    // The load generator's echo service: compiled on its own so reflection never lists it.
    let bench = protox::compile(["proto/hooknorm/bench/v1/echo.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(bench)?;
    Ok(())
}
