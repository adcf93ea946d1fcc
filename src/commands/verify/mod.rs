//! `vtmirror verify`: prove that a mirror equals its source at the mirror's own checkpoint,
//! while the source takes writes and `sync` keeps running on the file. It never writes the
//! mirror.
//!
//! # How
//! 1. **Copy the source again**, one scratch file per shard named in the mirror's checkpoint
//!    (a key-range copy of that shard with the mirror's own filter rules), each to the end of
//!    its copy: shard `s` is then at some position `V[s]`.
//! 2. **Take the mirror's snapshot**: a read transaction on the mirror sees one commit, whose
//!    checkpoint `M` names every shard. If some `V[s]` is not contained in `M[s]` the mirror is
//!    behind the scratch: end the read, wait for `sync` to move on, and take it again.
//! 3. **Bring each scratch to exactly `M[s]`**: stream its shard on from `V[s]` and stop after
//!    the transaction whose VGTID is `M[s]` (`SyncOptions::stop_at`; a stream that would pass
//!    `M[s]` without stopping on it is an error, never a comparison).
//! 4. **Compare** every mirrored table with the union of the scratch copies in primary-key
//!    order, inside the same read transaction (`compare`).
//!
//! # Why it cannot report a difference that is not there
//! Both sides are the same function of the same input: the mirror's snapshot is the source's
//! state after exactly the transactions in `M` (invariant 1: rows and checkpoint commit
//! together), and each scratch holds its shard's state after exactly the transactions in
//! `M[s]` (a consistent copy at `V[s]`, then the binlog from `V[s]` to `M[s]`). GTID sets name
//! transactions, so equal sets mean the same transactions, whichever tablet served them. Rows
//! and values go through the same decoder and the same SQLite layout on both sides, so a
//! difference is a row the mirror holds differently from what the source held at `M`: a lost
//! or duplicated change, a file edited behind vtmirror's back, or a source that delivered a
//! wrong copy (seen once on vttestserver, RELIABILITY.md).
//!
//! # What it cannot see
//! A bug shared by both paths (the value decoder, the layout) gives the same wrong value on
//! both sides. That is covered elsewhere: the real-Vitess value tests compare every type as
//! MySQL prints it with what the mirror stores, in copy and in binlog (`tests/e2e/types.rs`,
//! `tests/e2e/fidelity.rs`). Tables the filter does not select are not compared. Keys shown
//! are primary keys only; no other value is ever printed.
//!
//! # Cost
//! Disk: the scratch files hold one more copy of the mirrored tables (in a directory next to
//! the mirror, removed at the end). Memory: one row per cursor. While it runs, the mirror's
//! read transaction keeps SQLite from checkpointing the WAL, which grows by what `sync`
//! writes meanwhile.

mod compare;
mod scratch;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rusqlite::Connection;
use serde::Serialize;

use crate::mirror::metadata;
use crate::mirror::naming::Naming;
use crate::mirror::store::open_read_only;
use crate::source::proto::binlogdata::{ShardGtid, VGtid};
use crate::source::vstream::StreamSpec;
pub use compare::TableReport;
use scratch::Scratch;

/// What to verify and how.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub db: PathBuf,
    /// Connection, tablet type and caller id for the scratch copies (keyspaces, shards and
    /// rules come from the mirror file).
    pub spec: StreamSpec,
    /// Mirror tables to compare (empty = all).
    pub tables: Vec<String>,
    /// How long the scratch copies and the wait for the mirror may take.
    pub wait: Duration,
    pub quiet: bool,
}

/// The outcome: one report per table.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub mirror: String,
    /// The checkpoint both sides were compared at.
    pub checkpoint: Vec<String>,
    pub equal: bool,
    pub tables: Vec<TableReport>,
}

/// Runs the verify; Err for anything that prevents a verdict.
pub async fn run(opts: &VerifyOptions) -> Result<Verdict> {
    let mirror = open_read_only(&opts.db)?;
    let label = metadata::source_label(&mirror)?
        .with_context(|| format!("{} has no source recorded", opts.db.display()))?;
    let naming = Naming::of_label(&label);
    let stored = metadata::load_checkpoint(&mirror)?;
    let Some(first) = stored.vgtid.filter(|_| stored.copy_completed) else {
        bail!(
            "the mirror's copy has not finished yet: rows not copied so far would all look \
             missing; run verify once `status` says the copy is completed"
        );
    };
    let tables = chosen_tables(&mirror, &opts.tables)?;
    let rules = mirror_rules(&mirror)?;
    // The scratch copies retry lost connections like any sync; a wrong address fails here.
    crate::source::transport::connect_first(&opts.spec.vtgate).await?;
    let dir = scratch_dir(&opts.db);
    let result = async {
        let deadline = Instant::now() + opts.wait;
        let mut scratches = Vec::new();
        for shard in &first.shard_gtids {
            say(
                opts,
                &format!(
                    "copying shard {}/{} of the source",
                    shard.keyspace, shard.shard
                ),
            );
            let scratch = Scratch::new(&dir, opts, &rules, shard)?;
            scratch.copy(deadline).await?;
            scratches.push(scratch);
        }
        let target = snapshot_past(&mirror, &scratches, deadline).await?;
        for scratch in &scratches {
            say(
                opts,
                &format!("bringing {} to the mirror's checkpoint", scratch.name()),
            );
            scratch.stop_at(&target, deadline).await?;
        }
        let verdict = compare_all(opts, &mirror, &naming, &tables, &scratches, &target);
        mirror
            .execute_batch("COMMIT")
            .context("ending the mirror's read")?;
        verdict
    }
    .await;
    std::fs::remove_dir_all(&dir).ok();
    result
}

fn say(opts: &VerifyOptions, text: &str) {
    if !opts.quiet {
        eprintln!("verify: {text}");
    }
}

/// `<mirror>.verify/`: next to the mirror, on the same file system.
fn scratch_dir(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".verify");
    PathBuf::from(name)
}

/// The mirror's tables (or the ones asked for, each of which must be mirrored).
fn chosen_tables(conn: &Connection, asked: &[String]) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_vtmirror%' \
         ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let all: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some(missing) = asked.iter().find(|t| !all.contains(t)) {
        bail!("table {missing:?} is not mirrored in this file");
    }
    Ok(if asked.is_empty() {
        all
    } else {
        asked.to_vec()
    })
}

/// The filter rules the mirror was made with (its identity).
fn mirror_rules(conn: &Connection) -> Result<Vec<crate::source::proto::binlogdata::Rule>> {
    let text: String = conn
        .query_row(
            "SELECT value FROM _vtmirror_identity WHERE key = 'filter'",
            [],
            |r| r.get(0),
        )
        .context("reading the mirror's filter rules")?;
    let parsed: Vec<serde_json::Value> =
        serde_json::from_str(&text).context("the mirror's filter rules are not JSON")?;
    let field =
        |v: &serde_json::Value, name: &str| v[name].as_str().unwrap_or_default().to_string();
    Ok(parsed
        .iter()
        .map(|r| crate::source::proto::binlogdata::Rule {
            r#match: field(r, "match"),
            filter: field(r, "filter"),
        })
        .collect())
}

/// Opens a read transaction on the mirror at a checkpoint that every scratch copy has not
/// passed, waiting for `sync` to move the mirror on if needed; the transaction stays open.
async fn snapshot_past(
    mirror: &Connection,
    scratches: &[Scratch],
    deadline: Instant,
) -> Result<VGtid> {
    loop {
        mirror
            .execute_batch("BEGIN")
            .context("starting the mirror's read")?;
        let stored = metadata::load_checkpoint(mirror)?;
        let target = stored.vgtid.context("the mirror lost its checkpoint")?;
        let mut behind = None;
        for scratch in scratches {
            if !scratch.within(&target)? {
                behind = Some(scratch.name());
            }
        }
        let Some(shard) = behind else {
            return Ok(target);
        };
        mirror.execute_batch("COMMIT")?;
        if Instant::now() > deadline {
            bail!(
                "the mirror stayed behind the source on shard {shard} (is `vtmirror sync` \
                 running on it?); verify compares at the mirror's checkpoint, which must reach \
                 the source's current position once"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn compare_all(
    opts: &VerifyOptions,
    mirror: &Connection,
    naming: &Naming,
    tables: &[String],
    scratches: &[Scratch],
    target: &VGtid,
) -> Result<Verdict> {
    let mut reports = Vec::new();
    for table in tables {
        let Some((keyspace, bare)) = naming.split_table(table) else {
            continue;
        };
        say(opts, &format!("comparing table {table}"));
        let conns: Vec<Connection> = (scratches.iter())
            .filter(|s| s.keyspace() == keyspace)
            .map(Scratch::open)
            .collect::<Result<_>>()?;
        let refs: Vec<&Connection> = conns.iter().collect();
        reports.push(compare::table(mirror, table, &refs, bare)?);
    }
    Ok(Verdict {
        mirror: opts.db.display().to_string(),
        checkpoint: target.shard_gtids.iter().map(position_text).collect(),
        equal: reports.iter().all(TableReport::equal),
        tables: reports,
    })
}

fn position_text(s: &ShardGtid) -> String {
    format!("{}/{} {}", s.keyspace, s.shard, s.gtid)
}

/// The human-readable verdict, with a remedy when the mirror differs.
pub fn text(verdict: &Verdict) -> String {
    let mut lines = vec![
        format!("mirror      {}", verdict.mirror),
        "checkpoint".to_string(),
    ];
    lines.extend(verdict.checkpoint.iter().map(|p| format!("  {p}")));
    for t in &verdict.tables {
        let state = if t.equal() { "equal" } else { "DIFFERENT" };
        lines.push(format!(
            "{:<28} {state:<9} {} rows compared, {} missing, {} extra, {} differing",
            t.table, t.compared, t.missing, t.extra, t.differing
        ));
        for (kind, keys) in [
            ("missing", &t.missing_keys),
            ("extra", &t.extra_keys),
            ("differing", &t.differing_keys),
        ] {
            if !keys.is_empty() {
                lines.push(format!("  {kind}: {}", keys.join("; ")));
            }
        }
    }
    lines.push(if verdict.equal {
        "verdict: the mirror equals its source at its checkpoint".into()
    } else {
        "verdict: the mirror DIFFERS from its source. Remedy: copy the source again into a new \
         file (vtmirror sync --db NEW.db with the same --keyspace, --shards and --tables), \
         check it with verify, then replace this one."
            .into()
    });
    lines.join("\n")
}
