//! A rule filter's WHERE clause as vstreamer (Vitess v24) applies it, for integer columns:
//! `col OP n`, `col IN (n, …)`, `col BETWEEN n AND m`, joined by AND, and `in_keyrange(…)`,
//! which the simulation takes to pass every row (vtmirror only adds one spanning every key).
//!
//! The images sent (`processRowEvent`): an image passes when every term holds; a row change
//! with no passing image is dropped; without a vindex match (`in_keyrange`) both images are
//! sent as soon as either passes; with one, only the passing images. A copied row is sent
//! when it passes.

use sqlparser::ast::{BinaryOperator, Expr, Value};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use tonic::Status;

use super::model::{Row, RowChange};
use crate::source::proto::query::Field;

#[derive(Debug, Clone, PartialEq)]
pub struct RowFilter {
    terms: Vec<Term>,
    /// Whether the filter holds a vindex match (`in_keyrange`).
    vindex: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Term {
    column: String,
    /// The integers the column may equal (IN) or its inclusive bounds.
    test: Test,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    In(Vec<i64>),
    Range(i64, i64),
    NotEqual(i64),
}

impl RowFilter {
    /// Parses the text after WHERE; anything but the forms above is UNIMPLEMENTED.
    pub fn parse(clause: &str) -> Result<RowFilter, Status> {
        let unsupported = |what: &str| {
            Status::unimplemented(format!(
                "simulated vtgate filters rows only by integer comparisons, IN, BETWEEN and \
                 in_keyrange; got {what}"
            ))
        };
        let expr = Parser::new(&MySqlDialect {})
            .try_with_sql(clause)
            .and_then(|mut p| p.parse_expr())
            .map_err(|e| unsupported(&e.to_string()))?;
        let mut filter = RowFilter {
            terms: Vec::new(),
            vindex: false,
        };
        let mut pending = vec![&expr];
        while let Some(expr) = pending.pop() {
            let term = match expr {
                Expr::BinaryOp {
                    left,
                    op: BinaryOperator::And,
                    right,
                } => {
                    pending.extend([right.as_ref(), left.as_ref()]);
                    continue;
                }
                Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("in_keyrange") => {
                    filter.vindex = true;
                    continue;
                }
                Expr::BinaryOp { left, op, right } => {
                    let n = int(right).ok_or_else(|| unsupported(&expr.to_string()))?;
                    let test = match op {
                        BinaryOperator::Eq => Test::In(vec![n]),
                        BinaryOperator::NotEq => Test::NotEqual(n),
                        BinaryOperator::Lt => Test::Range(i64::MIN, n.saturating_sub(1)),
                        BinaryOperator::LtEq => Test::Range(i64::MIN, n),
                        BinaryOperator::Gt => Test::Range(n.saturating_add(1), i64::MAX),
                        BinaryOperator::GtEq => Test::Range(n, i64::MAX),
                        _ => return Err(unsupported(&expr.to_string())),
                    };
                    (left, test)
                }
                Expr::In {
                    expr: left,
                    target: sqlparser::ast::InTarget::List(list),
                    negated: false,
                    ..
                } => {
                    let values: Option<Vec<i64>> = list.iter().map(int).collect();
                    let values = values.ok_or_else(|| unsupported(&expr.to_string()))?;
                    (left, Test::In(values))
                }
                Expr::Between {
                    expr: left,
                    negated: false,
                    low,
                    high,
                } => match (int(low), int(high)) {
                    (Some(low), Some(high)) => (left, Test::Range(low, high)),
                    _ => return Err(unsupported(&expr.to_string())),
                },
                other => return Err(unsupported(&other.to_string())),
            };
            let (column, test) = term;
            let Expr::Identifier(column) = column.as_ref() else {
                return Err(unsupported(&expr.to_string()));
            };
            filter.terms.push(Term {
                column: column.value.clone(),
                test,
            });
        }
        Ok(filter)
    }

    /// Whether `row` (of a table with `fields`) passes; a missing column or NULL fails.
    pub fn passes(&self, fields: &[Field], row: &Row) -> bool {
        self.terms.iter().all(|term| {
            let value = (fields.iter())
                .position(|f| f.name.eq_ignore_ascii_case(&term.column))
                .and_then(|i| row.get(i)?.as_deref())
                .and_then(|bytes| std::str::from_utf8(bytes).ok()?.parse::<i64>().ok());
            match (value, &term.test) {
                (None, _) => false,
                (Some(v), Test::In(values)) => values.contains(&v),
                (Some(v), Test::Range(low, high)) => (*low..=*high).contains(&v),
                (Some(v), Test::NotEqual(n)) => v != *n,
            }
        })
    }

    /// The row change as vstreamer sends it, or None when it sends nothing.
    pub fn images(&self, fields: &[Field], change: &RowChange) -> Option<RowChange> {
        let passes = |image: &Option<Row>| image.as_ref().is_some_and(|r| self.passes(fields, r));
        let (before, after) = (passes(&change.before), passes(&change.after));
        if !before && !after {
            return None;
        }
        let keep = |image: &Option<Row>, passed: bool| match passed || !self.vindex {
            true => image.clone(),
            false => None,
        };
        Some(RowChange {
            table: change.table.clone(),
            before: keep(&change.before, before),
            after: keep(&change.after, after),
        })
    }
}

/// An integer literal, optionally negative.
fn int(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp {
            op: sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => int(expr).map(|n| -n),
        _ => None,
    }
}
