//! The table-level effects of a source DDL statement (DDL events carry the SQL text).
//!
//! Column changes are not parsed: the FIELD event that precedes the table's next rows carries
//! the new columns and `ddl` rebuilds the SQLite table from it. What a FIELD event cannot say
//! is parsed here: a dropped, truncated or renamed table, and a renamed column (whose values
//! must move with it instead of being dropped and re-added empty).

/// What a DDL statement means for the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceDdl {
    DropTables(Vec<String>),
    Truncate(String),
    /// (from, to) pairs, applied in order (MySQL renames atomically, left to right).
    RenameTables(Vec<(String, String)>),
    RenameColumn {
        table: String,
        from: String,
        to: String,
    },
    /// MySQL fills existing rows without row events (a column added with a default or
    /// NOT NULL): the mirror cannot follow and stops.
    Unsupported {
        table: String,
        reason: &'static str,
    },
    /// An ALTER of a Vitess online DDL shadow table (`_vt_vrp_…`): remembered until the
    /// cut-over names the table it replaces (`retarget`).
    ShadowAlter {
        shadow: String,
        statement: String,
    },
    /// Handled by the FIELD events that follow, or without effect on the mirror.
    Other,
}

/// Splits SQL into words: identifiers unquoted (backticks), strings and punctuation skipped.
fn words(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                let mut word = String::new();
                while let Some(c) = chars.next() {
                    if c == '`' {
                        if chars.peek() == Some(&'`') {
                            chars.next();
                            word.push('`');
                            continue;
                        }
                        break;
                    }
                    word.push(c);
                }
                out.push(word);
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if !(n.is_alphanumeric() || n == '_' || n == '$') {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                out.push(word);
            }
            '.' => out.push(".".into()),
            ',' => out.push(",".into()),
            _ => {}
        }
    }
    out
}

fn is(word: Option<&String>, keyword: &str) -> bool {
    word.is_some_and(|w| w.eq_ignore_ascii_case(keyword))
}

/// Reads `[schema.]name` at `at`; returns the bare name and the next index.
fn table_name(w: &[String], at: usize) -> Option<(String, usize)> {
    let first = w.get(at)?;
    if w.get(at + 1).is_some_and(|d| d == ".") {
        return Some((w.get(at + 2)?.clone(), at + 3));
    }
    Some((first.clone(), at + 1))
}

pub fn parse(sql: &str) -> SourceDdl {
    let w = words(sql);
    let first = w.first();
    if is(first, "drop") && is(w.get(1), "table") {
        return drop_tables(&w);
    }
    if is(first, "truncate") {
        let at = if is(w.get(1), "table") { 2 } else { 1 };
        return table_name(&w, at).map_or(SourceDdl::Other, |(t, _)| SourceDdl::Truncate(t));
    }
    if is(first, "rename") && is(w.get(1), "table") {
        return rename_tables(&w, 2);
    }
    if is(first, "alter") && is(w.get(1), "table") {
        if let Some((shadow, _)) = table_name(&w, 2).filter(|(t, _)| is_internal(t)) {
            return SourceDdl::ShadowAlter {
                shadow,
                statement: sql.to_string(),
            };
        }
        return alter_table(&w);
    }
    SourceDdl::Other
}

/// The meaning of an ALTER seen on shadow table `shadow` for the table it was swapped into.
/// Vitess copies the rows into the shadow matching columns by name, except for renames
/// written as `CHANGE [COLUMN] old new …` (its `ColumnRenameMap`): an online `RENAME COLUMN`
/// leaves the new column empty in v24, a behaviour a later version may well fix, so the
/// mirror cannot know what the table holds and stops.
pub fn retarget(statement: &str, shadow: &str, table: &str) -> SourceDdl {
    let w = words(statement);
    let rename_clause = w
        .windows(2)
        .any(|p| is(Some(&p[0]), "rename") && is(Some(&p[1]), "column"));
    if rename_clause {
        return SourceDdl::Unsupported {
            table: table.to_string(),
            reason: "an online DDL RENAME COLUMN (whether Vitess carries the values over \
                     depends on its version; write CHANGE COLUMN old new <type> instead)",
        };
    }
    let onto = |t: String| if t == shadow { table.to_string() } else { t };
    match alter_table(&w) {
        SourceDdl::Unsupported { reason, .. } => SourceDdl::Unsupported {
            table: table.to_string(),
            reason,
        },
        SourceDdl::RenameColumn { table: t, from, to } => SourceDdl::RenameColumn {
            table: onto(t),
            from,
            to,
        },
        // A shadow renamed by its own ALTER is not something online DDL does.
        _ => SourceDdl::Other,
    }
}

fn drop_tables(w: &[String]) -> SourceDdl {
    let mut at = 2;
    if is(w.get(at), "if") && is(w.get(at + 1), "exists") {
        at += 2;
    }
    let mut tables = Vec::new();
    while let Some((name, next)) = table_name(w, at) {
        if is(Some(&name), "restrict") || is(Some(&name), "cascade") {
            break;
        }
        tables.push(name);
        if w.get(next).is_some_and(|c| c == ",") {
            at = next + 1;
        } else {
            break;
        }
    }
    SourceDdl::DropTables(tables)
}

fn rename_tables(w: &[String], mut at: usize) -> SourceDdl {
    let mut pairs = Vec::new();
    while let Some((from, next)) = table_name(w, at) {
        if !is(w.get(next), "to") {
            return SourceDdl::Other;
        }
        let Some((to, after)) = table_name(w, next + 1) else {
            return SourceDdl::Other;
        };
        pairs.push((from, to));
        if w.get(after).is_some_and(|c| c == ",") {
            at = after + 1;
        } else {
            break;
        }
    }
    SourceDdl::RenameTables(pairs)
}

/// `ALTER TABLE t RENAME [TO|AS] u` and `ALTER TABLE t RENAME COLUMN a TO b` /
/// `CHANGE [COLUMN] a b type` (a rename when the names differ); anything else is Other.
fn alter_table(w: &[String]) -> SourceDdl {
    let Some((table, at)) = table_name(w, 2) else {
        return SourceDdl::Other;
    };
    if let Some(reason) = backfilling_add(&w[at..]) {
        return SourceDdl::Unsupported { table, reason };
    }
    let clauses: Vec<&[String]> = w[at..].split(|x| x == ",").collect();
    if clauses.len() != 1 {
        // Several clauses: the FIELD event describes the result, except where a column was
        // renamed (it would look dropped and re-added empty).
        if clauses.iter().any(|c| renames_a_column(c)) {
            return SourceDdl::Unsupported {
                table,
                reason: "a column rename combined with other changes in one ALTER",
            };
        }
        return SourceDdl::Other;
    }
    let rest = &w[at..];
    if is(rest.first(), "rename") {
        if is(rest.get(1), "column") && is(rest.get(3), "to") {
            if let (Some(from), Some(to)) = (rest.get(2), rest.get(4)) {
                return SourceDdl::RenameColumn {
                    table,
                    from: from.clone(),
                    to: to.clone(),
                };
            }
        }
        let at = if is(rest.get(1), "to") || is(rest.get(1), "as") {
            2
        } else {
            1
        };
        if let Some((to, _)) = table_name(rest, at) {
            return SourceDdl::RenameTables(vec![(table, to)]);
        }
    }
    if is(rest.first(), "change") {
        let at = if is(rest.get(1), "column") { 2 } else { 1 };
        if let (Some(from), Some(to)) = (rest.get(at), rest.get(at + 1)) {
            if from != to {
                return SourceDdl::RenameColumn {
                    table,
                    from: from.clone(),
                    to: to.clone(),
                };
            }
        }
    }
    SourceDdl::Other
}

/// `RENAME COLUMN a TO b`, or `CHANGE [COLUMN] a b …` with two different names.
fn renames_a_column(clause: &[String]) -> bool {
    if is(clause.first(), "rename") {
        return is(clause.get(1), "column");
    }
    let at = if is(clause.get(1), "column") { 2 } else { 1 };
    is(clause.first(), "change")
        && matches!((clause.get(at), clause.get(at + 1)), (Some(a), Some(b)) if a != b)
}

/// An `ADD [COLUMN]` clause whose new column gets a value in existing rows.
fn backfilling_add(alter: &[String]) -> Option<&'static str> {
    for clause in alter.split(|x| x == ",") {
        if !is(clause.first(), "add")
            || is(clause.get(1), "index")
            || is(clause.get(1), "key")
            || is(clause.get(1), "unique")
            || is(clause.get(1), "primary")
            || is(clause.get(1), "constraint")
            || is(clause.get(1), "foreign")
            || is(clause.get(1), "fulltext")
            || is(clause.get(1), "spatial")
        {
            continue;
        }
        for (i, word) in clause.iter().enumerate() {
            let next = clause.get(i + 1);
            if word.eq_ignore_ascii_case("not") && is(next, "null") {
                return Some("ADD COLUMN ... NOT NULL fills existing rows without row events");
            }
            if word.eq_ignore_ascii_case("default") && !is(next, "null") {
                return Some("ADD COLUMN ... DEFAULT fills existing rows without row events");
            }
            if word.eq_ignore_ascii_case("generated") || word.eq_ignore_ascii_case("auto_increment")
            {
                return Some(
                    "ADD COLUMN with computed values fills existing rows without row events",
                );
            }
        }
    }
    None
}

/// Vitess's own shadow and lifecycle tables (online DDL, table GC) are never mirrored. The
/// same names as Vitess's `schema.IsInternalOperationTableName`, so a user table that merely
/// starts with `_vt_` is mirrored like Vitess streams it.
pub fn is_internal(table: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    // `_vt_<hint>_<uuid>_<time>_`, e.g. _vt_vrp_6ace…e90_20200915120410_ (Vitess ≥ 20).
    let current = |rest: &str| {
        let parts: Vec<&str> = rest.split('_').collect();
        matches!(parts.as_slice(), [hint, uuid, time, ""]
            if hint.len() == 3 && hint.bytes().all(|b| b.is_ascii_alphanumeric())
                && hex(uuid, 32) && digits(time, 14))
    };
    // Older table GC names: `_vt_HOLD_<uuid>_<time>` (also PURGE, EVAC, DROP).
    let old_gc = |rest: &str| {
        let parts: Vec<&str> = rest.split('_').collect();
        matches!(parts.as_slice(), [state, uuid, time]
            if ["HOLD", "PURGE", "EVAC", "DROP"].contains(state) && hex(uuid, 32) && digits(time, 14))
    };
    // Older online DDL names: `_<uuid with underscores>_<time>_<gho|ghc|del|new|vrepl>`, and
    // pt-osc's `_<table>_old`.
    let old_online_ddl = |rest: &str| {
        let parts: Vec<&str> = rest.split('_').collect();
        matches!(parts.as_slice(), [a, b, c, d, e, time, kind]
            if hex(a, 8) && hex(b, 4) && hex(c, 4) && hex(d, 4) && hex(e, 12) && digits(time, 14)
                && ["gho", "ghc", "del", "new", "vrepl"].contains(kind))
    };
    match table.strip_prefix("_vt_") {
        Some(rest) => current(rest) || old_gc(rest),
        None => table
            .strip_prefix('_')
            .is_some_and(|rest| old_online_ddl(rest) || rest.ends_with("_old")),
    }
}

#[cfg(test)]
#[path = "ddl_statement_tests.rs"]
mod tests;
