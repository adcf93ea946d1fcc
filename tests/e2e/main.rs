//! The real-Vitess suite (`VTMIRROR_E2E=1`, clusters started by `scripts/vitess-local.sh`):
//! seeds 000/001/002, reshard, types and value fidelity, partial row images (NOBLOB), DDL and
//! online DDL, identifiers, several keyspaces in one mirror and key-range mirrors, tables added
//! and copied again, a table the replicas' copy missed, TLS and static auth, planned and
//! emergency reparents, vtgate restarts, copies cut into cycles, `wait` (read-your-writes),
//! `--rule` row filters (rows moving into and out of a WHERE clause, a changed filter), one
//! transaction of 200 MB.
//! Tests take the cluster one at a time (`support::vitess::cluster`).

#[path = "../support/mod.rs"]
mod support;

mod big_transaction;
mod change_feed;
mod ddl;
mod failover;
mod fidelity;
mod identifiers;
mod keyspaces;
mod missing_table;
mod online_ddl;
mod partial_images;
mod refilter;
mod reshard;
mod row_filters;
mod security;
mod shards;
mod table_copies;
mod types;
mod verify;
mod vttest;
mod wait;
