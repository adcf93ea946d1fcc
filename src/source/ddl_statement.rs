//! What a source DDL statement means for the mirror (DDL events carry the SQL text).
//!
//! The statement is read with `sqlparser` (MySQL dialect): its tokenizer drops comments
//! anywhere and expands MySQL version comments (`/*!80000 … */`, which MySQL executes), and
//! its parser reads column definitions. Its MySQL `ALTER TABLE` grammar is incomplete
//! (`ENGINE=`, `DROP KEY`, `RENAME INDEX`, partitions…), so `alter` splits an ALTER into its
//! clauses and reads the table-option, index and partition clauses itself, from the tokens.
//!
//! # The rule
//! On a mirrored table, a statement that is not *proven* value-preserving is treated as
//! rewriting existing rows without row events: `Unsupported` (the sync stops with a definite
//! error, or copies the table again with `sync --recopy-on-ddl`). Proven value-preserving:
//! CREATE, DROP, RENAME and TRUNCATE TABLE (applied by the mirror), ADD COLUMN nullable without
//! a default, DROP COLUMN, RENAME COLUMN, index, constraint, comment, engine (InnoDB) and
//! auto-increment changes, and a column retyped to an integer, VARCHAR/TEXT or VARBINARY/BLOB
//! type from one of the same family (`Retype`: the mirror checks the column's recorded type).
//! Everything else is rewriting: generated columns, CHAR/BINARY targets (padding), charset
//! or collation changes, partition operations, ADD COLUMN with a default or NOT NULL, and any
//! clause not recognised. A retyped VARCHAR/TEXT column without a written charset takes the
//! table's default, which the text does not tell: a conversion that brings is caught by the
//! FIELD check when the table's next row arrives, not at the statement.
//!
//! A statement that cannot be read at all (`Unreadable`) names no table for sure: it stops the
//! sync if any identifier in it is the name of a mirrored table, and is ignored otherwise
//! (Vitess streams the DDL of every table of the keyspace, mirrored or not, and its own
//! `_vt_*` tables'). MySQL accepted it, so it affects the tables it names.
//!
//! Column additions and removals are not applied from the text: the FIELD event that precedes
//! the table's next rows carries the new columns, and `mirror::ddl` rebuilds the SQLite table
//! from it; `mirror::schema::value_rewriting_change` checks those types a second time.

mod alter;
mod column;

use sqlparser::ast::{ObjectName, ObjectType, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

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
    /// Columns given a new type that keeps every value of the family `kept` names: followed
    /// if the mirror recorded each column with a type of that family, then `renamed` applied.
    Retype {
        table: String,
        columns: Vec<(String, Family)>,
        renamed: Option<(String, String)>,
    },
    /// A change MySQL may apply to existing rows without row events: the mirror cannot
    /// follow it and stops (or copies the table again with `sync --recopy-on-ddl`).
    Unsupported {
        table: String,
        reason: &'static str,
    },
    /// A statement that could not be read: stops if any of `names` is a mirrored table.
    Unreadable {
        names: Vec<String>,
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

/// A family of column types within which a type change keeps every value (strict SQL mode:
/// a value that does not fit fails the ALTER instead of being cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// TINYINT … BIGINT, signed or not.
    Integers,
    /// VARCHAR, TEXT (and CHAR as the old type: its values are read without trailing spaces).
    CharacterStrings,
    /// VARBINARY, BLOB (and BINARY as the old type: its values are read padded).
    ByteStrings,
}

impl Family {
    /// Whether a column of Vitess type `vitess_type` keeps its values in this family.
    pub fn holds(self, vitess_type: i32) -> bool {
        use crate::source::value::vtype;
        match self {
            Family::Integers => matches!(
                vitess_type,
                vtype::INT8
                    | vtype::UINT8
                    | vtype::INT16
                    | vtype::UINT16
                    | vtype::INT24
                    | vtype::UINT24
                    | vtype::INT32
                    | vtype::UINT32
                    | vtype::INT64
                    | vtype::UINT64
            ),
            Family::CharacterStrings => {
                matches!(vitess_type, vtype::VARCHAR | vtype::CHAR | vtype::TEXT)
            }
            Family::ByteStrings => {
                matches!(vitess_type, vtype::VARBINARY | vtype::BINARY | vtype::BLOB)
            }
        }
    }
}

/// The tokens of `sql` without comments or whitespace, version comments expanded.
fn tokens(sql: &str) -> Option<Vec<Token>> {
    let mut tokens = Tokenizer::new(&MySqlDialect {}, sql).tokenize().ok()?;
    tokens.retain(|t| !matches!(t, Token::Whitespace(_)));
    while tokens.last() == Some(&Token::SemiColon) {
        tokens.pop();
    }
    Some(tokens)
}

/// An unquoted word's keyword (quoted identifiers are never keywords).
fn keyword(token: Option<&Token>) -> Option<Keyword> {
    match token {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

/// Parses one statement from tokens; None unless exactly one statement was read.
fn statement(tokens: Vec<Token>) -> Option<Statement> {
    let mut parser = Parser::new(&MySqlDialect {}).with_tokens(tokens);
    let mut statements = parser.parse_statements().ok()?;
    (statements.len() == 1).then(|| statements.remove(0))
}

/// The bare table name (`ks.t` → `t`).
fn bare(name: &ObjectName) -> Option<String> {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.clone())
}

pub fn parse(sql: &str) -> SourceDdl {
    let Some(tokens) = tokens(sql) else {
        return unreadable(sql);
    };
    let first = keyword(tokens.first());
    let read = match first {
        // A CREATE never changes the rows of an existing table; analysis keeps them too.
        Some(Keyword::CREATE | Keyword::ANALYZE | Keyword::OPTIMIZE) => Some(SourceDdl::Other),
        Some(Keyword::ALTER) if keyword(tokens.get(1)) == Some(Keyword::TABLE) => {
            alter::alter_table(sql, &tokens)
        }
        // ALTER VIEW, DATABASE (defaults only), PROCEDURE…: no table rows change.
        Some(Keyword::ALTER) => Some(SourceDdl::Other),
        _ => statement(tokens.clone()).and_then(table_statement),
    };
    read.unwrap_or_else(|| unreadable_tokens(&tokens))
}

/// DROP, TRUNCATE and RENAME TABLE; None for a statement of another kind.
fn table_statement(statement: Statement) -> Option<SourceDdl> {
    match statement {
        // A temporary table is never in the stream and may hide a mirrored one's name.
        Statement::Drop {
            object_type: ObjectType::Table,
            temporary,
            names,
            ..
        } => Some(if temporary {
            SourceDdl::Other
        } else {
            SourceDdl::DropTables(names.iter().map(bare).collect::<Option<_>>()?)
        }),
        Statement::Drop { .. } => Some(SourceDdl::Other),
        Statement::Truncate(t) => {
            let [target] = t.table_names.as_slice() else {
                return None;
            };
            let table = bare(&target.name)?;
            Some(match t.partitions {
                Some(_) => SourceDdl::Unsupported {
                    table,
                    reason: "TRUNCATE … PARTITION removes rows without row events",
                },
                None => SourceDdl::Truncate(table),
            })
        }
        Statement::RenameTable(pairs) => pairs
            .iter()
            .map(|p| Some((bare(&p.old_name)?, bare(&p.new_name)?)))
            .collect::<Option<_>>()
            .map(SourceDdl::RenameTables),
        _ => None,
    }
}

/// Every identifier the statement's tokens hold.
fn unreadable_tokens(tokens: &[Token]) -> SourceDdl {
    let mut names: Vec<String> = Vec::new();
    for token in tokens {
        if let Token::Word(w) = token {
            if !names.contains(&w.value) {
                names.push(w.value.clone());
            }
        }
    }
    SourceDdl::Unreadable { names }
}

/// A statement even the tokenizer refuses: every run of identifier characters is a name.
fn unreadable(sql: &str) -> SourceDdl {
    let mut names: Vec<String> = Vec::new();
    for word in sql.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')) {
        if !word.is_empty() && !names.iter().any(|n| n == word) {
            names.push(word.to_string());
        }
    }
    SourceDdl::Unreadable { names }
}

/// The meaning of an ALTER seen on shadow table `shadow` for the table it was swapped into.
/// Vitess copies the rows into the shadow matching columns by name, except for renames
/// written as `CHANGE [COLUMN] old new …` (its `ColumnRenameMap`): an online `RENAME COLUMN`
/// leaves the new column empty in v24, a behaviour a later version may well fix, so the
/// mirror cannot know what the table holds and stops.
pub fn retarget(statement: &str, shadow: &str, table: &str) -> SourceDdl {
    let table = table.to_string();
    let onto = |t: String| if t == shadow { table.clone() } else { t };
    let Some(tokens) = tokens(statement) else {
        return unreadable_shadow(table);
    };
    if alter::has_rename_column_clause(&tokens) {
        return SourceDdl::Unsupported {
            table,
            reason: "an online DDL RENAME COLUMN (whether Vitess carries the values over \
                     depends on its version; write CHANGE COLUMN old new <type> instead)",
        };
    }
    match alter::shadow_alter(&tokens) {
        Some(SourceDdl::Unsupported { reason, .. }) => SourceDdl::Unsupported { table, reason },
        Some(SourceDdl::RenameColumn { table: t, from, to }) => SourceDdl::RenameColumn {
            table: onto(t),
            from,
            to,
        },
        Some(SourceDdl::Retype {
            table: t,
            columns,
            renamed,
        }) => SourceDdl::Retype {
            table: onto(t),
            columns,
            renamed,
        },
        None | Some(SourceDdl::Unreadable { .. }) => unreadable_shadow(table),
        // A shadow renamed by its own ALTER is not something online DDL does.
        Some(_) => SourceDdl::Other,
    }
}

fn unreadable_shadow(table: String) -> SourceDdl {
    SourceDdl::Unsupported {
        table,
        reason: "an online DDL whose ALTER vtmirror cannot read",
    }
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

#[cfg(test)]
#[path = "ddl_statement_corpus.rs"]
mod corpus;
