//! vtgate's `Execute` for the catalog statements a client asks: `SHOW VITESS_SHARDS` and
//! `SHOW TABLES FROM <keyspace>` before it streams, and the two `information_schema` queries
//! of `verify` (a keyspace's base tables, and their columns in order), and
//! `@@global.gtid_executed` on one shard's primary for `wait`. As in vtgate, a failed
//! statement is answered in-band (`ExecuteResponse.error`, no result) while the RPC itself
//! succeeds.

use super::model::Model;
use crate::source::proto::query::{self, Field, QueryResult, Type};
use crate::source::proto::vtgate::{ExecuteRequest, ExecuteResponse, Session};
use crate::source::proto::vtrpc::{Code, RpcError};

/// `utf8mb4_0900_ai_ci`, vtgate's system collation for the columns it builds itself.
const SYSTEM_COLLATION: u32 = 255;
/// MySQL NOT_NULL_FLAG.
const NOT_NULL: u32 = 1;

/// A statement the simulated vtgate understands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Statement {
    VitessShards,
    TablesFrom(String),
    /// `information_schema.tables`: the keyspace's base tables.
    BaseTables(String),
    /// `information_schema.columns`: (table, column) of the keyspace, in column order.
    Columns(String),
    /// `select @@global.gtid_executed` (comments allowed), on the session's target shard.
    GtidExecuted,
}

/// Answers one Execute call against the served keyspaces (`models`, locked).
pub fn execute(req: &ExecuteRequest, models: &[&Model]) -> ExecuteResponse {
    let sql = req
        .query
        .as_ref()
        .map(|q| q.sql.as_str())
        .unwrap_or_default();
    let answer = match parse(sql) {
        Ok(Statement::VitessShards) => Ok(vitess_shards(models)),
        Ok(Statement::TablesFrom(ks)) => tables_from(models, &ks),
        Ok(Statement::BaseTables(ks)) => base_tables(models, &ks),
        Ok(Statement::Columns(ks)) => columns(models, &ks),
        Ok(Statement::GtidExecuted) => gtid_executed(models, req.session.as_ref()),
        Err(e) => Err(e),
    };
    // vtgate answers with the caller's session (a missing one means autocommit).
    let session = req.session.clone().unwrap_or(Session {
        autocommit: true,
        ..Session::default()
    });
    let (result, error) = match answer {
        Ok(result) => (Some(result), None),
        Err(error) => (None, Some(error)),
    };
    ExecuteResponse {
        error,
        session: Some(session),
        result,
    }
}

fn rpc_error(code: Code, message: String) -> RpcError {
    RpcError {
        message,
        code: code as i32,
    }
}

/// Recognises the statement, case-insensitively, ignoring extra whitespace and trailing `;`.
fn parse(sql: &str) -> Result<Statement, RpcError> {
    let sql = sql.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let sql = sql.trim_start();
    let Some(first) = sql.split_whitespace().next() else {
        // sqlparser.ErrEmpty.
        return Err(rpc_error(Code::InvalidArgument, "Query was empty".into()));
    };
    let words: Vec<&str> = sql.split_whitespace().collect();
    let is = |i: usize, w: &str| words.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    if words.len() == 2 && is(0, "show") && is(1, "vitess_shards") {
        return Ok(Statement::VitessShards);
    }
    if words.len() >= 4 && is(0, "show") && is(1, "tables") && (is(2, "from") || is(2, "in")) {
        if let Some(ks) = keyspace_name(after_words(sql, 3)) {
            return Ok(Statement::TablesFrom(ks));
        }
    }
    if let Some(statement) = schema_query(sql) {
        return Ok(statement);
    }
    if is_gtid_executed(sql) {
        return Ok(Statement::GtidExecuted);
    }
    // Only the first word: the rest of a statement may hold data (vtgate redacts it too).
    Err(rpc_error(
        Code::Unimplemented,
        format!(
            "simulated vtgate: unsupported statement {}: Execute answers only SHOW VITESS_SHARDS, \
             SHOW TABLES FROM <keyspace>, verify's information_schema queries and a shard's \
             @@global.gtid_executed",
            first.to_ascii_uppercase()
        ),
    ))
}

/// The `information_schema` queries `source::catalog::table_columns` sends, with the
/// keyspace as a string literal (words compared without case, whitespace collapsed).
fn schema_query(sql: &str) -> Option<Statement> {
    let words = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let (before, rest) = words.split_once('\'')?;
    let (keyspace, after) = string_literal(rest)?;
    let (before, after) = (before.to_ascii_lowercase(), after.to_ascii_lowercase());
    let from = |table: &str| format!("select {table} where table_schema = ");
    if before == from("table_name from information_schema.tables")
        && after == " and table_type = 'base table'"
    {
        return Some(Statement::BaseTables(keyspace));
    }
    let columns = "table_name, column_name from information_schema.columns";
    (before == from(columns) && after == " order by table_name, ordinal_position")
        .then_some(Statement::Columns(keyspace))
}

/// A string literal's text up to its closing quote (`''` inside is one quote), and the rest.
fn string_literal(s: &str) -> Option<(String, &str)> {
    let mut text = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            text.push(c);
        } else if chars.peek().is_some_and(|&(_, next)| next == '\'') {
            chars.next();
            text.push('\'');
        } else {
            return Some((text, &s[i + 1..]));
        }
    }
    None
}

/// `s` without its first `n` whitespace-separated words (and the whitespace after them).
fn after_words(s: &str, n: usize) -> &str {
    let mut rest = s.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest
}

/// The whole of `s` as one identifier: a bare word, or a backtick-quoted name (`` ` `` doubled
/// inside). None when anything else follows.
fn keyspace_name(s: &str) -> Option<String> {
    let Some(quoted) = s.strip_prefix('`') else {
        let bare = !s.is_empty() && !s.contains(char::is_whitespace);
        return bare.then(|| s.to_string());
    };
    let mut name = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        if c != '`' {
            name.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('`') => {
                chars.next();
                name.push('`');
            }
            None if !name.is_empty() => return Some(name),
            _ => return None,
        }
    }
    None
}

/// `select [/* comment */] @@global.gtid_executed`, any case.
fn is_gtid_executed(sql: &str) -> bool {
    let mut rest = sql.to_ascii_lowercase();
    while let (Some(open), Some(close)) = (rest.find("/*"), rest.find("*/")) {
        if close < open {
            return false;
        }
        rest.replace_range(open..close + 2, " ");
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    words == ["select", "@@global.gtid_executed"]
}

/// The executed GTID set of the shard a `keyspace:shard@primary` session targets, as MySQL
/// prints it (no flavor prefix). Without a shard target vtgate would route the statement to
/// some tablet: the sim refuses it instead, so a client that forgets the target is caught.
fn gtid_executed(models: &[&Model], session: Option<&Session>) -> Result<QueryResult, RpcError> {
    let target = session
        .map(|s| s.target_string.as_str())
        .unwrap_or_default();
    let refuse = |why: &str| rpc_error(Code::InvalidArgument, format!("simulated vtgate: {why}"));
    let (keyspace_shard, tablet_type) = target.split_once('@').unwrap_or((target, ""));
    let Some((ks, shard)) = keyspace_shard.split_once(':') else {
        return Err(refuse(
            "@@global.gtid_executed needs a keyspace:shard target",
        ));
    };
    if !tablet_type.eq_ignore_ascii_case("primary") {
        return Err(refuse(
            "@@global.gtid_executed is answered by primaries only",
        ));
    }
    let model = keyspace(models, ks)?;
    let Some(shard) = model.shards.iter().find(|s| s.name == shard) else {
        return Err(rpc_error(
            Code::NotFound,
            format!("no healthy tablet for {target}"),
        ));
    };
    let set = shard
        .position()
        .trim_start_matches(super::gtid::FLAVOR)
        .to_string();
    Ok(one_column("@@global.gtid_executed".into(), vec![set]))
}

/// vtgate's `buildVarCharFields`.
fn varchar_field(name: String) -> Field {
    Field {
        name,
        r#type: Type::Varchar as i32,
        charset: SYSTEM_COLLATION,
        flags: NOT_NULL,
        ..Field::default()
    }
}

/// One VARCHAR column named `column`, one row per value.
fn one_column(column: String, values: Vec<String>) -> QueryResult {
    let rows = values.into_iter().map(|v| vec![v]).collect();
    varchar_columns(vec![column], rows)
}

/// VARCHAR columns named `columns`, one row per entry of `rows`.
fn varchar_columns(columns: Vec<String>, rows: Vec<Vec<String>>) -> QueryResult {
    let rows = rows
        .into_iter()
        .map(|cells| query::Row {
            lengths: cells.iter().map(|v| v.len() as i64).collect(),
            values: cells.concat().into_bytes().into(),
        })
        .collect();
    QueryResult {
        fields: columns.into_iter().map(varchar_field).collect(),
        rows,
        ..QueryResult::default()
    }
}

/// `SHOW VITESS_SHARDS`: `keyspace/shard`, sorted (for the sim's shard names the same as
/// vtgate's order: keyspaces by name, shards in keyrange order).
fn vitess_shards(models: &[&Model]) -> QueryResult {
    let mut rows: Vec<String> = models
        .iter()
        .flat_map(|m| {
            let ks = &m.spec.keyspace;
            m.shards.iter().map(move |s| format!("{ks}/{}", s.name))
        })
        .collect();
    rows.sort();
    one_column("Shards".into(), rows)
}

/// `SHOW TABLES FROM ks`: `Tables_in_ks`, table names sorted; VT05003 for an unknown keyspace.
fn tables_from(models: &[&Model], ks: &str) -> Result<QueryResult, RpcError> {
    let model = keyspace(models, ks)?;
    let mut tables: Vec<String> = model.spec.tables.iter().map(|t| t.name.clone()).collect();
    tables.sort();
    Ok(one_column(format!("Tables_in_{ks}"), tables))
}

/// The served keyspace `ks`, or vtgate's VT05003.
fn keyspace<'m>(models: &[&'m Model], ks: &str) -> Result<&'m Model, RpcError> {
    (models.iter().copied())
        .find(|m| m.spec.keyspace == ks)
        .ok_or_else(|| {
            rpc_error(
                Code::NotFound,
                format!("VT05003: unknown database '{ks}' in vschema"),
            )
        })
}

/// `information_schema.tables`: the keyspace's tables (all base tables in the sim).
fn base_tables(models: &[&Model], ks: &str) -> Result<QueryResult, RpcError> {
    let model = keyspace(models, ks)?;
    let tables = model.spec.tables.iter().map(|t| vec![t.name.clone()]);
    Ok(varchar_columns(vec!["TABLE_NAME".into()], tables.collect()))
}

/// `information_schema.columns`: (table, column) in table then column order.
fn columns(models: &[&Model], ks: &str) -> Result<QueryResult, RpcError> {
    let model = keyspace(models, ks)?;
    let mut tables: Vec<_> = model.spec.tables.iter().collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = (tables.into_iter())
        .flat_map(|t| (t.columns.iter()).map(|c| vec![t.name.clone(), c.name.clone()]))
        .collect();
    let names = vec!["TABLE_NAME".into(), "COLUMN_NAME".into()];
    Ok(varchar_columns(names, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_recognised_loosely_but_exactly() {
        assert_eq!(parse("show vitess_shards"), Ok(Statement::VitessShards));
        assert_eq!(
            parse("  SHOW\tVitess_Shards ;; "),
            Ok(Statement::VitessShards)
        );
        let ks = |s: &str| Ok(Statement::TablesFrom(s.into()));
        assert_eq!(parse("SHOW TABLES FROM commerce;"), ks("commerce"));
        assert_eq!(parse("show  tables\nfrom `my ks`"), ks("my ks"));
        assert_eq!(parse("show tables in `a``b`"), ks("a`b"));
        for bad in [
            "show tables from a b",
            "show tables from `a",
            "show tables from ``",
        ] {
            assert_eq!(
                parse(bad).map_err(|e| e.code),
                Err(Code::Unimplemented as i32)
            );
        }
        let tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = \
                      'a''b' AND table_type = 'BASE TABLE'";
        assert_eq!(parse(tables), Ok(Statement::BaseTables("a'b".into())));
        let columns = "select table_name, column_name from information_schema.columns where \
                       table_schema = 'ks'  ORDER BY table_name, ordinal_position";
        assert_eq!(parse(columns), Ok(Statement::Columns("ks".into())));
        let gtids = "select /*vt+ CONSOLIDATOR=disabled */ @@global.gtid_executed";
        assert_eq!(parse(gtids), Ok(Statement::GtidExecuted));
        assert!(parse("select @@global.gtid_executed, secret").is_err());
        assert!(parse(
            "select table_name from information_schema.tables where table_schema = 'ks'"
        )
        .is_err());
        let e = parse("select secret from t").unwrap_err();
        assert!(e.message.contains("SELECT") && !e.message.contains("secret"));
        assert_eq!(parse(" ; ").unwrap_err().code, Code::InvalidArgument as i32);
    }
}
