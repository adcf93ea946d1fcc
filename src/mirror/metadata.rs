//! Reads and writes of the `_vtmirror_*` tables. Writes run inside the writer's open SQLite
//! transaction; everything here is called only from the writer thread while a
//! sync runs (and read-only by `status`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use prost::Message;
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use crate::mirror::schema::quote;
use crate::mirror::timestamp::now_text;
use crate::source::decode::ShardSchema;
use crate::source::naming::Naming;
use crate::source::proto::binlogdata::{TableLastPk, VGtid};
use crate::source::proto::query::{Field, QueryResult, Row};
use crate::source::table_schema::TableSchema;
use crate::source::value::Storage;
use crate::source::vgtid;

/// The stored checkpoint and whether the whole copy has finished.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub vgtid: Option<VGtid>,
    pub copy_completed: bool,
    pub transactions: i64,
    /// Binlog time (s) of the last applied transaction; 0 if none had one.
    pub event_time: i64,
}

pub fn load_checkpoint(conn: &Connection) -> Result<Stored> {
    let row = conn
        .query_row(
            "SELECT vgtid, copy_completed, transactions, event_time FROM _vtmirror_checkpoint
             WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )
        .optional()
        .context("reading the checkpoint")?;
    let Some((bytes, done, transactions, event_time)) = row else {
        return Ok(Stored::default());
    };
    Ok(Stored {
        vgtid: Some(vgtid::decode(&bytes)?),
        copy_completed: done != 0,
        transactions,
        event_time,
    })
}

/// Writes the checkpoint; must run inside the transaction that applied its rows.
pub fn save_checkpoint(
    tx: &Connection,
    vgtid: &VGtid,
    transactions: i64,
    event_time: i64,
) -> Result<()> {
    // Cached: the writer saves a checkpoint with every commit (hundreds a second).
    let mut stmt = tx.prepare_cached(
        "INSERT INTO _vtmirror_checkpoint (id, vgtid, vgtid_json, transactions, event_time, committed_at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET vgtid = excluded.vgtid, vgtid_json = excluded.vgtid_json,
           transactions = transactions + excluded.transactions,
           event_time = CASE WHEN excluded.event_time > 0 THEN excluded.event_time ELSE event_time END,
           committed_at = excluded.committed_at",
    )?;
    stmt.execute(params![
            vgtid::encode(vgtid),
            vgtid::to_json(vgtid).to_string(),
            transactions,
            event_time,
            now_text()
        ],
    )
    .context("writing the checkpoint")?;
    Ok(())
}

pub fn mark_copy_completed(tx: &Connection) -> Result<()> {
    tx.execute(
        "UPDATE _vtmirror_checkpoint SET copy_completed = 1 WHERE id = 1",
        [],
    )?;
    tx.execute("UPDATE _vtmirror_copy_state SET completed = 1", [])?;
    Ok(())
}

pub fn mark_shard_copied(tx: &Connection, shard: &str) -> Result<()> {
    tx.execute(
        "UPDATE _vtmirror_copy_state SET completed = 1 WHERE shard = ?1",
        [shard],
    )?;
    Ok(())
}

pub fn add_copy_progress(tx: &Connection, shard: &str, table: &str, rows: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO _vtmirror_copy_state (shard, table_name, rows_copied) VALUES (?1, ?2, ?3)
         ON CONFLICT (shard, table_name) DO UPDATE SET rows_copied = rows_copied + excluded.rows_copied",
    )?
    .execute(params![shard, table, rows])
    .with_context(|| format!("recording copy progress of table {table}"))?;
    Ok(())
}

/// One row of `_vtmirror_copy_state`: a table's copy on one shard (metadata keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyState {
    pub shard: String,
    pub table: String,
    pub rows_copied: i64,
    pub completed: bool,
}

/// Every table's copy state on every shard.
pub fn copy_states(conn: &Connection) -> Result<Vec<CopyState>> {
    let mut stmt = conn.prepare_cached(
        "SELECT shard, table_name, rows_copied, completed FROM _vtmirror_copy_state",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(CopyState {
            shard: r.get(0)?,
            table: r.get(1)?,
            rows_copied: r.get(2)?,
            completed: r.get(3)?,
        })
    })?;
    rows.collect::<rusqlite::Result<_>>()
        .context("reading copy state")
}

/// (shard, table) pairs whose copy has started.
pub fn started_copies(conn: &Connection) -> Result<BTreeSet<(String, String)>> {
    let mut stmt = conn.prepare("SELECT shard, table_name FROM _vtmirror_copy_state")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect::<rusqlite::Result<_>>()
        .context("reading copy state")
}

/// The source label the file was created for (`Selection::label`), if it has one.
pub fn source_label(conn: &Connection) -> Result<Option<String>> {
    conn.query_row(
        "SELECT value FROM _vtmirror_identity WHERE key = 'keyspace'",
        [],
        |r| r.get(0),
    )
    .optional()
    .context("reading the mirror identity")
}

/// One `_vtmirror_status` value, if set.
pub fn status(conn: &Connection, key: &str) -> Result<Option<String>> {
    conn.query_row(
        "SELECT value FROM _vtmirror_status WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
    .optional()
    .with_context(|| format!("reading status {key}"))
}

pub fn set_status(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO _vtmirror_status (key, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, value, now_text()],
    )
    .with_context(|| format!("writing status {key}"))?;
    Ok(())
}

/// Stores one shard's schema of a table as `table`'s (replacing the previous one): the
/// table itself, or the shadow a table copy writes to.
pub fn save_fields(tx: &Connection, table: &str, s: &ShardSchema) -> Result<()> {
    tx.execute(
        "DELETE FROM _vtmirror_fields WHERE shard = ?1 AND table_name = ?2",
        params![s.shard, table],
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO _vtmirror_fields (shard, table_name, ordinal, name, vitess_type, column_type,
           collation, flags, is_pk, enum_set_strings, field) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    )?;
    for (i, c) in s.schema.columns.iter().enumerate() {
        insert
            .execute(params![
                s.shard,
                table,
                i as i64,
                c.name,
                c.ctype.vitess_type,
                c.ctype.column_type,
                c.ctype.collation,
                c.field.flags,
                c.is_pk(),
                c.ctype.enum_set_strings,
                c.field.encode_to_vec()
            ])
            .with_context(|| format!("recording the schema of table {table}"))?;
    }
    Ok(())
}

/// Every stored shard schema: table → shard → schema.
pub fn load_fields(conn: &Connection) -> Result<BTreeMap<String, BTreeMap<String, TableSchema>>> {
    let mut stmt = conn.prepare(
        "SELECT table_name, shard, field, enum_set_strings FROM _vtmirror_fields ORDER BY table_name, shard, ordinal",
    )?;
    let mut grouped: BTreeMap<(String, String), (Vec<Field>, bool)> = BTreeMap::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, bool>(3)?,
        ))
    })?;
    for row in rows {
        let (table, shard, bytes, enum_strings) = row?;
        let field = Field::decode(bytes.as_slice()).context("stored field is not a query.Field")?;
        let entry = grouped.entry((table, shard)).or_default();
        entry.0.push(field);
        entry.1 = enum_strings;
    }
    let mut out: BTreeMap<String, BTreeMap<String, TableSchema>> = BTreeMap::new();
    for ((table, shard), (fields, enum_strings)) in grouped {
        // A shadow's fields are a source table's: they are checked under that name.
        let source = crate::mirror::schema::table_of_shadow(&table).unwrap_or(&table);
        let mut schema = TableSchema::from_fields(source, &fields, enum_strings)?;
        schema.table = table.clone();
        out.entry(table).or_default().insert(shard, schema);
    }
    Ok(out)
}

/// What the mirror holds of a table, for building a resume position.
pub enum Ceiling {
    /// No row: the table can be copied again from scratch.
    Empty,
    /// The greatest primary key held, as a vtgate last-PK.
    Key(TableLastPk),
    /// The key's order in SQLite may differ from MySQL's (text keys): no safe ceiling.
    Unordered,
}

/// The greatest primary key of a mirrored table, when SQLite orders it as MySQL does.
pub fn ceiling(conn: &Connection, schema: &TableSchema) -> Result<Ceiling> {
    let pk: Vec<_> = schema.pk.iter().map(|&i| &schema.columns[i]).collect();
    if pk.iter().any(|c| c.storage() != Storage::Integer) {
        return Ok(Ceiling::Unordered);
    }
    let order: Vec<String> = pk
        .iter()
        .map(|c| format!("{} DESC", quote(&c.name)))
        .collect();
    let cols: Vec<String> = pk.iter().map(|c| quote(&c.name)).collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {} LIMIT 1",
        cols.join(", "),
        quote(&schema.table),
        order.join(", ")
    );
    let found: Option<Vec<Value>> = conn
        .query_row(&sql, [], |r| {
            (0..pk.len()).map(|i| r.get::<_, Value>(i)).collect()
        })
        .optional()
        .with_context(|| format!("reading the greatest key of table {}", schema.table))?;
    let Some(values) = found else {
        return Ok(Ceiling::Empty);
    };
    let mut row = Row::default();
    let mut bytes = Vec::new();
    for v in values {
        let Value::Integer(n) = v else {
            return Ok(Ceiling::Unordered);
        };
        let text = n.to_string();
        row.lengths.push(text.len() as i64);
        bytes.extend_from_slice(text.as_bytes());
    }
    row.values = bytes.into();
    let fields = pk
        .iter()
        .map(|c| Field {
            name: c.name.clone(),
            r#type: c.field.r#type,
            charset: c.field.charset,
            flags: c.field.flags,
            ..Default::default()
        })
        .collect();
    Ok(Ceiling::Key(TableLastPk {
        table_name: schema.table.clone(),
        lastpk: Some(QueryResult {
            fields,
            rows: vec![row],
            ..Default::default()
        }),
    }))
}

/// Forgets a table's copy so that it is copied again from scratch on every shard: its rows,
/// its copy state and its entries in the stored checkpoint go, in one transaction.
pub fn restart_table_copy(
    tx: &Connection,
    naming: &Naming,
    table: &str,
    stored: &mut VGtid,
) -> Result<()> {
    tx.execute(&format!("DELETE FROM {}", quote(table)), [])
        .with_context(|| format!("clearing table {table} to copy it again"))?;
    tx.execute(
        "DELETE FROM _vtmirror_copy_state WHERE table_name = ?1",
        [table],
    )?;
    for shard in &mut stored.shard_gtids {
        let keyspace = &shard.keyspace;
        shard
            .table_p_ks
            .retain(|t| naming.table(keyspace, &t.table_name) != table);
    }
    save_checkpoint(tx, stored, 0, 0)
}

/// Forgets a dropped table's schema and copy state.
pub fn forget_table(conn: &Connection, table: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM _vtmirror_fields WHERE table_name = ?1",
        [table],
    )?;
    conn.execute(
        "DELETE FROM _vtmirror_copy_state WHERE table_name = ?1",
        [table],
    )?;
    conn.execute(
        "DELETE FROM _vtmirror_displaced WHERE table_name = ?1",
        [table],
    )?;
    Ok(())
}

/// Forgets one shard's schema of a table (that shard dropped or renamed it).
pub fn forget_shard_fields(conn: &Connection, table: &str, shard: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM _vtmirror_fields WHERE table_name = ?1 AND shard = ?2",
        [table, shard],
    )
    .with_context(|| format!("forgetting a shard's schema of table {table}"))?;
    Ok(())
}

/// Moves a renamed table's schema and copy state to its new name.
pub fn rename_table(conn: &Connection, from: &str, to: &str) -> Result<()> {
    forget_table(conn, to)?;
    conn.execute(
        "UPDATE _vtmirror_fields SET table_name = ?2 WHERE table_name = ?1",
        [from, to],
    )?;
    conn.execute(
        "UPDATE _vtmirror_copy_state SET table_name = ?2 WHERE table_name = ?1",
        [from, to],
    )?;
    conn.execute(
        "UPDATE _vtmirror_displaced SET table_name = ?2 WHERE table_name = ?1",
        [from, to],
    )?;
    Ok(())
}

/// Remembers a DDL statement applied to a Vitess online DDL shadow table (see migration 2).
pub fn remember_shadow_ddl(
    conn: &Connection,
    shard: &str,
    shadow: &str,
    statement: &str,
) -> Result<()> {
    conn.execute(
        "INSERT INTO _vtmirror_shadow_ddl (shard, shadow, seq, statement) \
         SELECT ?1, ?2, coalesce(max(seq), 0) + 1, ?3 FROM _vtmirror_shadow_ddl \
         WHERE shard = ?1 AND shadow = ?2",
        [shard, shadow, statement],
    )
    .context("remembering an online DDL statement")?;
    Ok(())
}

/// Takes (reads and forgets) the DDL statements seen on a shard's shadow table, in order;
/// empty when none was seen. Forgotten because after the cut-over the name holds the old table.
pub fn take_shadow_ddl(conn: &Connection, shard: &str, shadow: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT statement FROM _vtmirror_shadow_ddl WHERE shard = ?1 AND shadow = ?2 ORDER BY seq",
    )?;
    let statements = stmt
        .query_map([shard, shadow], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()
        .context("reading online DDL statements")?;
    conn.execute(
        "DELETE FROM _vtmirror_shadow_ddl WHERE shard = ?1 AND shadow = ?2",
        [shard, shadow],
    )?;
    Ok(statements)
}

/// Renames a column in every stored shard schema of a table (name and stored Field).
pub fn rename_field(conn: &Connection, table: &str, from: &str, to: &str) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT shard, ordinal, field FROM _vtmirror_fields WHERE table_name = ?1 AND name = ?2",
    )?;
    let rows: Vec<(String, i64, Vec<u8>)> = stmt
        .query_map([table, from], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (shard, ordinal, bytes) in rows {
        let mut field =
            Field::decode(bytes.as_slice()).context("stored field is not a query.Field")?;
        field.name = to.to_string();
        conn.execute(
            "UPDATE _vtmirror_fields SET name = ?1, field = ?2 WHERE shard = ?3 AND table_name = ?4 AND ordinal = ?5",
            params![to, field.encode_to_vec(), shard, table, ordinal],
        )
        .with_context(|| format!("renaming a column of table {table}"))?;
    }
    Ok(())
}
