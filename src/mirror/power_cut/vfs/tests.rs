use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use super::{register, NAME};

/// Two connections on two threads through the VFS, with no cut: the file must end as the
/// default VFS would leave it. A WAL checkpoint's sync of the WAL from one thread while the
/// writer appends from the other is what made the VFS corrupt files by itself (a size read
/// outside the file's lock); this failed 11 runs of 11 before that fix.
#[test]
fn a_writer_and_a_checkpointer_on_two_threads_leave_an_intact_file() {
    register().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let writer = Connection::open_with_flags_and_vfs(&db, flags, NAME).unwrap();
    writer
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB);",
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let checkpointer = {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let conn = Connection::open_with_flags_and_vfs(&db, flags, NAME).unwrap();
            while !stop.load(Ordering::SeqCst) {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })
    };
    write_rows(&writer);
    stop.store(true, Ordering::SeqCst);
    checkpointer.join().unwrap();
    let summary = |conn: &Connection| -> (i64, i64) {
        conn.query_row("SELECT count(*), sum(length(v)) FROM t", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
    };
    let written = summary(&writer);
    drop(writer);
    let conn = Connection::open(&db).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    assert_eq!(summary(&conn), written);
}

/// 3,000 small transactions of rows of random sizes (frames end anywhere in a sector).
fn write_rows(writer: &Connection) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3_000 {
        let tx = writer.unchecked_transaction().unwrap();
        for _ in 0..10 {
            let id = next() % 5_000;
            let blob = vec![(id % 251) as u8; 50 + (next() % 700) as usize];
            tx.execute("INSERT OR REPLACE INTO t VALUES (?1, ?2)", (id, blob))
                .unwrap();
        }
        tx.commit().unwrap();
    }
}
