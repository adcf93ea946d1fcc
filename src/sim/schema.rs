//! The simulated keyspace's schema: table and column specs, shard names, and the
//! realistic `query::Field` metadata vttablet would send for each column.

use crate::source::proto::query::{Field, Type};

// MySQL column flag bits (query.MySqlFlag).
const NOT_NULL: u32 = 1;
const PRI_KEY: u32 = 2;
const BLOB: u32 = 16;
const UNSIGNED: u32 = 32;
const BINARY: u32 = 128;
const NO_DEFAULT_VALUE: u32 = 4096;
const PART_KEY: u32 = 16384;
const NUM: u32 = 32768;

/// Collation id of `binary` (numbers, temporal and binary strings).
pub const CHARSET_BINARY: u32 = 63;
/// Collation id of `utf8mb4_0900_ai_ci` (text columns).
pub const CHARSET_UTF8MB4: u32 = 255;

/// The MySQL type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColKind {
    /// `BIGINT`.
    BigInt,
    /// `BIGINT UNSIGNED`.
    BigIntUnsigned,
    /// `INT`.
    Int,
    /// `VARCHAR(n)` in utf8mb4.
    VarChar(u32),
    /// `VARBINARY(n)`.
    VarBinary(u32),
    /// `DATETIME(fsp)`.
    DateTime(u32),
    /// `DECIMAL(precision, scale)`.
    Decimal(u32, u32),
    /// `TEXT` in utf8mb4.
    Text,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// MySQL type.
    pub kind: ColKind,
    /// Whether NULL is allowed (never for the primary key).
    pub nullable: bool,
}

impl ColumnSpec {
    /// A NOT NULL column.
    pub fn new(name: &str, kind: ColKind) -> Self {
        Self {
            name: name.to_string(),
            kind,
            nullable: false,
        }
    }

    /// A nullable column.
    pub fn nullable(name: &str, kind: ColKind) -> Self {
        Self {
            nullable: true,
            ..Self::new(name, kind)
        }
    }
}

/// A table: the first column is its integer primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Bare table name.
    pub name: String,
    /// Columns in table order; column 0 is the primary key (BIGINT).
    pub columns: Vec<ColumnSpec>,
    /// `Some(column index)`: a ledger table. Random workloads only move amounts of this
    /// column between two rows of the same shard, so its per-shard and total sums stay constant.
    pub ledger_column: Option<usize>,
}

/// The whole simulated keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Keyspace name.
    pub keyspace: String,
    /// Number of shards: 1, 2 or 4 (anything else is rounded to the nearest supported count).
    pub shards: usize,
    /// Tables.
    pub tables: Vec<TableSpec>,
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// Rows per table loaded by `Model::new` as pre-existing data (see `Model::populate`).
    pub initial_rows: usize,
}

impl ModelSpec {
    /// Keyspace `commerce`, 2 shards, tables `customer`, `corder`, `accounts`, seed 42, with
    /// `rows_per_table` initial rows per table.
    pub fn demo(rows_per_table: usize) -> Self {
        Self {
            keyspace: "commerce".to_string(),
            shards: 2,
            tables: vec![customer_table(), corder_table(), accounts_table()],
            seed: 42,
            initial_rows: rows_per_table,
        }
    }

    /// Two keyspaces like Vitess's local example, each with `rows_per_table` initial rows per
    /// table: `commerce`, unsharded (shard `0`), tables `customer`, `corder`, `accounts`, seed
    /// 42; and `customer`, shards `-80` and `80-`, tables `customer` and `corder`, seed 43.
    /// Both have a table `customer` on purpose (one name, two keyspaces).
    pub fn local_example(rows_per_table: usize) -> Vec<ModelSpec> {
        vec![
            Self {
                keyspace: "commerce".to_string(),
                shards: 1,
                tables: vec![customer_table(), corder_table(), accounts_table()],
                seed: 42,
                initial_rows: rows_per_table,
            },
            Self {
                keyspace: "customer".to_string(),
                shards: 2,
                tables: vec![customer_table(), corder_table()],
                seed: 43,
                initial_rows: rows_per_table,
            },
        ]
    }

    /// Shard names for the configured shard count.
    pub fn shard_names(&self) -> Vec<String> {
        let names: &[&str] = match self.shards {
            0 | 1 => &["0"],
            2 | 3 => &["-80", "80-"],
            _ => &["-40", "40-80", "80-c0", "c0-"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }

    /// The table named `name`, if any.
    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.name == name)
    }
}

fn customer_table() -> TableSpec {
    TableSpec {
        name: "customer".into(),
        columns: vec![
            ColumnSpec::new("customer_id", ColKind::BigInt),
            ColumnSpec::new("email", ColKind::VarChar(128)),
            ColumnSpec::new("created", ColKind::DateTime(6)),
        ],
        ledger_column: None,
    }
}

fn corder_table() -> TableSpec {
    TableSpec {
        name: "corder".into(),
        columns: vec![
            ColumnSpec::new("order_id", ColKind::BigInt),
            ColumnSpec::new("customer_id", ColKind::BigInt),
            ColumnSpec::new("sku", ColKind::VarBinary(128)),
            ColumnSpec::new("price", ColKind::Decimal(10, 2)),
            ColumnSpec::nullable("note", ColKind::Text),
        ],
        ledger_column: None,
    }
}

fn accounts_table() -> TableSpec {
    TableSpec {
        name: "accounts".into(),
        columns: vec![
            ColumnSpec::new("id", ColKind::BigInt),
            ColumnSpec::new("balance", ColKind::BigInt),
        ],
        ledger_column: Some(1),
    }
}

/// (type, column_length, charset, decimals, type flags, column_type) of a kind.
fn kind_meta(kind: ColKind) -> (Type, u32, u32, u32, u32, String) {
    match kind {
        ColKind::BigInt => (Type::Int64, 20, CHARSET_BINARY, 0, NUM, "bigint".into()),
        ColKind::BigIntUnsigned => (
            Type::Uint64,
            20,
            CHARSET_BINARY,
            0,
            NUM | UNSIGNED,
            "bigint unsigned".into(),
        ),
        ColKind::Int => (Type::Int32, 11, CHARSET_BINARY, 0, NUM, "int".into()),
        ColKind::VarChar(n) => (
            Type::Varchar,
            n * 4,
            CHARSET_UTF8MB4,
            0,
            0,
            format!("varchar({n})"),
        ),
        ColKind::VarBinary(n) => (
            Type::Varbinary,
            n,
            CHARSET_BINARY,
            0,
            BINARY,
            format!("varbinary({n})"),
        ),
        ColKind::DateTime(fsp) => {
            let len = if fsp == 0 { 19 } else { 20 + fsp };
            let ct = if fsp == 0 {
                "datetime".to_string()
            } else {
                format!("datetime({fsp})")
            };
            (Type::Datetime, len, CHARSET_BINARY, fsp, BINARY, ct)
        }
        ColKind::Decimal(p, s) => {
            let len = p + if s > 0 { 2 } else { 1 };
            (
                Type::Decimal,
                len,
                CHARSET_BINARY,
                s,
                NUM,
                format!("decimal({p},{s})"),
            )
        }
        ColKind::Text => (Type::Text, 262_140, CHARSET_UTF8MB4, 0, BLOB, "text".into()),
    }
}

impl TableSpec {
    /// The full `query::Field` list vttablet sends in FIELD events for this table.
    pub fn fields(&self, keyspace: &str) -> Vec<Field> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, c)| column_field(&self.name, keyspace, c, i == 0))
            .collect()
    }

    /// The PK fields as sent inside a lastpk `QueryResult` (name, type, charset, flags).
    pub fn pk_fields(&self, keyspace: &str) -> Vec<Field> {
        self.fields(keyspace)
            .into_iter()
            .take(1)
            .map(|f| Field {
                name: f.name,
                r#type: f.r#type,
                charset: f.charset,
                flags: f.flags,
                ..Field::default()
            })
            .collect()
    }
}

fn column_field(table: &str, keyspace: &str, col: &ColumnSpec, pk: bool) -> Field {
    let (ty, column_length, charset, decimals, mut flags, column_type) = kind_meta(col.kind);
    if pk {
        flags |= NOT_NULL | PRI_KEY | PART_KEY | NO_DEFAULT_VALUE;
    } else if !col.nullable {
        flags |= NOT_NULL;
    }
    Field {
        name: col.name.clone(),
        r#type: ty as i32,
        table: table.to_string(),
        org_table: table.to_string(),
        database: format!("vt_{keyspace}"),
        org_name: col.name.clone(),
        column_length,
        charset,
        decimals,
        flags,
        column_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigint_pk_has_the_flags_vitess_sends() {
        let spec = ModelSpec::demo(0);
        let fields = spec.tables[0].fields("commerce");
        assert_eq!(fields[0].flags, 53251);
        assert_eq!(fields[0].r#type, Type::Int64 as i32);
        assert_eq!(fields[1].column_type, "varchar(128)");
        assert_eq!(fields[1].charset, 255);
        assert_eq!(fields[0].database, "vt_commerce");
    }
}
