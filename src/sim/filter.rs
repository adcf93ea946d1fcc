//! VStream filter rules: which tables a stream carries (first matching rule wins).
//!
//! `match` is a table name or `/regex` (a leading and trailing `/` are trimmed, as vttablet
//! does). Regexes are matched like Go's `regexp.MatchString` (unanchored search) with a small
//! engine supporting literals, `.`, `*`, `^` and `$`; anything else is UNIMPLEMENTED here.
//! A regex rule's `filter` must be empty; a table name's must be `select * from <table>` (as in
//! vttablet, where an empty one fails with "Query was empty"), optionally with a WHERE clause
//! `row_filter` models; other filters are UNIMPLEMENTED.

use tonic::Status;

use super::row_filter::RowFilter;
use crate::source::proto::binlogdata::Filter;

/// A validated table filter.
#[derive(Debug, Clone)]
pub struct TableFilter {
    rules: Vec<Matcher>,
    /// Each rule's WHERE clause, if it has one (same order as `rules`).
    row_filters: Vec<Option<RowFilter>>,
}

#[derive(Debug, Clone)]
enum Matcher {
    Name(String),
    Regex(Vec<char>),
}

impl TableFilter {
    /// Validates the request's filter (`None` = one rule `/.*`, like vtgate).
    pub fn new(filter: Option<&Filter>) -> Result<Self, Status> {
        let Some(filter) = filter else {
            return Ok(Self {
                rules: vec![Matcher::Regex(".*".chars().collect())],
                row_filters: vec![None],
            });
        };
        let mut rules = Vec::with_capacity(filter.rules.len());
        let mut row_filters = Vec::with_capacity(filter.rules.len());
        for rule in &filter.rules {
            let matcher = match rule.r#match.strip_prefix('/') {
                Some(re) => Matcher::Regex(validate_regex(re.trim_end_matches('/'))?),
                None => Matcher::Name(rule.r#match.clone()),
            };
            row_filters.push(check_rule_filter(&matcher, &rule.r#match, &rule.filter)?);
            rules.push(matcher);
        }
        Ok(Self { rules, row_filters })
    }

    /// The WHERE clause of the rule vttablet plans `table` by: the first matching one.
    pub fn row_filter(&self, table: &str) -> Option<&RowFilter> {
        let first = self.rules.iter().position(|r| r.matches(table))?;
        self.row_filters[first].as_ref()
    }

    /// Whether `table` is streamed.
    pub fn matches(&self, table: &str) -> bool {
        table != "dual" && self.rules.iter().any(|r| r.matches(table))
    }

    /// Plain table names named by rules (vttablet checks they exist when copying).
    pub fn named_tables(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().filter_map(|r| match r {
            Matcher::Name(n) => Some(n.as_str()),
            Matcher::Regex(_) => None,
        })
    }
}

impl Matcher {
    fn matches(&self, table: &str) -> bool {
        match self {
            Matcher::Name(n) => n == table,
            Matcher::Regex(re) => search(re, &table.chars().collect::<Vec<_>>()),
        }
    }
}

/// Checks a rule's filter; returns its WHERE clause, if any.
fn check_rule_filter(
    m: &Matcher,
    matched: &str,
    filter: &str,
) -> Result<Option<RowFilter>, Status> {
    let f = filter.trim();
    if f.is_empty() {
        // vttablet builds a plain table name's replication plan from the filter as a SELECT;
        // an empty one fails there ("Query was empty"), so refuse it up front.
        return match m {
            Matcher::Regex(_) => Ok(None),
            Matcher::Name(_) => Err(Status::invalid_argument(format!(
                "Query was empty: rule for table {matched:?} needs a 'select * from {matched}' filter"
            ))),
        };
    }
    let words: Vec<String> = f
        .split_whitespace()
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let table_ok = match m {
        Matcher::Name(n) => {
            words.get(3).map(|t| t.trim_matches('`')) == Some(n.to_ascii_lowercase().as_str())
        }
        Matcher::Regex(_) => false,
    };
    let select_all = words.len() >= 4 && words[..3] == ["select", "*", "from"] && table_ok;
    if select_all && words.len() == 4 {
        return Ok(None);
    }
    if select_all && words[4] == "where" {
        // The clause: the text after the fifth word, which is WHERE.
        let clause = (f.split_whitespace().skip(5)).collect::<Vec<_>>().join(" ");
        return RowFilter::parse(&clause).map(Some);
    }
    Err(Status::unimplemented(format!(
        "simulated vtgate supports only empty or 'select * from <table>' rule filters; got {filter:?} for match {matched:?}"
    )))
}

fn validate_regex(re: &str) -> Result<Vec<char>, Status> {
    let chars: Vec<char> = re.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let ok = match c {
            '^' => i == 0,
            '$' => i + 1 == chars.len(),
            '*' => i > 0 && chars[i - 1] != '*' && chars[i - 1] != '^',
            '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '\\' => false,
            _ => true,
        };
        if !ok {
            return Err(Status::unimplemented(format!(
                "simulated vtgate supports only literal, '.', '*', '^' and '$' in filter regexes; got /{re}"
            )));
        }
    }
    Ok(chars)
}

/// Unanchored search (Kernighan & Pike's matcher).
fn search(re: &[char], text: &[char]) -> bool {
    if let Some(rest) = re.strip_prefix(&['^']) {
        return match_here(rest, text);
    }
    (0..=text.len()).any(|i| match_here(re, &text[i..]))
}

fn match_here(re: &[char], text: &[char]) -> bool {
    match re {
        [] => true,
        ['$'] => text.is_empty(),
        [c, '*', rest @ ..] => match_star(*c, rest, text),
        [c, rest @ ..] => match text.split_first() {
            Some((t, tail)) if *c == '.' || c == t => match_here(rest, tail),
            _ => false,
        },
    }
}

fn match_star(c: char, re: &[char], text: &[char]) -> bool {
    let mut i = 0;
    loop {
        if match_here(re, &text[i..]) {
            return true;
        }
        if i < text.len() && (c == '.' || text[i] == c) {
            i += 1;
        } else {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::proto::binlogdata::Rule;

    fn filter(rules: &[(&str, &str)]) -> Result<TableFilter, Status> {
        let rules = rules
            .iter()
            .map(|(m, f)| Rule {
                r#match: m.to_string(),
                filter: f.to_string(),
            })
            .collect();
        TableFilter::new(Some(&Filter {
            rules,
            ..Filter::default()
        }))
    }

    #[test]
    fn a_table_name_with_an_empty_filter_is_refused_like_vttablet() {
        let e = filter(&[("corder", "")]).err().unwrap();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("Query was empty"));
    }

    #[test]
    fn regex_and_names() {
        assert!(filter(&[("/.*", "")]).unwrap().matches("customer"));
        assert!(filter(&[("/.*/", "")]).unwrap().matches("customer"));
        assert!(!filter(&[("/.*", "")]).unwrap().matches("dual"));
        let f = filter(&[("/^c.*r$", "")]).unwrap();
        assert!(f.matches("customer") && f.matches("corder") && !f.matches("accounts"));
        assert!(filter(&[("/ord", "")]).unwrap().matches("corder"));
        let f = filter(&[("corder", "select * from corder")]).unwrap();
        assert!(f.matches("corder") && !f.matches("customer"));
        assert!(TableFilter::new(None).unwrap().matches("accounts"));
    }

    #[test]
    fn unsupported_filters_are_unimplemented() {
        let e = filter(&[("corder", "select id from corder")]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented);
        let e = filter(&[("/(a|b)", "")]).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unimplemented);
    }
}
