//! The mirror file: opening it (WAL, pragmas, literal path, 0600), migrations, the
//! single-writer lock, the identity check and metadata reads.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::mirror::timestamp::now_text;
use crate::mirror::wal::{self, WalCheckpoints};
use crate::source::naming::Naming;

/// Migrations, applied in order; `PRAGMA user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_metadata.sql"),
    include_str!("../../migrations/0002_online_ddl.sql"),
    include_str!("../../migrations/0003_table_copies.sql"),
    include_str!("../../migrations/0004_row_versions.sql"),
    include_str!("../../migrations/0005_change_log.sql"),
];

/// How durable each commit is. NORMAL is safe against process crashes (the checkpoint rolls
/// back together with its rows); FULL also survives power loss without losing the tail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    Normal,
    Full,
}

/// What a mirror file is a copy of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The source label (`Selection::label`): `commerce`, `a,b`, `*` or `things/-80`.
    pub keyspace: String,
    /// Canonical JSON of the filter rules.
    pub filter: String,
}

/// The mirror opened for syncing: the only writer of the file while it lives.
pub struct Mirror {
    /// Declared first so that it stops before `conn` closes: the writer's connection is then
    /// the file's last, and SQLite copies the WAL back and removes it as the sync ends.
    wal: Option<WalCheckpoints>,
    pub conn: Connection,
    /// How the file names tables and shards (from the identity's keyspace label).
    pub naming: Naming,
    /// The filter the file was made with, when this sync asks for another one (same
    /// keyspaces): `sync` then adds and removes tables (`table_copy`) or refuses.
    pub previous_filter: Option<String>,
    /// The change log, once `change_log::enable` turned it on for this sync.
    pub changes: Option<crate::mirror::change_log::ChangeLog>,
    _lock: File,
}

fn open_flags(read_only: bool) -> OpenFlags {
    // No SQLITE_OPEN_URI: a --db path is always taken literally.
    let base = OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if read_only {
        base | OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        base | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    }
}

/// The lock file next to the mirror; held (flock) for the whole life of a sync.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".sync-lock");
    PathBuf::from(name)
}

fn take_lock(db: &Path) -> Result<File> {
    let path = lock_path(db);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another vtmirror sync is already writing {}; only one sync per mirror file",
            db.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Creates the file with mode 0600 before SQLite sees it (SQLite gives -wal/-shm the same).
fn create_private(db: &Path) -> Result<()> {
    if db.exists() {
        return Ok(());
    }
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(db)
        .map(drop)
        .with_context(|| format!("creating mirror file {}", db.display()))
}

impl Mirror {
    /// Opens (or creates) a mirror for syncing, refusing a second writer, a foreign or newer
    /// file, and a mirror made for another keyspace or filter.
    pub fn open(db: &Path, identity: &Identity, durability: Durability) -> Result<Mirror> {
        let lock = take_lock(db)?;
        create_private(db)?;
        // Power-cut tests open every connection of the file (the WAL checkpoint thread's too)
        // through their VFS, which shares one view of each file among them.
        let vfs =
            crate::mirror::power_cut::vfs::armed().map(|_| crate::mirror::power_cut::vfs::NAME);
        let conn = match vfs {
            None => Connection::open_with_flags(db, open_flags(false)),
            Some(vfs) => {
                crate::mirror::power_cut::vfs::register()?;
                Connection::open_with_flags_and_vfs(db, open_flags(false), vfs)
            }
        }
        .with_context(|| format!("opening mirror {}", db.display()))?;
        // SQLite falls back to read-only when the file is not writable; refuse at once rather
        // than fail at the first write.
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            bail!(
                "{} is read-only for this user; a sync must write it (attempt to write a readonly database)",
                db.display()
            );
        }
        configure(&conn, durability)
            .with_context(|| format!("configuring mirror {}", db.display()))?;
        migrate(&conn, db)?;
        check_metadata(&conn, db)?;
        let previous_filter = check_identity(&conn, identity, db)?;
        // Under the power-cut VFS the thread runs only when asked, so that one of its tests
        // cuts the writer's own checkpoints (with the thread on they are rare).
        let wal = match vfs.is_none() || crate::mirror::power_cut::vfs::wal_thread() {
            true => Some(WalCheckpoints::start(db, open_flags(false), vfs)?),
            false => None,
        };
        Ok(Mirror {
            wal,
            conn,
            naming: Naming::of_label(&identity.keyspace),
            previous_filter,
            changes: None,
            _lock: lock,
        })
    }
}

impl Mirror {
    /// The writer committed: the background WAL checkpoint has work (`mirror::wal`).
    pub fn committed(&self) {
        if let Some(wal) = &self.wal {
            wal.committed();
        }
    }

    /// Closes a mirror this sync created and never committed to, and removes its files, so
    /// that a sync that failed at once leaves nothing behind.
    pub fn discard(self, db: &Path) -> Result<()> {
        let Mirror {
            wal,
            conn,
            _lock: lock,
            ..
        } = self;
        drop(wal);
        conn.close()
            .map_err(|(_, e)| e)
            .context("closing the unused mirror")?;
        for suffix in ["-wal", "-shm", ""] {
            let mut file = db.as_os_str().to_owned();
            file.push(suffix);
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", db.display()))
                }
                _ => {}
            }
        }
        let _ = std::fs::remove_file(lock_path(db));
        drop(lock);
        Ok(())
    }
}

/// SQLite's `data_version` of `conn`: it changes whenever another connection has committed
/// to the file, so a reader polls this one cheap value rather than its query.
pub fn data_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        .context("reading the mirror's data_version")
}

/// Opens a mirror for reading only (query, status, snapshot); never blocks the writer.
pub fn open_read_only(db: &Path) -> Result<Connection> {
    if !db.exists() {
        bail!("mirror file {} does not exist", db.display());
    }
    let conn = Connection::open_with_flags(db, open_flags(true))
        .with_context(|| format!("opening mirror {} read-only", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .with_context(|| format!("{} is not a SQLite database", db.display()))?;
    if version == 0 || !has_table(&conn, "_vtmirror_checkpoint")? {
        bail!("{} is not a vtmirror mirror file", db.display());
    }
    Ok(conn)
}

fn configure(conn: &Connection, durability: Durability) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("the mirror file cannot use WAL mode (journal_mode stayed {mode})");
    }
    // synchronous = NORMAL: in WAL mode a commit does not fsync, so a power loss can drop
    // the last commits, but never tears one: rows and checkpoint roll back together and the
    // sync replays from the older checkpoint (a process crash loses nothing). FULL fsyncs
    // every commit for those who cannot replay (--durability full).
    // wal_autocheckpoint: WAL checkpoints run on a thread of their own (`mirror::wal`); the
    // writer's own are a backstop (64 MiB).
    // journal_size_limit = 64 MiB: a long reader stops the WAL from being recycled, so it
    // grows (267 MiB behind a 15 s reader in tests/faults/mirror_file/refusals.rs); without a limit
    // the file keeps that size for ever, with it the next WAL reset truncates it.
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    let autocheckpoint = wal::WRITER_BACKSTOP_PAGES;
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -32768; \
         PRAGMA wal_autocheckpoint = {autocheckpoint}; PRAGMA journal_size_limit = 67108864;"
    ))?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(())
}

fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn migrate(conn: &Connection, db: &Path) -> Result<()> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .with_context(|| format!("{} is not a SQLite database", db.display()))?
        .try_into()
        .unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        bail!(
            "{} was written by a newer vtmirror (metadata version {version}, this one knows {})",
            db.display(),
            MIGRATIONS.len()
        );
    }
    if version == 0 {
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if tables > 0 {
            bail!(
                "{} is a SQLite file but not a vtmirror mirror; refusing to touch it",
                db.display()
            );
        }
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("applying metadata migration {}", index + 1))?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The `_vtmirror_*` tables, checked at every open.
const METADATA_TABLES: &[&str] = &[
    "_vtmirror_identity",
    "_vtmirror_checkpoint",
    "_vtmirror_copy_state",
    "_vtmirror_fields",
    "_vtmirror_status",
    "_vtmirror_shadow_ddl",
];

/// Refuses a mirror whose metadata tables are damaged, before anything is written: the
/// checkpoint must be trusted. Constant cost (the tables are small); damage in mirrored
/// tables is met when the writer reaches it (SQLITE_CORRUPT stops the sync), since checking
/// the whole file would cost about a second per GB at every start.
fn check_metadata(conn: &Connection, db: &Path) -> Result<()> {
    for table in METADATA_TABLES {
        let verdict: String = conn
            .query_row(&format!("PRAGMA quick_check({table})"), [], |r| r.get(0))
            .with_context(|| format!("checking {table} of {}", db.display()))?;
        if verdict != "ok" {
            bail!(
                "{} is damaged: the integrity check of {table} failed ({verdict}); database disk image is malformed",
                db.display()
            );
        }
    }
    Ok(())
}

/// Refuses a file made for other keyspaces; returns the stored filter when it differs.
fn check_identity(conn: &Connection, wanted: &Identity, db: &Path) -> Result<Option<String>> {
    let get = |key: &str| -> Result<Option<String>> {
        Ok(conn
            .query_row(
                "SELECT value FROM _vtmirror_identity WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?)
    };
    match (get("keyspace")?, get("filter")?) {
        (None, _) => {
            conn.execute(
                "INSERT INTO _vtmirror_identity (key, value) VALUES ('keyspace', ?1), ('filter', ?2), ('created_at', ?3)",
                (&wanted.keyspace, &wanted.filter, now_text()),
            )?;
            Ok(None)
        }
        (Some(keyspace), filter) if keyspace == wanted.keyspace => {
            Ok(filter.filter(|f| f != &wanted.filter))
        }
        (Some(keyspace), _) => bail!(
            "{} mirrors keyspace {keyspace}; this sync asks for keyspace {}. \
             Use another --db file for a different source.",
            db.display(),
            wanted.keyspace,
        ),
    }
}

/// Records the filter a sync now mirrors (inside the transaction that adds or drops tables).
pub fn update_filter(tx: &Connection, filter: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO _vtmirror_identity (key, value) VALUES ('filter', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [filter],
    )
    .context("recording the mirror's new table selection")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_on_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let id = Identity {
            keyspace: "ks".into(),
            filter: "[]".into(),
        };
        let _first = Mirror::open(&db, &id, Durability::Normal).unwrap();
        let err = Mirror::open(&db, &id, Durability::Normal).err().unwrap();
        assert!(err.to_string().contains("already writing"), "{err}");
    }

    #[test]
    fn a_mirror_of_another_keyspace_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let id = Identity {
            keyspace: "ks".into(),
            filter: "[]".into(),
        };
        drop(Mirror::open(&db, &id, Durability::Normal).unwrap());
        let other = Identity {
            keyspace: "other".into(),
            filter: "[]".into(),
        };
        let err = Mirror::open(&db, &other, Durability::Normal).err().unwrap();
        assert!(err.to_string().contains("mirrors keyspace ks"), "{err}");
    }

    #[test]
    fn a_foreign_sqlite_file_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("foreign.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE x (a)")
            .unwrap();
        let id = Identity {
            keyspace: "ks".into(),
            filter: "[]".into(),
        };
        let err = Mirror::open(&db, &id, Durability::Normal).err().unwrap();
        assert!(err.to_string().contains("not a vtmirror mirror"), "{err}");
    }

    #[test]
    fn a_new_mirror_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let id = Identity {
            keyspace: "ks".into(),
            filter: "[]".into(),
        };
        drop(Mirror::open(&db, &id, Durability::Normal).unwrap());
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
