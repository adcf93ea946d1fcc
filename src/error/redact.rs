//! Row values out of relayed remote errors. vtgate passes vttablet and MySQL error text on
//! as is, and that text can quote the data: a duplicate key's value, bind variables, the
//! statement with its literals. Everything vtmirror shows or stores of a remote error goes
//! through `redact` first, so a log line or the mirror's `last_error` never holds row data.

pub const REDACTED: &str = "<redacted>";

/// Markers after which a value runs to a closing delimiter: (opening text, how it ends).
const QUOTED: &[(&str, End)] = &[
    // MySQL 1062: Duplicate entry 'x' for key 'PRIMARY' (the value may hold quotes).
    ("Duplicate entry '", End::Before("' for key")),
    // MySQL 1366 / 1292: Incorrect integer value: 'abc' for column 'x' at row 1.
    ("value: '", End::Before("' for column")),
    // MySQL 1292: Truncated incorrect DOUBLE value: 'abc'.
    ("value: '", End::Quote('\'')),
    // vttablet: ... Sql: "insert into t values (...)", BindVars: {...}
    ("Sql: \"", End::Quote('"')),
    ("BindVars: {", End::Brace),
    // Vitess's MySQL client: ... (errno 1062) (sqlstate 23000) during query: insert ...
    ("during query: ", End::Line),
];

#[derive(Clone, Copy)]
enum End {
    /// The last occurrence of this text after the opening (values can contain the delimiter).
    Before(&'static str),
    /// The next unescaped quote.
    Quote(char),
    /// The matching closing brace, quotes respected.
    Brace,
    /// The end of the line.
    Line,
}

/// `text` with every quoted value, statement and bind variable list replaced by `<redacted>`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (opening, end) in QUOTED {
        out = redact_after(&out, opening, *end);
    }
    out
}

fn redact_after(text: &str, opening: &str, end: End) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(opening) {
        let value_start = at + opening.len();
        out.push_str(&rest[..value_start]);
        let value = &rest[value_start..];
        match value_len(value, end) {
            Some(len) => {
                if !value[..len].is_empty() && &value[..len] != REDACTED {
                    out.push_str(REDACTED);
                } else {
                    out.push_str(&value[..len]);
                }
                rest = &value[len..];
            }
            // An unterminated value: hide everything after the marker.
            None => {
                out.push_str(REDACTED);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Length of the value at the start of `value`, up to (not including) its end.
fn value_len(value: &str, end: End) -> Option<usize> {
    match end {
        End::Before(closing) => value.rfind(closing),
        End::Line => Some(value.find('\n').unwrap_or(value.len())),
        End::Quote(quote) => {
            let mut escaped = false;
            for (i, c) in value.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    c if c == quote => return Some(i),
                    _ => {}
                }
            }
            None
        }
        End::Brace => {
            let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
            for (i, c) in value.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => in_string = !in_string,
                    '{' if !in_string => depth += 1,
                    '}' if !in_string && depth == 0 => return Some(i),
                    '}' if !in_string => depth -= 1,
                    _ => {}
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of vttablet's errors relayed by vtgate (tabletserver's terse-error format).
    const DUPLICATE: &str = "target: commerce.-80.primary: vttablet: rpc error: code = AlreadyExists desc = Duplicate entry 'alice@example.com' for key 'customer.email_idx' (errno 1062) (sqlstate 23000) (CallerID: userData1): Sql: \"insert into customer(customer_id, email) values (:vtg1 /* INT64 */, :vtg2 /* VARCHAR */)\", BindVars: {vtg1: \"type:INT64 value:\\\"7\\\"\"vtg2: \"type:VARCHAR value:\\\"alice@example.com\\\"\"}";

    #[test]
    fn a_duplicate_key_error_keeps_its_shape_but_not_the_values() {
        let shown = redact(DUPLICATE);
        assert!(!shown.contains("alice"), "{shown}");
        assert!(!shown.contains("\"7\""), "{shown}");
        assert!(
            shown
                .contains("Duplicate entry '<redacted>' for key 'customer.email_idx' (errno 1062)"),
            "{shown}"
        );
        assert!(
            shown.contains("Sql: \"<redacted>\", BindVars: {<redacted>}"),
            "{shown}"
        );
        assert!(shown.starts_with(
            "target: commerce.-80.primary: vttablet: rpc error: code = AlreadyExists"
        ));
    }

    #[test]
    fn nested_bind_variables_are_hidden_whole() {
        let text = "Table 'vt_test_0.foo' doesn't exist (errno 1146) (sqlstate 42S02) (CallerID: unsecure_grpc_client): Sql: \"select * from foo where id in ::vtg1\", BindVars: {vtg1: \"type:TUPLE values:{type:INT64 value:\\\"10001\\\"}\"} and after";
        let shown = redact(text);
        assert!(!shown.contains("10001"), "{shown}");
        assert!(
            shown.ends_with("BindVars: {<redacted>} and after"),
            "{shown}"
        );
        assert!(
            shown.contains("Table 'vt_test_0.foo' doesn't exist"),
            "{shown}"
        );
    }

    #[test]
    fn a_statement_quoted_by_the_mysql_client_is_hidden() {
        let text = "vttablet: rpc error: code = Unknown desc = stream (at source tablet) error @ MySQL56/x:1-5: Duplicate entry '5' for key 'PRIMARY' (errno 1062) (sqlstate 23000) during query: insert into t1(id,val) values (5,'secret value')\nnext line";
        let shown = redact(text);
        assert!(!shown.contains("secret value"), "{shown}");
        assert!(
            shown.contains("during query: <redacted>\nnext line"),
            "{shown}"
        );
        assert!(shown.contains("Duplicate entry '<redacted>' for key 'PRIMARY'"));
    }

    #[test]
    fn values_quoted_in_conversion_errors_are_hidden() {
        let text = "Incorrect integer value: 'not-a-number' for column 'qty' at row 1 (errno 1366); Truncated incorrect DOUBLE value: '12abc'";
        let shown = redact(text);
        assert!(
            !shown.contains("not-a-number") && !shown.contains("12abc"),
            "{shown}"
        );
        assert!(shown.contains("for column 'qty' at row 1"), "{shown}");
    }

    #[test]
    fn a_value_containing_the_delimiter_and_an_unterminated_one_are_hidden() {
        let shown = redact("Duplicate entry 'it's' for key 'PRIMARY'");
        assert_eq!(shown, "Duplicate entry '<redacted>' for key 'PRIMARY'");
        let cut = redact("Sql: \"insert into t values ('cut off");
        assert_eq!(cut, "Sql: \"<redacted>");
    }

    #[test]
    fn errors_without_data_are_unchanged_and_redaction_is_stable() {
        let text = "shard provided in VGTID, 0, not found in the customer keyspace";
        assert_eq!(redact(text), text);
        assert_eq!(redact(&redact(DUPLICATE)), redact(DUPLICATE));
    }
}
