//! The bytes of a text or blob value: short ones inline, long ones shared with the receive
//! buffer.
//!
//! Why not always share: a shared slice costs an atomic increment on the decoder's thread and
//! a decrement on the thread that frees the applied rows, on one counter for the whole receive
//! buffer, so the two cores fight over its cache line (`bytes::shared_v_clone`/`_drop`, ~7 % of
//! a real-Vitess copy in `perf`). Most column values are short; copying ≤ 30 bytes into the
//! value itself allocates nothing and touches no shared counter.

use std::fmt;
use std::ops::{Deref, Range};

use bytes::Bytes;

/// Values up to this many bytes are stored inline (the enum stays the size of `Bytes`).
pub const INLINE: usize = 30;

#[derive(Clone)]
pub enum Chunk {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Bytes),
}

impl Chunk {
    /// `owner[range]`, inline when short, else a shared slice of `owner`. None if the range is
    /// not inside `owner`.
    pub fn within(owner: &Bytes, range: Range<usize>) -> Option<Chunk> {
        let slice = owner.get(range.clone())?;
        Some(match Chunk::inline(slice) {
            Some(inline) => inline,
            None => Chunk::Shared(owner.slice(range)),
        })
    }

    fn inline(slice: &[u8]) -> Option<Chunk> {
        let len = u8::try_from(slice.len())
            .ok()
            .filter(|&l| usize::from(l) <= INLINE)?;
        let mut bytes = [0u8; INLINE];
        bytes[..slice.len()].copy_from_slice(slice);
        Some(Chunk::Inline { len, bytes })
    }
}

impl Deref for Chunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Inline { len, bytes } => &bytes[..usize::from(*len).min(INLINE)],
            Chunk::Shared(shared) => shared,
        }
    }
}

impl From<Vec<u8>> for Chunk {
    fn from(owned: Vec<u8>) -> Chunk {
        Chunk::inline(&owned).unwrap_or_else(|| Chunk::Shared(Bytes::from(owned)))
    }
}

impl From<String> for Chunk {
    fn from(owned: String) -> Chunk {
        Chunk::from(owned.into_bytes())
    }
}

impl PartialEq for Chunk {
    fn eq(&self, other: &Chunk) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_copied_inline_and_long_ones_share_the_buffer() {
        let owner = Bytes::from(vec![7u8; 100]);
        let short = Chunk::within(&owner, 10..40).unwrap();
        assert!(matches!(short, Chunk::Inline { len: 30, .. }));
        assert_eq!(&*short, &owner[10..40]);
        let long = Chunk::within(&owner, 10..41).unwrap();
        assert_eq!(long.as_ptr(), owner[10..].as_ptr());
        assert!(Chunk::within(&owner, 90..101).is_none());
        assert_eq!(
            Chunk::from("abc".to_string()),
            Chunk::within(&Bytes::from_static(b"abc"), 0..3).unwrap()
        );
    }
}
