//! `--keyspace` and `--shards`, shared by `sync` and `tail`: what the stream covers.

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct SelectionArgs {
    /// Keyspace; several comma-separated or repeated (tables are then named keyspace.table),
    /// or '*' for every keyspace vtgate serves.
    #[arg(
        long,
        env = "VTMIRROR_KEYSPACE",
        value_delimiter = ',',
        required = true
    )]
    pub keyspace: Vec<String>,
    /// Only these shards of the one keyspace, comma-separated (a key-range mirror: several
    /// mirrors with disjoint shards together hold the keyspace).
    #[arg(
        long,
        value_delimiter = ',',
        env = "VTMIRROR_SHARDS",
        allow_hyphen_values = true
    )]
    pub shards: Vec<String>,
}
