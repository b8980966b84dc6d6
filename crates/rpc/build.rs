//! Compiles `proto/choir/v1/*.proto` with protox (no system `protoc`) and generates the tonic services.
//! Also writes the encoded file descriptor set that the reflection service serves.

use std::path::PathBuf;

use prost::Message;

const FILES: [&str; 3] = ["choir/v1/common.proto", "choir/v1/coordinator.proto", "choir/v1/worker.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for file in FILES {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(FILES, [&root])?;
    std::fs::write(out.join("choir_v1_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
