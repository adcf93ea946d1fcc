//! How long the change log keeps entries (`--changes-retain`), and pruning. A consumer
//! asking for entries that were pruned gets a definite error (`pruned_through`), never a
//! silent gap; the newest entry is always kept, so `seq` never starts over.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, OptionalExtension};

/// Status key: the highest `seq` pruned so far.
pub const PRUNED_THROUGH: &str = "changes_pruned_through";

/// Entries older than `max_age` or beyond the newest `max_entries` go (either limit, or
/// both; neither keeps everything).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Option<Duration>,
    pub max_entries: Option<u64>,
}

impl Retention {
    /// `7d`, `12h`, `30m`, `90s` (an age), `1000000` (a count), or both: `7d,1000000`.
    pub fn parse(text: &str) -> Result<Retention> {
        let mut retention = Retention::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Ok(count) = part.parse::<u64>() {
                if count == 0 {
                    bail!("--changes-retain: a count must keep at least one entry");
                }
                retention.max_entries = Some(count);
                continue;
            }
            let unit_at = part.len() - part.chars().last().map_or(0, char::len_utf8);
            let (number, unit) = part.split_at(unit_at);
            let secs = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => {
                    bail!("--changes-retain: {part:?} is neither a count nor an age like 12h or 7d")
                }
            };
            let number: u64 = number.parse().with_context(|| {
                format!("--changes-retain: {part:?} is not an age like 12h or 7d")
            })?;
            retention.max_age = Some(Duration::from_secs(number.saturating_mul(secs)));
        }
        Ok(retention)
    }

    pub fn keeps_everything(&self) -> bool {
        self.max_age.is_none() && self.max_entries.is_none()
    }
}

/// Deletes what `retention` no longer keeps; returns the highest `seq` pruned, if any.
pub fn prune(conn: &Connection, retention: &Retention, now_ms: i64) -> Result<Option<i64>> {
    let Some(newest) = conn.query_row("SELECT max(seq) FROM _vtmirror_changes", [], |r| {
        r.get::<_, Option<i64>>(0)
    })?
    else {
        return Ok(None);
    };
    let mut through = 0;
    if let Some(keep) = retention.max_entries {
        through = through.max(newest - keep.min(i64::MAX as u64) as i64);
    }
    if let Some(age) = retention.max_age {
        let cutoff = now_ms - age.as_millis().min(i64::MAX as u128) as i64;
        let old: Option<i64> = conn
            .query_row(
                "SELECT max(c.seq) FROM _vtmirror_changes c
                 JOIN _vtmirror_change_tx t ON t.tx = c.tx WHERE t.committed_at < ?1",
                [cutoff],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        through = through.max(old.unwrap_or(0));
    }
    let through = through.min(newest - 1);
    if through <= pruned_through(conn)? {
        return Ok(None);
    }
    conn.execute("DELETE FROM _vtmirror_changes WHERE seq <= ?1", [through])
        .context("pruning the change log")?;
    conn.execute(
        "DELETE FROM _vtmirror_change_tx WHERE tx < (SELECT min(tx) FROM _vtmirror_changes)",
        [],
    )?;
    crate::mirror::metadata::set_status(conn, PRUNED_THROUGH, &through.to_string())?;
    Ok(Some(through))
}

/// The highest `seq` pruned so far (0 when none was).
pub fn pruned_through(conn: &Connection) -> Result<i64> {
    let text = crate::mirror::metadata::status(conn, PRUNED_THROUGH)?;
    Ok(text.and_then(|t| t.parse().ok()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_ages_counts_and_both() {
        let both = Retention::parse("7d,1000").unwrap();
        assert_eq!(both.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(both.max_entries, Some(1000));
        assert_eq!(
            Retention::parse("90s").unwrap().max_age,
            Some(Duration::from_secs(90))
        );
        assert!(Retention::parse("").unwrap().keeps_everything());
        for bad in ["0", "7w", "d", "-5", "1.5h"] {
            assert!(Retention::parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
