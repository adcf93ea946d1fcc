//! `vtmirror query`'s flags.

use std::path::PathBuf;

use clap::Args;

use crate::commands::query::{QueryFormat, QueryOptions};

#[derive(Args, Debug, Clone)]
pub struct QueryArgs {
    /// Mirror file.
    #[arg(long, env = "VTMIRROR_DB")]
    pub db: PathBuf,
    /// One read-only SQL statement (SELECT, WITH, EXPLAIN, read-only PRAGMA).
    pub sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
}

impl QueryArgs {
    pub fn options(&self) -> QueryOptions {
        QueryOptions {
            db: self.db.clone(),
            sql: self.sql.clone(),
            format: self.format,
        }
    }
}
