//! The classifier against a corpus of MySQL DDL as a source may stream it: syntax variants
//! (backticks, `ks.t`, IF EXISTS, several tables, comments everywhere, version comments, case)
//! each with the meaning the mirror must give it.
use super::*;

/// A short, comparable form of a classification.
fn summary(ddl: &SourceDdl) -> String {
    match ddl {
        SourceDdl::DropTables(t) => format!("drop {}", t.join(",")),
        SourceDdl::Truncate(t) => format!("truncate {t}"),
        SourceDdl::RenameTables(p) => {
            let pairs: Vec<String> = p.iter().map(|(a, b)| format!("{a}>{b}")).collect();
            format!("rename {}", pairs.join(","))
        }
        SourceDdl::RenameColumn { table, from, to } => format!("rename-column {table} {from}>{to}"),
        SourceDdl::Retype {
            table,
            columns,
            renamed,
        } => {
            let cols: Vec<String> = columns.iter().map(|(c, f)| format!("{c}:{f:?}")).collect();
            let renamed = renamed.as_ref().map(|(a, b)| format!(" {a}>{b}"));
            format!(
                "retype {table} {}{}",
                cols.join(","),
                renamed.unwrap_or_default()
            )
        }
        SourceDdl::Unsupported { table, .. } => format!("rewrites {table}"),
        SourceDdl::Unreadable { .. } => "unreadable".into(),
        SourceDdl::ShadowAlter { shadow, .. } => format!("shadow {shadow}"),
        SourceDdl::Other => "other".into(),
    }
}

const CORPUS: &[(&str, &str)] = &[
    // Table-level statements the mirror applies.
    ("TRUNCATE TABLE t", "truncate t"),
    ("truncate t", "truncate t"),
    ("TRUNCATE `ks`.`t`;", "truncate t"),
    ("/* a comment */ TRUNCATE TABLE t", "truncate t"),
    ("-- a comment\nTRUNCATE TABLE t", "truncate t"),
    ("# a comment\ntruncate table t", "truncate t"),
    ("/*!50100 TRUNCATE TABLE t */", "truncate t"),
    ("TrUnCaTe TaBlE `we``ird name ü`", "truncate we`ird name ü"),
    ("DROP TABLE t", "drop t"),
    ("DROP TABLE IF EXISTS `a`, ks.`b c` /* comment */", "drop a,b c"),
    ("drop table a, b, c RESTRICT", "drop a,b,c"),
    ("/* x */ DROP /* y */ TABLE /* z */ t", "drop t"),
    ("DROP TEMPORARY TABLE IF EXISTS t", "other"),
    ("RENAME TABLE a TO b", "rename a>b"),
    ("RENAME TABLE a TO b, `c` TO `d`", "rename a>b,c>d"),
    ("rename table ks.a to ks.b", "rename a>b"),
    ("ALTER TABLE a RENAME TO b", "rename a>b"),
    ("ALTER TABLE a RENAME AS b", "rename a>b"),
    ("ALTER TABLE a RENAME b", "rename a>b"),
    ("ALTER TABLE `ks`.`a` RENAME TO `ks`.`b`", "rename a>b"),
    ("CREATE TABLE t (id INT PRIMARY KEY, c VARCHAR(10)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", "other"),
    ("CREATE TABLE IF NOT EXISTS t LIKE u", "other"),
    ("create temporary table t (id int)", "other"),
    ("CREATE INDEX i ON t (a)", "other"),
    ("CREATE UNIQUE INDEX i ON t (a) ALGORITHM=INPLACE", "other"),
    ("DROP INDEX i ON t", "other"),
    ("CREATE VIEW v AS SELECT * FROM t", "other"),
    ("DROP VIEW IF EXISTS v", "other"),
    ("ALTER VIEW v AS SELECT id FROM t", "other"),
    ("OPTIMIZE TABLE t", "other"),
    ("ANALYZE TABLE t", "other"),
    // Column changes that keep every value.
    ("ALTER TABLE t ADD COLUMN c INT", "other"),
    ("ALTER TABLE t ADD c INT", "other"),
    ("alter table `t` add column `c` int null", "other"),
    ("ALTER TABLE t ADD COLUMN c INT DEFAULT NULL", "other"),
    ("ALTER TABLE t ADD COLUMN c INT NULL DEFAULT NULL AFTER b", "other"),
    ("ALTER TABLE t ADD COLUMN c VARCHAR(5) CHARACTER SET latin1 COLLATE latin1_bin NULL", "other"),
    ("ALTER TABLE t ADD COLUMN c INT COMMENT 'why' FIRST", "other"),
    ("ALTER TABLE t ADD COLUMN c INT, ALGORITHM=INSTANT", "other"),
    ("ALTER TABLE t ADD COLUMN c INT /*!80023 INVISIBLE */", "other"),
    ("ALTER TABLE t ADD COLUMN j JSON, ADD COLUMN e ENUM('a','b') NULL", "other"),
    ("ALTER TABLE t DROP COLUMN c", "other"),
    ("ALTER TABLE t DROP c, DROP COLUMN d", "other"),
    ("ALTER TABLE t RENAME COLUMN a TO b", "rename-column t a>b"),
    ("alter table ks.t rename column `a` to `b b`", "rename-column t a>b b"),
    ("ALTER TABLE t ALTER COLUMN c SET DEFAULT 5", "other"),
    ("ALTER TABLE t ALTER c DROP DEFAULT", "other"),
    // Index, constraint and table-option changes.
    ("ALTER TABLE t ADD INDEX i (a)", "other"),
    ("ALTER TABLE t ADD KEY (a, b) USING BTREE COMMENT 'x'", "other"),
    ("ALTER TABLE t ADD UNIQUE KEY u (a)", "other"),
    ("ALTER TABLE t ADD FULLTEXT INDEX f (a)", "other"),
    ("ALTER TABLE t ADD SPATIAL INDEX s (g)", "other"),
    ("ALTER TABLE t ADD INDEX i (a), ALGORITHM=INPLACE, LOCK=NONE", "other"),
    ("ALTER TABLE t DROP INDEX i", "other"),
    ("ALTER TABLE t DROP KEY i", "other"),
    ("ALTER TABLE t RENAME INDEX a TO b", "other"),
    ("ALTER TABLE t RENAME KEY a TO b", "other"),
    ("ALTER TABLE t ALTER INDEX i INVISIBLE", "other"),
    ("ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, a)", "other"),
    ("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id)", "other"),
    ("ALTER TABLE t DROP FOREIGN KEY fk", "other"),
    ("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", "other"),
    ("ALTER TABLE t DROP CHECK c", "other"),
    ("ALTER TABLE t ALTER CHECK c NOT ENFORCED", "other"),
    ("ALTER TABLE t ENGINE=InnoDB", "other"),
    ("ALTER TABLE t ENGINE InnoDB, ALGORITHM=COPY", "other"),
    ("ALTER TABLE t COMMENT 'x'", "other"),
    ("ALTER TABLE t COMMENT = 'it''s, with a comma'", "other"),
    ("ALTER TABLE t AUTO_INCREMENT = 100", "other"),
    ("ALTER TABLE t ROW_FORMAT=DYNAMIC", "other"),
    ("ALTER TABLE t KEY_BLOCK_SIZE=8, STATS_PERSISTENT=1", "other"),
    ("ALTER TABLE t DEFAULT CHARSET=utf8mb4", "other"),
    ("ALTER TABLE t CHARACTER SET = latin1", "other"),
    ("ALTER TABLE t COLLATE utf8mb4_bin", "other"),
    ("ALTER TABLE t FORCE", "other"),
    ("ALTER TABLE t", "other"),
    ("/*!40000 ALTER TABLE `t` DISABLE KEYS */", "other"),
    // Retypes: followed if the recorded type is of the same family.
    ("ALTER TABLE t MODIFY c BIGINT", "retype t c:Integers"),
    ("ALTER TABLE t MODIFY COLUMN c INT UNSIGNED NOT NULL", "retype t c:Integers"),
    ("ALTER TABLE t MODIFY c BIGINT, MODIFY d MEDIUMINT UNSIGNED ZEROFILL", "retype t c:Integers,d:Integers"),
    ("ALTER TABLE t MODIFY c VARCHAR(100)", "retype t c:CharacterStrings"),
    ("ALTER TABLE t MODIFY c MEDIUMTEXT", "retype t c:CharacterStrings"),
    ("ALTER TABLE t MODIFY c VARBINARY(64)", "retype t c:ByteStrings"),
    ("ALTER TABLE t MODIFY c INT DEFAULT 3 COMMENT 'x'", "retype t c:Integers"),
    ("ALTER TABLE t CHANGE a a BIGINT", "retype t a:Integers"),
    ("ALTER TABLE `t` CHANGE COLUMN `a` `b` int", "retype t a:Integers a>b"),
    ("ALTER TABLE t CHANGE COLUMN a b BIGINT UNSIGNED NOT NULL AUTO_INCREMENT", "retype t a:Integers a>b"),
    ("ALTER TABLE t CHANGE a b VARCHAR(40), ALGORITHM=INPLACE", "rewrites t"),
    // Rewriting: MySQL changes stored values without row events.
    ("ALTER TABLE t ADD COLUMN c INT NOT NULL", "rewrites t"),
    ("alter table t add c int default 7", "rewrites t"),
    ("ALTER TABLE t ADD INDEX (x), ADD COLUMN d DATETIME DEFAULT CURRENT_TIMESTAMP", "rewrites t"),
    ("ALTER TABLE t ADD COLUMN c INT NOT NULL, ALGORITHM=INSTANT", "rewrites t"),
    ("ALTER TABLE t ADD COLUMN c INT DEFAULT 0 NULL", "rewrites t"),
    ("ALTER TABLE t ADD COLUMN c INT DEFAULT (1 + 1)", "rewrites t"),
    ("ALTER TABLE t ADD COLUMN c INT AUTO_INCREMENT", "rewrites t"),
    ("ALTER TABLE t ADD COLUMN c INT PRIMARY KEY", "rewrites t"),
    ("ALTER TABLE t ADD COLUMN s SERIAL", "rewrites t"),
    ("ALTER TABLE t ADD COLUMN g INT AS (c * 2) STORED", "rewrites t"),
    ("ALTER TABLE t ADD COLUMN g INT AS (c * 2)", "rewrites t"),
    ("ALTER TABLE t ADD COLUMN g INT GENERATED ALWAYS AS (c * 2) VIRTUAL", "rewrites t"),
    ("ALTER TABLE t ADD g INT AS (c * 2) VIRTUAL, ADD INDEX (g)", "rewrites t"),
    ("ALTER TABLE t MODIFY c INT GENERATED ALWAYS AS (a+1) VIRTUAL", "rewrites t"),
    ("ALTER TABLE t MODIFY c CHAR(20)", "rewrites t"),
    ("ALTER TABLE t MODIFY c CHARACTER(20)", "rewrites t"),
    ("ALTER TABLE t MODIFY c BINARY(10)", "rewrites t"),
    ("ALTER TABLE t ADD x INT, MODIFY c CHAR(5)", "rewrites t"),
    ("ALTER TABLE t MODIFY c DECIMAL(10,2)", "rewrites t"),
    ("ALTER TABLE t MODIFY c DATETIME(6)", "rewrites t"),
    ("ALTER TABLE t MODIFY c FLOAT", "rewrites t"),
    ("ALTER TABLE t MODIFY c ENUM('a','b','c')", "rewrites t"),
    ("ALTER TABLE t CHANGE c c DECIMAL(12,4)", "rewrites t"),
    ("ALTER TABLE t MODIFY c VARCHAR(20) CHARACTER SET latin1", "rewrites t"),
    ("ALTER TABLE t MODIFY c TEXT COLLATE utf8mb4_bin", "rewrites t"),
    ("ALTER TABLE t MODIFY c VARCHAR(3) BINARY", "rewrites t"),
    ("ALTER TABLE t MODIFY c NATIONAL CHAR(10)", "rewrites t"),
    ("ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4", "rewrites t"),
    ("alter table t convert to charset latin1 collate latin1_bin", "rewrites t"),
    ("ALTER TABLE t ENGINE=BLACKHOLE", "rewrites t"),
    ("ALTER TABLE t TRUNCATE PARTITION p0", "rewrites t"),
    ("ALTER TABLE t TRUNCATE PARTITION ALL", "rewrites t"),
    ("ALTER TABLE t DROP PARTITION p0, p1", "rewrites t"),
    ("ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE u WITHOUT VALIDATION", "rewrites t"),
    ("ALTER TABLE t REORGANIZE PARTITION p0 INTO (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20))", "rewrites t"),
    ("ALTER TABLE t COALESCE PARTITION 2", "rewrites t"),
    ("ALTER TABLE t REBUILD PARTITION p0", "rewrites t"),
    ("ALTER TABLE t REMOVE PARTITIONING", "rewrites t"),
    ("ALTER TABLE t PARTITION BY HASH(id) PARTITIONS 4", "rewrites t"),
    ("ALTER TABLE t ADD COLUMN c INT, PARTITION BY KEY(id)", "rewrites t"),
    ("TRUNCATE TABLE t PARTITION (p0)", "rewrites t"),
    ("ALTER TABLE t IMPORT TABLESPACE", "rewrites t"),
    ("ALTER TABLE t ADD (c INT, d INT)", "rewrites t"),
    ("ALTER TABLE t FROBNICATE", "rewrites t"),
    ("ALTER TABLE t RENAME COLUMN a TO b, ADD COLUMN c INT", "rewrites t"),
    ("ALTER TABLE t CHANGE a b int, ADD COLUMN c int", "rewrites t"),
    ("ALTER TABLE t ADD INDEX (a), RENAME TO u", "rewrites t"),
    ("/*!80000 ALTER TABLE t ADD COLUMN x INT NOT NULL */", "rewrites t"),
    ("ALTER TABLE t /*!80000 MODIFY c CHAR(20) */", "rewrites t"),
    ("ALTER /* c */ TABLE /* c */ `ks`.`t` /* c */ ADD /* c */ g INT AS (1) STORED", "rewrites t"),
    ("ALTER TABLE `ALTER` ADD COLUMN `c` CHAR(1) NOT NULL DEFAULT ''", "rewrites ALTER"),
    // Vitess online DDL shadow tables.
    ("ALTER TABLE `_vt_vrp_b68e0767e6f511f196002a38f98e4dfb_20261123042403_` ADD COLUMN `c` int", "shadow _vt_vrp_b68e0767e6f511f196002a38f98e4dfb_20261123042403_"),
    ("ALTER TABLE _vt_vrp_b68e0767e6f511f196002a38f98e4dfb_20261123042403_ MODIFY c CHAR(5)", "shadow _vt_vrp_b68e0767e6f511f196002a38f98e4dfb_20261123042403_"),
    ("RENAME TABLE t TO _vt_hld_b89ea864e6f511f1a56f2a38f98e4dfb_20261124042406_, _vt_vrp_b68e0767e6f511f196002a38f98e4dfb_20261123042403_ TO t", "rename t>_vt_hld_b89ea864e6f511f1a56f2a38f98e4dfb_20261124042406_,_vt_vrp_b68e0767e6f511f196002a38f98e4dfb_20261123042403_>t"),
    // Statements that cannot be read.
    ("", "unreadable"),
    ("rename table a", "unreadable"),
    ("ALTER TABLE", "unreadable"),
    ("TRUNCATE TABLE 'unterminated", "unreadable"),
    ("DROP TABLE t; DROP TABLE u", "unreadable"),
    ("FLUSH TABLES t WITH READ LOCK", "unreadable"),
    ("TRUNCATE a, b", "unreadable"),
];

#[test]
fn every_corpus_statement_gets_its_expected_meaning() {
    assert!(CORPUS.len() >= 100, "{} statements", CORPUS.len());
    let wrong: Vec<String> = CORPUS
        .iter()
        .filter_map(|(sql, want)| {
            let got = summary(&parse(sql));
            (got != *want).then(|| format!("{sql:?}: want {want:?}, got {got:?}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn an_unreadable_statement_names_every_identifier_it_holds() {
    let SourceDdl::Unreadable { names } = parse("FROBNICATE TABLE `orders`, ks.items") else {
        panic!("not unreadable");
    };
    assert!(names.iter().any(|n| n == "orders") && names.iter().any(|n| n == "items"));
    let SourceDdl::Unreadable { names } = parse("ALTER TABLE `we're`, x 'unterminated") else {
        panic!("not unreadable");
    };
    assert!(names.iter().any(|n| n == "x"), "{names:?}");
}
