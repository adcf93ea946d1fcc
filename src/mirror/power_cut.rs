//! A testing aid: simulated power cuts under SQLite.
//!
//! A process kill loses nothing SQLite handed to the operating system; a power cut loses
//! every write since the last fsync, or tears it (some sectors written, others not). To test
//! that for real, `VTMIRROR_POWER_CUT_AT_SYNC=<n>` opens the mirror through a VFS (`vfs`)
//! that keeps each file's writes since its last sync in memory (this `Overlay`), so only
//! synced data is ever in the file, and at the n-th sync of the process writes a random half
//! of the pending sectors (`VTMIRROR_POWER_CUT_SEED`) and SIGKILLs the process; from the cut
//! on, no other thread reaches the disk. What is left is what a disk could hold after a power
//! cut at that instant. SQLite's own crash tests work the same way with a test VFS.
//!
//! Unset, nothing of this runs: the mirror uses SQLite's default VFS.

use std::collections::BTreeMap;

pub mod vfs;

/// The unit a disk writes whole (SQLite's default sector size).
pub const SECTOR: u64 = 512;

/// A file's writes since its last sync: whole sectors, the file's size as written, and the
/// smallest size it was truncated to (bytes beyond it on disk are stale).
#[derive(Default, Debug)]
pub struct Overlay {
    sectors: BTreeMap<u64, Vec<u8>>,
    size: Option<u64>,
    truncated_to: Option<u64>,
}

/// What a sync writes to disk: a truncation first, then sectors, then the final size.
#[derive(Debug, PartialEq, Eq)]
pub struct Flush {
    pub truncate_to: Option<u64>,
    pub writes: Vec<(u64, Vec<u8>)>,
    pub size: Option<u64>,
}

impl Overlay {
    /// The file's size as SQLite sees it.
    pub fn size(&self, disk_size: u64) -> u64 {
        self.size.unwrap_or(disk_size)
    }

    /// Fills `buf` from offset `off`: `disk` reads the file (zero-filling past its end), then
    /// the pending sectors are laid over it. True when the read went past the file's end
    /// (the rest is zeros, SQLite's short read).
    pub fn read(
        &self,
        buf: &mut [u8],
        off: u64,
        disk_size: u64,
        disk: impl FnOnce(&mut [u8], u64),
    ) -> bool {
        disk(buf, off);
        let end = off + buf.len() as u64;
        if let Some(t) = self.truncated_to.filter(|&t| t < end) {
            let from = t.saturating_sub(off) as usize;
            buf[from..].fill(0);
        }
        for (&index, sector) in self.sectors.range(off / SECTOR..end.div_ceil(SECTOR)) {
            let start = index * SECTOR;
            let (from, to) = (start.max(off), (start + SECTOR).min(end));
            buf[(from - off) as usize..(to - off) as usize]
                .copy_from_slice(&sector[(from - start) as usize..(to - start) as usize]);
        }
        let size = self.size(disk_size);
        if end > size {
            let from = (size.saturating_sub(off) as usize).min(buf.len());
            buf[from..].fill(0);
            return true;
        }
        false
    }

    /// Records a write; `disk` reads a sector that the write covers only in part.
    pub fn write(
        &mut self,
        data: &[u8],
        off: u64,
        disk_size: u64,
        mut disk: impl FnMut(&mut [u8], u64),
    ) {
        let end = off + data.len() as u64;
        for index in off / SECTOR..end.div_ceil(SECTOR) {
            let start = index * SECTOR;
            if !self.sectors.contains_key(&index) {
                let mut base = vec![0u8; SECTOR as usize];
                if start < off || start + SECTOR > end {
                    self.read(&mut base, start, disk_size, &mut disk);
                }
                self.sectors.insert(index, base);
            }
            let sector = self.sectors.get_mut(&index).expect("inserted above");
            let (from, to) = (start.max(off), (start + SECTOR).min(end));
            sector[(from - start) as usize..(to - start) as usize]
                .copy_from_slice(&data[(from - off) as usize..(to - off) as usize]);
        }
        self.size = Some(self.size(disk_size).max(end));
    }

    /// Records a truncation to `size` bytes.
    pub fn truncate(&mut self, size: u64) {
        self.truncated_to = Some(self.truncated_to.map_or(size, |t| t.min(size)));
        self.size = Some(size);
        self.sectors.retain(|&index, _| index * SECTOR < size);
        if let Some(last) = self.sectors.get_mut(&(size / SECTOR)) {
            last[(size % SECTOR) as usize..].fill(0);
        }
    }

    /// Takes what a sync writes, leaving the overlay empty.
    pub fn take(&mut self) -> Flush {
        let size = self.size.take();
        let limit = size.unwrap_or(u64::MAX);
        let writes = std::mem::take(&mut self.sectors)
            .into_iter()
            .filter(|(index, _)| index * SECTOR < limit)
            .map(|(index, mut sector)| {
                let start = index * SECTOR;
                sector.truncate((limit - start).min(SECTOR) as usize);
                (start, sector)
            })
            .collect();
        Flush {
            truncate_to: self.truncated_to.take(),
            writes,
            size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk of `bytes`: reads zero-fill past its end.
    fn disk(bytes: &[u8]) -> impl FnMut(&mut [u8], u64) + '_ {
        move |buf: &mut [u8], off: u64| {
            buf.fill(0);
            let off = off as usize;
            if off < bytes.len() {
                let n = (bytes.len() - off).min(buf.len());
                buf[..n].copy_from_slice(&bytes[off..off + n]);
            }
        }
    }

    #[test]
    fn reads_see_pending_writes_over_the_disk_and_a_sync_writes_whole_sectors() {
        let on_disk = vec![7u8; 1000];
        let mut o = Overlay::default();
        o.write(b"abc", 510, 1000, disk(&on_disk));
        let mut buf = vec![0u8; 8];
        assert!(!o.read(&mut buf, 508, 1000, disk(&on_disk)));
        assert_eq!(buf, [7, 7, b'a', b'b', b'c', 7, 7, 7]);
        let flush = o.take();
        assert_eq!(flush.writes.len(), 2, "the write spans two sectors");
        assert_eq!(flush.writes[0].0, 0);
        assert_eq!(&flush.writes[0].1[508..512], &[7, 7, b'a', b'b']);
        assert_eq!(
            flush.writes[1].1.len(),
            1000 - 512,
            "the last sector ends with the file"
        );
    }

    #[test]
    fn a_write_past_the_end_grows_the_file_and_a_read_past_it_is_short() {
        let mut o = Overlay::default();
        o.write(&[1u8; 100], 600, 0, disk(&[]));
        assert_eq!(o.size(0), 700);
        let mut buf = vec![9u8; 200];
        assert!(
            o.read(&mut buf, 600, 0, disk(&[])),
            "short: 100 bytes exist"
        );
        assert_eq!(&buf[..100], &[1u8; 100][..]);
        assert!(buf[100..].iter().all(|&b| b == 0));
        let flush = o.take();
        assert_eq!(flush.size, Some(700));
        assert_eq!(flush.writes.last().unwrap().1.len(), 700 - 512);
    }

    #[test]
    fn a_truncation_hides_the_stale_tail_on_disk() {
        let on_disk = vec![5u8; 2048];
        let mut o = Overlay::default();
        o.truncate(100);
        o.write(&[1u8; 10], 1500, 2048, disk(&on_disk));
        let mut buf = vec![9u8; 2048];
        o.read(&mut buf, 0, 2048, disk(&on_disk));
        assert!(buf[..100].iter().all(|&b| b == 5));
        assert!(
            buf[100..1500].iter().all(|&b| b == 0),
            "stale bytes read as zeros"
        );
        assert_eq!(&buf[1500..1510], &[1u8; 10]);
        let flush = o.take();
        assert_eq!(flush.truncate_to, Some(100));
        assert_eq!(flush.size, Some(1510));
    }
}
