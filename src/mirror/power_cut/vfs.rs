//! The power-cut VFS: SQLite's default VFS with every file's writes held in an `Overlay`
//! until the file is synced, and a simulated power cut at the n-th sync (see the parent).
//!
//! Each `CutFile` is SQLite's file object for us, followed in the same allocation by the
//! default VFS's own file object (`inner`), to which locking, shared memory and the flushed
//! writes go. Memory-mapped reads are refused (`x_fetch` hands out no pointer), so every read
//! passes through the overlay.
//!
//! The overlay is per file, not per handle, like an operating system's page cache: every
//! connection of the process that opens a path (the writer's and the WAL checkpoint
//! thread's, `mirror::wal`) sees the writes the others have not synced yet, and a sync
//! through any handle writes them all. It is written out when the last handle closes.
//!
//! Threads share that cache as they would a kernel's, so the disk is read under the file's
//! lock: read outside it, a file size taken before another thread's sync made a write
//! zero-fill the sector it shared with that sync's last frame (the malformed files of
//! 2026-12-07, RELIABILITY.md). After a cut nothing reaches the disk (`power`).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rusqlite::ffi;

use super::{Flush, Overlay};
use passthrough::*;

mod passthrough;
mod power;

/// The registered VFS's name, for `Connection::open_with_flags_and_vfs`.
pub const NAME: &str = "vtmirror-power-cut";

const CUT_VARIABLE: &str = "VTMIRROR_POWER_CUT_AT_SYNC";
const SEED_VARIABLE: &str = "VTMIRROR_POWER_CUT_SEED";

static SYNCS: AtomicU64 = AtomicU64::new(0);

#[repr(C)]
struct CutFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    overlay: *const Mutex<Overlay>,
    /// The path the overlay is shared under (None: a file without a name, private).
    path: *mut Option<String>,
}

/// Each open path's overlay, with the number of handles open on it.
type Shared = HashMap<String, (Arc<Mutex<Overlay>>, usize)>;

fn shared() -> &'static Mutex<Shared> {
    static SHARED: OnceLock<Mutex<Shared>> = OnceLock::new();
    SHARED.get_or_init(Default::default)
}

/// The overlay of `path`, shared with the other handles open on it.
fn open_overlay(path: Option<&String>) -> Arc<Mutex<Overlay>> {
    let Some(path) = path else {
        return Arc::default();
    };
    let mut map = shared().lock().unwrap_or_else(|e| e.into_inner());
    let entry = map.entry(path.clone()).or_default();
    entry.1 += 1;
    Arc::clone(&entry.0)
}

/// Forgets one handle of `path`; when it was the last one, `last` writes out what is pending,
/// before a new handle on the path could read the disk.
fn close_overlay(path: Option<&String>, last: impl FnOnce()) {
    let Some(path) = path else {
        return last();
    };
    let mut map = shared().lock().unwrap_or_else(|e| e.into_inner());
    let Some(entry) = map.get_mut(path) else {
        return last();
    };
    entry.1 -= 1;
    if entry.1 == 0 {
        last();
        map.remove(path);
    }
}

/// The sync at which to cut power, when the variable asks for one.
pub fn armed() -> Option<u64> {
    static CUT: OnceLock<Option<u64>> = OnceLock::new();
    *CUT.get_or_init(|| std::env::var(CUT_VARIABLE).ok()?.parse().ok())
}

/// Whether the WAL checkpoint thread runs under this VFS (`VTMIRROR_POWER_CUT_WAL_THREAD=1`).
pub fn wal_thread() -> bool {
    std::env::var("VTMIRROR_POWER_CUT_WAL_THREAD").as_deref() == Ok("1")
}

/// Registers the VFS once (not as the default); Err when SQLite refuses.
pub fn register() -> anyhow::Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS, alive for the process; the
        // copy lives for the process too (leaked on purpose: SQLite keeps the pointer).
        unsafe {
            let default = ffi::sqlite3_vfs_find(std::ptr::null());
            if default.is_null() {
                return Err("SQLite has no default VFS".into());
            }
            let mut vfs = *default;
            let name = CString::new(NAME).expect("no NUL in the name");
            vfs.zName = name.into_raw();
            vfs.szOsFile = (std::mem::size_of::<CutFile>() as c_int) + (*default).szOsFile;
            vfs.pNext = std::ptr::null_mut();
            vfs.xOpen = Some(x_open);
            vfs.xDelete = Some(x_delete);
            let vfs = Box::into_raw(Box::new(vfs));
            match ffi::sqlite3_vfs_register(vfs, 0) {
                ffi::SQLITE_OK => Ok(()),
                rc => Err(format!("registering the power-cut VFS failed ({rc})")),
            }
        }
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

unsafe fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    (*(file as *mut CutFile)).inner
}

unsafe fn methods(inner: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    &*(*inner).pMethods
}

unsafe fn overlay<'a>(file: *mut ffi::sqlite3_file) -> &'a Mutex<Overlay> {
    &*(*(file as *mut CutFile)).overlay
}

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let default = ffi::sqlite3_vfs_find(std::ptr::null());
    let cut = file as *mut CutFile;
    let inner = (file as *mut u8).add(std::mem::size_of::<CutFile>()) as *mut ffi::sqlite3_file;
    (*cut).base.pMethods = std::ptr::null();
    // Opening may create the file.
    let power = power::on_or_park();
    let rc = ((*default).xOpen.expect("the default VFS opens files"))(
        default, name, inner, flags, out_flags,
    );
    drop(power);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let _ = vfs;
    let path = (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned());
    (*cut).inner = inner;
    (*cut).overlay = Arc::into_raw(open_overlay(path.as_ref()));
    (*cut).path = Box::into_raw(Box::new(path));
    (*cut).base.pMethods = &METHODS;
    ffi::SQLITE_OK
}

/// The file's size on disk.
unsafe fn disk_size(inner: *mut ffi::sqlite3_file) -> u64 {
    let mut size: ffi::sqlite3_int64 = 0;
    (methods(inner).xFileSize.expect("xFileSize"))(inner, &mut size);
    size.max(0) as u64
}

/// Reads from disk, zero-filling past its end.
unsafe fn disk_read(inner: *mut ffi::sqlite3_file, buf: &mut [u8], off: u64) {
    let rc = (methods(inner).xRead.expect("xRead"))(
        inner,
        buf.as_mut_ptr() as *mut c_void,
        buf.len() as c_int,
        off as ffi::sqlite3_int64,
    );
    if rc != ffi::SQLITE_OK && rc != ffi::SQLITE_IOERR_SHORT_READ {
        buf.fill(0);
    }
}

unsafe fn flush(inner: *mut ffi::sqlite3_file, flush: &Flush) -> c_int {
    let m = methods(inner);
    if let Some(size) = flush.truncate_to {
        let rc = (m.xTruncate.expect("xTruncate"))(inner, size as ffi::sqlite3_int64);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    for (off, data) in &flush.writes {
        let rc = (m.xWrite.expect("xWrite"))(
            inner,
            data.as_ptr() as *const c_void,
            data.len() as c_int,
            *off as ffi::sqlite3_int64,
        );
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    match flush.size {
        Some(size) if disk_size(inner) > size => {
            (m.xTruncate.expect("xTruncate"))(inner, size as ffi::sqlite3_int64)
        }
        _ => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn x_delete(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    let default = ffi::sqlite3_vfs_find(std::ptr::null());
    let _power = power::on_or_park();
    ((*default).xDelete.expect("the default VFS deletes files"))(default, name, sync_dir)
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    let cut = file as *mut CutFile;
    let inner = (*cut).inner;
    // A close is no power cut: what was written reaches the operating system once the last
    // handle on the file closes (the others still read it from the overlay).
    let pending = Arc::from_raw((*cut).overlay);
    let path = Box::from_raw((*cut).path);
    close_overlay(path.as_ref().as_ref(), || {
        if let Ok(mut overlay) = pending.lock() {
            let taken = overlay.take();
            let _power = power::on_or_park();
            flush(inner, &taken);
        }
    });
    (methods(inner).xClose.expect("xClose"))(inner)
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    let inner = inner(file);
    let buf = std::slice::from_raw_parts_mut(buf as *mut u8, amt.max(0) as usize);
    let Ok(overlay) = overlay(file).lock() else {
        return ffi::SQLITE_IOERR_READ;
    };
    let size = disk_size(inner);
    let short = overlay.read(buf, off as u64, size, |b, o| disk_read(inner, b, o));
    if short {
        ffi::SQLITE_IOERR_SHORT_READ
    } else {
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: ffi::sqlite3_int64,
) -> c_int {
    let inner = inner(file);
    let data = std::slice::from_raw_parts(buf as *const u8, amt.max(0) as usize);
    let Ok(mut overlay) = overlay(file).lock() else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // Only memory changes here, but nothing at all happens after a cut.
    drop(power::on_or_park());
    let size = disk_size(inner);
    overlay.write(data, off as u64, size, |b, o| disk_read(inner, b, o));
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    let Ok(mut overlay) = overlay(file).lock() else {
        return ffi::SQLITE_IOERR_TRUNCATE;
    };
    drop(power::on_or_park());
    overlay.truncate(size.max(0) as u64);
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let inner = inner(file);
    let Ok(mut overlay) = overlay(file).lock() else {
        return ffi::SQLITE_IOERR_FSYNC;
    };
    let taken = overlay.take();
    let n = SYNCS.fetch_add(1, Ordering::SeqCst) + 1;
    if armed() == Some(n) {
        cut_power(inner, taken, n);
    }
    let _power = power::on_or_park();
    let rc = flush(inner, &taken);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    (methods(inner).xSync.expect("xSync"))(inner, flags)
}

/// Cuts the power (no other thread reaches the disk after this), writes a random half of the
/// pending sectors (a torn write), then SIGKILLs the process. Reports on stderr, for the tests
/// to count: the sync, the thread that ran it (the writer, or `wal-checkpoints`), and how many
/// pending sectors were written and dropped.
unsafe fn cut_power(inner: *mut ffi::sqlite3_file, mut taken: Flush, n: u64) -> ! {
    power::POWER.cut();
    let pending = taken.writes.len();
    let seed: u64 = std::env::var(SEED_VARIABLE)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(n);
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    taken.writes.retain(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state & 1 == 0
    });
    taken.size = None;
    flush(inner, &taken);
    let thread = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string();
    let written = taken.writes.len();
    eprintln!(
        "vtmirror: simulated power cut at sync {n} in thread {thread}: {written} of {pending} \
         pending sectors written, {} dropped",
        pending - written
    );
    libc::kill(libc::getpid(), libc::SIGKILL);
    std::process::abort()
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    out: *mut ffi::sqlite3_int64,
) -> c_int {
    let inner = inner(file);
    let Ok(overlay) = overlay(file).lock() else {
        return ffi::SQLITE_IOERR_FSTAT;
    };
    let size = disk_size(inner);
    *out = overlay.size(size) as ffi::sqlite3_int64;
    ffi::SQLITE_OK
}

#[cfg(test)]
mod tests;
