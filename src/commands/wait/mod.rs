//! `vtmirror wait`: read-your-writes. Returns once the mirror file holds every transaction
//! the source committed before the call (asked of each serving shard's primary:
//! `source::primary_position`), or a given position; a library call too (`run`), so an HTTP
//! endpoint or an embedding application waits the same way.
//!
//! The wait itself only reads the mirror: it re-reads the stored checkpoint whenever SQLite's
//! `data_version` says another connection committed, every `POLL_INTERVAL`. The checkpoint
//! advances with every source transaction of the streamed shards, including transactions on
//! tables the mirror does not select (vttablet sends their GTID and COMMIT), and with
//! heartbeats, so a write elsewhere in the keyspace does not leave a wait hanging.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::mirror::metadata::{copy_states, load_checkpoint, Stored};
use crate::mirror::store::{data_version, open_read_only};
use crate::source::primary_position::{primary_gtid_sets, serving_shards};
use crate::source::proto::binlogdata::VGtid;
use crate::source::transport::{connect_first, Vtgate, VtgateClient};

mod target;

pub use target::{behind, shards_to_ask, target_of_position, Target};

/// How often the checkpoint is looked at: a few milliseconds against commits the sync makes
/// as soon as its queue is empty.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// What to wait for.
#[derive(Debug, Clone)]
pub enum WaitFor {
    /// Every transaction the source committed before the call.
    Source {
        vtgate: Vtgate,
        /// Principal sent as the Execute calls' effective caller id.
        caller_id: Option<String>,
    },
    /// A position (a VGtid naming each shard with a MySQL GTID set).
    Position(VGtid),
}

#[derive(Debug, Clone)]
pub struct WaitOptions {
    pub db: PathBuf,
    pub wait_for: WaitFor,
    /// The whole wait, the question to vtgate included.
    pub timeout: Duration,
}

/// How a wait ended (errors are `Err`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    Reached {
        waited: Duration,
    },
    /// The mirror had not reached the target; `behind` says where, one line per shard.
    TimedOut {
        waited: Duration,
        behind: Vec<String>,
    },
}

/// Exit status of the command for each outcome (2 is any error).
impl WaitOutcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            WaitOutcome::Reached { .. } => 0,
            WaitOutcome::TimedOut { .. } => 3,
        }
    }
}

/// Waits until the mirror `opts.db` has reached the target or `opts.timeout` passed.
pub async fn run(opts: &WaitOptions) -> Result<WaitOutcome> {
    let started = Instant::now();
    let deadline = started + opts.timeout;
    let db = opts.db.clone();
    let conn = tokio::task::spawn_blocking(move || open_read_only(&db))
        .await
        .context("opening the mirror")??;
    // A Mutex makes the connection shareable across the awaits below (rusqlite's is Send only).
    let conn = Mutex::new(conn);
    let timed_out = |reason: &str| WaitOutcome::TimedOut {
        waited: started.elapsed(),
        behind: vec![reason.to_string()],
    };
    let target = match &opts.wait_for {
        WaitFor::Position(position) => target_of_position(position)?,
        WaitFor::Source { vtgate, caller_id } => {
            let client = connect_first(vtgate).await?;
            let Some(checkpoint) = first_checkpoint(&conn, deadline).await? else {
                return Ok(timed_out(
                    "the mirror has no checkpoint yet (its sync has not committed)",
                ));
            };
            let asked = source_target(&client, caller_id.as_deref(), &checkpoint);
            match tokio::time::timeout_at(deadline.into(), asked).await {
                Ok(target) => target?,
                Err(_) => {
                    return Ok(timed_out(
                        "vtgate did not tell the source's position in time",
                    ))
                }
            }
        }
    };
    let conn = conn
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tokio::task::spawn_blocking(move || poll_until_reached(&conn, &target, started, deadline))
        .await
        .context("waiting for the mirror")?
}

/// The primaries' positions of the serving shards holding the mirror's keys.
async fn source_target(
    client: &VtgateClient,
    caller_id: Option<&str>,
    checkpoint: &VGtid,
) -> Result<Target> {
    let serving = serving_shards(client, caller_id).await?;
    let shards = shards_to_ask(checkpoint, &serving)?;
    primary_gtid_sets(client, caller_id, &shards).await
}

/// The stored checkpoint, which names the mirror's keyspaces and shards; a mirror whose sync
/// has not committed yet is waited for (asking the source afterwards only asks for more).
async fn first_checkpoint(conn: &Mutex<Connection>, deadline: Instant) -> Result<Option<VGtid>> {
    loop {
        let stored = {
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            load_checkpoint(&conn)?
        };
        if let Some(vgtid) = stored.vgtid {
            return Ok(Some(vgtid));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Re-reads the checkpoint whenever another connection committed, until it has reached
/// `target` or the deadline passed.
fn poll_until_reached(
    conn: &Connection,
    target: &Target,
    started: Instant,
    deadline: Instant,
) -> Result<WaitOutcome> {
    let mut seen_version = None;
    let mut reasons = Vec::new();
    loop {
        let version = data_version(conn)?;
        if seen_version != Some(version) {
            seen_version = Some(version);
            let (stored, copying) = read_checkpoint(conn)?;
            reasons = behind(&stored, copying, target);
            if reasons.is_empty() {
                return Ok(WaitOutcome::Reached {
                    waited: started.elapsed(),
                });
            }
        }
        if Instant::now() >= deadline {
            return Ok(WaitOutcome::TimedOut {
                waited: started.elapsed(),
                behind: reasons,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The checkpoint and whether the first copy is under way, read in one snapshot.
fn read_checkpoint(conn: &Connection) -> Result<(Stored, bool)> {
    let tx = conn.unchecked_transaction()?;
    let stored = load_checkpoint(&tx)?;
    // A copy that began leaves copy state rows; a mirror started at "current" has none and
    // never completes a copy.
    let copying = !stored.copy_completed && !copy_states(&tx)?.is_empty();
    tx.commit()?;
    Ok((stored, copying))
}
