//! Several keyspaces in one mirror, and key-range mirrors, against real Vitess (vttestserver:
//! `commerce` unsharded, `things` on -80 and 80-). `--keyspace '*'` names every table
//! `keyspace.table`; `--shards` mirrors some shards of one keyspace under bare names. Writers
//! run and the sync is SIGKILLed in copy and in replication; at the end the mirror equals the
//! source table by table, keyspace by keyspace. Bad flags fail in one line, writing nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::vitess::{
    assert_mirror_holds, checkpoint_shards, cluster, mirror_rows, mirror_tables, part_rows,
    refused_in_one_line, run_sql, seed_rows, serving_shards, sync_in_phase_then_sigkill,
    sync_process, sync_then_sigkill, sync_until_caught_up, Cleanup, Cluster, KillOnDrop, Naming,
    Part, WriteTarget, Writer,
};

/// Tables this file creates, all prefixed `ksm_`: `commerce.ksm_items`; `ksm_dup` in both
/// keyspaces (same name, different rows, not written); `things.ksm_rows`. The `things` ones
/// have no vindex: their rows are written shard by shard, through targets `things:-80` and
/// `things:80-`.
const ITEMS: i64 = 30_000;
const THINGS: i64 = 6_000;
const CUSTOMERS: i64 = 2_000;
/// `ksm_dup` ids: 1..=DUP in both keyspaces.
const DUP: i64 = 100;
/// The shards of `things`.
const THINGS_SHARDS: [&str; 2] = ["-80", "80-"];
/// `things.ksm_rows` ids: 1..=SHARD_ROWS on each shard, -80 first.
const SHARD_ROWS: i64 = 1_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `things` with its seed rows only: the other tests' rows in `things` and `alltypes` (whose
/// edge values MySQL prints unlike SQLite) removed; they reset both themselves. With
/// `things.ksm_rows` (re)created and seeded.
fn reset_things(c: &Cluster) {
    let mut conn = c.sql("things");
    run_sql(&mut conn, &["DELETE FROM things", "DELETE FROM alltypes"]);
    seed_rows(&mut conn, "things", ("id", "name"), 1..=THINGS, "seed-");
    run_sql(
        &mut conn,
        &["INSERT INTO alltypes (id, i, vc) VALUES (1, 10, 'one'), (2, NULL, 'two'), (3, -3, NULL)"],
    );
    create_in_both_shards(c, "ksm_rows", 2 * SHARD_ROWS, "seed-");
}

/// `things.<table>` (id, name) without a vindex, ids 1..=rows, the first half on -80.
fn create_in_both_shards(c: &Cluster, table: &str, rows: i64, label: &str) {
    run_sql(
        &mut c.sql("things"),
        &[
            &format!("DROP TABLE IF EXISTS {table}"),
            &format!("CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64))"),
        ],
    );
    let half = rows / 2;
    let columns = ("id", "name");
    seed_rows(&mut c.sql("things:-80"), table, columns, 1..=half, label);
    seed_rows(
        &mut c.sql("things:80-"),
        table,
        columns,
        half + 1..=rows,
        label,
    );
}

fn create_tables(c: &Cluster) {
    let mut commerce = c.sql("commerce");
    run_sql(
        &mut commerce,
        &[
            "DROP TABLE IF EXISTS ksm_items, ksm_dup",
            "CREATE TABLE ksm_items (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64))",
            "CREATE TABLE ksm_dup (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64))",
            "DELETE FROM customer",
        ],
    );
    let columns = ("id", "name");
    seed_rows(&mut commerce, "ksm_items", columns, 1..=ITEMS, "seed-");
    let customers = ("customer_id", "email");
    seed_rows(&mut commerce, "customer", customers, 1..=CUSTOMERS, "seed-");
    seed_rows(&mut commerce, "ksm_dup", columns, 1..=DUP, "commerce-");
    create_in_both_shards(c, "ksm_dup", DUP, "things-");
}

/// Writes in keyspace `things`: `things` (with its lookup table) through vtgate's routing,
/// `ksm_rows` on each shard. New keys from `new_keys`.
fn things_writes(new_keys: i64) -> Vec<WriteTarget> {
    let columns = ("id", "name");
    vec![
        WriteTarget::new("things", "things", columns, 1..=THINGS, new_keys).without_updates(),
        WriteTarget::new("things:-80", "ksm_rows", columns, 1..=SHARD_ROWS, new_keys),
        WriteTarget::new(
            "things:80-",
            "ksm_rows",
            columns,
            SHARD_ROWS + 1..=2 * SHARD_ROWS,
            new_keys + 100_000,
        ),
    ]
}

/// Writes in both keyspaces, in tables of this test and in the fixtures' tables.
fn writes() -> Vec<WriteTarget> {
    let mut writes = vec![
        WriteTarget::new("commerce", "ksm_items", ("id", "name"), 1..=ITEMS, 500_000),
        WriteTarget::new(
            "commerce",
            "customer",
            ("customer_id", "email"),
            1..=CUSTOMERS,
            500_000,
        ),
    ];
    writes.extend(things_writes(500_000));
    writes
}

/// What a mirror of every keyspace must hold: `commerce` through vtgate, `things` shard by
/// shard (`things.ksm_dup` has no vindex to route by).
fn every_keyspace() -> Vec<Part> {
    vec![
        Part::whole("commerce"),
        Part::shards("things", &THINGS_SHARDS),
    ]
}

/// The two `ksm_dup` tables joined in the mirror with plain SQL: (id, commerce name, things name).
fn dup_join(db: &Path) -> Vec<(i64, String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT c.id, c.name, t.name FROM \"commerce.ksm_dup\" AS c \
             JOIN \"things.ksm_dup\" AS t ON t.id = c.id ORDER BY c.id",
        )
        .expect("both ksm_dup tables are in the mirror");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// The mirror of every keyspace equals the source keyspace by keyspace, and the two
/// `ksm_dup` tables join with plain SQL, each keeping its own rows.
fn check_every_keyspace_mirror(c: &Cluster, db: &Path) -> BTreeMap<String, usize> {
    let counts = assert_mirror_holds(c, db, Naming::Qualified, &every_keyspace());
    assert!(
        counts["commerce.ksm_items"] > ITEMS as usize / 2
            && counts["things.things"] > THINGS as usize / 2
            && counts["things.things_name_lookup"] == counts["things.things"],
        "{counts:?}"
    );
    let joined = dup_join(db);
    assert_eq!(joined.len(), DUP as usize, "one joined row per shared id");
    for (id, commerce, things) in &joined {
        assert_eq!(
            (commerce.as_str(), things.as_str()),
            (
                format!("commerce-{id}").as_str(),
                format!("things-{id}").as_str()
            ),
            "each keyspace's ksm_dup keeps its own rows"
        );
    }
    counts
}

#[test]
fn every_keyspace_of_the_vttestserver_cluster_mirrors_into_one_file_through_kills() {
    let Some(c) = cluster("") else { return };
    let started = Instant::now();
    assert_eq!(serving_shards(&c, "things"), THINGS_SHARDS);
    let _cleanup = Cleanup::new(&c)
        .then("commerce", "DROP TABLE IF EXISTS ksm_items, ksm_dup")
        .then("things", "DROP TABLE IF EXISTS ksm_dup, ksm_rows");
    reset_things(&c);
    create_tables(&c);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("every.db");
    // From the primary: a replica's schema learns the tables just created at its next reload.
    let args = ["--tablet-type", "primary"];
    let writer = Writer::start(&c, &writes());
    let mut kills: BTreeMap<String, usize> = BTreeMap::new();
    // Lives too short to finish the copy (each resumes it; a VStream's copy starts 1-2 s
    // after the request on vttestserver, and the copy under writes takes about 6 s).
    for delay in [1_800, 2_600, 3_400] {
        let phase = sync_then_sigkill(&c.grpc, "*", &db, &args, ms(delay));
        let phase = phase.unwrap_or_else(|| "before the first commit".into());
        *kills.entry(phase).or_default() += 1;
    }
    // A life to the end of the copy, killed while replicating; then short lives again.
    sync_in_phase_then_sigkill(&c.grpc, "*", &db, &args, "replication", ms(700));
    *kills.entry("replication".into()).or_default() += 1;
    for delay in [2_500, 1_500] {
        let phase = sync_then_sigkill(&c.grpc, "*", &db, &args, ms(delay));
        *kills.entry(phase.unwrap_or_default()).or_default() += 1;
    }
    let rounds = writer.stop();
    let (ok, err) = sync_until_caught_up(&c.grpc, "*", &db, &args);
    assert!(ok, "final sync failed: {err}");

    let counts = check_every_keyspace_mirror(&c, &db);
    assert_eq!(
        checkpoint_shards(&db),
        [("commerce", "0"), ("things", "-80"), ("things", "80-")]
            .map(|(k, s)| (k.to_string(), s.to_string())),
        "one checkpoint names every shard of every keyspace"
    );
    let in_copy =
        kills.get("copy").copied().unwrap_or(0) + kills.get("catch-up").copied().unwrap_or(0);
    let replicating = kills.get("replication").copied().unwrap_or(0);
    assert!(
        in_copy >= 2 && replicating >= 2,
        "kills by the phase stored last: {kills:?}"
    );
    println!(
        "--keyspace '*': {} SIGKILLs ({kills:?}), {rounds} writer rounds, {} tables ({} rows) \
         equal the source keyspace by keyspace; {:.0} s",
        kills.values().sum::<usize>(),
        counts.len(),
        counts.values().sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
}

/// A key-range mirror's flags. From the primary: a replica's schema learns a table just
/// created (`ksm_rows`) only at its next reload, and a copy from it leaves that table out.
fn key_range_args(shard: &str) -> [&str; 4] {
    ["--shards", shard, "--tablet-type", "primary"]
}

/// Each key-range mirror (shard, file) of `things` equals its shard, holding rows; the two
/// hold disjoint keys and together equal the source. Returns each one's row counts.
fn check_key_range_mirrors(
    c: &Cluster,
    mirrors: &[(&str, PathBuf)],
) -> Vec<BTreeMap<String, usize>> {
    let mut held = Vec::new();
    for (shard, db) in mirrors {
        let counts = assert_mirror_holds(c, db, Naming::Bare, &[Part::shards("things", &[shard])]);
        assert!(
            counts["things"] > 0,
            "--shards {shard} holds rows: {counts:?}"
        );
        held.push(counts);
    }
    let shards: Vec<&str> = mirrors.iter().map(|(s, _)| *s).collect();
    let whole = Part::shards("things", &shards);
    let (a, b) = (&mirrors[0].1, &mirrors[1].1);
    assert_eq!(mirror_tables(a), mirror_tables(b));
    for table in mirror_tables(a) {
        let (in_a, in_b) = (mirror_rows(a, &table, 1), mirror_rows(b, &table, 1));
        let both = in_a.keys().filter(|k| in_b.contains_key(*k)).count();
        assert_eq!(both, 0, "{table}: keys in both key-range mirrors");
        let mut union = in_a;
        union.extend(in_b);
        assert!(
            union == part_rows(c, &whole, &table, 1),
            "{table}: the two key-range mirrors together equal the source"
        );
    }
    held
}

#[test]
fn two_key_range_mirrors_together_equal_the_source() {
    let Some(c) = cluster("") else { return };
    let started = Instant::now();
    assert_eq!(serving_shards(&c, "things"), THINGS_SHARDS);
    let _cleanup = Cleanup::new(&c).then("things", "DROP TABLE IF EXISTS ksm_rows");
    reset_things(&c);
    let dir = tempfile::tempdir().unwrap();
    let mirrors: Vec<(&str, PathBuf)> = THINGS_SHARDS
        .iter()
        .map(|s| (*s, dir.path().join(format!("things{s}.db"))))
        .collect();
    let start = |(shard, db): &(&str, PathBuf)| {
        KillOnDrop(sync_process(&c.grpc, "things", db, &key_range_args(shard)))
    };
    let writer = Writer::start(&c, &things_writes(700_000));
    let mut running: Vec<KillOnDrop> = mirrors.iter().map(start).collect();
    // One SIGKILL each while the writes run: -80 in its copy, 80- once replicating.
    std::thread::sleep(ms(1_800));
    running[0].sigkill("(--shards -80) in its copy");
    running[0] = start(&mirrors[0]);
    running[1].wait_for_phase(&mirrors[1].1, "replication");
    std::thread::sleep(ms(700));
    running[1].sigkill("(--shards 80-) replicating");
    running[1] = start(&mirrors[1]);
    std::thread::sleep(ms(1_500));
    let rounds = writer.stop();
    for (child, (shard, _)) in running.iter_mut().zip(&mirrors) {
        child.sigkill(&format!("(--shards {shard}) at the end of the writes"));
    }
    for (shard, db) in &mirrors {
        let (ok, err) = sync_until_caught_up(&c.grpc, "things", db, &key_range_args(shard));
        assert!(ok, "final sync of --shards {shard} failed: {err}");
    }

    let held = check_key_range_mirrors(&c, &mirrors);
    for (shard, db) in &mirrors {
        assert_eq!(
            checkpoint_shards(db),
            [("things".to_string(), shard.to_string())],
            "a key-range mirror's checkpoint names its shards only"
        );
    }
    println!(
        "--shards -80 / 80-: {held:?} rows, disjoint, together the source; {rounds} writer \
         rounds, 4 SIGKILLs; {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn bad_keyspace_table_and_shard_flags_fail_in_one_line_and_write_nothing() {
    let Some(c) = cluster("") else { return };
    // Flags after `--keyspace`, and words of which the one-line error names at least one.
    let cases: &[(&[&str], &[&str])] = &[
        (&["--keyspace", "commerce,nosuchks"], &["nosuchks"]),
        (
            &["--keyspace", "commerce", "--keyspace", "nosuchks"],
            &["nosuchks"],
        ),
        (
            &[
                "--keyspace",
                "commerce,things",
                "--tables",
                "commerce.nosuch",
            ],
            &["nosuch"],
        ),
        (&["--keyspace", "things", "--shards", "40-"], &["40-"]),
        (
            &["--keyspace", "things", "--shards", "-80,-40"],
            &["-40", "overlap"],
        ),
        (
            &["--keyspace", "commerce,things", "--shards", "-80"],
            &["shard"],
        ),
    ];
    for (flags, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bad.db");
        let mut args = vec!["sync", "--vtgate", &c.grpc];
        args.extend_from_slice(flags);
        args.extend(["--db", db.to_str().unwrap()]);
        let line = refused_in_one_line(&args, dir.path());
        assert!(
            named.iter().any(|w| line.contains(w)),
            "{flags:?}: the error names one of {named:?}: {line}"
        );
        println!("{flags:?} -> {line}");
    }
}

/// `vtmirror verify` of a `'*'` mirror: its JSON verdict and exit code.
fn verify(c: &Cluster, db: &Path) -> (Option<i32>, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args(["verify", "--vtgate", &c.grpc, "--tablet-type", "primary"])
        .args(["--wait", "120", "--format", "json", "--quiet", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .output()
        .expect("vtmirror verify runs");
    let verdict = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no verdict ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), verdict)
}

#[test]
fn verify_finds_a_mirror_of_every_keyspace_equal_under_writes_and_planted_differences_by_key() {
    let Some(c) = cluster("") else { return };
    let started = Instant::now();
    let _cleanup = Cleanup::new(&c)
        .then("commerce", "DROP TABLE IF EXISTS ksm_items, ksm_dup")
        .then("things", "DROP TABLE IF EXISTS ksm_dup, ksm_rows");
    reset_things(&c);
    create_tables(&c);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("verified.db");
    let args = ["--tablet-type", "primary"];
    let (ok, err) = sync_until_caught_up(&c.grpc, "*", &db, &args);
    assert!(ok, "first sync failed: {err}");
    let mut sync = KillOnDrop(sync_process(&c.grpc, "*", &db, &args));
    let writer = Writer::start(&c, &writes());
    let runs = 5;
    for run in 0..runs {
        sync.assert_running(&format!("before verify run {run}"));
        let (code, verdict) = verify(&c, &db);
        assert_eq!(code, Some(0), "run {run}: no false difference: {verdict}");
        assert_eq!(verdict["equal"], true);
    }
    let rounds = writer.stop();
    drop(sync);
    // The killed sync may not have applied the last writes; verify needs the mirror there.
    let (ok, err) = sync_until_caught_up(&c.grpc, "*", &db, &args);
    assert!(ok, "catching up after the writes: {err}");
    let conn = rusqlite::Connection::open(&db).unwrap();
    // Rows that exist now (the writer deleted some): one on each side of the shard split.
    let existing = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let gone = existing("SELECT min(id) FROM \"commerce.ksm_items\" WHERE id > 16");
    let changed = existing(&format!(
        "SELECT min(id) FROM \"things.ksm_rows\" WHERE id > {SHARD_ROWS}"
    ));
    let deleted = conn
        .execute("DELETE FROM \"commerce.ksm_items\" WHERE id = ?1", [gone])
        .unwrap();
    let updated = conn
        .execute(
            "UPDATE \"things.ksm_rows\" SET name = 'planted' WHERE id = ?1",
            [changed],
        )
        .unwrap();
    assert_eq!((deleted, updated), (1, 1));
    drop(conn);
    // A sync runs while verify waits for the checkpoint to reach the source's position: with
    // none, a source position moved by events no mirrored row carries (vttestserver's table
    // GC of the other tests' dropped tables) would never be reached, and verify says so.
    // Nothing writes the planted rows at the source, so the sync leaves them as planted.
    let sync = KillOnDrop(sync_process(&c.grpc, "*", &db, &args));
    let (code, verdict) = verify(&c, &db);
    drop(sync);
    assert_eq!(code, Some(1), "{verdict}");
    let table = |name: &str| {
        (verdict["tables"].as_array().unwrap().iter())
            .find(|t| t["table"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} compared: {verdict}"))
    };
    let items = table("commerce.ksm_items");
    assert_eq!(
        (items["missing"].as_u64(), items["differing"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(items["missing_keys"][0], format!("id={gone}"));
    let rows = table("things.ksm_rows");
    assert_eq!(rows["differing"].as_u64(), Some(1));
    assert_eq!(rows["differing_keys"][0], format!("id={changed}"));
    let others = verdict["tables"].as_array().unwrap().iter();
    let unequal = others
        .filter(|t| t["missing"] != 0 || t["extra"] != 0 || t["differing"] != 0)
        .count();
    assert_eq!(unequal, 2, "only the planted tables differ: {verdict}");
    println!(
        "verify on real Vitess: {runs} verifies under writes ({rounds} writer rounds) equal, \
         planted differences found by key; {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
