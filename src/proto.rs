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
pub mod vstream_events {
    tonic::include_proto!("vstream_events");
}

impl TryFrom<binlogdata::VEvent> for vstream_events::Event {
    type Error = prost::DecodeError;

    /// The sync's view of a full event, through its encoding (tests and tools build full
    /// events; the wire decides what the view holds).
    fn try_from(event: binlogdata::VEvent) -> Result<Self, Self::Error> {
        use prost::Message;
        Self::decode(event.encode_to_vec().as_slice())
    }
}
