use super::*;
use crate::source::proto::binlogdata::row_change::Bitmap;
use crate::source::proto::binlogdata::{FieldEvent, RowChange, RowEvent, ShardGtid, VEvent, VGtid};
use crate::source::proto::query::Field;
use crate::source::selection::Selection;

fn field(name: &str, t: i32, flags: u32) -> Field {
    let charset = if t == 6165 { 255 } else { 63 };
    Field {
        name: name.into(),
        r#type: t,
        charset,
        flags,
        ..Default::default()
    }
}

fn ev(t: VEventType) -> VEvent {
    VEvent {
        r#type: t as i32,
        keyspace: "ks".into(),
        shard: "-80".into(),
        ..Default::default()
    }
}

fn field_event() -> VEvent {
    VEvent {
        field_event: Some(FieldEvent {
            table_name: "ks.t".into(),
            fields: vec![field("id", 265, 2), field("v", 6165, 0)],
            keyspace: "ks".into(),
            shard: "-80".into(),
            enum_set_string_values: true,
            ..Default::default()
        }),
        ..ev(VEventType::Field)
    }
}

fn row(values: &[Option<&str>]) -> Row {
    let mut r = Row::default();
    let mut bytes = Vec::new();
    for v in values {
        match v {
            None => r.lengths.push(-1),
            Some(s) => {
                r.lengths.push(s.len() as i64);
                bytes.extend_from_slice(s.as_bytes());
            }
        }
    }
    r.values = bytes.into();
    r
}

fn row_event(before: Option<Row>, after: Option<Row>) -> VEvent {
    VEvent {
        timestamp: 1_700_000_000,
        row_event: Some(RowEvent {
            table_name: "t".into(),
            row_changes: vec![RowChange {
                before,
                after,
                ..Default::default()
            }],
            keyspace: "ks".into(),
            shard: "-80".into(),
            ..Default::default()
        }),
        ..ev(VEventType::Row)
    }
}

fn vgtid_event(gtid: &str) -> VEvent {
    VEvent {
        vgtid: Some(VGtid {
            shard_gtids: vec![ShardGtid {
                keyspace: "ks".into(),
                shard: "-80".into(),
                gtid: gtid.into(),
                table_p_ks: vec![],
            }],
        }),
        ..ev(VEventType::Vgtid)
    }
}

fn run(events: Vec<VEvent>) -> Result<Vec<Step>> {
    let mut d = Decoder::new(&Selection::keyspace("ks"));
    let mut out = Vec::new();
    for e in events {
        d.decode(e.try_into()?, &mut out)?;
    }
    Ok(out)
}

fn changes(steps: &[Step]) -> Vec<Change> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Rows { changes, .. } => Some(changes.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn a_transaction_becomes_schema_rows_and_one_end_with_its_checkpoint() {
    let steps = run(vec![
        ev(VEventType::Begin),
        field_event(),
        row_event(None, Some(row(&[Some("1"), Some("a")]))),
        vgtid_event("MySQL56/u:1-5"),
        ev(VEventType::Commit),
    ])
    .unwrap();
    assert!(matches!(steps[0], Step::Schema { .. }));
    assert_eq!(
        changes(&steps),
        vec![Change::Upsert(vec![Value::Integer(1), Value::text("a")])]
    );
    match steps.last().unwrap() {
        Step::TxEnd {
            checkpoint: Some(cp),
            kind: EndKind::Commit,
            event_time,
        } => {
            assert_eq!(cp.shard_gtids[0].gtid, "MySQL56/u:1-5");
            assert_eq!(*event_time, 1_700_000_000);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_primary_key_change_deletes_the_old_key_then_upserts() {
    let steps = run(vec![
        ev(VEventType::Begin),
        field_event(),
        row_event(
            Some(row(&[Some("1"), Some("a")])),
            Some(row(&[Some("2"), Some("a")])),
        ),
        row_event(Some(row(&[Some("2"), Some("a")])), None),
    ])
    .unwrap();
    assert_eq!(
        changes(&steps),
        vec![
            Change::Delete(vec![Value::Integer(1)]),
            Change::Upsert(vec![Value::Integer(2), Value::text("a")]),
            Change::Delete(vec![Value::Integer(2)]),
        ]
    );
}

#[test]
fn an_empty_table_in_copy_opens_begin_twice_and_ends_once() {
    let steps = run(vec![
        ev(VEventType::Begin),
        field_event(),
        vgtid_event("MySQL56/u:1-5"),
        ev(VEventType::Begin),
        vgtid_event("MySQL56/u:1-5"),
        ev(VEventType::Commit),
    ])
    .unwrap();
    assert_eq!(
        steps
            .iter()
            .filter(|s| matches!(s, Step::TxEnd { .. }))
            .count(),
        1
    );
}

#[test]
fn ddl_and_other_end_a_transaction_without_begin() {
    let steps = run(vec![vgtid_event("MySQL56/u:1-6"), ev(VEventType::Other)]).unwrap();
    assert!(matches!(
        steps[0],
        Step::TxEnd {
            kind: EndKind::Other,
            checkpoint: Some(_),
            ..
        }
    ));
}

#[test]
fn copy_completed_per_shard_and_final_are_told_apart() {
    let mut last = ev(VEventType::CopyCompleted);
    last.keyspace.clear();
    last.shard.clear();
    let steps = run(vec![ev(VEventType::CopyCompleted), last]).unwrap();
    assert!(matches!(&steps[0], Step::ShardCopyCompleted { shard } if shard == "-80"));
    assert!(matches!(steps[1], Step::CopyCompleted));
}

fn decode_error(events: Vec<VEvent>) -> String {
    format!("{:#}", run(events).unwrap_err())
}

#[test]
fn a_row_before_its_field_event_is_an_error_naming_the_table() {
    let e = decode_error(vec![
        ev(VEventType::Begin),
        row_event(None, Some(row(&[Some("1"), None]))),
    ]);
    assert!(
        e.contains("table t") && e.contains("before its FIELD"),
        "{e}"
    );
}

#[test]
fn wrong_value_counts_and_bad_lengths_are_errors_not_panics() {
    let mut overrun = row(&[Some("1"), Some("a")]);
    overrun.lengths[1] = 1_000;
    let mut negative = row(&[Some("1"), Some("a")]);
    negative.lengths[1] = -2;
    let mut huge = row(&[Some("1"), Some("a")]);
    huge.lengths[0] = i64::MAX;
    let mut trailing = row(&[Some("1"), Some("a")]);
    trailing.values = b"1ab".to_vec().into();
    for bad in [row(&[Some("1")]), overrun, negative, huge, trailing] {
        let e = decode_error(vec![
            ev(VEventType::Begin),
            field_event(),
            row_event(None, Some(bad)),
        ]);
        assert!(e.contains("table t"), "{e}");
        assert!(!e.contains("\"a\""), "errors never show values: {e}");
    }
}

#[test]
fn commit_without_begin_is_an_error() {
    assert!(decode_error(vec![ev(VEventType::Commit)]).contains("COMMIT without BEGIN"));
}

#[test]
fn a_transaction_with_rows_may_only_end_with_its_vgtid() {
    let rows_then = |end: VEventType| {
        vec![
            ev(VEventType::Begin),
            field_event(),
            row_event(None, Some(row(&[Some("1"), None]))),
            ev(end),
        ]
    };
    for end in [VEventType::Commit, VEventType::Other] {
        let e = decode_error(rows_then(end));
        assert!(e.contains("without its VGTID"), "{e}");
    }
    // Without rows (vttablet's end of a table copy: BEGIN, LASTPK, COMMIT) it is no error.
    let lastpk_only = vec![
        ev(VEventType::Begin),
        ev(VEventType::Lastpk),
        ev(VEventType::Commit),
    ];
    assert!(run(lastpk_only).is_ok());
}

#[test]
fn a_vgtid_before_a_transactions_rows_does_not_stand_in_for_its_own() {
    let row = || row_event(None, Some(row(&[Some("1"), None])));
    // A stray VGTID between transactions, then a transaction that ends without its own.
    let stray_before = vec![
        vgtid_event("MySQL56/a:1-5"),
        ev(VEventType::Begin),
        field_event(),
        row(),
        ev(VEventType::Commit),
    ];
    let e = decode_error(stray_before);
    assert!(e.contains("without its VGTID"), "{e}");
    // The VGTID inside the transaction but before its last row change does not count either.
    let between_rows = vec![
        ev(VEventType::Begin),
        field_event(),
        row(),
        vgtid_event("MySQL56/a:1-6"),
        row(),
        ev(VEventType::Commit),
    ];
    let e = decode_error(between_rows);
    assert!(e.contains("without its VGTID"), "{e}");
    // Its own VGTID after the last row change ends it, whatever came before.
    let own = vec![
        vgtid_event("MySQL56/a:1-5"),
        ev(VEventType::Begin),
        field_event(),
        row(),
        vgtid_event("MySQL56/a:1-6"),
        ev(VEventType::Commit),
    ];
    let steps = run(own).unwrap();
    let ends: Vec<_> = (steps.iter())
        .filter_map(|s| match s {
            Step::TxEnd { checkpoint, .. } => Some(checkpoint.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 1);
    let gtid = ends[0].as_ref().map(|v| v.shard_gtids[0].gtid.clone());
    assert_eq!(gtid.as_deref(), Some("MySQL56/a:1-6"));
}

/// A row change with a `data_columns` bitmap of `count` columns (bytes `cols`).
fn partial(before: Option<Row>, after: Option<Row>, count: i64, cols: &[u8]) -> VEvent {
    let mut e = row_event(before, after);
    if let Some(re) = e.row_event.as_mut() {
        re.row_changes[0].data_columns = Some(Bitmap {
            count,
            cols: cols.to_vec(),
        });
    }
    e
}

fn three_column_field_event() -> VEvent {
    let mut e = field_event();
    if let Some(fe) = e.field_event.as_mut() {
        fe.fields.push(field("b", 10262, 0));
    }
    e
}

#[test]
fn column_bitmaps_are_read_least_significant_bit_first_as_mysql_writes_them() {
    let schema = |n: usize| {
        let fields: Vec<Field> = (0..n)
            .map(|i| field(&format!("c{i}"), 265, if i == 0 { 2 } else { 0 }))
            .collect();
        TableSchema::from_fields("t", &fields, true).unwrap()
    };
    let bitmap = |count: i64, cols: &[u8]| Bitmap {
        count,
        cols: cols.to_vec(),
    };
    let present = present_columns(&schema(3), &bitmap(3, &[0b101])).unwrap();
    assert_eq!(present, vec![true, false, true]);
    // Column 8 is bit 0 of the second byte; bits past the count are ignored.
    let present = present_columns(&schema(10), &bitmap(10, &[0b0000_0011, 0b1111_1101])).unwrap();
    let want = [true, true, false, false, false, false, false, false, true, false];
    assert_eq!(present, want);
}

#[test]
fn a_partial_update_becomes_a_merge_of_the_present_columns_on_the_before_images_key() {
    let steps = run(vec![
        ev(VEventType::Begin),
        three_column_field_event(),
        // NOBLOB: the unchanged blob is left out of both images (NULL, and bit 2 clear).
        partial(
            Some(row(&[Some("7"), Some("old"), None])),
            Some(row(&[Some("7"), Some("new"), None])),
            3,
            &[0b011],
        ),
        // A bitmap marking every column is a full image.
        partial(
            Some(row(&[Some("7"), Some("new"), None])),
            Some(row(&[Some("7"), Some("x"), Some("b")])),
            3,
            &[0b111],
        ),
        // A delete's before image deletes by key.
        partial(Some(row(&[Some("7"), None, None])), None, 3, &[0b001]),
    ])
    .unwrap();
    assert_eq!(
        changes(&steps),
        vec![
            Change::Merge {
                key: vec![Value::Integer(7)],
                values: vec![Value::Integer(7), Value::text("new"), Value::Null],
                present: vec![true, true, false],
            },
            Change::Upsert(vec![Value::Integer(7), Value::text("x"), Value::blob("b")]),
            Change::Delete(vec![Value::Integer(7)]),
        ]
    );
}

#[test]
fn images_the_mirror_cannot_complete_are_definite_errors_naming_table_and_key() {
    let begin = || vec![ev(VEventType::Begin), three_column_field_event()];
    let with = |e: VEvent| begin().into_iter().chain([e]).collect::<Vec<_>>();
    let full = || Some(row(&[Some("1"), Some("a"), None]));
    // A partial insert (an INSERT that did not name the blob).
    let msg = decode_error(with(partial(None, full(), 3, &[0b011])));
    assert!(msg.contains("insert") && msg.contains("key (id)"), "{msg}");
    assert!(msg.contains("leaves out columns b "), "{msg}");
    assert!(msg.contains("table t"), "{msg}");
    // A before image without its key.
    let keyless = Some(row(&[None, Some("a"), None]));
    let msg = decode_error(with(partial(keyless, full(), 3, &[0b011])));
    assert!(msg.contains("lacks the key (id)"), "{msg}");
    // Bitmaps that do not fit the FIELD event: never a panic.
    for (count, cols) in [(2, &[0b11][..]), (3, &[][..]), (-1, &[0xff][..]), (9, &[0xff][..])] {
        let msg = decode_error(with(partial(full(), full(), count, cols)));
        assert!(msg.contains("bitmap"), "{count} {cols:?}: {msg}");
    }
    // No column at all.
    let msg = decode_error(with(partial(full(), full(), 3, &[0])));
    assert!(msg.contains("carries no column"), "{msg}");
    // Partial JSON values have their own message.
    let mut e = partial(full(), full(), 3, &[0b111]);
    if let Some(re) = e.row_event.as_mut() {
        re.row_changes[0].json_partial_values = Some(Bitmap {
            count: 1,
            cols: vec![1],
        });
    }
    let msg = decode_error(with(e));
    assert!(msg.contains("PARTIAL_JSON"), "{msg}");
}

#[test]
fn unknown_event_types_are_skipped_and_missing_payloads_are_errors() {
    let unknown = VEvent {
        r#type: 99,
        ..Default::default()
    };
    assert!(run(vec![unknown]).unwrap().is_empty());
    assert!(run(vec![ev(VEventType::Field)]).is_err());
    assert!(run(vec![ev(VEventType::Vgtid)]).is_err());
    assert!(run(vec![ev(VEventType::Begin), ev(VEventType::Row)]).is_err());
}

#[test]
fn a_vgtid_failing_the_position_check_never_becomes_a_checkpoint() {
    let mut other = vgtid_event("MySQL56/u:1-5");
    if let Some(v) = other.vgtid.as_mut() {
        v.shard_gtids[0].keyspace = "elsewhere".into();
    }
    let e = decode_error(vec![ev(VEventType::Begin), other, ev(VEventType::Commit)]);
    assert!(e.contains("keyspace \"elsewhere\""), "{e}");
    let start = VGtid {
        shard_gtids: vec![ShardGtid {
            keyspace: "ks".into(),
            shard: "-80".into(),
            gtid: "MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9".into(),
            table_p_ks: vec![],
        }],
    };
    let mut d = Decoder::new(&Selection::keyspace("ks")).starting_at(&start);
    let backwards = vgtid_event("MySQL56/3e11fa47-71ca-11e1-9e33-c80aa9429562:1-8");
    let e = d
        .decode(backwards.try_into().unwrap(), &mut Vec::new())
        .unwrap_err();
    assert!(format!("{e:#}").contains("backwards"), "{e:#}");
}

fn second_table_field_event() -> VEvent {
    let mut e = field_event();
    if let Some(fe) = e.field_event.as_mut() {
        fe.table_name = "ks.u".into();
    }
    e
}

fn row_event_of(table: &str, id: &str) -> VEvent {
    let mut e = row_event(None, Some(row(&[Some(id), Some("x")])));
    if let Some(re) = e.row_event.as_mut() {
        re.table_name = table.into();
    }
    e
}

fn row_steps(steps: &[Step]) -> Vec<(String, usize)> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Rows {
                schema, changes, ..
            } => Some((schema.schema.table.clone(), changes.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn consecutive_row_events_of_one_table_become_one_step_in_stream_order() {
    let steps = run(vec![
        ev(VEventType::Begin),
        field_event(),
        second_table_field_event(),
        row_event_of("t", "1"),
        row_event_of("t", "2"),
        row_event_of("t", "3"),
        row_event_of("u", "4"),
        row_event_of("t", "5"),
        vgtid_event("MySQL56/u:1-5"),
        ev(VEventType::Commit),
    ])
    .unwrap();
    assert_eq!(
        row_steps(&steps),
        vec![("t".into(), 3), ("u".into(), 1), ("t".into(), 1)]
    );
    let ids: Vec<Value> = changes(&steps)
        .into_iter()
        .map(|c| match c {
            Change::Upsert(v) | Change::Delete(v) | Change::Merge { values: v, .. } => v[0].clone(),
        })
        .collect();
    let expected: Vec<Value> = [1, 2, 3, 4, 5].map(Value::Integer).into();
    assert_eq!(ids, expected);
}

#[test]
fn row_events_of_two_transactions_never_share_a_step() {
    let steps = run(vec![
        ev(VEventType::Begin),
        field_event(),
        row_event_of("t", "1"),
        vgtid_event("MySQL56/u:1-5"),
        ev(VEventType::Commit),
        ev(VEventType::Begin),
        row_event_of("t", "2"),
        vgtid_event("MySQL56/u:1-6"),
        ev(VEventType::Commit),
    ])
    .unwrap();
    assert_eq!(row_steps(&steps), vec![("t".into(), 1), ("t".into(), 1)]);
}
