//! The column clauses of an ALTER TABLE as `sqlparser` reads them: whether MySQL keeps the
//! stored values, and if only for some old types, which (`Family`).

use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ColumnDef, ColumnOption, ColumnOptionDef, DataType,
    Expr, Ident, Value,
};
use sqlparser::tokenizer::Token;

use super::Family;

/// What one ALTER TABLE clause does to the rows the table holds.
#[derive(Debug)]
pub(super) enum Clause {
    /// Every stored value stays as it is.
    Keeps,
    RenameColumn {
        from: String,
        to: String,
    },
    RenameTable(String),
    /// MODIFY or CHANGE to a type of `family`: values kept if the old type was of it too.
    Retype {
        column: String,
        family: Family,
        renamed: Option<String>,
    },
    /// MySQL may change stored values without row events.
    Rewrites(&'static str),
}

const GENERATED: &str = "a generated column (MySQL computes its values for existing rows)";
const UNKNOWN_OPTION: &str = "a column option vtmirror does not know";

pub(super) fn operation(op: &AlterTableOperation) -> Clause {
    match op {
        AlterTableOperation::AddColumn { column_def, .. } => added(column_def),
        AlterTableOperation::ModifyColumn {
            col_name,
            data_type,
            options,
            ..
        } => retyped(col_name, None, data_type, options.iter()),
        AlterTableOperation::ChangeColumn {
            old_name,
            new_name,
            data_type,
            options,
            ..
        } => retyped(old_name, Some(new_name), data_type, options.iter()),
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => Clause::RenameColumn {
            from: old_column_name.value.clone(),
            to: new_column_name.value.clone(),
        },
        AlterTableOperation::DropColumn { .. }
        | AlterTableOperation::AddConstraint { .. }
        | AlterTableOperation::DropConstraint { .. }
        | AlterTableOperation::DropIndex { .. }
        | AlterTableOperation::DropPrimaryKey { .. }
        | AlterTableOperation::DropForeignKey { .. }
        | AlterTableOperation::Algorithm { .. }
        | AlterTableOperation::Lock { .. }
        | AlterTableOperation::AutoIncrement { .. } => Clause::Keeps,
        AlterTableOperation::AlterColumn {
            op: AlterColumnOperation::SetDefault { .. } | AlterColumnOperation::DropDefault,
            ..
        } => Clause::Keeps,
        _ => Clause::Rewrites("an ALTER TABLE clause vtmirror does not know"),
    }
}

fn is_auto_increment(tokens: &[Token]) -> bool {
    matches!(tokens, [Token::Word(w)] if w.value.eq_ignore_ascii_case("auto_increment"))
}

fn is_null(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if v.value == Value::Null)
}

/// `ADD [COLUMN]`: kept only if existing rows get NULL in the new column.
fn added(def: &ColumnDef) -> Clause {
    if matches!(&def.data_type, DataType::Custom(name, _) if name.to_string().eq_ignore_ascii_case("serial"))
    {
        return Clause::Rewrites("ADD COLUMN … SERIAL fills existing rows without row events");
    }
    for ColumnOptionDef { option, .. } in &def.options {
        let reason = match option {
            ColumnOption::Null
            | ColumnOption::Comment(_)
            | ColumnOption::CharacterSet(_)
            | ColumnOption::Collation(_)
            | ColumnOption::OnUpdate(_)
            | ColumnOption::Unique(_)
            | ColumnOption::Check(_)
            | ColumnOption::Invisible => continue,
            ColumnOption::Default(e) if is_null(e) => continue,
            ColumnOption::NotNull | ColumnOption::PrimaryKey(_) => {
                "ADD COLUMN … NOT NULL fills existing rows without row events"
            }
            ColumnOption::Default(_) => {
                "ADD COLUMN … DEFAULT fills existing rows without row events"
            }
            ColumnOption::DialectSpecific(t) if is_auto_increment(t) => {
                "ADD COLUMN … AUTO_INCREMENT fills existing rows without row events"
            }
            ColumnOption::Generated { .. } => GENERATED,
            _ => UNKNOWN_OPTION,
        };
        return Clause::Rewrites(reason);
    }
    Clause::Keeps
}

/// `MODIFY` / `CHANGE`: the options must leave values alone and the type keep a family's.
/// NOT NULL is fine: in strict SQL mode (Vitess's default) a NULL fails the ALTER.
fn retyped<'a>(
    column: &Ident,
    new_name: Option<&Ident>,
    data_type: &DataType,
    options: impl Iterator<Item = &'a ColumnOption>,
) -> Clause {
    for option in options {
        let reason = match option {
            ColumnOption::Null
            | ColumnOption::NotNull
            | ColumnOption::Default(_)
            | ColumnOption::Comment(_)
            | ColumnOption::OnUpdate(_)
            | ColumnOption::Unique(_)
            | ColumnOption::PrimaryKey(_)
            | ColumnOption::Check(_)
            | ColumnOption::Invisible => continue,
            ColumnOption::DialectSpecific(t) if is_auto_increment(t) => continue,
            ColumnOption::CharacterSet(_) | ColumnOption::Collation(_) => {
                "a column's character set or collation changed (MySQL converts its values)"
            }
            ColumnOption::Generated { .. } => GENERATED,
            _ => UNKNOWN_OPTION,
        };
        return Clause::Rewrites(reason);
    }
    let Some(family) = family(data_type) else {
        return Clause::Rewrites(match data_type {
            DataType::Char(_) | DataType::Character(_) | DataType::Binary(_) => {
                "a CHAR or BINARY type (MySQL strips trailing spaces or pads with 0x00 bytes)"
            }
            DataType::Collate(..) => {
                "a column's character set or collation changed (MySQL converts its values)"
            }
            _ => "a column type change MySQL may apply to stored values",
        });
    };
    Clause::Retype {
        column: column.value.clone(),
        family,
        renamed: new_name
            .filter(|n| n.value != column.value)
            .map(|n| n.value.clone()),
    }
}

/// The family a MODIFY/CHANGE target type keeps values within; None for any other type.
fn family(data_type: &DataType) -> Option<Family> {
    use DataType as T;
    Some(match data_type {
        T::TinyInt(_)
        | T::TinyIntUnsigned(_)
        | T::SmallInt(_)
        | T::SmallIntUnsigned(_)
        | T::Int2(_)
        | T::Int2Unsigned(_)
        | T::MediumInt(_)
        | T::MediumIntUnsigned(_)
        | T::Int(_)
        | T::IntUnsigned(_)
        | T::Integer(_)
        | T::IntegerUnsigned(_)
        | T::Int4(_)
        | T::Int4Unsigned(_)
        | T::BigInt(_)
        | T::BigIntUnsigned(_)
        | T::Int8(_)
        | T::Int8Unsigned(_)
        | T::Bool
        | T::Boolean => Family::Integers,
        T::Zerofill(inner) => return family(inner),
        T::Varchar(_)
        | T::CharacterVarying(_)
        | T::CharVarying(_)
        | T::Text
        | T::TinyText
        | T::MediumText
        | T::LongText => Family::CharacterStrings,
        T::Varbinary(_) | T::Blob(_) | T::TinyBlob | T::MediumBlob | T::LongBlob => {
            Family::ByteStrings
        }
        _ => return None,
    })
}
