//! `vtmirror changes`'s flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::commands::changes::ChangesOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChangesFormat {
    /// One JSON object per line (NDJSON).
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct ChangesArgs {
    /// Mirror file (synced with --changes).
    #[arg(long, env = "VTMIRROR_DB")]
    pub db: PathBuf,
    /// Print entries after this seq (0: from the first). A consumer passes the last seq it
    /// applied.
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    pub after: i64,
    /// Keep printing new entries as the sync commits them (until Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// Only these tables (comma-separated mirror names, e.g. commerce.customer).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Stop after this many entries.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ChangesFormat::Json)]
    pub format: ChangesFormat,
}

impl ChangesArgs {
    pub fn options(&self) -> ChangesOptions {
        ChangesOptions {
            db: self.db.clone(),
            after: self.after.max(0),
            follow: self.follow,
            tables: (self.tables.iter())
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            limit: self.limit,
        }
    }
}
