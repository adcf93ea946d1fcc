//! Validation of a VStreamRequest the way vtgate (`resolveParams`) and vttablet
//! (`uvstreamer.init`/`buildTablePlan`/`setStreamStartPosition`) do it, producing the start
//! state of every shard stream. A request may name several keyspaces (or all of them, or a
//! `/regex` over their names); every shard is then checked against its own keyspace's model,
//! so the filter and `tables_to_copy` apply in every keyspace.

use tonic::Status;

use super::events::lastpk_value;
use super::filter::TableFilter;
use super::gtid::{parse_position, PositionError};
use super::keyspaces::sorted_names;
use super::model::{Model, Shard};
use crate::source::proto::binlogdata::{Filter, Rule, ShardGtid, TableLastPk, VGtid};
use crate::source::proto::vtgate::{VStreamFlags, VStreamRequest};

/// How one shard stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartMode {
    /// gtid "current": send VGTID+OTHER, then replicate.
    Current,
    /// Replicate the binlog after this GTID number.
    Replicate(u64),
    /// Copy phase (after a catch-up from `pos` when set), then replicate.
    Copy {
        /// Start position (None for gtid "").
        pos: Option<u64>,
        /// Tables to copy, sorted by name, with their lastpk (None = from scratch).
        plan: Vec<(String, Option<i64>)>,
    },
}

/// One resolved shard of the stream.
#[derive(Debug, Clone)]
pub struct ShardStart {
    /// Index of the shard's keyspace among the served keyspaces.
    pub keyspace: usize,
    /// Index of the shard in its keyspace's model.
    pub model_index: usize,
    /// Start mode.
    pub mode: StartMode,
}

/// The resolved request.
#[derive(Debug, Clone)]
pub struct StreamSetup {
    /// The stream's VGtid as vtgate holds it (every shard of every keyspace, as requested).
    pub vgtid: VGtid,
    /// One entry per element of `vgtid.shard_gtids`.
    pub shards: Vec<ShardStart>,
    /// Table filter.
    pub filter: TableFilter,
    /// Flags (defaults when absent).
    pub flags: VStreamFlags,
}

fn resolve_err(msg: String) -> Status {
    Status::invalid_argument(format!("failed to resolve vstream parameters: {msg}"))
}

/// Resolves and validates `req` against the served keyspaces (`models`, locked).
pub fn resolve(req: &VStreamRequest, models: &[&Model]) -> Result<StreamSetup, Status> {
    let filter = TableFilter::new(req.filter.as_ref())?;
    let flags = req.flags.clone().unwrap_or_default();
    let (vgtid, keyspaces) = expand_vgtid(req.vgtid.as_ref(), models)?;
    let mut shards = Vec::with_capacity(vgtid.shard_gtids.len());
    for (sgtid, k) in vgtid.shard_gtids.iter().zip(keyspaces) {
        shards.push(resolve_shard(sgtid, models[k], k, &filter, &flags)?);
    }
    Ok(StreamSetup {
        vgtid,
        shards,
        filter,
        flags,
    })
}

/// vtgate's `resolveParams`: the all-keyspaces and keyspace-regex forms, then `shard: ""`
/// expansion. Returns the VGtid and, per entry, the index of its keyspace in `models`.
fn expand_vgtid(vgtid: Option<&VGtid>, models: &[&Model]) -> Result<(VGtid, Vec<usize>), Status> {
    let mut out = VGtid::default();
    let mut keyspaces = Vec::new();
    for sgtid in requested_keyspaces(vgtid, models)? {
        if sgtid.shard.is_empty() && sgtid.gtid != "current" && !sgtid.gtid.is_empty() {
            return Err(resolve_err(format!(
                "if shards are unspecified, the Gtid value must be 'current' or empty; got: {vgtid:?}"
            )));
        }
        let Some(k) = models
            .iter()
            .position(|m| m.spec.keyspace == sgtid.keyspace)
        else {
            return Err(unknown_keyspace(&sgtid.keyspace));
        };
        if !sgtid.shard.is_empty() {
            out.shard_gtids.push(sgtid);
            keyspaces.push(k);
            continue;
        }
        for shard in &models[k].shards {
            out.shard_gtids.push(ShardGtid {
                keyspace: sgtid.keyspace.clone(),
                shard: shard.name.clone(),
                gtid: sgtid.gtid.clone(),
                table_p_ks: Vec::new(),
            });
            keyspaces.push(k);
        }
    }
    if out.shard_gtids.is_empty() {
        return Err(resolve_err(format!("no keyspace matches {vgtid:?}")));
    }
    Ok((out, keyspaces))
}

/// The request's entries, with its one-entry forms replaced by one entry per keyspace: empty
/// keyspace (gtid must be "current": every keyspace) or `/regex` (every matching keyspace).
fn requested_keyspaces(vgtid: Option<&VGtid>, models: &[&Model]) -> Result<Vec<ShardGtid>, Status> {
    let input = vgtid.map(|v| v.shard_gtids.as_slice()).unwrap_or_default();
    match input {
        [] => Err(resolve_err(
            "vgtid must have at least one value with a starting position in ShardGtids".into(),
        )),
        [only] if only.keyspace.is_empty() => {
            if only.gtid != "current" {
                return Err(resolve_err(format!(
                    "for an empty keyspace, the Gtid value must be 'current': {vgtid:?}"
                )));
            }
            Ok(every_keyspace(models, |_| true, "current"))
        }
        [only] if only.keyspace.starts_with('/') => {
            let re = keyspace_regex(&only.keyspace)?;
            Ok(every_keyspace(models, |ks| re.matches(ks), &only.gtid))
        }
        _ => Ok(input.to_vec()),
    }
}

/// One `shard: ""` entry with `gtid` per served keyspace that `wanted`, in vtgate's order
/// (keyspace names sorted).
fn every_keyspace(models: &[&Model], wanted: impl Fn(&str) -> bool, gtid: &str) -> Vec<ShardGtid> {
    sorted_names(models)
        .into_iter()
        .filter(|(ks, _)| wanted(ks))
        .map(|(keyspace, _)| ShardGtid {
            keyspace,
            gtid: gtid.to_string(),
            ..ShardGtid::default()
        })
        .collect()
}

/// A `/regex` over keyspace names (matched like a filter rule's table regex).
fn keyspace_regex(pattern: &str) -> Result<TableFilter, Status> {
    TableFilter::new(Some(&Filter {
        rules: vec![Rule {
            r#match: pattern.to_string(),
            ..Rule::default()
        }],
        ..Filter::default()
    }))
}

/// vtgate v24's text and code (UNKNOWN, which alone would read as retryable).
fn unknown_keyspace(ks: &str) -> Status {
    Status::unknown(format!(
        "failed to resolve vstream parameters: failed to get shards in keyspace {ks}: \
         keyspace {ks} fetch error: node doesn't exist: keyspaces/{ks}/SrvKeyspace"
    ))
}

fn resolve_shard(
    sgtid: &ShardGtid,
    model: &Model,
    keyspace: usize,
    filter: &TableFilter,
    flags: &VStreamFlags,
) -> Result<ShardStart, Status> {
    let Some(model_index) = model.shards.iter().position(|s| s.name == sgtid.shard) else {
        return Err(Status::failed_precondition(format!(
            "failed to determine if keyspace {ks} has been resharded: shard provided in VGTID, {}, not found in the {ks} keyspace",
            sgtid.shard,
            ks = sgtid.keyspace
        )));
    };
    let shard = &model.shards[model_index];
    let start = |mode| ShardStart {
        keyspace,
        model_index,
        mode,
    };
    let pos = match sgtid.gtid.as_str() {
        "current" => return Ok(start(StartMode::Current)),
        "" => None,
        gtid => Some(check_position(gtid, shard, &sgtid.keyspace)?),
    };
    let mode = if pos.is_none() || !sgtid.table_p_ks.is_empty() {
        let plan = copy_plan(model, filter, flags, &sgtid.table_p_ks)?;
        if pos.is_none() && plan.is_empty() {
            return Err(tablet_err(
                shard,
                &sgtid.keyspace,
                "stream needs a position or a table to copy",
            ));
        }
        StartMode::Copy { pos, plan }
    } else {
        StartMode::Replicate(pos.unwrap_or_default())
    };
    Ok(start(mode))
}

fn tablet_err(shard: &Shard, ks: &str, msg: &str) -> Status {
    Status::unknown(format!(
        "error in vstream for {ks}/{} on tablet zone1-{:010}: {msg}",
        shard.name, 100
    ))
}

/// Parses and checks a start position: INTERNAL for an unknown flavor, INVALID_ARGUMENT
/// "GTIDSet Mismatch" when ahead of / foreign to the shard, UNKNOWN errno 1236 when purged.
fn check_position(gtid: &str, shard: &Shard, ks: &str) -> Result<u64, Status> {
    let mismatch = || {
        Status::invalid_argument(format!(
            "GTIDSet Mismatch: requested source position:{gtid}, current target vrep position: {}",
            shard.position()
        ))
    };
    let n = match parse_position(gtid, &shard.uuid) {
        Ok(n) => n,
        Err(PositionError::UnknownFlavor(f)) => {
            return Err(Status::internal(format!(
                "could not decode position: parse error: unknown GTIDSet flavor {f:?}"
            )))
        }
        Err(PositionError::Mismatch) => return Err(mismatch()),
    };
    if n > shard.head() {
        return Err(mismatch());
    }
    if n < shard.purged {
        return Err(tablet_err(shard, ks, "Cannot replicate because the source purged required binary logs. Replicate the missing transactions from elsewhere, or provision a new replica from backup. (errno 1236) (sqlstate HY000)"));
    }
    Ok(n)
}

/// uvstreamer's `buildTablePlan`: every filtered table (narrowed by tables_to_copy), sorted by
/// name, with its lastpk when listed in table_p_ks.
fn copy_plan(
    model: &Model,
    filter: &TableFilter,
    flags: &VStreamFlags,
    table_p_ks: &[TableLastPk],
) -> Result<Vec<(String, Option<i64>)>, Status> {
    for name in filter.named_tables() {
        if model.spec.table(name).is_none() {
            return Err(Status::unknown(format!(
                "table {name} is not present in the database"
            )));
        }
    }
    let mut plan = Vec::new();
    for t in &model.spec.tables {
        if !filter.matches(&t.name) {
            continue;
        }
        if !flags.tables_to_copy.is_empty() && !flags.tables_to_copy.contains(&t.name) {
            continue;
        }
        let lastpk = match table_p_ks.iter().find(|p| p.table_name == t.name) {
            Some(TableLastPk {
                lastpk: Some(qr), ..
            }) => {
                if qr.fields.is_empty() {
                    return Err(Status::unknown(format!(
                        "lastpk for table {} has no fields defined",
                        t.name
                    )));
                }
                Some(lastpk_value(qr).ok_or_else(|| {
                    Status::invalid_argument(format!("invalid lastpk for table {}: {qr:?}", t.name))
                })?)
            }
            _ => None,
        };
        plan.push((t.name.clone(), lastpk));
    }
    plan.sort();
    Ok(plan)
}
