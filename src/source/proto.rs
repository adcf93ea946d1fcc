//! Generated protobuf and gRPC code for our wire-compatible subset of Vitess's protos.
#![allow(clippy::all, missing_docs)]

pub mod vtrpc {
    tonic::include_proto!("vtrpc");
}
pub mod topodata {
    tonic::include_proto!("topodata");
}
pub mod query {
    tonic::include_proto!("query");
}
pub mod binlogdata {
    tonic::include_proto!("binlogdata");
}
pub mod vtgate {
    tonic::include_proto!("vtgate");
}
pub mod vtgateservice {
    tonic::include_proto!("vtgateservice");
}
pub mod vstream_events;
