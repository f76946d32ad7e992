//! Compiles `proto/rota/*.proto` with protox (a pure-Rust protobuf compiler), so a fresh
//! clone builds without a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/rota/peer.proto", "proto/rota/staff.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
