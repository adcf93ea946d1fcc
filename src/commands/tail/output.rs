//! How `tail` prints: the seed client's text (timestamp line, one boxed table per ROW event,
//! the VGTID after the transaction) or one JSON object per line.

use std::io::Write;

use serde_json::{json, Map, Value as Json};

use super::follow::{Change, EndKind, Item, RowsEvent, Text, TxEnd};
use crate::mirror::timestamp::format_utc;
use crate::output::render::{boxed_table, one_line, seed_time};
use crate::source::proto::binlogdata::VGtid;
use crate::source::vgtid::{row_texts, to_json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Writes items in one format; text output prints the timestamp line once per transaction.
pub struct Printer<'a> {
    format: Format,
    out: &'a mut (dyn Write + Send),
    header_printed: bool,
}

impl<'a> Printer<'a> {
    pub fn new(format: Format, out: &'a mut (dyn Write + Send)) -> Self {
        Printer {
            format,
            out,
            header_printed: false,
        }
    }

    /// Forgets a transaction cut off by a broken stream (the next one prints its own header).
    pub fn restart(&mut self) {
        self.header_printed = false;
    }

    pub fn print(&mut self, item: &Item) -> std::io::Result<()> {
        match self.format {
            Format::Text => self.text(item),
            Format::Json => json_lines(item)
                .iter()
                .try_for_each(|line| writeln!(self.out, "{line}")),
        }?;
        if matches!(item, Item::End(_) | Item::CopyCompleted { .. }) {
            self.out.flush()?;
        }
        Ok(())
    }

    fn text(&mut self, item: &Item) -> std::io::Result<()> {
        match item {
            Item::Rows(rows) => {
                self.header(rows.timestamp)?;
                writeln!(self.out, "{}", rows_table(rows))
            }
            Item::End(end) => {
                self.header(end.timestamp)?;
                if let Some(statement) = &end.statement {
                    writeln!(self.out, "DDL: {}", one_line(statement))?;
                }
                let vgtid = end.vgtid.as_ref().map(vgtid_text).unwrap_or_default();
                writeln!(self.out, "VGTID after event:  {vgtid}\n")?;
                self.header_printed = false;
                Ok(())
            }
            Item::CopyCompleted { shard: Some(shard) } => {
                writeln!(self.out, "Copy completed on shard {shard}\n")
            }
            Item::CopyCompleted { shard: None } => writeln!(self.out, "Copy completed\n"),
        }
    }

    fn header(&mut self, timestamp: i64) -> std::io::Result<()> {
        if self.header_printed {
            return Ok(());
        }
        self.header_printed = true;
        if timestamp == 0 {
            writeln!(self.out, "Event log timestamp: 0 (not from the binlog)")
        } else {
            writeln!(
                self.out,
                "Event log timestamp: {timestamp} --> {}",
                seed_time(timestamp)
            )
        }
    }
}

/// `| table | op | columns… |`, one line per image (an update shows its before and after).
fn rows_table(rows: &RowsEvent) -> String {
    let mut header = vec!["table".to_string(), "op".to_string()];
    header.extend(rows.columns.iter().map(|c| c.name.clone()));
    let mut right = vec![false, false];
    right.extend(rows.columns.iter().map(|c| c.numeric));
    let name = format!("{}.{}", rows.keyspace, rows.table);
    let mut lines = Vec::new();
    for change in &rows.changes {
        for (op, image) in images(change) {
            let mut line = vec![name.clone(), op];
            line.extend(
                image
                    .iter()
                    .zip(&rows.columns)
                    .map(|(v, c)| cell(v, c.binary)),
            );
            line.resize(header.len(), String::new());
            lines.push(line);
        }
    }
    boxed_table(&header, &lines, &right)
}

fn images(change: &Change) -> Vec<(String, &Vec<Text>)> {
    let op = change.op.name();
    match (&change.before, &change.after) {
        (Some(before), Some(after)) => vec![
            (format!("{op} before"), before),
            (format!("{op} after"), after),
        ],
        (Some(image), None) | (None, Some(image)) => vec![(op.to_string(), image)],
        (None, None) => Vec::new(),
    }
}

fn cell(value: &Text, binary: bool) -> String {
    match value.as_deref() {
        None => "NULL".to_string(),
        Some(hex) if binary => printable_text(hex).unwrap_or_else(|| hex.to_string()),
        Some(text) => one_line(text),
    }
}

/// A binary value (`0x…`) as text when its bytes are printable UTF-8 (the seed client prints
/// `VARBINARY` `123` as `123`); None keeps the hex.
fn printable_text(hex: &str) -> Option<String> {
    let digits = hex.strip_prefix("0x")?.as_bytes();
    let bytes = digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    (!text.is_empty() && !text.chars().any(char::is_control)).then_some(text)
}

/// The VGtid in the protobuf text form the seed client prints.
pub fn vgtid_text(vgtid: &VGtid) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::new();
    for s in &vgtid.shard_gtids {
        out.push_str(&format!(
            "shard_gtids:<keyspace:{} shard:{} gtid:{} ",
            quote(&s.keyspace),
            quote(&s.shard),
            quote(&s.gtid)
        ));
        for pk in &s.table_p_ks {
            out.push_str(&format!(
                "table_p_ks:<table_name:{} ",
                quote(&pk.table_name)
            ));
            if let Some(result) = &pk.lastpk {
                let values = result.rows.first().map(row_texts).unwrap_or_default();
                let pairs: Vec<String> = result
                    .fields
                    .iter()
                    .zip(values)
                    .map(|(f, v)| format!("{}:{}", f.name, quote(v.as_str().unwrap_or("NULL"))))
                    .collect();
                out.push_str(&format!("lastpk:<{} > ", pairs.join(" ")));
            }
            out.push_str("> ");
        }
        out.push_str("> ");
    }
    out.trim_end().to_string()
}

/// JSON lines: one per row change, transaction end or copy completion.
fn json_lines(item: &Item) -> Vec<Json> {
    match item {
        Item::Rows(rows) => rows
            .changes
            .iter()
            .map(|change| {
                let image = |values: &Option<Vec<Text>>| match values {
                    Some(values) => Json::Object(image_object(rows, values)),
                    None => Json::Null,
                };
                json!({
                    "event": "row", "timestamp": rows.timestamp, "keyspace": rows.keyspace,
                    "shard": rows.shard, "table": rows.table,
                    "op": change.op.name().to_lowercase(),
                    "before": image(&change.before), "after": image(&change.after),
                })
            })
            .collect(),
        Item::End(end) => vec![end_json(end)],
        Item::CopyCompleted { shard } => vec![json!({"event": "copy_completed", "shard": shard})],
    }
}

fn image_object(rows: &RowsEvent, values: &[Text]) -> Map<String, Json> {
    rows.columns
        .iter()
        .zip(values)
        .map(|(c, v)| (c.name.clone(), v.clone().map_or(Json::Null, Json::String)))
        .collect()
}

fn end_json(end: &TxEnd) -> Json {
    let event = match end.kind {
        EndKind::Commit => "commit",
        EndKind::Ddl => "ddl",
        EndKind::Other => "other",
    };
    let mut object = json!({
        "event": event,
        "timestamp": end.timestamp,
        "time": (end.timestamp > 0).then(|| format_utc(end.timestamp, 0)),
        "vgtid": end.vgtid.as_ref().map(to_json),
    });
    if let (Some(statement), Json::Object(map)) = (&end.statement, &mut object) {
        map.insert("statement".into(), Json::String(statement.clone()));
    }
    object
}

#[cfg(test)]
mod tests {
    use super::super::follow::{Column, Op};
    use super::*;
    use crate::source::proto::binlogdata::ShardGtid;

    fn insert() -> Item {
        Item::Rows(RowsEvent {
            timestamp: 1_593_314_922,
            keyspace: "customer".into(),
            shard: "0".into(),
            table: "corder".into(),
            columns: vec![
                Column {
                    name: "order_id".into(),
                    numeric: true,
                    binary: false,
                },
                Column {
                    name: "sku".into(),
                    numeric: false,
                    binary: true,
                },
            ],
            changes: vec![Change {
                op: Op::Insert,
                before: None,
                after: Some(vec![Some("23".into()), None]),
            }],
        })
    }

    fn commit() -> Item {
        Item::End(TxEnd {
            timestamp: 1_593_314_922,
            kind: EndKind::Commit,
            statement: None,
            vgtid: Some(VGtid {
                shard_gtids: vec![ShardGtid {
                    keyspace: "customer".into(),
                    shard: "0".into(),
                    gtid: "MySQL56/d714:1-36".into(),
                    table_p_ks: vec![],
                }],
            }),
        })
    }

    fn printed(format: Format, items: &[Item]) -> String {
        let mut buf: Vec<u8> = Vec::new();
        let mut printer = Printer::new(format, &mut buf);
        for item in items {
            printer.print(item).unwrap();
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn a_transaction_prints_like_the_seed_client() {
        let want = "\
Event log timestamp: 1593314922 --> 2020-06-28 03:28:42 +0000 UTC
+-----------------+--------+----------+------+
|      table      |   op   | order_id |  sku |
+-----------------+--------+----------+------+
| customer.corder | INSERT |       23 | NULL |
+-----------------+--------+----------+------+
VGTID after event:  shard_gtids:<keyspace:\"customer\" shard:\"0\" gtid:\"MySQL56/d714:1-36\" >

";
        assert_eq!(printed(Format::Text, &[insert(), commit()]), want);
    }

    #[test]
    fn binary_values_print_as_text_when_printable_and_as_hex_otherwise() {
        let Item::Rows(mut rows) = insert() else {
            unreachable!("insert() is a row event")
        };
        rows.changes[0].after = Some(vec![Some("1".into()), Some("0x313233".into())]);
        rows.changes.push(Change {
            op: Op::Insert,
            before: None,
            after: Some(vec![Some("2".into()), Some("0x00ff0a".into())]),
        });
        rows.changes.push(Change {
            op: Op::Insert,
            before: None,
            after: Some(vec![Some("3".into()), Some("0x".into())]),
        });
        let item = Item::Rows(rows);
        let text = printed(Format::Text, std::slice::from_ref(&item));
        assert!(text.contains("| 123 "), "{text}");
        assert!(text.contains("| 0x00ff0a |"), "{text}");
        assert!(text.contains("| 0x       |"), "{text}");
        let json = printed(Format::Json, &[item]);
        assert!(json.contains(r#""sku":"0x313233""#), "{json}");
    }

    #[test]
    fn an_empty_transaction_prints_only_its_time_and_vgtid() {
        let text = printed(Format::Text, &[commit()]);
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("VGTID after event:"));
    }

    #[test]
    fn json_output_is_one_object_per_line() {
        let text = printed(Format::Json, &[insert(), commit()]);
        let lines: Vec<Json> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["op"], "insert");
        assert_eq!(lines[0]["after"]["order_id"], "23");
        assert_eq!(lines[0]["after"]["sku"], Json::Null);
        assert_eq!(lines[1]["event"], "commit");
        assert_eq!(lines[1]["time"], "2020-06-28T03:28:42.000Z");
        assert_eq!(
            lines[1]["vgtid"]["shard_gtids"][0]["gtid"],
            "MySQL56/d714:1-36"
        );
    }
}
