//! `verify`'s verdict: what it found, as one JSON object or as text for people.

use serde::Serialize;

use super::TableReport;
use crate::source::proto::binlogdata::ShardGtid;

/// The outcome: one report per table.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub mirror: String,
    /// The checkpoint both sides were compared at.
    pub checkpoint: Vec<String>,
    pub equal: bool,
    /// Tables the mirror's selection holds on the source but the mirror lacks.
    pub missing_tables: Vec<String>,
    /// Mirror tables the source's selection does not hold (their rows are not compared).
    pub extra_tables: Vec<String>,
    pub tables: Vec<TableReport>,
}

impl Verdict {
    /// The verdict with the table-set differences added.
    pub(super) fn with_tables(mut self, missing: Vec<String>, extra: Vec<String>) -> Verdict {
        self.equal &= missing.is_empty() && extra.is_empty();
        self.missing_tables = missing;
        self.extra_tables = extra;
        self
    }
}

pub(super) fn position_text(s: &ShardGtid) -> String {
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
            ("columns missing in the mirror", &t.missing_columns),
            ("columns extra in the mirror", &t.extra_columns),
        ] {
            if !keys.is_empty() {
                lines.push(format!("  {kind}: {}", keys.join("; ")));
            }
        }
    }
    for (tables, state, why) in [
        (
            &verdict.missing_tables,
            "MISSING",
            "selected on the source, not in the mirror",
        ),
        (
            &verdict.extra_tables,
            "EXTRA",
            "in the mirror, not selected on the source",
        ),
    ] {
        lines.extend(tables.iter().map(|t| format!("{t:<28} {state:<9} {why}")));
    }
    let schema_differs = !(verdict.missing_tables.is_empty() && verdict.extra_tables.is_empty())
        || (verdict.tables.iter())
            .any(|t| !(t.missing_columns.is_empty() && t.extra_columns.is_empty()));
    if schema_differs {
        lines.push(
            "note: tables and columns are the source's now; a DDL the source ran after the \
             mirror's checkpoint differs until sync applies it, so verify again once it has"
                .into(),
        );
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
