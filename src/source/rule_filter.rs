//! `--rule` filters with a WHERE clause: refused before connecting unless vstreamer (Vitess
//! v24) accepts them, and sent with a term that makes vstreamer judge every row image.
//!
//! Why the extra term: for a filter without `in_keyrange`, vstreamer (`processRowEvent`,
//! v24) sends BOTH images of an UPDATE as soon as either passes the filter. An UPDATE that
//! moves a row out of the filter therefore arrives as an ordinary update whose after image
//! no longer matches, and applying it keeps the row in the mirror (issue 29: on vttestserver
//! every row that left `tenant_id in (3,7)` stayed). Once the filter holds a vindex match,
//! vstreamer sends only the images that pass: before-only for a row moving out (the decoder
//! deletes it), after-only for one moving in (an upsert), both for one staying in. The term
//! added, `in_keyrange(col, 'xxhash', '-')`, is such a match that every row passes (the
//! `xxhash` vindex maps any value, NULL included, and `-` is the whole key range), so it
//! changes which images are sent and nothing else. vstreamer stays the one judge of the
//! predicate, in the copy and the binlog phase alike, with MySQL's collations and types:
//! vtmirror never evaluates it itself. The copy pushes only the user's terms down to MySQL.
//!
//! What vstreamer accepts (`analyzeWhere`, v24): terms joined by AND, each `col OP literal`
//! (`=`, `!=`/`<>`, `<`, `<=`, `>`, `>=`), `col IN (literals)`, `col IS [NOT] NULL`,
//! `col [NOT] BETWEEN literal AND literal`, or `in_keyrange(…)`. Anything else it refuses
//! only when it plans the table, which vtgate may not report for a long time (a table not
//! written to is never planned in the binlog phase), so it is refused here with its reason.

use anyhow::{bail, Context, Result};
use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArguments, InTarget, SetExpr, Statement, UnaryOperator, Value,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// The filter to send for rule `table` = `filter`: unchanged without a WHERE clause (or when
/// it is no SELECT, such as a regex rule's key range), else checked and with the term that
/// makes vstreamer send only passing images (module comment).
pub fn prepare(table: &str, filter: &str) -> Result<String> {
    let trimmed = filter.trim();
    let is_select = trimmed
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("select"));
    if !is_select {
        return Ok(filter.to_string());
    }
    let refused = || format!("--rule for table {table}: the filter");
    let mut statements = Parser::parse_sql(&MySqlDialect {}, trimmed)
        .with_context(|| format!("{} is not a SELECT vtmirror can read", refused()))?;
    let [Statement::Query(query)] = statements.as_mut_slice() else {
        bail!("{} must be one SELECT statement", refused());
    };
    let plain = query.with.is_none()
        && query.order_by.is_none()
        && query.limit_clause.is_none()
        && query.fetch.is_none()
        && query.locks.is_empty();
    let SetExpr::Select(select) = query.body.as_mut() else {
        bail!("{} must be a plain SELECT of one table", refused());
    };
    let grouped = !matches!(
        &select.group_by,
        sqlparser::ast::GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty()
    );
    let one_table = select.from.len() == 1 && select.from[0].joins.is_empty();
    if !plain || grouped || select.having.is_some() || !one_table {
        bail!(
            "{} must be a plain SELECT of one table (Vitess refuses ORDER BY, LIMIT, GROUP BY, \
             HAVING, joins and subqueries there)",
            refused()
        );
    }
    let Some(selection) = select.selection.take() else {
        return Ok(filter.to_string());
    };
    let mut terms = Vec::new();
    split_and(&selection, &mut terms);
    let mut column = None;
    let mut has_keyrange = false;
    for term in &terms {
        match check_term(term) {
            Ok(Some(name)) => {
                column.get_or_insert(name);
            }
            Ok(None) => has_keyrange = true,
            Err(reason) => bail!(
                "{} has a WHERE term Vitess cannot filter a stream by: {term} ({reason}); it \
                 accepts terms joined by AND, each `column OP literal` (=, !=, <, <=, >, >=), \
                 `column IN (literals)`, `column IS [NOT] NULL`, `column [NOT] BETWEEN literal \
                 AND literal` or `in_keyrange(...)`",
                refused()
            ),
        }
    }
    let with_term = match (has_keyrange, column) {
        // A vindex match is already there: vstreamer sends only passing images.
        (true, _) | (false, None) => selection,
        (false, Some(column)) => {
            let term = format!("in_keyrange({column}, 'xxhash', '-')");
            let term = Parser::new(&MySqlDialect {})
                .try_with_sql(&term)
                .and_then(|mut p| p.parse_expr())
                .with_context(|| format!("{} could not be extended", refused()))?;
            Expr::BinaryOp {
                left: Box::new(selection),
                op: BinaryOperator::And,
                right: Box::new(term),
            }
        }
    };
    select.selection = Some(with_term);
    Ok(statements[0].to_string())
}

/// The AND-joined terms of a WHERE clause (parentheses around terms are dropped, as
/// Vitess's parser does).
fn split_and<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner) => split_and(inner, out),
        other => out.push(other),
    }
}

/// Checks one WHERE term against vstreamer's `analyzeWhere`: Ok(Some(column)) for a column
/// predicate, Ok(None) for `in_keyrange(...)`, Err(why) for a term it refuses.
fn check_term(term: &Expr) -> std::result::Result<Option<String>, &'static str> {
    let ident = match term {
        Expr::BinaryOp {
            op: BinaryOperator::Or | BinaryOperator::Xor,
            ..
        } => return Err("OR is not supported"),
        Expr::BinaryOp { left, op, right } => {
            use BinaryOperator::*;
            if !matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq) {
                return Err("only =, !=, <, <=, >, >= compare");
            }
            literal(right)?;
            column(left)?
        }
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated: false,
            ..
        } => {
            list.iter().try_for_each(literal)?;
            column(expr)?
        }
        Expr::In { negated: true, .. } => return Err("NOT IN is not supported"),
        Expr::IsNull(expr) | Expr::IsNotNull(expr) => column(expr)?,
        Expr::Between {
            expr, low, high, ..
        } => {
            literal(low)?;
            literal(high)?;
            column(expr)?
        }
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("in_keyrange") => {
            return match &f.args {
                FunctionArguments::List(_) => Ok(None),
                _ => Err("in_keyrange needs arguments"),
            };
        }
        Expr::Function(_) => return Err("the only function allowed is in_keyrange"),
        Expr::Nested(_) => return Err("OR is not supported"),
        _ => return Err("not a supported comparison"),
    };
    // As written (a quoted name keeps its backticks), to name the column again.
    Ok(Some(ident.to_string()))
}

/// The column a term compares: an unqualified name.
fn column(expr: &Expr) -> std::result::Result<&sqlparser::ast::Ident, &'static str> {
    match expr {
        Expr::Identifier(ident) => Ok(ident),
        Expr::CompoundIdentifier(_) => Err("a qualified column name"),
        _ => Err("the left side must be a column"),
    }
}

/// A literal as Vitess's `*sqlparser.Literal`: a number (optionally negative), a string or a
/// hex literal. NULL, TRUE/FALSE and expressions are refused by vstreamer.
fn literal(expr: &Expr) -> std::result::Result<(), &'static str> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(..)
            | Value::SingleQuotedString(_)
            | Value::DoubleQuotedString(_)
            | Value::HexStringLiteral(_) => Ok(()),
            _ => Err("the right side must be a number or a string"),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } if matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Number(..))) => {
            Ok(())
        }
        Expr::Nested(inner) => literal(inner),
        _ => Err("the right side must be a number or a string"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_where_clause_gets_the_term_that_makes_vstreamer_judge_each_image() {
        let sent = prepare("t", "select * from t where tenant_id in (3, 7)").unwrap();
        assert_eq!(
            sent,
            "SELECT * FROM t WHERE tenant_id IN (3, 7) AND in_keyrange(tenant_id, 'xxhash', '-')"
        );
        let range = prepare(
            "t",
            "select id, v from `t` where `amount` between 100 and 499 and v != 'x' and n is null",
        )
        .unwrap();
        assert!(
            range.ends_with("AND in_keyrange(`amount`, 'xxhash', '-')"),
            "{range}"
        );
        for accepted in [
            "select * from t where a = -5 and b <> 'x' and c < 1.5 and d >= 0x1f",
            "select * from t where (a > 1 and b <= 2) and c is not null",
            "select * from t where a not between 'a' and 'm'",
        ] {
            assert!(prepare("t", accepted).is_ok(), "{accepted}");
        }
    }

    #[test]
    fn filters_without_a_where_clause_or_with_a_vindex_match_are_sent_as_given() {
        for given in [
            "select * from t",
            "select id, v from t",
            "-80",
            "",
            "select * from t where in_keyrange('-80')",
        ] {
            let sent = prepare("t", given).unwrap();
            assert!(
                sent == given || !sent.to_lowercase().contains("xxhash"),
                "{given} → {sent}"
            );
        }
        let mixed = prepare(
            "t",
            "select * from t where a = 1 and in_keyrange(id, 'hash', '-80')",
        );
        assert!(!mixed.unwrap().contains("xxhash"));
    }

    #[test]
    fn terms_vstreamer_refuses_are_refused_before_connecting_naming_the_table() {
        for refused in [
            "select * from t where v like 'v1%'",
            "select * from t where a = 1 or b = 2",
            "select * from t where a not in (1, 2)",
            "select * from t where t.a = 1",
            "select * from t where a = b",
            "select * from t where a + 1 = 2",
            "select * from t where upper(v) = 'X'",
            "select * from t where a = true",
            "select * from t where a in (select id from u)",
            "select * from t where a = 1 order by a",
            "select * from t where a = 1 limit 3",
            "select * from t, u where a = 1",
            "select * from t join u on t.id = u.id where a = 1",
            "select * from t where",
        ] {
            let err = prepare("accounts", refused).unwrap_err();
            let text = format!("{err:#}");
            assert!(
                text.contains("--rule for table accounts"),
                "{refused}: {text}"
            );
            assert_eq!(text.lines().count(), 1, "{refused}: {text}");
        }
    }
}
