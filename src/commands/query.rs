//! `vtmirror query`: one read-only SQL statement on a mirror, printed as an aligned table, CSV
//! or JSON lines. The connection is opened read-only and `query_only`, so it can neither change
//! the file nor block the sync writer (WAL readers never do).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rusqlite::types::Value;
use rusqlite::Statement;
use serde_json::Value as Json;

use crate::mirror::store::open_read_only;
use crate::output::render::{boxed_table, hex, one_line, output_error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// An aligned table.
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// One JSON object per row, keys in column order.
    Json,
}

#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Mirror file.
    pub db: PathBuf,
    /// One read-only SQL statement (SELECT, WITH, EXPLAIN, read-only PRAGMA).
    pub sql: String,
    /// Output format.
    pub format: QueryFormat,
}

/// Runs the statement and writes its rows to `out`.
pub fn run(args: &QueryOptions, out: &mut dyn Write) -> Result<()> {
    let conn = open_read_only(&args.db)?;
    conn.pragma_update(None, "query_only", true)
        .context("making the connection read-only")?;
    let mut stmt = conn.prepare(&args.sql).map_err(bad_sql)?;
    if !stmt.readonly() {
        bail!("query runs read-only statements only (SELECT, WITH, EXPLAIN, read-only PRAGMA); this statement would change the file");
    }
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    match args.format {
        QueryFormat::Table => write_table(&mut stmt, &names, out),
        QueryFormat::Csv => write_csv(&mut stmt, &names, out),
        QueryFormat::Json => write_json(&mut stmt, &names, out),
    }
}

fn bad_sql(err: rusqlite::Error) -> anyhow::Error {
    match err {
        rusqlite::Error::MultipleStatement => {
            anyhow::anyhow!("query takes exactly one SQL statement")
        }
        err => anyhow::Error::new(err).context("invalid SQL"),
    }
}

/// Calls `each` with every row's values.
fn for_each_row(
    stmt: &mut Statement<'_>,
    width: usize,
    mut each: impl FnMut(Vec<Value>) -> Result<()>,
) -> Result<()> {
    let mut rows = stmt.query([]).context("running the query")?;
    while let Some(row) = rows.next().context("reading a result row")? {
        let values = (0..width)
            .map(|i| row.get::<_, Value>(i))
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("reading a result row")?;
        each(values)?;
    }
    Ok(())
}

fn write_table(stmt: &mut Statement<'_>, names: &[String], out: &mut dyn Write) -> Result<()> {
    let mut rows = Vec::new();
    let mut right = vec![true; names.len()];
    for_each_row(stmt, names.len(), |values| {
        for (i, v) in values.iter().enumerate() {
            right[i] &= matches!(v, Value::Integer(_) | Value::Real(_) | Value::Null);
        }
        rows.push(values.iter().map(|v| one_line(&text(v, "NULL"))).collect());
        Ok(())
    })?;
    if names.is_empty() {
        return Ok(());
    }
    writeln!(out, "{}", boxed_table(names, &rows, &right)).map_err(output_error)?;
    let plural = if rows.len() == 1 { "" } else { "s" };
    writeln!(out, "{} row{plural}", rows.len()).map_err(output_error)
}

fn write_csv(stmt: &mut Statement<'_>, names: &[String], out: &mut dyn Write) -> Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(names).map_err(csv_error)?;
    for_each_row(stmt, names.len(), |values| {
        let record: Vec<String> = values.iter().map(|v| text(v, "")).collect();
        csv.write_record(&record).map_err(csv_error)
    })?;
    csv.flush().map_err(output_error)
}

fn csv_error(err: csv::Error) -> anyhow::Error {
    match err.into_kind() {
        csv::ErrorKind::Io(e) => output_error(e),
        other => anyhow::anyhow!("writing CSV: {other:?}"),
    }
}

fn write_json(stmt: &mut Statement<'_>, names: &[String], out: &mut dyn Write) -> Result<()> {
    let keys: Vec<String> = names
        .iter()
        .map(|n| Json::from(n.as_str()).to_string())
        .collect();
    for_each_row(stmt, names.len(), |values| {
        let fields: Vec<String> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| format!("{k}:{}", json(v)))
            .collect();
        writeln!(out, "{{{}}}", fields.join(",")).map_err(output_error)
    })
}

/// A value as text: blobs in hex, NULL as `null_text`.
fn text(value: &Value, null_text: &str) -> String {
    match value {
        Value::Null => null_text.to_string(),
        Value::Integer(n) => n.to_string(),
        Value::Real(f) => format!("{f:?}"),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => hex(b),
    }
}

fn json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(n) => Json::from(*n),
        Value::Real(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Text(s) => Json::from(s.as_str()),
        Value::Blob(b) => Json::from(hex(b)),
    }
}
