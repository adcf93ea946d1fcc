//! The source side: how vtgate's bytes become steps for the mirror.
//!
//! `transport` reaches vtgate (address, TLS, static auth); `vstream` builds the VStream
//! request from a position; `proto` holds Vitess's messages and the sync's own lean view of
//! the stream; `decode` turns VEvents into steps, checking every wire fact (`position_check`,
//! `gtid_set`) and converting every cell (`value`); `ddl_statement` says what a source DDL
//! statement does to a table; `primary_position` asks each shard's primary how far it has
//! committed (`wait`).
//!
//! Why this side can never corrupt the mirror: nothing here touches SQLite. Anything the
//! decoder cannot prove well-formed (a length past its buffer, a VGTID that moves a shard's
//! GTID set backwards, a value that does not parse for its type) becomes a definite error
//! before a step is sent, so the writer only ever sees whole, checked transactions.

pub mod catalog;
pub mod ddl_statement;
pub mod decode;
pub mod gtid_set;
pub mod key_range;
pub mod naming;
pub mod phase;
pub mod position_check;
pub mod primary_position;
pub mod proto;
pub mod rule_filter;
pub mod selection;
pub mod table_schema;
pub mod transport;
pub mod value;
pub mod vgtid;
pub mod vstream;
