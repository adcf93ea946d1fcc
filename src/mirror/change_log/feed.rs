//! Reading the change log: entries after a `seq`, as the feed prints them. A reader never
//! sees half a transaction (each commit is one SQLite transaction) and never a silent gap:
//! asking for entries that retention pruned is an error that says to resync.

use std::collections::HashMap;

use anyhow::{Context, Result};
use rusqlite::{params_from_iter, Connection};
use serde_json::{json, Map, Value as Json};

use super::image::{self, Decoded};
use super::{retention, Op, STATUS_KEY};
use crate::source::table_schema::is_bookkeeping_column;

/// The feed's definite refusals, typed so that a reader (the CLI, HTTP) can tell them from
/// I/O errors: `downcast_ref::<FeedError>()` on the returned error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError {
    /// The mirror records no change log (`--changes` was never given).
    NoChangeLog,
    /// Retention pruned entries the reader asked for: it must resync.
    Pruned { after: i64, pruned: i64 },
}

impl std::fmt::Display for FeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedError::NoChangeLog => f.write_str(
                "this mirror has no change log; run `vtmirror sync --changes` (or `demo \
                 --changes`) to start one",
            ),
            FeedError::Pruned { after, pruned } => write!(
                f,
                "the change log no longer holds the entries after seq {after}: retention pruned \
                 them through seq {pruned}. Resync: rebuild from the mirror's tables (for example \
                 a `vtmirror snapshot`), then follow from the newest seq (`vtmirror changes --after \
                 $(sqlite3 FILE 'SELECT max(seq) FROM _vtmirror_changes')`)"
            ),
        }
    }
}

impl std::error::Error for FeedError {}

/// One entry, ready to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub seq: i64,
    pub json: Json,
}

/// A table's columns as an entry names them.
struct Columns {
    table: String,
    names: Vec<String>,
    /// Indexes of the primary key's columns, in key order.
    key: Vec<usize>,
    /// The columns list without vtmirror's own, for markers.
    public: Json,
}

/// Reads entries; keeps the column lists and positions it has decoded.
pub struct Feed<'a> {
    conn: &'a Connection,
    columns: HashMap<i64, Columns>,
    positions: HashMap<i64, (Json, i64)>,
}

impl<'a> Feed<'a> {
    /// A feed over `conn`'s change log; an error if the mirror has none.
    pub fn open(conn: &'a Connection) -> Result<Feed<'a>> {
        let on = crate::mirror::metadata::status(conn, STATUS_KEY)?;
        if on.as_deref() != Some("on") {
            return Err(FeedError::NoChangeLog.into());
        }
        Ok(Feed {
            conn,
            columns: HashMap::new(),
            positions: HashMap::new(),
        })
    }

    /// Up to `limit` entries with `seq` > `after`, of `tables` (all when empty), in order.
    pub fn read(&mut self, after: i64, limit: usize, tables: &[String]) -> Result<Vec<Entry>> {
        let pruned = retention::pruned_through(self.conn)?;
        if after < pruned {
            return Err(FeedError::Pruned { after, pruned }.into());
        }
        let filter =
            match tables.len() {
                0 => String::new(),
                n => format!(
                " AND cols IN (SELECT id FROM _vtmirror_change_columns WHERE table_name IN ({}))",
                (3..3 + n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
            ),
            };
        let sql = format!(
            "SELECT seq, tx, op, cols, after, before, detail FROM _vtmirror_changes
             WHERE seq > ?1{filter} ORDER BY seq LIMIT ?2"
        );
        // One statement text per number of tables: `--follow` polls reuse the prepared one.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut params: Vec<rusqlite::types::Value> = vec![after.into(), limit.into()];
        params.extend(tables.iter().map(|t| t.clone().into()));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(params_from_iter(params), |r| {
                Ok(Stored {
                    seq: r.get(0)?,
                    tx: r.get(1)?,
                    op: r.get(2)?,
                    cols: r.get(3)?,
                    after: r.get(4)?,
                    before: r.get(5)?,
                    detail: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
            .context("reading the change log")?;
        drop(stmt);
        rows.into_iter().map(|row| self.entry(row)).collect()
    }

    /// The newest `seq` (0 when the log is empty).
    pub fn newest(&self) -> Result<i64> {
        let newest: Option<i64> =
            self.conn
                .query_row("SELECT max(seq) FROM _vtmirror_changes", [], |r| r.get(0))?;
        Ok(newest.unwrap_or(0))
    }

    fn entry(&mut self, row: Stored) -> Result<Entry> {
        let op = Op::from_code(row.op).with_context(|| {
            format!("change log entry {} has an unknown op {}", row.seq, row.op)
        })?;
        self.load_columns(row.cols)?;
        let (position, timestamp) = self.position(row.tx)?;
        let columns = &self.columns[&row.cols];
        let after = row.after.as_deref().map(image::decode).transpose()?;
        let before = row.before.as_deref().map(image::decode).transpose()?;
        let mut out = Map::new();
        out.insert("seq".into(), json!(row.seq));
        out.insert("table".into(), json!(columns.table));
        out.insert("op".into(), json!(op.name()));
        let keyed = after.as_ref().or(before.as_ref());
        out.insert(
            "key".into(),
            keyed.map_or(Json::Null, |v| columns.key_of(v)),
        );
        out.insert(
            "after".into(),
            after.as_ref().map_or(Json::Null, |v| columns.object(v)),
        );
        out.insert(
            "before".into(),
            before.as_ref().map_or(Json::Null, |v| columns.object(v)),
        );
        let binary = columns.binary(after.iter().chain(before.iter()));
        if !binary.is_empty() {
            out.insert("binary".into(), json!(binary));
        }
        if matches!(op, Op::Schema | Op::Resync) {
            out.insert("columns".into(), columns.public.clone());
        }
        if let Some(detail) = row.detail.as_deref() {
            let detail: Json = serde_json::from_str(detail).context("a marker's detail")?;
            if let Json::Object(fields) = detail {
                out.extend(fields);
            }
        }
        out.insert("position".into(), position);
        out.insert("timestamp".into(), json!(timestamp));
        Ok(Entry {
            seq: row.seq,
            json: Json::Object(out),
        })
    }

    fn load_columns(&mut self, id: i64) -> Result<()> {
        if self.columns.contains_key(&id) {
            return Ok(());
        }
        let (table, text): (String, String) = self.conn.query_row(
            "SELECT table_name, columns FROM _vtmirror_change_columns WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let list: Vec<Json> = serde_json::from_str(&text).context("a change log column list")?;
        let names: Vec<String> = (list.iter())
            .map(|c| c["name"].as_str().unwrap_or_default().to_string())
            .collect();
        let mut key: Vec<(i64, usize)> = (list.iter().enumerate())
            .filter_map(|(i, c)| c["pk"].as_i64().filter(|pk| *pk > 0).map(|pk| (pk, i)))
            .collect();
        key.sort();
        let public = (list.into_iter())
            .filter(|c| !is_bookkeeping_column(c["name"].as_str().unwrap_or_default()))
            .collect();
        let columns = Columns {
            table,
            names,
            key: key.into_iter().map(|(_, i)| i).collect(),
            public: Json::Array(public),
        };
        self.columns.insert(id, columns);
        Ok(())
    }

    fn position(&mut self, tx: i64) -> Result<(Json, i64)> {
        if let Some(known) = self.positions.get(&tx) {
            return Ok(known.clone());
        }
        let (bytes, time): (Vec<u8>, i64) = self
            .conn
            .query_row(
                "SELECT position, event_time FROM _vtmirror_change_tx WHERE tx = ?1",
                [tx],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .with_context(|| format!("reading the position of change log transaction {tx}"))?;
        let position = match bytes.is_empty() {
            true => Json::Null,
            false => crate::source::vgtid::to_json(&crate::source::vgtid::decode(&bytes)?),
        };
        if self.positions.len() > 10_000 {
            self.positions.clear();
        }
        self.positions.insert(tx, (position.clone(), time));
        Ok((position, time))
    }
}

struct Stored {
    seq: i64,
    tx: i64,
    op: i64,
    cols: i64,
    after: Option<Vec<u8>>,
    before: Option<Vec<u8>>,
    detail: Option<String>,
}

impl Columns {
    /// Column name → value, vtmirror's own columns left out.
    fn object(&self, values: &[Decoded]) -> Json {
        let fields = (self.names.iter().zip(values))
            .filter(|(name, _)| !is_bookkeeping_column(name))
            .map(|(name, v)| (name.clone(), v.json.clone()));
        Json::Object(fields.collect())
    }

    fn key_of(&self, values: &[Decoded]) -> Json {
        let fields = (self.key.iter())
            .filter_map(|&i| Some((self.names.get(i)?.clone(), values.get(i)?.json.clone())));
        Json::Object(fields.collect())
    }

    /// Names of the columns given as base64 in these images.
    fn binary<'v>(&self, images: impl Iterator<Item = &'v Vec<Decoded>>) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for values in images {
            for (name, value) in self.names.iter().zip(values) {
                if value.binary && !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        names
    }
}
