//! Tables the first copy did not deliver are copied on their own (`mirror::copy_check`
//! explains why a copy can miss one and why this is exact), and a table copy names its
//! tables to vttablet so that one whose tablet does not know it yet fails the stream (a
//! retry with backoff) instead of ending its copy without a row.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use super::tables::selected_tables;
use super::SyncOptions;
use crate::mirror::copy_check;
use crate::mirror::metadata;
use crate::mirror::store::Mirror;
use crate::source::catalog::rule_matches;
use crate::source::naming::Naming;
use crate::source::proto::binlogdata::VGtid;
use crate::source::proto::vtgate::VStreamRequest;
use crate::source::vstream::rules;

/// When a check is due: asks vtgate which tables the filter selects and requests a copy of
/// each one the first copy did not deliver. Always gives the mirror back (no handle on the
/// file is held while vtgate is asked).
pub(super) async fn check_copy(opts: &SyncOptions, mirror: Mirror) -> (Mirror, Result<()>) {
    let due = match due(&mirror) {
        Ok(Some(due)) => due,
        Ok(None) => return (mirror, Ok(())),
        Err(e) => return (mirror, Err(e)),
    };
    let expected = expected_tables(opts, &due).await;
    let result = expected.and_then(|expected| record(&mirror, &due, &expected));
    (mirror, result)
}

/// The stored position and naming, when a check is due.
fn due(mirror: &Mirror) -> Result<Option<(VGtid, Naming)>> {
    if !copy_check::check_due(&mirror.conn)? {
        return Ok(None);
    }
    let vgtid = metadata::load_checkpoint(&mirror.conn)?.vgtid;
    Ok(vgtid.map(|v| (v, mirror.naming.clone())))
}

/// The tables the filter selects, as vtgate lists them (none when it does not list them).
async fn expected_tables(
    opts: &SyncOptions,
    (vgtid, naming): &(VGtid, Naming),
) -> Result<BTreeSet<String>> {
    if crate::source::catalog::fetch(&opts.spec).await?.is_none() {
        tracing::warn!("vtgate does not list its tables, so whether the copy delivered every selected table is not checked");
        return Ok(BTreeSet::new());
    }
    selected_tables(opts, naming, vgtid).await
}

/// Requests a copy of each expected table the copy did not deliver and clears the mark:
/// one transaction.
fn record(
    mirror: &Mirror,
    (vgtid, naming): &(VGtid, Naming),
    expected: &BTreeSet<String>,
) -> Result<()> {
    let conn = &mirror.conn;
    let missing = copy_check::gaps(conn, naming, vgtid, expected)?;
    let tx = conn.unchecked_transaction()?;
    copy_check::replace_by_copies(&tx, naming, vgtid, &missing)?;
    copy_check::checked(&tx)?;
    tx.commit()
        .context("recording copies of the tables the copy did not deliver")?;
    if !missing.is_empty() {
        tracing::warn!(tables = ?missing, "the copy did not deliver these tables (a tablet that had not loaded them yet?); copying them now");
    }
    Ok(())
}

/// Names each table of a table copy in a filter rule of its own, ahead of the others, when
/// the stream has one keyspace: vttablet checks that a table named by a rule exists in its
/// schema engine ("table … is not present in the database", a transient error here), while
/// with only a pattern it would plan no copy for a table it does not know yet and never end
/// that copy. With several keyspaces a named table would have to exist in every one of them
/// (a rule applies in all), so those streams keep their rules.
pub(super) fn name_copied_tables(opts: &SyncOptions, request: &mut VStreamRequest) {
    let Some(flags) = request.flags.as_ref() else {
        return;
    };
    if opts.spec.selection.keyspaces.single().is_none() || flags.tables_to_copy.is_empty() {
        return;
    }
    let Some(filter) = request.filter.as_mut() else {
        return;
    };
    // A table whose rule filters or projects (`--rule 't=select …'`) keeps that rule.
    let plain = |t: &str| {
        let mut matching = (filter.rules.iter()).filter(|r| rule_matches(r, t) != Some(false));
        matching.all(|r| r.r#match.starts_with('/') && r.filter.is_empty())
    };
    let named: Vec<String> = (flags.tables_to_copy.iter())
        .filter(|t| plain(t))
        .cloned()
        .collect();
    if named.is_empty() {
        return;
    }
    let mut named = rules(&named, &[]);
    named.append(&mut filter.rules);
    filter.rules = named;
}
