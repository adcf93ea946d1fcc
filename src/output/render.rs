//! Text rendering shared by `tail`, `query` and `status`: the boxed ASCII table of the seed
//! client, hex for binary values, escaping for one-line cells, readable counts and sizes.

use comfy_table::{Cell, CellAlignment, ContentLineStyle, LineStyle, Table, TableStyle};

/// `+---+` borders, `|` between cells, a `+---+` line under the header, none between rows.
const BOXED: TableStyle = TableStyle::new()
    .top_border(LineStyle::new('+', '-', '+', '+'))
    .header_lines(ContentLineStyle::new('|', '|', '|'))
    .header_separator(LineStyle::new('+', '-', '+', '+'))
    .content_lines(ContentLineStyle::new('|', '|', '|'))
    .bottom_border(LineStyle::new('+', '-', '+', '+'));

/// Columns separated by two spaces, no borders (for `status`).
const PLAIN: TableStyle = TableStyle::new()
    .header_lines(ContentLineStyle::none().junction(' '))
    .content_lines(ContentLineStyle::none().junction(' '));

/// A boxed table: centred headers, the columns flagged in `right` right-aligned.
pub fn boxed_table(header: &[String], rows: &[Vec<String>], right: &[bool]) -> String {
    build(BOXED, header, rows, right).to_string()
}

/// A borderless, left-aligned table (lines trimmed at the right).
pub fn plain_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut table = build(PLAIN, header, rows, &[]);
    for column in table.column_iter_mut() {
        column.set_padding((0, 1));
    }
    if let Some(header) = table.header() {
        let cells: Vec<Cell> = header.cell_iter().map(|c| Cell::new(c.content())).collect();
        table.set_header(cells);
    }
    table
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn build(style: TableStyle, header: &[String], rows: &[Vec<String>], right: &[bool]) -> Table {
    let mut table = Table::new();
    table.load_style(style);
    table.set_header(
        header
            .iter()
            .map(|h| Cell::new(h).set_alignment(CellAlignment::Center)),
    );
    for row in rows {
        table.add_row(row.iter().enumerate().map(|(i, text)| {
            let align = if right.get(i).copied().unwrap_or(false) {
                CellAlignment::Right
            } else {
                CellAlignment::Left
            };
            Cell::new(text).set_alignment(align)
        }));
    }
    table
}

/// `0x` followed by lowercase hex digits.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("0x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Control characters escaped so that a value stays on one line of a table.
pub fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => format!("\\u{{{:x}}}", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}

/// 1234567 → "1,234,567".
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as B, KiB, MiB or GiB with one decimal.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds since the epoch as the seed prints them: `2020-06-28 03:28:42 +0000 UTC`.
pub fn seed_time(secs: i64) -> String {
    let iso = crate::mirror::timestamp::format_utc(secs, 0);
    format!("{} {} +0000 UTC", &iso[..10], &iso[11..19])
}

/// A failed write to stdout or stderr (a closed pipe, a full disk). Deliberately not an
/// `io::Error` in the chain: it must never be taken for a transient network error and retried.
#[derive(Debug)]
pub struct OutputError(pub std::io::Error);

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing the output: {}", self.0)
    }
}

impl std::error::Error for OutputError {}

pub fn output_error(e: std::io::Error) -> anyhow::Error {
    anyhow::Error::new(OutputError(e))
}

/// True when the reader of our output went away (`vtmirror tail | head`): not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let io = cause
            .downcast_ref::<OutputError>()
            .map(|o| &o.0)
            .or_else(|| cause.downcast_ref::<std::io::Error>());
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_boxed_table_looks_like_the_seed_client_output() {
        let header = vec!["table".to_string(), "op".into(), "id".into()];
        let rows = vec![vec!["ks.t".to_string(), "INSERT".into(), "23".into()]];
        let text = boxed_table(&header, &rows, &[false, false, true]);
        let want = "\
+-------+--------+----+
| table |   op   | id |
+-------+--------+----+
| ks.t  | INSERT | 23 |
+-------+--------+----+";
        assert_eq!(text, want);
    }

    #[test]
    fn counts_sizes_and_times_are_readable() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(size(512), "512 B");
        assert_eq!(size(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(seed_time(1_593_314_922), "2020-06-28 03:28:42 +0000 UTC");
    }

    #[test]
    fn control_characters_and_bytes_stay_on_one_line() {
        assert_eq!(one_line("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(hex(&[0, 0xff, 0x10]), "0x00ff10");
    }
}
