use super::*;

fn raw(bytes: &[u8]) -> Option<&[u8]> {
    Some(bytes)
}

fn col(vitess_type: i32) -> ColumnType {
    ColumnType {
        vitess_type,
        collation: 255,
        column_type: String::new(),
        enum_set_strings: true,
    }
}

#[test]
fn unsigned_bigint_above_i64_is_kept_as_exact_text() {
    let v = to_sql_bytes(&col(vtype::UINT64), raw(b"18446744073709551615")).unwrap();
    assert_eq!(v, Value::text("18446744073709551615"));
    let v = to_sql_bytes(&col(vtype::UINT64), raw(b"7")).unwrap();
    assert_eq!(v, Value::Integer(7));
}

#[test]
fn floats_from_copy_and_binlog_phases_store_the_same_value() {
    for (copy, binlog) in [("1.1", "1.1E+00"), ("1e20", "1E+20"), ("-0.5", "-5E-01")] {
        for t in [vtype::FLOAT32, vtype::FLOAT64] {
            let a = to_sql_bytes(&col(t), raw(copy.as_bytes())).unwrap();
            let b = to_sql_bytes(&col(t), raw(binlog.as_bytes())).unwrap();
            assert_eq!(a, b, "{copy} vs {binlog}");
        }
    }
    assert_eq!(
        to_sql_bytes(&col(vtype::FLOAT32), raw(b"1.1")).unwrap(),
        Value::Real(1.1)
    );
}

#[test]
fn enum_and_set_indexes_from_old_servers_become_member_strings() {
    let mut c = col(vtype::ENUM);
    c.enum_set_strings = false;
    c.column_type = "enum('small','it''s')".into();
    assert_eq!(to_sql_bytes(&c, raw(b"2")).unwrap(), Value::text("it's"));
    assert_eq!(to_sql_bytes(&c, raw(b"0")).unwrap(), Value::text(""));
    c.vitess_type = vtype::SET;
    c.column_type = "set('a','b','c')".into();
    assert_eq!(to_sql_bytes(&c, raw(b"5")).unwrap(), Value::text("a,c"));
}

#[test]
fn latin1_text_is_transcoded_and_binary_text_stays_bytes() {
    let mut c = col(vtype::VARCHAR);
    c.collation = 8;
    assert_eq!(
        to_sql_bytes(&c, raw(b"caf\xe9 \x80")).unwrap(),
        Value::text("café €")
    );
    c.collation = BINARY_COLLATION;
    assert_eq!(
        to_sql_bytes(&c, raw(b"\xff")).unwrap(),
        Value::blob(vec![0xff])
    );
}

#[test]
fn member_lists_with_stray_parentheses_are_read_without_panicking() {
    // Found by tests/faults/fuzz.rs: `)` before `(` sliced backwards.
    // An unterminated quote after `(` reads as one empty member.
    assert_eq!(enum_members("')b('"), vec![String::new()]);
    assert_eq!(enum_members(")enum('a')"), vec!["a".to_string()]);
    let mut c = col(vtype::ENUM);
    c.enum_set_strings = false;
    c.column_type = ")(".into();
    assert!(to_sql_bytes(&c, raw(b"1")).is_err());
}

#[test]
fn malformed_numbers_are_errors_not_panics() {
    assert!(to_sql_bytes(&col(vtype::INT64), raw(b"12x")).is_err());
    assert!(to_sql_bytes(&col(vtype::INT64), raw(b"\xff")).is_err());
    assert!(to_sql_bytes(&col(vtype::FLOAT64), raw(b"")).is_err());
    assert!(to_sql_bytes(&col(vtype::UINT64), raw(b"-1")).is_err());
}

#[test]
fn long_utf8_text_and_blobs_share_the_receive_buffer_instead_of_being_copied() {
    let owner = Bytes::from(format!("{}\u{e9}\u{ff}", "x".repeat(40)).into_bytes());
    let text = Raw::within(&owner, 0..42).unwrap();
    let Value::Text(stored) = to_sql(&col(vtype::VARCHAR), Some(text)).unwrap() else {
        panic!("VARCHAR is text");
    };
    assert_eq!(stored.as_ptr(), owner.as_ptr());
    let mut binary = col(vtype::VARBINARY);
    binary.collation = BINARY_COLLATION;
    let Value::Blob(blob) = to_sql(&binary, Some(Raw::whole(&owner))).unwrap() else {
        panic!("VARBINARY is a blob");
    };
    assert_eq!(blob.as_ptr(), owner.as_ptr());
    let mut latin1 = col(vtype::VARCHAR);
    latin1.collation = 8;
    assert_eq!(
        to_sql(&latin1, Raw::within(&owner, 0..40)).unwrap(),
        Value::text("x".repeat(40))
    );
    let lone_continuation_byte = Raw::within(&owner, 41..42);
    assert!(to_sql(&col(vtype::VARCHAR), lone_continuation_byte).is_err());
}

#[test]
fn a_float_stores_what_mysql_shows_whichever_phase_sent_it() {
    // (MySQL's text in the copy phase, Vitess's binlog text of the same float32, stored value)
    for (copy, binlog, stored) in [
        ("16777200", "1.6777216E+07", 16777200.0),
        ("123457", "1.2345679E+05", 123457.0),
        ("1.4013e-45", "1E-45", 1.4013e-45),
        ("1.17549e-38", "1.1754942E-38", 1.17549e-38),
        ("-3.40282e38", "-3.4028235E+38", -3.40282e38),
        ("1234560", "1.234565E+06", 1234560.0),
        ("0", "-0E+00", 0.0),
        ("0.1", "1E-01", 0.1),
    ] {
        let a = to_sql_bytes(&col(vtype::FLOAT32), raw(copy.as_bytes())).unwrap();
        let b = to_sql_bytes(&col(vtype::FLOAT32), raw(binlog.as_bytes())).unwrap();
        assert_eq!(a, Value::Real(stored), "copy {copy}");
        assert_eq!(b, Value::Real(stored), "binlog {binlog}");
    }
    let negative_zero = to_sql_bytes(&col(vtype::FLOAT32), raw(b"-0E+00")).unwrap();
    assert!(matches!(negative_zero, Value::Real(z) if z.is_sign_positive()));
}

#[test]
fn a_float_with_declared_decimals_keeps_them_as_mysql_prints_them() {
    let mut c = col(vtype::FLOAT32);
    c.column_type = "float(12,4) unsigned".into();
    // MySQL shows 123456.7891; the binlog sends the float32 123456.7890625.
    let a = to_sql_bytes(&c, raw(b"123456.7891")).unwrap();
    let b = to_sql_bytes(&c, raw(b"1.2345679E+05")).unwrap();
    assert_eq!(a, Value::Real(123456.7891));
    assert_eq!(b, Value::Real(123456.7891));
}

#[test]
fn json_from_the_binlog_is_stored_as_mysql_prints_it() {
    let binlog = br#"{"aa": 2, "b": [1, 1e16, "x"], "ccc": {"z": null, "yy": true}}"#;
    let mysql = r#"{"b": [1, 1e16, "x"], "aa": 2, "ccc": {"z": null, "yy": true}}"#;
    assert_eq!(
        to_sql_bytes(&col(vtype::JSON), raw(binlog)).unwrap(),
        Value::text(mysql)
    );
    assert_eq!(
        to_sql_bytes(&col(vtype::JSON), raw(mysql.as_bytes())).unwrap(),
        Value::text(mysql)
    );
    assert!(to_sql_bytes(&col(vtype::JSON), raw(b"JSON_INSERT(x)")).is_err());
}
