//! `vtmirror snapshot`: a consistent, compact copy of a mirror taken with `VACUUM INTO` from one
//! read transaction, so it can run while `sync` writes. The copy holds the rows and the
//! checkpoint of one commit, and a later `sync --db COPY` resumes from that checkpoint.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::mirror::store::open_read_only;
use crate::source::selection::source_flags;

#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// Mirror file to copy (it may be syncing).
    pub db: PathBuf,
    /// The new file to write (must not exist yet).
    pub out: PathBuf,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub path: PathBuf,
    pub bytes: u64,
    pub transactions: i64,
    pub copy_completed: bool,
    /// The source label of the mirror (`Selection::label`), when it has one.
    pub source: Option<String>,
}

/// Writes the snapshot; on any failure the partial output file is removed.
pub fn take(db: &Path, out: &Path) -> Result<Snapshot> {
    let conn = open_read_only(db)?;
    let target = absolute(out)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .with_context(|| {
            format!(
                "creating snapshot file {} (it must not exist yet)",
                out.display()
            )
        })?;
    let written = vacuum_into(&conn, &target).and_then(|()| verify(&target));
    if written.is_err() {
        let _ = std::fs::remove_file(&target);
    }
    written
}

/// An absolute path cannot start with `file:`, so SQLite never reads it as a URI.
fn absolute(out: &Path) -> Result<PathBuf> {
    let Some(text) = out.to_str() else {
        bail!("the snapshot path {} is not valid UTF-8", out.display());
    };
    if text.is_empty() {
        bail!("the snapshot path is empty");
    }
    std::path::absolute(out).with_context(|| format!("resolving snapshot path {}", out.display()))
}

fn vacuum_into(conn: &rusqlite::Connection, target: &Path) -> Result<()> {
    let Some(path) = target.to_str() else {
        bail!("the snapshot path {} is not valid UTF-8", target.display());
    };
    conn.execute("VACUUM INTO ?1", [path])
        .with_context(|| format!("copying the mirror into {}", target.display()))?;
    Ok(())
}

/// Opens the copy as a mirror and checks it, returning what it holds.
fn verify(target: &Path) -> Result<Snapshot> {
    let conn = open_read_only(target)?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .context("checking the snapshot")?;
    if check != "ok" {
        bail!("the snapshot failed its integrity check: {check}");
    }
    let (transactions, copy_completed) = conn
        .query_row(
            "SELECT coalesce(sum(transactions), 0), coalesce(max(copy_completed), 0) FROM _vtmirror_checkpoint",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("reading the snapshot's checkpoint")?;
    let source = crate::mirror::metadata::source_label(&conn)?;
    Ok(Snapshot {
        source,
        path: target.to_path_buf(),
        bytes: std::fs::metadata(target).map(|m| m.len()).unwrap_or(0),
        transactions,
        copy_completed,
    })
}

/// `vtmirror snapshot`: takes the snapshot and says what it holds.
pub fn run(args: &SnapshotOptions, out: &mut dyn std::io::Write) -> Result<()> {
    let snap = take(&args.db, &args.out)?;
    let copy = if snap.copy_completed {
        "copy completed"
    } else {
        "copy in progress; a sync of it continues the copy"
    };
    writeln!(
        out,
        "snapshot {} written ({}): {} source transactions, {copy}.\nResume it with: vtmirror sync --db {} --vtgate … {}",
        args.out.display(),
        crate::output::render::size(snap.bytes),
        crate::output::render::count(snap.transactions.max(0) as u64),
        args.out.display(),
        snap.source.as_deref().map_or("--keyspace …".into(), source_flags)
    )
    .map_err(crate::output::render::output_error)
}
