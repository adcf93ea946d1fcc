//! The file methods that go straight to the default VFS's file: locks, shared memory, and
//! the file's characteristics. The `-shm` file is shared memory, not data: after a cut the
//! first connection to open the file again (no other process holds it) truncates it and
//! rebuilds the WAL index from the WAL, as after a real power cut.

use std::ffi::{c_int, c_void};

use rusqlite::ffi;

use super::{inner, methods};

pub(super) unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let inner = inner(file);
    (methods(inner).xLock.expect("xLock"))(inner, level)
}

pub(super) unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let inner = inner(file);
    (methods(inner).xUnlock.expect("xUnlock"))(inner, level)
}

pub(super) unsafe extern "C" fn x_check_reserved_lock(
    file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    let inner = inner(file);
    (methods(inner)
        .xCheckReservedLock
        .expect("xCheckReservedLock"))(inner, out)
}

pub(super) unsafe extern "C" fn x_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // A size hint would grow the file on disk behind the overlay; SQLite does without.
    if op == ffi::SQLITE_FCNTL_SIZE_HINT {
        return ffi::SQLITE_NOTFOUND;
    }
    let inner = inner(file);
    (methods(inner).xFileControl.expect("xFileControl"))(inner, op, arg)
}

pub(super) unsafe extern "C" fn x_sector_size(_file: *mut ffi::sqlite3_file) -> c_int {
    crate::mirror::power_cut::SECTOR as c_int
}

pub(super) unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let inner = inner(file);
    (methods(inner)
        .xDeviceCharacteristics
        .expect("xDeviceCharacteristics"))(inner)
}

pub(super) unsafe extern "C" fn x_shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let inner = inner(file);
    (methods(inner).xShmMap.expect("xShmMap"))(inner, page, size, extend, out)
}

pub(super) unsafe extern "C" fn x_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let inner = inner(file);
    (methods(inner).xShmLock.expect("xShmLock"))(inner, offset, n, flags)
}

pub(super) unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    let inner = inner(file);
    (methods(inner).xShmBarrier.expect("xShmBarrier"))(inner)
}

pub(super) unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let inner = inner(file);
    (methods(inner).xShmUnmap.expect("xShmUnmap"))(inner, delete)
}

pub(super) unsafe extern "C" fn x_fetch(
    _file: *mut ffi::sqlite3_file,
    _off: ffi::sqlite3_int64,
    _amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    *out = std::ptr::null_mut();
    ffi::SQLITE_OK
}

pub(super) unsafe extern "C" fn x_unfetch(
    _file: *mut ffi::sqlite3_file,
    _off: ffi::sqlite3_int64,
    _p: *mut c_void,
) -> c_int {
    ffi::SQLITE_OK
}
