//! A tiny deterministic PRNG (SplitMix64) and the generator of MySQL text values per column kind.

use super::schema::{ColKind, ColumnSpec};

/// SplitMix64: small, fast, good enough for a reproducible workload.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

/// One SplitMix64 step as a pure function (also used to hash PKs to shards).
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state.wrapping_sub(0x9E37_79B9_7F4A_7C15))
    }

    /// Uniform in `0..n` (0 when n == 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.wrapping_sub(lo) as u64;
        lo.wrapping_add(self.below(span.wrapping_add(1)) as i64)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A random non-PK value for `col`, as MySQL text (None = NULL).
    pub fn value(&mut self, col: &ColumnSpec, pk: i64) -> Option<Vec<u8>> {
        if col.nullable && self.chance(20) {
            return None;
        }
        Some(match col.kind {
            ColKind::BigInt => self
                .range(-1_000_000, 1_000_000_000)
                .to_string()
                .into_bytes(),
            ColKind::BigIntUnsigned => (u64::MAX - self.below(1 << 40)).to_string().into_bytes(),
            ColKind::Int => self
                .range(-2_147_483_648, 2_147_483_647)
                .to_string()
                .into_bytes(),
            ColKind::VarChar(n) => self.varchar(&col.name, pk, n),
            ColKind::VarBinary(n) => self.varbinary(n),
            ColKind::DateTime(fsp) => self.datetime(fsp),
            ColKind::Decimal(p, s) => self.decimal(p, s),
            ColKind::Text => self.text(),
        })
    }

    fn varchar(&mut self, name: &str, pk: i64, max_chars: u32) -> Vec<u8> {
        let accents = ["", "é", "ü", "日本", "ß"];
        let accent = accents[self.below(accents.len() as u64) as usize];
        let s = if name.contains("email") {
            format!("user{pk}{accent}.{:x}@example.com", self.below(1 << 20))
        } else {
            format!("{name}-{pk}-{accent}{:x}", self.below(1 << 32))
        };
        s.chars()
            .take(max_chars as usize)
            .collect::<String>()
            .into_bytes()
    }

    fn varbinary(&mut self, max_len: u32) -> Vec<u8> {
        let len = (4 + self.below(12)).min(u64::from(max_len));
        let mut out = b"SKU-".to_vec();
        out.truncate(len as usize);
        while out.len() < len as usize {
            out.push(self.next_u64() as u8);
        }
        out
    }

    fn datetime(&mut self, fsp: u32) -> Vec<u8> {
        let (mo, d) = (self.range(1, 12), self.range(1, 28));
        let (h, mi, s) = (self.range(0, 23), self.range(0, 59), self.range(0, 59));
        let mut out = format!("2025-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
        if fsp > 0 {
            let frac = format!("{:06}", self.below(1_000_000));
            out.push('.');
            out.push_str(&frac[..(fsp.min(6) as usize)]);
        }
        out.into_bytes()
    }

    fn decimal(&mut self, precision: u32, scale: u32) -> Vec<u8> {
        let int_digits = precision.saturating_sub(scale).clamp(1, 12);
        let int_max = 10i64.pow(int_digits.min(6)) - 1;
        let int_part = self.range(0, int_max);
        let sign = if self.chance(5) { "-" } else { "" };
        if scale == 0 {
            return format!("{sign}{int_part}").into_bytes();
        }
        let frac = self.below(10u64.pow(scale.min(9)));
        format!(
            "{sign}{int_part}.{frac:0width$}",
            width = scale.min(9) as usize
        )
        .into_bytes()
    }

    fn text(&mut self) -> Vec<u8> {
        let notes = [
            "leave at the door",
            "gift wrap, please",
            "fragile: \"glass\"\nhandle with care",
            "",
            "café ☕ order",
        ];
        let n = notes[self.below(notes.len() as u64) as usize];
        format!("{n} #{}", self.below(1000)).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn decimal_has_exact_scale() {
        let mut r = SplitMix64::new(1);
        for _ in 0..100 {
            let v = String::from_utf8(r.decimal(10, 2)).unwrap();
            let (_, frac) = v.split_once('.').unwrap();
            assert_eq!(frac.len(), 2, "{v}");
        }
    }
}
