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
//! 4. **Compare the tables and columns** the mirror holds with the ones its selection holds
//!    on the source, as vtgate's catalog lists them (`schema`): a table or column missing on
//!    either side is a difference, named.
//! 5. **Compare the rows** of every mirrored table with the union of the scratch copies in
//!    primary-key order, over the columns both sides have, inside the same read transaction
//!    (`compare`).
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
//! are primary keys only; no other value is ever printed. The table and column lists are the
//! source's catalog when verify reads it, not at the checkpoint: a DDL the source ran after
//! the mirror's checkpoint shows as a difference until `sync` applied it (the verdict says
//! so; run verify again then).
//!
//! # A mirror nobody moves
//! Step 2 waits for `sync` to move the mirror on. When no sync holds the mirror's lock and
//! its checkpoint has not moved for `NO_SYNC_GRACE`, verify stops with that reason instead of
//! waiting `--wait` out (a sync restarting within that time, as systemd does, is waited for).
//!
//! # Cost
//! Disk: the scratch files hold one more copy of the mirrored tables (in a directory next to
//! the mirror, removed at the end). Memory: one row per cursor. While it runs, the mirror's
//! read transaction keeps SQLite from checkpointing the WAL, which grows by what `sync`
//! writes meanwhile.

mod compare;
mod schema;
mod scratch;
mod verdict;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rusqlite::Connection;

use crate::mirror::metadata;
use crate::mirror::store::open_read_only;
use crate::source::naming::Naming;
use crate::source::proto::binlogdata::VGtid;
use crate::source::table_schema::is_bookkeeping_column;
use crate::source::vstream::StreamSpec;
pub use compare::TableReport;
use schema::SourceTables;
use scratch::Scratch;
pub use verdict::{text, Verdict};

/// How long a mirror behind the source may stay unmoved, with no sync holding its lock,
/// before verify says no sync runs.
const NO_SYNC_GRACE: Duration = Duration::from_secs(30);

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
    let all_tables = mirror_tables(&mirror)?;
    let tables = chosen_tables(&all_tables, &opts.tables)?;
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
        let target = snapshot_past(opts, &mirror, &scratches, deadline).await?;
        let keyspaces: BTreeSet<String> = (target.shard_gtids.iter())
            .map(|s| s.keyspace.clone())
            .collect();
        say(opts, "listing the source's tables and columns");
        let source = schema::source_tables(&opts.spec, &keyspaces, &rules, &naming).await?;
        for scratch in &scratches {
            say(
                opts,
                &format!("bringing {} to the mirror's checkpoint", scratch.name()),
            );
            scratch.stop_at(&target, deadline).await?;
        }
        let (missing, extra) = table_set(opts, &source, &tables, &naming);
        let sides = Sides {
            mirror: &mirror,
            naming: &naming,
            scratches: &scratches,
            source: &source,
        };
        let verdict =
            compare_all(opts, &sides, &tables, &target).map(|v| v.with_tables(missing, extra));
        mirror
            .execute_batch("COMMIT")
            .context("ending the mirror's read")?;
        verdict
    }
    .await;
    std::fs::remove_dir_all(&dir).ok();
    result
}

/// (missing, extra) tables of the mirror; with `--tables`, only extra ones among those asked
/// for (the others are not this verify's question).
fn table_set(
    opts: &VerifyOptions,
    source: &SourceTables,
    tables: &[String],
    naming: &Naming,
) -> (Vec<String>, Vec<String>) {
    let (missing, extra) = source.table_differences(tables, naming);
    match opts.tables.is_empty() {
        true => (missing, extra),
        false => (Vec::new(), extra),
    }
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

/// The mirror's tables.
fn mirror_tables(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_vtmirror%' \
         ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let all = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(all)
}

/// The mirror's tables, or the ones asked for, each of which must be mirrored.
fn chosen_tables(all: &[String], asked: &[String]) -> Result<Vec<String>> {
    if let Some(missing) = asked.iter().find(|t| !all.contains(t)) {
        bail!("table {missing:?} is not mirrored in this file");
    }
    Ok(if asked.is_empty() {
        all.to_vec()
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
    opts: &VerifyOptions,
    mirror: &Connection,
    scratches: &[Scratch],
    deadline: Instant,
) -> Result<VGtid> {
    let mut watch = Unmoved::default();
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
        if watch.started.is_none() {
            say(
                opts,
                &format!("waiting for sync to move the mirror past the source on shard {shard}"),
            );
        }
        if watch.still_for(&target, &opts.db) > NO_SYNC_GRACE {
            bail!(
                "the mirror is behind the source on shard {shard} and no `vtmirror sync` runs on \
                 it (its checkpoint has not moved for {} s): verify compares at the mirror's \
                 checkpoint, which must reach the source's current position once; start the \
                 sync, then verify again",
                NO_SYNC_GRACE.as_secs()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the mirror stayed behind the source on shard {shard} for --wait (is `vtmirror \
                 sync` keeping up?); verify compares at the mirror's checkpoint, which must reach \
                 the source's current position once"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long the mirror has been neither moved nor held by a sync.
#[derive(Default)]
struct Unmoved {
    started: Option<Instant>,
    checkpoint: Option<VGtid>,
    since: Option<Instant>,
}

impl Unmoved {
    fn still_for(&mut self, checkpoint: &VGtid, db: &Path) -> Duration {
        let now = Instant::now();
        self.started.get_or_insert(now);
        let moved = self.checkpoint.as_ref() != Some(checkpoint);
        // A lock that cannot be probed counts as held: waiting is the safe side.
        let held = crate::commands::status::sync_running(db) != Some(false);
        if moved || held {
            self.checkpoint = Some(checkpoint.clone());
            self.since = Some(now);
        }
        now.duration_since(*self.since.get_or_insert(now))
    }
}

/// The two sides of a comparison.
struct Sides<'a> {
    mirror: &'a Connection,
    naming: &'a Naming,
    scratches: &'a [Scratch],
    source: &'a SourceTables,
}

fn compare_all(
    opts: &VerifyOptions,
    sides: &Sides,
    tables: &[String],
    target: &VGtid,
) -> Result<Verdict> {
    let mut reports = Vec::new();
    for table in tables {
        let Some((keyspace, bare)) = sides.naming.split_table(table) else {
            continue;
        };
        // A table the source does not select is reported as extra, its rows not walked.
        let Some(source_columns) = sides.source.tables.get(table) else {
            continue;
        };
        say(opts, &format!("comparing table {table}"));
        let conns: Vec<Connection> = (sides.scratches.iter())
            .filter(|s| s.keyspace() == keyspace)
            .map(Scratch::open)
            .collect::<Result<_>>()?;
        let refs: Vec<&Connection> = conns.iter().collect();
        let compared = |c: &str| !is_bookkeeping_column(c) && source_columns.iter().any(|s| s == c);
        let mut report = compare::table(sides.mirror, table, &refs, bare, &compared)?;
        let layout = crate::mirror::ddl::current_layout(sides.mirror, table)?;
        let mine: Vec<String> = (layout.iter())
            .flat_map(|l| l.columns.iter().map(|(name, _)| name.clone()))
            .collect();
        (report.missing_columns, report.extra_columns) =
            schema::column_differences(source_columns, &mine);
        reports.push(report);
    }
    Ok(Verdict {
        mirror: opts.db.display().to_string(),
        checkpoint: target
            .shard_gtids
            .iter()
            .map(verdict::position_text)
            .collect(),
        equal: reports.iter().all(TableReport::equal),
        missing_tables: Vec::new(),
        extra_tables: Vec::new(),
        tables: reports,
    })
}
