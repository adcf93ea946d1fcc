//! Compiles our wire-compatible subset of Vitess's protos with protox (pure Rust),
//! so building vtmirror never needs a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/vtgateservice.proto",
        "proto/vtgate.proto",
        "proto/binlogdata.proto",
        "proto/query.proto",
        "proto/topodata.proto",
        "proto/vtrpc.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Row values stay reference-counted slices of the received buffer (no copy per row).
        .bytes(".query.Row.values")
        .compile_fds(descriptors)?;
    Ok(())
}
