//! A MODIFY/CHANGE that keeps values only for some old column types (`SourceDdl::Retype`),
//! checked against the types the mirror recorded from FIELD events.

use anyhow::{Context, Result};
use rusqlite::Connection;

use super::{exists, CannotFollow, DdlScope};
use crate::source::ddl_statement::Family;

/// A MODIFY/CHANGE keeps the values only of columns whose recorded type (every shard's) is of
/// the new type's family; an unrecorded column cannot be proven so either.
pub(super) fn check_retype(
    conn: &Connection,
    scope: &DdlScope,
    table: &str,
    columns: &[(String, Family)],
) -> Result<()> {
    if !exists(conn, table)? || scope.copying.contains_key(table) {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT vitess_type FROM _vtmirror_fields WHERE table_name = ?1 AND name = ?2",
    )?;
    for (column, family) in columns {
        let types = stmt
            .query_map(rusqlite::params![table, column], |r| r.get::<_, i32>(0))?
            .collect::<rusqlite::Result<Vec<i32>>>()
            .with_context(|| format!("reading the recorded types of table {table}"))?;
        if types.is_empty() || !types.iter().all(|t| family.holds(*t)) {
            return Err(CannotFollow::error(
                table,
                format!(
                    "source DDL on table {table} cannot be mirrored: column {column} changed to \
                     a type that may not keep its values (MySQL rewrites them without row events)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::source::naming::Naming;
    use crate::source::value::vtype;

    fn mirror_with(vitess_type: i32) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, c TEXT);
             CREATE TABLE _vtmirror_fields (table_name TEXT, name TEXT, vitess_type INTEGER);",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO _vtmirror_fields VALUES ('t', 'c', ?1)",
            [vitess_type],
        )
        .unwrap();
        conn
    }

    #[test]
    fn a_retype_is_followed_only_from_a_recorded_type_of_the_same_family() {
        let naming = Naming::Bare("ks".into());
        let copying = HashMap::new();
        let scope = DdlScope {
            keyspace: "ks",
            shard: "0",
            naming: &naming,
            copying: &copying,
        };
        let check = |t: i32, family: Family, column: &str| {
            check_retype(&mirror_with(t), &scope, "t", &[(column.into(), family)])
        };
        assert!(check(vtype::VARCHAR, Family::CharacterStrings, "c").is_ok());
        assert!(check(vtype::INT32, Family::Integers, "c").is_ok());
        let err = check(vtype::DECIMAL, Family::Integers, "c").unwrap_err();
        assert!(err.downcast_ref::<CannotFollow>().is_some(), "{err}");
        assert!(err.to_string().contains("table t"), "{err}");
        assert!(
            check(vtype::VARCHAR, Family::CharacterStrings, "unknown").is_err(),
            "a column the mirror has no type for cannot be proven"
        );
        assert!(check(vtype::VARBINARY, Family::CharacterStrings, "c").is_err());
    }
}
