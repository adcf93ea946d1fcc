//! The simulated-vtgate suite: `vtmirror sync` and every other command through the real
//! gRPC path against the simulated vtgate (copy, replication, resume, definite errors, output).

#[path = "../support/mod.rs"]
mod support;

mod changes;
mod cli;
mod embed;
mod keyspaces;
mod metrics;
mod query;
mod readiness;
mod serve;
mod snapshot;
mod status;
mod sync;
mod table_copies;
mod tail;
mod verify;
mod wait;
