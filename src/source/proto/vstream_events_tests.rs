use super::*;
use crate::source::proto::binlogdata::{self, ShardGtid};
use crate::source::proto::query::Field;

fn full_row_event(table: &str, shard: &str) -> VEvent {
    VEvent {
        r#type: binlogdata::VEventType::Row as i32,
        timestamp: 1_700_000_000,
        gtid: "skipped".into(),
        current_time: 42,
        keyspace: "commerce".into(),
        shard: shard.into(),
        row_event: Some(binlogdata::RowEvent {
            table_name: table.into(),
            row_changes: vec![binlogdata::RowChange {
                before: Some(Row {
                    lengths: vec![1, -1],
                    values: Bytes::from_static(b"7"),
                }),
                after: Some(Row {
                    lengths: vec![1, 2],
                    values: Bytes::from_static(b"7ab"),
                }),
                data_columns: Some(Bitmap {
                    count: 2,
                    cols: vec![3],
                }),
                json_partial_values: None,
            }],
            keyspace: "commerce".into(),
            shard: shard.into(),
            flags: 1,
            is_internal_table: true,
        }),
        ..Default::default()
    }
}

#[test]
fn a_full_event_reads_as_the_sync_view_and_encodes_back_to_the_fields_it_keeps() {
    let long_table = "t".repeat(INLINE_NAME + 1);
    for table in ["customer", long_table.as_str()] {
        let full = full_row_event(table, "-80");
        let view = Event::try_from(full.clone()).unwrap();
        assert_eq!(&*view.shard, b"-80");
        assert_eq!(&*view.keyspace, b"commerce");
        let row_event = view.row_event.as_ref().unwrap();
        assert_eq!(&*row_event.table_name, table.as_bytes());
        assert!(
            matches!(
                row_event.table_name,
                Name::Inline { .. } if table.len() <= INLINE_NAME
            ) || table.len() > INLINE_NAME
        );
        assert!(row_event.is_internal_table);
        let back = VEvent::decode(view.encode_to_vec().as_slice()).unwrap();
        let kept = VEvent {
            gtid: String::new(),
            current_time: 0,
            row_event: full.row_event.map(|r| binlogdata::RowEvent {
                keyspace: String::new(),
                flags: 0,
                ..r
            }),
            ..full
        };
        assert_eq!(back, kept);
    }
}

#[test]
fn field_and_vgtid_payloads_survive_the_sync_view() {
    let full = VEvent {
        r#type: binlogdata::VEventType::Field as i32,
        statement: "alter table t add column c int".into(),
        field_event: Some(FieldEvent {
            table_name: "t".into(),
            fields: vec![Field {
                name: "id".into(),
                r#type: 265,
                ..Default::default()
            }],
            ..Default::default()
        }),
        vgtid: Some(VGtid {
            shard_gtids: vec![ShardGtid {
                keyspace: "ks".into(),
                shard: "0".into(),
                gtid: "MySQL56/u:1-5".into(),
                table_p_ks: vec![],
            }],
        }),
        ..Default::default()
    };
    let view = Event::try_from(full.clone()).unwrap();
    assert_eq!(view.field_event.as_deref(), full.field_event.as_ref());
    assert_eq!(view.vgtid.as_deref(), full.vgtid.as_ref());
    assert_eq!(view.statement, full.statement);
    assert_eq!(
        VEvent::decode(view.encode_to_vec().as_slice()).unwrap(),
        full
    );
}

#[test]
fn names_that_overrun_their_message_are_decode_errors() {
    // Field 23 (shard), length 5, but only 2 bytes follow.
    let truncated = [0xba, 0x01, 0x05, b'-', b'8'];
    assert!(Event::decode(&truncated[..]).is_err());
    // Field 23 with the wrong wire type (varint).
    assert!(Event::decode(&[0xb8, 0x01, 0x05][..]).is_err());
}
