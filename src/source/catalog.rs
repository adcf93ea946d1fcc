//! What vtgate serves, asked once before a new mirror's first stream: the keyspaces and their
//! shards (`SHOW VITESS_SHARDS`) and each keyspace's tables (`SHOW TABLES FROM`). `verify`
//! also asks for each keyspace's base tables and their columns (`table_columns`).
//!
//! Why ask at all, when the stream itself fails on a missing keyspace: several failures do
//! not fail the stream. A `--tables` name of several keyspaces is sent as an exact-match
//! pattern, which silently matches nothing when misspelt; a filter that matches no table of
//! a keyspace makes vttablet refuse the copy only after other keyspaces started copying; and
//! a shard that is not a shard is only refused by vtgate once the stream starts. Asking first
//! turns each into one clear error before anything is written to the file.
//!
//! The check is a convenience on top of the stream's own errors, never a gate that could
//! stop a correct mirror: a vtgate that does not answer Execute (or refuses these statements
//! to this user) gets a warning and the stream goes on as before.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};

use crate::source::ddl_statement::is_internal;
use crate::source::proto::binlogdata::Rule;
use crate::source::proto::query::QueryResult;
use crate::source::proto::vtgate::{ExecuteRequest, Session};
use crate::source::proto::vtrpc::{CallerId, Code};
use crate::source::selection::{Keyspaces, Selection};
use crate::source::transport::VtgateClient;
use crate::source::vstream::StreamSpec;

/// Keyspace → shard names, and the tables of the keyspaces asked about.
#[derive(Debug, Default)]
pub struct Catalog {
    pub shards: BTreeMap<String, Vec<String>>,
    pub tables: BTreeMap<String, Vec<String>>,
}

/// Why an answer is missing.
enum Unanswered {
    /// The statement is not answered for this user or server: skip the check.
    Skip(String),
    Failed(anyhow::Error),
}

/// Checks the selection and rules of a new mirror against what vtgate serves; `copy` is true
/// when the mirror starts with a copy (vttablet refuses to copy a keyspace with no table).
pub async fn check(spec: &StreamSpec, copy: bool) -> Result<()> {
    match fetch(spec).await? {
        Some(catalog) => catalog.check(&spec.selection, &spec.rules, copy),
        None => Ok(()),
    }
}

/// What vtgate serves, or None (after a warning) when it does not answer these statements.
pub async fn fetch(spec: &StreamSpec) -> Result<Option<Catalog>> {
    let mut client = crate::source::transport::connect(&spec.vtgate).await?;
    match load(&mut client, spec).await {
        Ok(catalog) => Ok(Some(catalog)),
        Err(Unanswered::Skip(why)) => {
            tracing::warn!(reason = %why, "vtgate did not list its keyspaces and tables; flags are checked by the stream only");
            Ok(None)
        }
        Err(Unanswered::Failed(e)) => Err(e),
    }
}

/// Whether filter `rule` selects bare table `table` (vttablet's `matchTable`: the exact name,
/// or a `/regex`); None when the regex is one only Go's engine reads.
pub fn rule_matches(rule: &Rule, table: &str) -> Option<bool> {
    match rule.r#match.strip_prefix('/') {
        None => Some(rule.r#match == table),
        Some(pattern) => regex::Regex::new(pattern.trim_end_matches('/'))
            .ok()
            .map(|re| re.is_match(table)),
    }
}

async fn load(client: &mut VtgateClient, spec: &StreamSpec) -> Result<Catalog, Unanswered> {
    let mut catalog = Catalog::default();
    for row in execute(client, spec, "SHOW VITESS_SHARDS").await? {
        if let Some((keyspace, shard)) = row.split_once('/') {
            (catalog.shards.entry(keyspace.to_string()).or_default()).push(shard.to_string());
        }
    }
    let keyspaces: Vec<String> = match &spec.selection.keyspaces {
        Keyspaces::Named(names) => names.clone(),
        Keyspaces::Every => catalog.shards.keys().cloned().collect(),
    };
    for keyspace in keyspaces {
        if !catalog.shards.contains_key(&keyspace) {
            continue;
        }
        let sql = format!("SHOW TABLES FROM `{keyspace}`");
        let tables = execute(client, spec, &sql).await?;
        catalog.tables.insert(keyspace, tables);
    }
    Ok(catalog)
}

/// The base tables of `keyspace` and their columns in column order, from vtgate's
/// `information_schema` (vtgate routes a query on `table_schema = 'ks'` to that keyspace,
/// whatever its VSchema lists; views are left out: VStream sends no rows of them). Unlike
/// `fetch`, a vtgate that does not answer is an error: `verify` cannot compare without it.
pub async fn table_columns(
    spec: &StreamSpec,
    keyspace: &str,
) -> Result<BTreeMap<String, Vec<String>>> {
    let mut client = crate::source::transport::connect(&spec.vtgate).await?;
    let ks = sql_string(keyspace);
    let tables_sql = format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = {ks} \
         AND table_type = 'BASE TABLE'"
    );
    let columns_sql = format!(
        "SELECT table_name, column_name FROM information_schema.columns WHERE \
         table_schema = {ks} ORDER BY table_name, ordinal_position"
    );
    let required = |e: Unanswered| match e {
        Unanswered::Skip(why) => anyhow!("vtgate did not answer {why}"),
        Unanswered::Failed(e) => e,
    };
    let tables = execute(&mut client, spec, &tables_sql)
        .await
        .map_err(required)?;
    let mut out: BTreeMap<String, Vec<String>> =
        tables.into_iter().map(|t| (t, Vec::new())).collect();
    let result = answer(&mut client, spec, &columns_sql)
        .await
        .map_err(required)?;
    let rows = cells(result.as_ref(), 2)
        .with_context(|| format!("reading the columns of keyspace {keyspace} from vtgate"))?;
    for row in rows {
        if let [table, column] = &row[..] {
            if let Some(columns) = out.get_mut(table) {
                columns.push(column.clone());
            }
        }
    }
    Ok(out)
}

/// `s` as a MySQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Runs one statement and returns the first column of every row as text.
async fn execute(
    client: &mut VtgateClient,
    spec: &StreamSpec,
    sql: &str,
) -> Result<Vec<String>, Unanswered> {
    let result = answer(client, spec, sql).await?;
    let rows = cells(result.as_ref(), 1)
        .with_context(|| format!("reading vtgate's answer to {sql}"))
        .map_err(Unanswered::Failed)?;
    Ok(rows.into_iter().filter_map(|mut row| row.pop()).collect())
}

/// vtgate's result for one statement.
async fn answer(
    client: &mut VtgateClient,
    spec: &StreamSpec,
    sql: &str,
) -> Result<Option<QueryResult>, Unanswered> {
    let request = ExecuteRequest {
        caller_id: spec.caller_id.as_ref().map(|principal| CallerId {
            principal: principal.clone(),
            component: "vtmirror".into(),
            ..Default::default()
        }),
        session: Some(Session {
            autocommit: true,
            ..Default::default()
        }),
        query: Some(crate::source::proto::query::BoundQuery { sql: sql.into() }),
    };
    let response = match client.execute(request).await {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            return Err(Unanswered::Skip(format!("{sql}: {}", status.message())))
        }
        Err(status) => {
            let e = anyhow::Error::new(status).context(format!("asking vtgate: {sql}"));
            return Err(Unanswered::Failed(e));
        }
    };
    if let Some(error) = response.error.filter(|e| e.code != Code::Ok as i32) {
        return Err(Unanswered::Skip(format!("{sql}: {}", error.message)));
    }
    Ok(response.result)
}

/// The first `width` columns of every row as text; rows with a NULL among them are left out.
pub(crate) fn cells(result: Option<&QueryResult>, width: usize) -> Result<Vec<Vec<String>>> {
    let Some(result) = result else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(result.rows.len());
    'rows: for row in &result.rows {
        let mut values = Vec::with_capacity(width);
        let mut start = 0usize;
        for i in 0..width {
            let len = row.lengths.get(i).copied().unwrap_or(-1);
            let Ok(len) = usize::try_from(len) else {
                continue 'rows;
            };
            let end = start.checked_add(len).context("row overruns its buffer")?;
            let bytes =
                (row.values.get(start..end)).ok_or_else(|| anyhow!("row overruns its buffer"))?;
            values.push(String::from_utf8_lossy(bytes).into_owned());
            start = end;
        }
        out.push(values);
    }
    Ok(out)
}

impl Catalog {
    /// One clear error for the first flag that names something vtgate does not serve.
    pub fn check(&self, selection: &Selection, rules: &[Rule], copy: bool) -> Result<()> {
        let served = || self.shards.keys().cloned().collect::<Vec<_>>().join(", ");
        if let Keyspaces::Named(names) = &selection.keyspaces {
            if let Some(missing) = names.iter().find(|k| !self.shards.contains_key(*k)) {
                bail!(
                    "keyspace {missing:?} does not exist (vtgate serves: {})",
                    served()
                );
            }
        }
        if self.shards.is_empty() {
            bail!("vtgate serves no keyspace");
        }
        if let Some(keyspace) = selection.keyspaces.single() {
            let shards = &self.shards[keyspace];
            if let Some(bad) = selection.shards.iter().find(|s| !shards.contains(s)) {
                bail!(
                    "{bad:?} is not a shard of keyspace {keyspace} (its shards: {})",
                    shards.join(", ")
                );
            }
        }
        self.check_tables(selection)?;
        self.check_rules(selection, rules, copy)
    }

    fn check_tables(&self, selection: &Selection) -> Result<()> {
        let naming = selection.naming();
        for table in &selection.tables {
            let Some((keyspace, bare)) = naming.split_table(table) else {
                continue;
            };
            let Some(tables) = self.tables.get(keyspace) else {
                continue;
            };
            if !tables.iter().any(|t| t == bare) {
                bail!("table {bare:?} does not exist in keyspace {keyspace}");
            }
        }
        Ok(())
    }

    /// Every keyspace must have a table the rules match when it is copied (vttablet refuses
    /// a copy with nothing to copy), and a plain table name must exist in every keyspace of
    /// the stream (a rule applies in all of them).
    fn check_rules(&self, selection: &Selection, rules: &[Rule], copy: bool) -> Result<()> {
        let selected = (self.tables.iter()).filter(|(k, _)| selection.keyspaces.contains(k));
        for (keyspace, tables) in selected {
            let user_tables: Vec<&String> = tables.iter().filter(|t| !is_internal(t)).collect();
            let mut matched = false;
            for rule in rules {
                match rule.r#match.strip_prefix('/') {
                    None if !tables.contains(&rule.r#match) => bail!(
                        "table {:?} does not exist in keyspace {keyspace}{}",
                        rule.r#match,
                        match selection.keyspaces.single() {
                            Some(_) => "",
                            None => " (a rule applies in every keyspace of the mirror)",
                        }
                    ),
                    None => matched = true,
                    Some(pattern) => match regex::Regex::new(pattern.trim_end_matches('/')) {
                        Ok(re) => matched |= user_tables.iter().any(|t| re.is_match(t)),
                        // Go and Rust regexps differ at the edges: let vttablet judge it.
                        Err(_) => matched = true,
                    },
                }
            }
            if copy && !matched {
                bail!(
                    "the filter matches no table of keyspace {keyspace}, so there is nothing to \
                     copy there (vttablet refuses such a copy); check --tables and --rule{}",
                    match selection.keyspaces {
                        Keyspaces::Every => ", or name the keyspaces to mirror with --keyspace",
                        Keyspaces::Named(_) => "",
                    }
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::vstream::selection_rules;

    fn catalog() -> Catalog {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Catalog {
            shards: [
                ("commerce".to_string(), list(&["0"])),
                ("things".to_string(), list(&["-80", "80-"])),
            ]
            .into(),
            tables: [
                ("commerce".to_string(), list(&["customer", "product"])),
                ("things".to_string(), list(&["customer", "things"])),
            ]
            .into(),
        }
    }

    fn check(keyspaces: &str, shards: &[&str], tables: &[&str], rule: &[&str]) -> Result<()> {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let selection =
            Selection::parse(&strings(&[keyspaces]), &strings(shards), &strings(tables))?;
        catalog().check(
            &selection,
            &selection_rules(&selection, &strings(rule)),
            true,
        )
    }

    fn error(keyspaces: &str, shards: &[&str], tables: &[&str], rule: &[&str]) -> String {
        format!("{:#}", check(keyspaces, shards, tables, rule).unwrap_err())
    }

    #[test]
    fn flags_naming_what_vtgate_serves_pass() {
        check(
            "commerce,things",
            &[],
            &["commerce.product", "things.things"],
            &[],
        )
        .unwrap();
        check("things", &["80-"], &["things"], &[]).unwrap();
        check("*", &[], &[], &["/^cust"]).unwrap();
    }

    #[test]
    fn an_unknown_keyspace_shard_or_table_is_one_clear_error() {
        let e = error("commerce,nosuch", &[], &[], &[]);
        assert!(e.contains("keyspace \"nosuch\" does not exist") && e.contains("commerce, things"));
        let e = error("things", &["40-"], &[], &[]);
        assert!(
            e.contains("\"40-\" is not a shard of keyspace things"),
            "{e}"
        );
        let e = error("commerce,things", &[], &["things.nosuch"], &[]);
        assert!(
            e.contains("table \"nosuch\" does not exist in keyspace things"),
            "{e}"
        );
        let e = error("commerce", &[], &["nosuch"], &[]);
        assert!(
            e.contains("\"nosuch\" does not exist in keyspace commerce"),
            "{e}"
        );
    }

    #[test]
    fn a_filter_matching_no_table_of_a_copied_keyspace_is_refused() {
        let e = error("*", &[], &[], &["/^product$"]);
        assert!(e.contains("matches no table of keyspace things"), "{e}");
        assert!(e.contains("--keyspace"), "{e}");
        let e = error("commerce,things", &[], &[], &["product"]);
        assert!(e.contains("applies in every keyspace"), "{e}");
    }
}
