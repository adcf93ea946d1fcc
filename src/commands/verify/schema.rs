//! What `verify` compares before any row: the mirror's set of tables and each table's
//! columns against the source's catalog (`source::catalog::table_columns`), for the mirror's
//! own selection (the keyspaces of its checkpoint and the filter rules stored in the file).
//! Rows are walked table by table of the mirror and over the mirror's columns, so without
//! this a table the filter selects but the mirror lacks, or a source column the mirror lacks,
//! would compare equal.
//!
//! The source's selection: each keyspace's base tables that a rule matches
//! (`catalog::rule_matches`, vttablet's rule), Vitess internal tables left out. Two cases
//! cannot be told from the file, and are left uncompared rather than risk a false
//! difference:
//! - a `/regex` only Go's engine reads: such a table is neither missing nor extra;
//! - a several-keyspace mirror made with `--tables`: its rules are exact-name patterns that
//!   apply in every keyspace, and which keyspace's table was chosen is not stored. A source
//!   table then counts as missing only when the mirror holds no table of that name at all.
//!
//! Columns named by `schema::is_bookkeeping_column` are vtmirror's own and have no source
//! counterpart. The catalog is read once the mirror's snapshot is taken: a DDL the source ran
//! after the mirror's checkpoint shows as a difference until `sync` applied it (run verify
//! again then; `mod.rs` says so with the verdict).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};

use crate::source::catalog::{rule_matches, table_columns};
use crate::source::ddl_statement::is_internal;
use crate::source::naming::Naming;
use crate::source::proto::binlogdata::Rule;
use crate::source::table_schema::is_bookkeeping_column;
use crate::source::vstream::{StreamSpec, ONLINE_DDL_RULE};

/// The source tables the mirror's selection holds, with their columns.
#[derive(Debug, Default)]
pub struct SourceTables {
    /// Mirror table name → the source's columns in order.
    pub tables: BTreeMap<String, Vec<String>>,
    /// Tables whose selection cannot be told (a regex only Go reads).
    unsure: BTreeSet<String>,
    /// Several keyspaces chosen by `--tables`: a table is expected by its bare name only.
    by_bare_name: bool,
}

/// Asks vtgate for the tables and columns of each of `keyspaces` that `rules` select.
pub async fn source_tables(
    spec: &StreamSpec,
    keyspaces: &BTreeSet<String>,
    rules: &[Rule],
    naming: &Naming,
) -> Result<SourceTables> {
    let mut out = SourceTables {
        by_bare_name: *naming == Naming::Qualified && exact_names_only(rules),
        ..Default::default()
    };
    for keyspace in keyspaces {
        let catalog = table_columns(spec, keyspace)
            .await
            .with_context(|| format!("listing the tables and columns of keyspace {keyspace}"))?;
        for (table, columns) in catalog {
            if is_internal(&table) {
                continue;
            }
            let name = naming.table(keyspace, &table).into_owned();
            match selects(rules, &table) {
                Some(false) => continue,
                Some(true) => {}
                None => {
                    out.unsure.insert(name.clone());
                }
            }
            out.tables.insert(name, columns);
        }
    }
    Ok(out)
}

/// Whether any rule selects `table`; None when only a regex Rust cannot read might.
fn selects(rules: &[Rule], table: &str) -> Option<bool> {
    let mut unknown = false;
    for rule in rules {
        match rule_matches(rule, table) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => unknown = true,
        }
    }
    (!unknown).then_some(false)
}

/// True when every rule (the online DDL one aside) is an exact-name pattern `/^name$`, as
/// `--tables` makes them for several keyspaces.
fn exact_names_only(rules: &[Rule]) -> bool {
    let exact = |r: &&Rule| r.r#match.starts_with("/^") && r.r#match.ends_with('$');
    let user_rules = rules.iter().filter(|r| r.r#match != ONLINE_DDL_RULE);
    user_rules.clone().count() > 0 && user_rules.clone().all(|r| exact(&r))
}

impl SourceTables {
    /// (missing, extra): tables the selection holds on the source but the mirror lacks, and
    /// mirror tables the source's selection does not hold (mirror names, sorted).
    pub fn table_differences(
        &self,
        mirror: &[String],
        naming: &Naming,
    ) -> (Vec<String>, Vec<String>) {
        let bare = |t: &str| {
            naming
                .split_table(t)
                .map_or(t.to_string(), |(_, b)| b.to_string())
        };
        let held: BTreeSet<String> = mirror.iter().map(|t| bare(t)).collect();
        let missing = (self.tables.keys())
            .filter(|t| !mirror.contains(t) && !self.unsure.contains(*t))
            .filter(|t| !self.by_bare_name || !held.contains(&bare(t)))
            .cloned()
            .collect();
        let extra = (mirror.iter())
            .filter(|t| !self.tables.contains_key(*t))
            .cloned()
            .collect();
        (missing, extra)
    }
}

/// (missing, extra): source columns the mirror table lacks, and mirror columns the source
/// table lacks (bookkeeping columns aside), each in its side's column order.
pub fn column_differences(source: &[String], mirror: &[String]) -> (Vec<String>, Vec<String>) {
    let missing = (source.iter())
        .filter(|c| !mirror.contains(c))
        .cloned()
        .collect();
    let extra = (mirror.iter())
        .filter(|c| !is_bookkeeping_column(c) && !source.contains(c))
        .cloned()
        .collect();
    (missing, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn rule(m: &str) -> Rule {
        Rule {
            r#match: m.into(),
            filter: String::new(),
        }
    }

    #[test]
    fn missing_and_extra_columns_are_named_and_bookkeeping_columns_are_not_extra() {
        let source = strings(&["id", "name", "email"]);
        let mirror = strings(&["id", "name", "_vtmirror_shard", "nickname"]);
        let (missing, extra) = column_differences(&source, &mirror);
        assert_eq!(
            (missing, extra),
            (strings(&["email"]), strings(&["nickname"]))
        );
    }

    #[test]
    fn missing_and_extra_tables_follow_the_selection_of_the_mirror() {
        let source = SourceTables {
            tables: [("a", vec![]), ("b", vec![]), ("weird", vec![])]
                .map(|(t, c)| (t.to_string(), c))
                .into(),
            unsure: ["weird".to_string()].into(),
            by_bare_name: false,
        };
        let naming = Naming::Bare("ks".into());
        let (missing, extra) = source.table_differences(&strings(&["a", "old"]), &naming);
        assert_eq!((missing, extra), (strings(&["b"]), strings(&["old"])));
    }

    #[test]
    fn with_several_keyspaces_chosen_by_name_a_table_is_expected_by_its_name_only() {
        let rules = [
            rule("/^customer$"),
            rule("/^corder$"),
            rule(ONLINE_DDL_RULE),
        ];
        assert!(exact_names_only(&rules) && !exact_names_only(&[rule("/.*")]));
        let source = SourceTables {
            tables: ["commerce.corder", "customer.corder", "commerce.customer"]
                .map(|t| (t.to_string(), vec![]))
                .into(),
            unsure: BTreeSet::new(),
            by_bare_name: true,
        };
        let (missing, _) =
            source.table_differences(&strings(&["customer.corder"]), &Naming::Qualified);
        assert_eq!(missing, strings(&["commerce.customer"]));
    }

    #[test]
    fn a_regex_only_go_reads_leaves_the_table_unsure() {
        let rules = [rule("/^a(?=b)"), rule("t")];
        assert_eq!(selects(&rules, "t"), Some(true));
        assert_eq!(selects(&rules, "u"), None);
        assert_eq!(selects(&[rule("t")], "u"), Some(false));
    }
}
