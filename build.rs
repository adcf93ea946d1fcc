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
        "proto/vstream_events.proto",
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
        // The sync's view of the stream: names as slices of the receive buffer; the rare,
        // large payloads boxed so a response's array of events stays small (it is grown
        // event by event while decoding).
        .bytes(".vstream_events")
        .boxed(".vstream_events.Event.field_event")
        .boxed(".vstream_events.Event.vgtid")
        .compile_fds(descriptors)?;
    Ok(())
}
