//! Unit tests of `ddl_statement`: statements as vttablet sends them.
use super::*;

#[test]
fn drop_truncate_and_rename_statements_name_their_tables() {
    assert_eq!(
        parse("DROP TABLE IF EXISTS `a`, ks.`b c` /* comment */"),
        SourceDdl::DropTables(vec!["a".into(), "b c".into()])
    );
    assert_eq!(parse("truncate table `t`"), SourceDdl::Truncate("t".into()));
    assert_eq!(parse("TRUNCATE t"), SourceDdl::Truncate("t".into()));
    assert_eq!(
        parse("RENAME TABLE a TO b, `c` TO `d`"),
        SourceDdl::RenameTables(vec![("a".into(), "b".into()), ("c".into(), "d".into())])
    );
    assert_eq!(
        parse("ALTER TABLE a RENAME TO b"),
        SourceDdl::RenameTables(vec![("a".into(), "b".into())])
    );
}

#[test]
fn column_renames_are_recognised_and_retypes_name_the_family_they_keep() {
    assert_eq!(
        parse("alter table t rename column a to b"),
        SourceDdl::RenameColumn {
            table: "t".into(),
            from: "a".into(),
            to: "b".into(),
        }
    );
    assert_eq!(
        parse("ALTER TABLE `t` CHANGE COLUMN `a` `b` int"),
        SourceDdl::Retype {
            table: "t".into(),
            columns: vec![("a".into(), Family::Integers)],
            renamed: Some(("a".into(), "b".into())),
        },
        "a CHANGE renames and retypes: the values move if the old type was an integer"
    );
    assert_eq!(parse("ALTER TABLE t ADD COLUMN c int"), SourceDdl::Other);
    assert_eq!(
        parse("create table x (id int primary key)"),
        SourceDdl::Other
    );
    assert!(
        matches!(
            parse("ALTER TABLE t CHANGE a b int, ADD COLUMN c int"),
            SourceDdl::Unsupported { .. }
        ),
        "a rename among other clauses would look like a dropped and an added column"
    );
}

#[test]
fn a_family_holds_the_old_types_whose_values_its_types_keep() {
    use crate::source::value::vtype;
    assert!(Family::Integers.holds(vtype::UINT24));
    assert!(!Family::Integers.holds(vtype::DECIMAL));
    assert!(Family::CharacterStrings.holds(vtype::CHAR));
    assert!(!Family::CharacterStrings.holds(vtype::VARBINARY));
    assert!(Family::ByteStrings.holds(vtype::BINARY));
    assert!(!Family::ByteStrings.holds(vtype::TEXT));
}

#[test]
fn the_parser_never_panics_on_garbage_huge_or_odd_input() {
    let deep = format!(
        "ALTER TABLE t ADD COLUMN g INT AS {}1{} STORED",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let long = format!("ALTER TABLE t {}", "ADD COLUMN c INT, ".repeat(20_000));
    let odd = [
        "\0\0\0",
        "/*",
        "/*!",
        "/*!80000",
        "`",
        "```",
        "'",
        "\"",
        "ALTER TABLE t ADD (",
        "ALTER TABLE t ,,,,",
        ")))(((",
        "ALTER TABLE . . .",
        "RENAME TABLE a TO",
        "DROP TABLE ,",
        "TRUNCATE",
        "ALTER TABLE t MODIFY",
        "ALTER TABLE t CHANGE a",
        "\u{feff}TRUNCATE t",
        "ALTER TABLE t ADD COLUMN c INT DEFAULT 'x\\",
        "ALTER TABLE t RENAME COLUMN a TO",
    ];
    for sql in odd.iter().copied().chain([deep.as_str(), long.as_str()]) {
        let _ = parse(sql);
        let _ = retarget(sql, "_vt_vrp_x_", "t");
    }
    let mut bytes: Vec<u8> = (0u8..=255).cycle().take(4096).collect();
    for i in 0..bytes.len() {
        bytes.swap(i, (i * 7919) % 4096);
    }
    let _ = parse(&String::from_utf8_lossy(&bytes));
}

#[test]
fn adding_a_column_that_backfills_existing_rows_is_unsupported() {
    for sql in [
        "ALTER TABLE t ADD COLUMN c INT NOT NULL",
        "alter table t add c int default 7",
        "ALTER TABLE t ADD INDEX (x), ADD COLUMN d DATETIME DEFAULT CURRENT_TIMESTAMP",
    ] {
        assert!(matches!(parse(sql), SourceDdl::Unsupported { .. }), "{sql}");
    }
    for sql in [
        "ALTER TABLE t ADD COLUMN c INT",
        "ALTER TABLE t ADD COLUMN c INT DEFAULT NULL",
        "ALTER TABLE t ADD INDEX i (a)",
        "ALTER TABLE t ADD UNIQUE KEY u (a)",
    ] {
        assert_eq!(parse(sql), SourceDdl::Other, "{sql}");
    }
}

#[test]
fn quoted_identifiers_keep_backticks_spaces_and_unicode() {
    assert_eq!(
        parse("drop table `we``ird name ü`"),
        SourceDdl::DropTables(vec!["we`ird name ü".into()])
    );
}

#[test]
fn an_alter_of_a_shadow_table_is_kept_for_its_cut_over() {
    let sql = "ALTER TABLE `_vt_vrp_b68e0767e6f511f196002a38f98e4dfb_20261123042403_` ADD COLUMN `c` int NOT NULL DEFAULT 5";
    let shadow = "_vt_vrp_b68e0767e6f511f196002a38f98e4dfb_20261123042403_";
    assert_eq!(
        parse(sql),
        SourceDdl::ShadowAlter {
            shadow: shadow.into(),
            statement: sql.into()
        }
    );
    assert!(matches!(
        retarget(sql, shadow, "odl_t"),
        SourceDdl::Unsupported { table, .. } if table == "odl_t"
    ));
    assert_eq!(
        retarget(
            "alter table `_vt_vrp_x_` change column a b int",
            "_vt_vrp_x_",
            "t"
        ),
        SourceDdl::Retype {
            table: "t".into(),
            columns: vec![("a".into(), Family::Integers)],
            renamed: Some(("a".into(), "b".into())),
        }
    );
    assert!(matches!(
        retarget("alter table `_vt_vrp_x_` modify c char(5)", "_vt_vrp_x_", "t"),
        SourceDdl::Unsupported { table, .. } if table == "t"
    ));
    assert!(matches!(
        retarget("alter table `_vt_vrp_x_` frobnicate(", "_vt_vrp_x_", "t"),
        SourceDdl::Unsupported { table, .. } if table == "t"
    ));
    assert!(matches!(
        retarget("alter table `_vt_vrp_x_` rename column a to b", "_vt_vrp_x_", "t"),
        SourceDdl::Unsupported { table, .. } if table == "t"
    ));
    assert_eq!(
        retarget(
            "ALTER TABLE `_vt_vrp_x_` ADD COLUMN `c` int",
            "_vt_vrp_x_",
            "t"
        ),
        SourceDdl::Other
    );
}

#[test]
fn vitess_internal_tables_are_recognised() {
    assert!(is_internal(
        "_vt_vrp_6ace8bcef73211ea87e9f875a4d24e90_20200915120410_"
    ));
    assert!(is_internal(
        "_vt_hld_b89ea864e6f511f1a56f2a38f98e4dfb_20261124042406_"
    ));
    assert!(is_internal(
        "_vt_HOLD_6ace8bcef73211ea87e9f875a4d24e90_20200915120410"
    ));
    assert!(is_internal(
        "_4e5dcf80_354b_11eb_82cd_f875a4d24e90_20201203114014_gho"
    ));
    assert!(is_internal("_customer_old"));
    assert!(!is_internal("customer"));
    assert!(
        !is_internal("_vt_users"),
        "a user table that looks internal"
    );
    assert!(!is_internal("_vt_vrp_notauuid_20200915120410_"));
}
