//! The results as a markdown report: one table of arms, then the ratios against the targets.

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::lag::LagRun;
use crate::measure::{Arm, Run, Spread};

pub struct CopyResult {
    pub rows: usize,
    pub wire_bytes: u64,
    pub l0: Arm,
    /// L0 with 32-row INSERT statements.
    pub l0m: Arm,
    pub d0: Arm,
    pub t: Arm,
    /// T with the change log on (`--changes`).
    pub tc: Arm,
    /// T through the public library API.
    pub tl: Arm,
    pub n: Arm,
}

pub struct ReplicationResult {
    pub transactions: u64,
    pub row_changes: u64,
    pub l0: Arm,
    pub d0: Arm,
    pub t: Arm,
    /// T with the change log on (`--changes`).
    pub tc: Arm,
    /// T through the public library API.
    pub tl: Arm,
}

pub struct LagResult {
    pub rate: f64,
    pub transactions: usize,
    pub runs: Vec<LagRun>,
}

#[derive(Default)]
pub struct Results {
    pub copies: Vec<CopyResult>,
    pub replication: Option<ReplicationResult>,
    /// One per offered rate (`--lag-rates`), lowest first.
    pub lags: Vec<LagResult>,
    pub shards: Option<crate::shards::ShardsResult>,
    pub long: Option<crate::long::LongResult>,
}

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

fn spread_text(s: Spread, digits: usize) -> String {
    format!("{:.d$} ({:.d$}–{:.d$})", s.median, s.min, s.max, d = digits)
}

fn optional(arm: &Arm, figure: impl Fn(&Run) -> Option<f64>, digits: usize) -> String {
    if arm.runs.iter().all(|r| figure(r).is_some()) {
        let s = arm.spread(|r| figure(r).unwrap_or_default());
        format!("{:.d$}", s.median, d = digits)
    } else {
        "–".into()
    }
}

fn arm_row(out: &mut String, arm: &Arm) {
    let rss = optional(arm, |r| r.peak_rss.map(|b| b as f64 / 1e6), 0);
    let server = optional(
        arm,
        |r| r.server_cpu.map(|c| c.as_secs_f64() * 1e6 / r.rows as f64),
        2,
    );
    let _ = writeln!(
        out,
        "| {} | {} | {} | {:.1} | {:.2} | {} | {:.0} | {:.0} | {} |",
        arm.workload,
        arm.name,
        spread_text(arm.spread(Run::rows_per_sec), 0),
        arm.spread(Run::mb_per_sec).median,
        arm.spread(Run::cpu_us_per_row).median,
        rss,
        arm.spread(Run::commits_per_sec).median,
        arm.spread(|r| r.disk_written as f64 / r.rows as f64).median,
        server,
    );
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

pub fn ratio_row(out: &mut String, what: &str, value: f64, target: &str, met: bool) {
    let _ = writeln!(out, "| {what} | {value:.2} | {target} | {} |", verdict(met));
}

fn peak_rss_mb(arm: &Arm) -> f64 {
    arm.spread(|r| r.peak_rss.unwrap_or_default() as f64 / 1e6)
        .median
}

fn copy_ratios(out: &mut String, copy: &CopyResult) {
    let label = format!("copy {}M", copy.rows / 1_000_000);
    let (t, n, d0) = (
        copy.t.rows_per_sec(),
        copy.n.rows_per_sec(),
        copy.d0.rows_per_sec(),
    );
    // L0 is the better of the classic single-row INSERT and the 32-row INSERT.
    let l0 = copy.l0.rows_per_sec().max(copy.l0m.rows_per_sec());
    ratio_row(
        out,
        &format!("{label}: T / max(L0, L0m)"),
        t / l0,
        "≥ 0.70 (stretch 0.85)",
        t / l0 >= 0.7,
    );
    ratio_row(
        out,
        &format!("{label}: T / N"),
        t / n,
        "≥ 20",
        t / n >= 20.0,
    );
    let with_log = copy.tc.rows_per_sec() / t;
    ratio_row(
        out,
        &format!("{label}: T+changes / T"),
        with_log,
        "≥ 0.75",
        with_log >= 0.75,
    );
    let library = copy.tl.rows_per_sec() / t;
    ratio_row(
        out,
        &format!("{label}: T lib / T"),
        library,
        "≥ 0.95",
        library >= 0.95,
    );
    ratio_row(
        out,
        &format!("{label}: T / D0 (informative)"),
        t / d0,
        "–",
        true,
    );
    let rss = peak_rss_mb(&copy.t);
    ratio_row(
        out,
        &format!("{label}: T peak RSS (MB)"),
        rss,
        "< 150",
        rss < 150.0,
    );
}

fn memory_growth(out: &mut String, copies: &[CopyResult]) {
    let one = copies.iter().find(|c| c.rows == 1_000_000);
    let five = copies.iter().find(|c| c.rows == 5_000_000);
    if let (Some(one), Some(five)) = (one, five) {
        let growth = peak_rss_mb(&five.t) / peak_rss_mb(&one.t);
        ratio_row(out, "peak RSS 5M / 1M", growth, "≤ 1.10", growth <= 1.10);
    }
}

const ARMS_HEADER: &str = "| workload | arm | rows/s median (min–max) | MB/s | CPU µs/row | peak RSS MB | commits/s | disk B/row | server CPU µs/row |\n|---|---|---|---|---|---|---|---|---|";

/// A table of arms with the columns of the main one.
pub fn arms_table<'a>(out: &mut String, arms: impl IntoIterator<Item = &'a Arm>) {
    let _ = writeln!(out, "{ARMS_HEADER}");
    for arm in arms {
        arm_row(out, arm);
    }
}

fn render_arms(out: &mut String, results: &Results) {
    let _ = writeln!(out, "{ARMS_HEADER}");
    for copy in &results.copies {
        for arm in [
            &copy.l0, &copy.l0m, &copy.d0, &copy.t, &copy.tc, &copy.tl, &copy.n,
        ] {
            arm_row(out, arm);
        }
    }
    if let Some(r) = &results.replication {
        for arm in [&r.l0, &r.d0, &r.t, &r.tc, &r.tl] {
            arm_row(out, arm);
        }
    }
}

fn lag_ms(lag: &LagResult) -> (Spread, Spread) {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let p50 = Spread::of(lag.runs.iter().map(|r| ms(r.p50())).collect());
    let p99 = Spread::of(lag.runs.iter().map(|r| ms(r.p99())).collect());
    (p50, p99)
}

fn render_lag(out: &mut String, lag: &LagResult) {
    let (p50, p99) = lag_ms(lag);
    let commits = Spread::of(lag.runs.iter().map(|r| r.run.commits_per_sec()).collect());
    let cpu = Spread::of(lag.runs.iter().map(|r| r.run.cpu_us_per_row()).collect());
    let _ = writeln!(
        out,
        "\nLag at {:.0} tx/s offered ({} transactions per run, send → visible to a reader): \
         p50 {} ms, p99 {} ms (median (min–max) of runs); {:.0} commits/s, {:.2} CPU µs/row.\n",
        lag.rate,
        lag.transactions,
        spread_text(p50, 2),
        spread_text(p99, 2),
        commits.median,
        cpu.median
    );
    ratio_row(
        out,
        &format!("replication at {:.0} tx/s: p99 lag (ms)", lag.rate),
        p99.median,
        "< 50",
        p99.median < 50.0,
    );
}

/// The highest offered rate whose median p99 stays under 50 ms (with several rates).
fn render_lag_sweep(out: &mut String, lags: &[LagResult]) {
    if lags.len() < 2 {
        return;
    }
    let under: Vec<f64> = (lags.iter())
        .filter(|l| lag_ms(l).1.median < 50.0)
        .map(|l| l.rate)
        .collect();
    let rates: Vec<String> = lags.iter().map(|l| format!("{:.0}", l.rate)).collect();
    let _ = match under.iter().copied().reduce(f64::max) {
        Some(best) => writeln!(
            out,
            "\nLag sweep ({} tx/s): the highest offered rate with p99 < 50 ms is {best:.0} tx/s.",
            rates.join(", ")
        ),
        None => writeln!(
            out,
            "\nLag sweep ({} tx/s): p99 ≥ 50 ms at every rate.",
            rates.join(", ")
        ),
    };
}

pub fn render(command: &str, results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Command: {command}\n");
    render_arms(&mut out, results);
    for copy in &results.copies {
        let _ = writeln!(
            out,
            "\ncopy {}M: {:.0} MB on the wire, {:.1} B/row.",
            copy.rows / 1_000_000,
            copy.wire_bytes as f64 / 1e6,
            copy.wire_bytes as f64 / copy.rows as f64
        );
    }
    if let Some(r) = &results.replication {
        let _ = writeln!(
            out,
            "\nreplication: {} transactions, {} row changes.",
            r.transactions, r.row_changes
        );
    }
    let _ = writeln!(out, "\n| ratio | value | target | |\n|---|---|---|---|");
    for copy in &results.copies {
        copy_ratios(&mut out, copy);
    }
    memory_growth(&mut out, &results.copies);
    if let Some(r) = &results.replication {
        let ratio = r.t.rows_per_sec() / r.l0.rows_per_sec();
        ratio_row(
            &mut out,
            "replication drain: T / L0",
            ratio,
            "≥ 0.50",
            ratio >= 0.5,
        );
        let with_log = r.tc.rows_per_sec() / r.t.rows_per_sec();
        ratio_row(
            &mut out,
            "replication drain: T+changes / T",
            with_log,
            "≥ 0.75",
            with_log >= 0.75,
        );
        let library = r.tl.rows_per_sec() / r.t.rows_per_sec();
        ratio_row(
            &mut out,
            "replication drain: T lib / T",
            library,
            "≥ 0.95",
            library >= 0.95,
        );
        let d0 = r.t.rows_per_sec() / r.d0.rows_per_sec();
        ratio_row(
            &mut out,
            "replication drain: T / D0 (informative)",
            d0,
            "–",
            true,
        );
    }
    for lag in &results.lags {
        render_lag(&mut out, lag);
    }
    render_lag_sweep(&mut out, &results.lags);
    if let Some(shards) = &results.shards {
        crate::shards::render(&mut out, shards);
    }
    if let Some(long) = &results.long {
        crate::long::render(&mut out, long);
    }
    out
}

/// Replaces the text between the bench markers of `doc` with `text`.
pub fn update_doc(doc: &Path, text: &str) -> Result<()> {
    let old = std::fs::read_to_string(doc).with_context(|| format!("reading {}", doc.display()))?;
    let (Some(begin), Some(end)) = (old.find(BEGIN), old.find(END)) else {
        anyhow::bail!("{} has no {BEGIN} … {END} section", doc.display());
    };
    let new = format!("{}{BEGIN}\n{text}\n{}", &old[..begin], &old[end..]);
    std::fs::write(doc, new).with_context(|| format!("writing {}", doc.display()))
}
