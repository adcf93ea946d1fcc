//! MySQL GTID-set positions of the simulated shards: `MySQL56/<server uuid>:1-N`.

use super::rng::mix64;

/// Flavor prefix of every position string.
pub const FLAVOR: &str = "MySQL56/";

/// The deterministic server UUID of shard number `index` for `seed`.
pub fn shard_uuid(seed: u64, index: usize) -> String {
    let a = mix64(seed ^ 0x5348_4152_4400_0000 ^ index as u64);
    let b = mix64(a);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        a as u16,
        (b >> 48) as u16,
        b & 0xffff_ffff_ffff
    )
}

/// `MySQL56/<uuid>:1-n` (`MySQL56/` alone when n == 0, like an empty GTID set).
pub fn format_position(uuid: &str, n: u64) -> String {
    if n == 0 {
        FLAVOR.to_string()
    } else {
        format!("{FLAVOR}{uuid}:1-{n}")
    }
}

/// Why a position string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PositionError {
    /// No `MySQL56/` prefix: vttablet answers INTERNAL "unknown GTIDSet flavor".
    UnknownFlavor(String),
    /// Well-flavored but not a prefix of this shard's executed GTID set.
    Mismatch,
}

/// Parses `MySQL56/<uuid>:1-N` for a shard whose server uuid is `uuid`; returns N.
pub fn parse_position(pos: &str, uuid: &str) -> Result<u64, PositionError> {
    let Some(set) = pos.strip_prefix(FLAVOR) else {
        let flavor = pos.split('/').next().unwrap_or_default().to_string();
        return Err(PositionError::UnknownFlavor(flavor));
    };
    let set = set.trim();
    if set.is_empty() {
        return Ok(0);
    }
    let Some((u, range)) = set.split_once(':') else {
        return Err(PositionError::Mismatch);
    };
    if !u.trim().eq_ignore_ascii_case(uuid) {
        return Err(PositionError::Mismatch);
    }
    let (lo, hi) = match range.split_once('-') {
        Some((lo, hi)) => (lo, hi),
        None => (range, range),
    };
    match (lo.trim().parse::<u64>(), hi.trim().parse::<u64>()) {
        (Ok(1), Ok(n)) if n >= 1 => Ok(n),
        _ => Err(PositionError::Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let u = shard_uuid(42, 1);
        assert_eq!(u.len(), 36);
        let p = format_position(&u, 17);
        assert_eq!(parse_position(&p, &u), Ok(17));
        assert_eq!(parse_position(&format_position(&u, 0), &u), Ok(0));
        assert_eq!(
            parse_position("MariaDB/0-1-2", &u),
            Err(PositionError::UnknownFlavor("MariaDB".into()))
        );
        assert_eq!(
            parse_position(&format_position(&shard_uuid(42, 0), 3), &u),
            Err(PositionError::Mismatch)
        );
        assert_eq!(
            parse_position("MySQL56/garbage", &u),
            Err(PositionError::Mismatch)
        );
    }
}
