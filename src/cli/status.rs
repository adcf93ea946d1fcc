//! `vtmirror status`'s flags.

use std::path::PathBuf;

use clap::Args;

use crate::commands::status::StatusOptions;

#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// Mirror file.
    #[arg(long, env = "VTMIRROR_DB")]
    pub db: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl StatusArgs {
    pub fn options(&self) -> StatusOptions {
        StatusOptions {
            db: self.db.clone(),
            json: self.json,
        }
    }
}
