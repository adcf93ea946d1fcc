//! `ALTER TABLE`, one clause at a time. `sqlparser` reads the column clauses (ADD, MODIFY,
//! CHANGE); the MySQL clauses its grammar lacks (table options, index renames, partitions)
//! are recognised here from their leading words. A clause neither knows is rewriting.

use sqlparser::ast::Statement;
use sqlparser::tokenizer::Token;

use super::column::{operation, Clause};
use super::{is_internal, statement, SourceDdl};

/// An unquoted word, upper-cased (quoted identifiers are never keywords).
fn word(token: Option<&Token>) -> Option<String> {
    match token {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// An identifier, quoted or not.
fn ident(token: Option<&Token>) -> Option<String> {
    match token {
        Some(Token::Word(w)) => Some(w.value.clone()),
        _ => None,
    }
}

/// `[schema.]name` at `at`: the bare name and the index after it.
fn object_name(tokens: &[Token], at: usize) -> Option<(String, usize)> {
    let first = ident(tokens.get(at))?;
    if tokens.get(at + 1) == Some(&Token::Period) {
        return Some((ident(tokens.get(at + 2))?, at + 3));
    }
    Some((first, at + 1))
}

/// The clauses after `ALTER TABLE name`, split at the commas outside parentheses.
fn clauses(tokens: &[Token]) -> Vec<&[Token]> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                out.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < tokens.len() {
        out.push(&tokens[start..]);
    }
    out
}

/// `ALTER TABLE …` (tokens of the whole statement); None if no table name can be read.
pub(super) fn alter_table(sql: &str, tokens: &[Token]) -> Option<SourceDdl> {
    let (table, at) = object_name(tokens, 2)?;
    if is_internal(&table) {
        return Some(SourceDdl::ShadowAlter {
            shadow: table,
            statement: sql.to_string(),
        });
    }
    Some(combine(table, alter_clauses(tokens, at)))
}

/// The clauses of an ALTER that was applied to an online DDL shadow table.
pub(super) fn shadow_alter(tokens: &[Token]) -> Option<SourceDdl> {
    let (table, at) = object_name(tokens, 2)?;
    Some(combine(table, alter_clauses(tokens, at)))
}

/// Whether an ALTER holds a `RENAME COLUMN` clause.
pub(super) fn has_rename_column_clause(tokens: &[Token]) -> bool {
    let Some((_, at)) = object_name(tokens, 2) else {
        return false;
    };
    clauses(&tokens[at..]).iter().any(|c| {
        word(c.first()).as_deref() == Some("RENAME") && word(c.get(1)).as_deref() == Some("COLUMN")
    })
}

fn alter_clauses(tokens: &[Token], at: usize) -> Vec<Clause> {
    let head = &tokens[..at];
    clauses(&tokens[at..])
        .into_iter()
        .map(|c| clause(head, c))
        .collect()
}

/// One statement's meaning from its clauses' (see the module doc of `ddl_statement`).
fn combine(table: String, clauses: Vec<Clause>) -> SourceDdl {
    if let Some(reason) = clauses.iter().find_map(|c| match c {
        Clause::Rewrites(reason) => Some(*reason),
        _ => None,
    }) {
        return SourceDdl::Unsupported { table, reason };
    }
    let renames = |c: &Clause| match c {
        Clause::RenameColumn { .. } | Clause::RenameTable(_) => true,
        Clause::Retype { renamed, .. } => renamed.is_some(),
        _ => false,
    };
    if clauses.len() > 1 && clauses.iter().any(renames) {
        // A column rename would look dropped and re-added empty in the FIELD event.
        return SourceDdl::Unsupported {
            table,
            reason: "a rename combined with other changes in one ALTER",
        };
    }
    let mut columns = Vec::new();
    let mut renamed = None;
    for clause in clauses {
        match clause {
            Clause::RenameTable(to) => return SourceDdl::RenameTables(vec![(table, to)]),
            Clause::RenameColumn { from, to } => {
                return SourceDdl::RenameColumn { table, from, to }
            }
            Clause::Retype {
                column,
                family,
                renamed: new_name,
            } => {
                renamed = new_name.map(|to| (column.clone(), to));
                columns.push((column, family));
            }
            Clause::Keeps | Clause::Rewrites(_) => {}
        }
    }
    if columns.is_empty() {
        return SourceDdl::Other;
    }
    SourceDdl::Retype {
        table,
        columns,
        renamed,
    }
}

/// Words that start a clause changing no stored value: table options (ENGINE is checked
/// apart), defaults for new columns, index and constraint changes, ALTER [COLUMN] … DEFAULT or
/// VISIBLE, every DROP (columns, indexes, keys, checks; partitions are caught before).
const KEEPING_CLAUSES: &[&str] = &[
    "COMMENT",
    "ROW_FORMAT",
    "KEY_BLOCK_SIZE",
    "STATS_PERSISTENT",
    "STATS_AUTO_RECALC",
    "STATS_SAMPLE_PAGES",
    "AUTO_INCREMENT",
    "AVG_ROW_LENGTH",
    "MAX_ROWS",
    "MIN_ROWS",
    "PACK_KEYS",
    "CHECKSUM",
    "DELAY_KEY_WRITE",
    "ALGORITHM",
    "LOCK",
    "FORCE",
    "ORDER",
    "ENABLE",
    "DISABLE",
    "WITH",
    "WITHOUT",
    "DEFAULT",
    "CHARACTER",
    "CHARSET",
    "COLLATE",
    "ALTER",
    "DROP",
];

/// ADD clauses that add an index or a constraint (checked against the existing rows, which
/// MySQL then keeps as they are).
const ADDED_INDEXES: &[&str] = &[
    "INDEX",
    "KEY",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "PRIMARY",
    "CONSTRAINT",
    "FOREIGN",
    "CHECK",
];

const PARTITIONING: &[&str] = &["PARTITION", "PARTITIONS", "PARTITIONING", "SUBPARTITION"];

/// One clause; `head` is `ALTER TABLE name`, for the parser.
fn clause(head: &[Token], clause: &[Token]) -> Clause {
    let words = |at: usize| word(clause.get(at)).unwrap_or_default();
    if clause
        .iter()
        .any(|t| word(Some(t)).is_some_and(|w| PARTITIONING.contains(&w.as_str())))
    {
        return Clause::Rewrites("a partition change moves or removes rows without row events");
    }
    match words(0).as_str() {
        "CONVERT" => Clause::Rewrites("CONVERT TO CHARACTER SET converts every string column"),
        "ENGINE" => {
            let at = if clause.get(1) == Some(&Token::Eq) {
                2
            } else {
                1
            };
            if words(at) == "INNODB" && clause.len() == at + 1 {
                Clause::Keeps
            } else {
                Clause::Rewrites("a change of storage engine")
            }
        }
        w if KEEPING_CLAUSES.contains(&w) => Clause::Keeps,
        "RENAME" => rename(clause),
        "ADD" if ADDED_INDEXES.contains(&words(1).as_str()) => Clause::Keeps,
        "ADD" | "MODIFY" | "CHANGE" => parsed(head, clause),
        _ => Clause::Rewrites("an ALTER TABLE clause vtmirror does not know"),
    }
}

/// `RENAME {INDEX|KEY} a TO b`, `RENAME COLUMN a TO b`, `RENAME [TO|AS] name`.
fn rename(clause: &[Token]) -> Clause {
    let unknown = Clause::Rewrites("a RENAME clause vtmirror cannot read");
    match word(clause.get(1)).as_deref() {
        Some("INDEX" | "KEY") => Clause::Keeps,
        Some("COLUMN") => match (
            ident(clause.get(2)),
            word(clause.get(3)),
            ident(clause.get(4)),
        ) {
            (Some(from), Some(to_word), Some(to)) if to_word == "TO" && clause.len() == 5 => {
                Clause::RenameColumn { from, to }
            }
            _ => unknown,
        },
        other => {
            let at = if matches!(other, Some("TO" | "AS")) {
                2
            } else {
                1
            };
            match object_name(clause, at) {
                Some((to, end)) if end == clause.len() => Clause::RenameTable(to),
                _ => unknown,
            }
        }
    }
}

/// A column clause, read by `sqlparser` as `ALTER TABLE name <clause>`.
fn parsed(head: &[Token], clause: &[Token]) -> Clause {
    let tokens: Vec<Token> = head.iter().chain(clause).cloned().collect();
    match statement(tokens) {
        Some(Statement::AlterTable(alter)) => match alter.operations.as_slice() {
            [op] => operation(op),
            _ => Clause::Rewrites("an ALTER TABLE clause vtmirror cannot read"),
        },
        _ => Clause::Rewrites("an ALTER TABLE clause vtmirror cannot read"),
    }
}
