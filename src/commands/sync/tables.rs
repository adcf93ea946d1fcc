//! What `sync` does when an existing mirror is asked for other tables: tables that joined the
//! selection are copied on their own (`mirror::table_copy`) while the others keep
//! replicating from the checkpoint; tables that left it are deleted from the file only when
//! `--drop-unselected` says so; `--recopy` copies tables again.
//!
//! Everything is decided before anything is written, and written in one SQLite transaction
//! (table copies requested, tables dropped, the new filter recorded): a refused change
//! leaves the file as it was, and a kill at any instant leaves either the old selection or
//! the new one with its copies pending.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};

use super::SyncOptions;
use crate::mirror::ddl::CannotFollow;
use crate::mirror::metadata;
use crate::mirror::schema;
use crate::mirror::store::{update_filter, Mirror};
use crate::mirror::table_copy::{self, Reason};
use crate::source::catalog::{self, rule_matches};
use crate::source::ddl_statement::is_internal;
use crate::source::naming::Naming;
use crate::source::proto::binlogdata::{Rule, VGtid};

/// How a sync may change the tables of an existing mirror.
#[derive(Debug, Clone, Default)]
pub struct TableChanges {
    /// Mirror tables to copy again (the others keep replicating).
    pub recopy: Vec<String>,
    /// Delete tables the selection no longer names (otherwise such a sync is refused).
    pub drop_unselected: bool,
    /// Copy a table again when a source DDL rewrote its values without row events, instead
    /// of stopping.
    pub recopy_on_ddl: bool,
}

/// The mirror's tables against the new selection.
struct Plan {
    added: Vec<String>,
    removed: Vec<String>,
}

/// What the file holds, read before vtgate is asked which tables the new selection names
/// (owned: no handle on the file is kept across that wait).
pub struct Before {
    previous: Option<String>,
    stored: metadata::Stored,
    held: BTreeSet<String>,
    naming: Naming,
}

/// Reads what `apply` compares against.
pub fn before(mirror: &Mirror) -> Result<Before> {
    Ok(Before {
        previous: mirror.previous_filter.clone(),
        stored: metadata::load_checkpoint(&mirror.conn)?,
        held: mirrored_tables(mirror)?,
        naming: mirror.naming.clone(),
    })
}

/// The tables the new selection names, when the selection changed on a mirror that holds
/// tables (asks vtgate; the only wait of a changed selection).
pub async fn selected(opts: &SyncOptions, before: &Before) -> Result<Option<BTreeSet<String>>> {
    match (&before.previous, &before.stored.vgtid) {
        (Some(_), Some(vgtid)) => Ok(Some(selected_tables(opts, &before.naming, vgtid).await?)),
        _ => Ok(None),
    }
}

/// Applies a changed selection and the `--recopy` requests to `mirror`, or refuses with one
/// error and leaves the file untouched.
pub fn apply(
    opts: &SyncOptions,
    mirror: &Mirror,
    before: Before,
    selected: Option<BTreeSet<String>>,
) -> Result<()> {
    let recopy = &opts.changes.recopy;
    let Some(previous) = before.previous.as_deref() else {
        return match recopy.is_empty() {
            true => Ok(()),
            false => request_recopy(opts, mirror),
        };
    };
    let stored = before.stored;
    let (Some(vgtid), Some(selected)) = (stored.vgtid, selected) else {
        // Nothing was committed yet: the new filter simply replaces the old one.
        return update_filter(&mirror.conn, &opts.identity().filter);
    };
    let plan = Plan {
        added: selected.difference(&before.held).cloned().collect(),
        removed: before.held.difference(&selected).cloned().collect(),
    };
    if !plan.removed.is_empty() && !opts.changes.drop_unselected {
        bail!(
            "the mirror holds {} that this sync no longer selects (it was made with filter \
             {previous}); pass --drop-unselected to delete {} from the mirror, or select {} again",
            plan.removed.join(", "),
            if plan.removed.len() == 1 {
                "it"
            } else {
                "them"
            },
            if plan.removed.len() == 1 {
                "it"
            } else {
                "them"
            },
        );
    }
    check_recopy(mirror, stored.copy_completed, recopy)?;
    let kept = before.held.intersection(&selected);
    let refiltered = refiltered(previous, &opts.spec.rules, &mirror.naming, kept)?;
    let tx = mirror.conn.unchecked_transaction()?;
    for table in &plan.removed {
        drop_table(&tx, &mirror.naming, table)?;
    }
    if stored.copy_completed {
        // Before the first copy completed, tables that joined are copied by it.
        table_copy::request(&tx, &mirror.naming, &vgtid, &plan.added, Reason::Added)?;
        table_copy::request(&tx, &mirror.naming, &vgtid, recopy, Reason::Requested)?;
        table_copy::request(&tx, &mirror.naming, &vgtid, &refiltered, Reason::Filter)?;
    } else {
        // The first copy copies them again, under the new filter, from their first row.
        for table in &refiltered {
            drop_table(&tx, &mirror.naming, table)?;
        }
    }
    update_filter(&tx, &opts.identity().filter)?;
    if let Some(log) = &mirror.changes {
        log.before_commit(&tx)?;
    }
    tx.commit().context("recording the mirror's new tables")?;
    tracing::info!(added = ?plan.added, dropped = ?plan.removed, recopy = ?recopy, refiltered = ?refiltered, "the mirror's tables changed");
    Ok(())
}

/// Tables that stay selected but whose row filter changed, so the rows the mirror holds were
/// chosen by another filter: without a fresh copy, rows the new filter adds would never come
/// and rows it drops would stay. A table's filter is that of the first rule matching it
/// (vttablet's order), so a changed WHERE, another rule order or another matching rule all
/// count; an empty filter and `select * from TABLE` both mean every row.
fn refiltered<'a>(
    previous: &str,
    rules: &[Rule],
    naming: &Naming,
    kept: impl Iterator<Item = &'a String>,
) -> Result<Vec<String>> {
    let old: Vec<Rule> = serde_json::from_str::<Vec<serde_json::Value>>(previous)
        .context("reading the filter the mirror was made with")?
        .iter()
        .map(|r| Rule {
            r#match: r["match"].as_str().unwrap_or_default().to_string(),
            filter: r["filter"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    let mut changed = Vec::new();
    for table in kept {
        let Some((_, bare)) = naming.split_table(table) else {
            continue;
        };
        if row_filter(&old, bare)? != row_filter(rules, bare)? {
            changed.push(table.clone());
        }
    }
    Ok(changed)
}

/// The row filter the first rule matching `bare` gives it, whitespace folded; "" = every row.
fn row_filter(rules: &[Rule], bare: &str) -> Result<String> {
    for rule in rules {
        let Some(matches) = rule_matches(rule, bare) else {
            bail!("the filter has a regex this tool cannot read, so whether table {bare}'s rows change is unknown");
        };
        if matches {
            let folded = rule.filter.split_whitespace().collect::<Vec<_>>().join(" ");
            let quoted = format!("select * from `{}`", bare.replace('`', "``"));
            let every_row = [format!("select * from {bare}"), quoted];
            let all = every_row.iter().any(|e| folded.eq_ignore_ascii_case(e));
            return Ok(if all { String::new() } else { folded });
        }
    }
    Ok(String::new())
}

fn request_recopy(opts: &SyncOptions, mirror: &Mirror) -> Result<()> {
    let stored = metadata::load_checkpoint(&mirror.conn)?;
    check_recopy(mirror, stored.copy_completed, &opts.changes.recopy)?;
    let Some(vgtid) = stored.vgtid else {
        bail!("--recopy: the mirror holds no table yet");
    };
    let tx = mirror.conn.unchecked_transaction()?;
    table_copy::request(
        &tx,
        &mirror.naming,
        &vgtid,
        &opts.changes.recopy,
        Reason::Requested,
    )?;
    if let Some(log) = &mirror.changes {
        log.before_commit(&tx)?;
    }
    tx.commit().context("recording the re-copy request")?;
    tracing::info!(tables = ?opts.changes.recopy, "copying tables again");
    Ok(())
}

/// Each `--recopy` table must be mirrored, after the first copy completed.
fn check_recopy(mirror: &Mirror, copy_completed: bool, recopy: &[String]) -> Result<()> {
    if recopy.is_empty() {
        return Ok(());
    }
    if !copy_completed {
        bail!("--recopy: the mirror's first copy has not completed yet; every table is still being copied");
    }
    let held = mirrored_tables(mirror)?;
    if let Some(missing) = recopy.iter().find(|t| !held.contains(*t)) {
        bail!(
            "--recopy: the mirror holds no table {missing:?} (it holds: {})",
            held.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// Tables the mirror holds or is copying (mirror names).
fn mirrored_tables(mirror: &Mirror) -> Result<BTreeSet<String>> {
    let mut held: BTreeSet<String> = metadata::load_fields(&mirror.conn)?
        .into_keys()
        .filter(|t| schema::table_of_shadow(t).is_none())
        .collect();
    held.extend(
        table_copy::pending(&mirror.conn)?
            .into_iter()
            .map(|c| c.table),
    );
    Ok(held)
}

/// The mirror tables the new selection names in the keyspaces the checkpoint covers: from
/// vtgate's table lists, or from the exact names of the rules when vtgate lists nothing.
pub(super) async fn selected_tables(
    opts: &SyncOptions,
    naming: &Naming,
    vgtid: &VGtid,
) -> Result<BTreeSet<String>> {
    let spec = &opts.spec;
    let keyspaces: BTreeSet<&str> = (vgtid.shard_gtids.iter())
        .map(|s| s.keyspace.as_str())
        .collect();
    let kept = spec.selection.kept_tables();
    let catalog = catalog::fetch(spec).await?;
    let mut selected = BTreeSet::new();
    for keyspace in keyspaces {
        let listed: Vec<String> = match (&catalog, &kept) {
            (Some(catalog), _) => catalog.tables.get(keyspace).cloned().unwrap_or_default(),
            (None, Some(kept)) => (kept.iter())
                .filter_map(|t| naming.split_table(t))
                .filter(|(k, _)| *k == keyspace)
                .map(|(_, bare)| bare.to_string())
                .collect(),
            (None, None) => exact_names(spec)?,
        };
        for bare in listed.iter().filter(|t| !is_internal(t)) {
            let mut matches = spec.rules.iter().map(|r| rule_matches(r, bare));
            let matched = matches.try_fold(false, |any, m| m.map(|m| any || m));
            let Some(matched) = matched else {
                bail!("the filter has a regex this tool cannot read, so the tables it adds or removes are unknown");
            };
            let table = naming.table(keyspace, bare).into_owned();
            if matched && kept.as_ref().is_none_or(|k| k.contains(&table)) {
                selected.insert(table);
            }
        }
    }
    if let (Some(catalog), Some(kept)) = (&catalog, &kept) {
        if let Some(missing) = kept.iter().find(|t| !selected.contains(*t)) {
            bail!(
                "table {missing} does not exist ({} keyspaces listed)",
                catalog.tables.len()
            );
        }
    }
    Ok(selected)
}

/// The rules' plain table names, when vtgate does not list tables.
fn exact_names(spec: &crate::source::vstream::StreamSpec) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for rule in &spec.rules {
        if rule.r#match.starts_with('/') {
            bail!(
                "vtgate does not list its tables (Execute), so the tables a changed filter \
                 with the rule {:?} selects are unknown; name the tables with --tables",
                rule.r#match
            );
        }
        names.push(rule.r#match.clone());
    }
    Ok(names)
}

/// With `--recopy-on-ddl`: when `err` is a source change the mirror cannot follow, records a
/// copy of its table (the stream then restarts from the checkpoint before the change) and
/// returns the table. During the first copy the table is dropped instead: that copy copies
/// it again from the start.
pub fn copy_instead_of_stop(mirror: &Mirror, err: &anyhow::Error) -> Result<Option<String>> {
    let Some(cannot) = err.chain().find_map(|c| c.downcast_ref::<CannotFollow>()) else {
        return Ok(None);
    };
    let table = schema::table_of_shadow(&cannot.table).unwrap_or(&cannot.table);
    let stored = metadata::load_checkpoint(&mirror.conn)?;
    let Some(vgtid) = stored.vgtid else {
        return Ok(None);
    };
    let tx = mirror.conn.unchecked_transaction()?;
    if stored.copy_completed {
        let tables = [table.to_string()];
        table_copy::request(&tx, &mirror.naming, &vgtid, &tables, Reason::Ddl)?;
    } else {
        drop_table(&tx, &mirror.naming, table)?;
    }
    if let Some(log) = &mirror.changes {
        log.before_commit(&tx)?;
    }
    tx.commit()
        .with_context(|| format!("recording a copy of table {table}"))?;
    Ok(Some(table.to_string()))
}

/// Deletes a table that left the selection, with its schema, copy state, any pending copy
/// and its last PKs in the checkpoint.
fn drop_table(tx: &rusqlite::Connection, naming: &Naming, table: &str) -> Result<()> {
    table_copy::cancel(tx, table)?;
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS {}",
        crate::mirror::schema::quote(table)
    ))
    .with_context(|| format!("dropping table {table}"))?;
    metadata::forget_table(tx, table)?;
    let stored = metadata::load_checkpoint(tx)?;
    if let Some(mut vgtid) = stored.vgtid {
        for shard in &mut vgtid.shard_gtids {
            let keyspace = shard.keyspace.clone();
            (shard.table_p_ks).retain(|t| naming.table(&keyspace, &t.table_name) != table);
        }
        metadata::save_checkpoint(tx, &vgtid, 0, 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::vstream::rules;

    fn rule_json(rules: &[Rule]) -> String {
        let rules: Vec<_> = (rules.iter())
            .map(|r| serde_json::json!({"match": r.r#match, "filter": r.filter}))
            .collect();
        serde_json::Value::Array(rules).to_string()
    }

    fn refiltered_of(old: &[Rule], new: &[Rule], tables: &[&str]) -> Vec<String> {
        let naming = Naming::Bare("ks".into());
        let kept: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        refiltered(&rule_json(old), new, &naming, kept.iter()).unwrap()
    }

    #[test]
    fn a_changed_where_on_a_kept_table_asks_for_its_copy_again() {
        let old = rules(&[], &["t=select * from t where v < 50".into()]);
        let new = rules(&[], &["t=select * from t where v < 80".into()]);
        assert_eq!(refiltered_of(&old, &new, &["t"]), vec!["t".to_string()]);
        let same = rules(&[], &["t=select  *  from t where v < 50".into()]);
        assert!(refiltered_of(&old, &same, &["t"]).is_empty(), "whitespace only");
    }

    #[test]
    fn a_filter_added_or_removed_counts_and_every_spelling_of_every_row_is_one() {
        let all = rules(&["t".into()], &[]);
        let filtered = rules(&[], &["t=select * from t where tenant in (3, 7)".into()]);
        assert_eq!(refiltered_of(&all, &filtered, &["t"]), vec!["t".to_string()]);
        assert_eq!(refiltered_of(&filtered, &all, &["t"]), vec!["t".to_string()]);
        let every = rules(&[], &[]);
        let plain = rules(&[], &["t=select * from t".into()]);
        assert!(refiltered_of(&all, &every, &["t"]).is_empty());
        assert!(refiltered_of(&every, &plain, &["t"]).is_empty());
    }

    #[test]
    fn the_first_matching_rule_decides_and_other_tables_are_left_alone() {
        let old = rules(&[], &["/.*".into()]);
        let new = rules(&[], &["t=select * from t where v = 1".into(), "/.*".into()]);
        assert_eq!(refiltered_of(&old, &new, &["t", "u"]), vec!["t".to_string()]);
    }
}
