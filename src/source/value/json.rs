//! JSON values as MySQL prints them, whichever phase delivered them.
//!
//! The copy phase sends MySQL's own text. The binlog phase sends Vitess's rendering of the
//! binary JSON (`go/mysql/json`), which differs in one way that matters: MySQL orders an
//! object's keys by length, then bytes (its binary JSON order), Vitess by bytes alone. So
//! `{"b": 1, "aa": 2}` from a copy would come back as `{"aa": 2, "b": 1}` from the binlog.
//! Both phases are therefore rewritten here into MySQL's text: keys ordered by (length in
//! bytes, bytes), `", "` and `": "` separators, strings escaped as MySQL escapes them.
//! Numbers keep their text: MySQL and Vitess print integers alike and doubles by the same
//! rule (shortest digits, plain notation for 1e-15 ≤ |x| < 1e15, else `1e15` / `1.5e-16`,
//! `.0` on integral doubles), checked against MySQL 9.7 in `tests/e2e/fidelity.rs`.
//! MySQL's text is left unchanged by this rewrite (a fixed point), so it costs the copy
//! phase a parse, never a different value.

use anyhow::{bail, Context, Result};

/// MySQL refuses documents nested deeper than 100 levels; this bounds our recursion.
const MAX_DEPTH: usize = 512;

/// `text` (any valid JSON) as MySQL prints it.
pub fn mysql_text(text: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(text).context("JSON value is not valid UTF-8")?;
    let mut parser = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    let mut out = String::with_capacity(text.len());
    parser.value(&mut out, 0)?;
    parser.skip_space();
    if parser.pos != parser.s.len() {
        bail!("JSON value has text after its end (byte {})", parser.pos);
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while matches!(self.s.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Result<u8> {
        self.skip_space();
        match self.s.get(self.pos) {
            Some(&b) => Ok(b),
            None => bail!("JSON value ends early"),
        }
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek()? != byte {
            bail!(
                "JSON value: expected '{}' at byte {}",
                byte as char,
                self.pos
            );
        }
        self.pos += 1;
        Ok(())
    }

    fn value(&mut self, out: &mut String, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            bail!("JSON value nested deeper than {MAX_DEPTH} levels");
        }
        match self.peek()? {
            b'{' => self.object(out, depth),
            b'[' => self.array(out, depth),
            b'"' => {
                let text = self.string()?;
                escape_into(out, &text);
                Ok(())
            }
            b't' => self.literal(out, "true"),
            b'f' => self.literal(out, "false"),
            b'n' => self.literal(out, "null"),
            b'-' | b'0'..=b'9' => self.number(out),
            _ => bail!("JSON value: unexpected byte at {}", self.pos),
        }
    }

    fn object(&mut self, out: &mut String, depth: usize) -> Result<()> {
        self.expect(b'{')?;
        let mut members: Vec<(String, String)> = Vec::new();
        if self.peek()? != b'}' {
            loop {
                if self.peek()? != b'"' {
                    bail!("JSON value: object key expected at byte {}", self.pos);
                }
                let key = self.string()?;
                self.expect(b':')?;
                let mut value = String::new();
                self.value(&mut value, depth + 1)?;
                members.push((key, value));
                if self.peek()? == b',' {
                    self.pos += 1;
                    continue;
                }
                break;
            }
        }
        self.expect(b'}')?;
        // MySQL's binary JSON order: shorter keys first, then bytewise.
        members.sort_by(|(a, _), (b, _)| (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes())));
        out.push('{');
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            escape_into(out, key);
            out.push_str(": ");
            out.push_str(value);
        }
        out.push('}');
        Ok(())
    }

    fn array(&mut self, out: &mut String, depth: usize) -> Result<()> {
        self.expect(b'[')?;
        out.push('[');
        if self.peek()? != b']' {
            let mut first = true;
            loop {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                self.value(out, depth + 1)?;
                if self.peek()? == b',' {
                    self.pos += 1;
                    continue;
                }
                break;
            }
        }
        self.expect(b']')?;
        out.push(']');
        Ok(())
    }

    fn literal(&mut self, out: &mut String, word: &str) -> Result<()> {
        if !self.s[self.pos..].starts_with(word.as_bytes()) {
            bail!("JSON value: bad literal at byte {}", self.pos);
        }
        self.pos += word.len();
        out.push_str(word);
        Ok(())
    }

    /// A number is copied as written, after checking JSON's number grammar.
    fn number(&mut self, out: &mut String) -> Result<()> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while p.s.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos > from
        };
        if self.s.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let mut ok = digits(self);
        if ok && self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            ok = digits(self);
        }
        if ok && matches!(self.s.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.s.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            ok = digits(self);
        }
        if !ok {
            bail!("JSON value: bad number at byte {start}");
        }
        // The slice is ASCII digits and signs, so it is valid UTF-8.
        out.push_str(std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default());
        Ok(())
    }

    /// A string's decoded text (escapes resolved).
    fn string(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let mut text = String::new();
        loop {
            let start = self.pos;
            while !matches!(self.s.get(self.pos), Some(b'"' | b'\\') | None) {
                self.pos += 1;
            }
            // `s` came from a &str and we stopped at ASCII bytes: a char boundary.
            text.push_str(std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default());
            match self.s.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(text);
                }
                Some(_) => {
                    self.pos += 1;
                    text.push(self.escape()?);
                }
                None => bail!("JSON value: unterminated string"),
            }
        }
    }

    fn escape(&mut self) -> Result<char> {
        let Some(&b) = self.s.get(self.pos) else {
            bail!("JSON value: unterminated escape");
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape()?,
            _ => bail!("JSON value: bad escape at byte {}", self.pos - 1),
        })
    }

    fn unicode_escape(&mut self) -> Result<char> {
        let high = self.hex4()?;
        if !(0xD800..0xDC00).contains(&high) {
            return char::from_u32(high).context("JSON value: lone low surrogate");
        }
        if !self.s[self.pos..].starts_with(b"\\u") {
            bail!("JSON value: lone high surrogate");
        }
        self.pos += 2;
        let low = self.hex4()?;
        if !(0xDC00..0xE000).contains(&low) {
            bail!("JSON value: bad surrogate pair");
        }
        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
            .context("JSON value: bad surrogate pair")
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self
            .s
            .get(self.pos..self.pos + 4)
            .context("JSON value: short \\u escape")?;
        let text = std::str::from_utf8(digits).context("JSON value: bad \\u escape")?;
        let code = u32::from_str_radix(text, 16).context("JSON value: bad \\u escape")?;
        self.pos += 4;
        Ok(code)
    }
}

/// A JSON string as MySQL writes it: `"` and `\` escaped, the usual short escapes, other
/// control characters as `\u00xx`, everything else (DEL, non-ASCII) as is.
fn escape_into(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(input: &str) -> String {
        mysql_text(input.as_bytes()).unwrap()
    }

    #[test]
    fn keys_are_ordered_by_length_then_bytes_at_every_level() {
        // Vitess's binlog text (bytewise order) → MySQL's (as `SELECT` returned on 9.7).
        assert_eq!(
            text(r#"{"": 5, "Z": 6, "aa": 2, "b": {"A": 4, "e": 2, "ee": 3, "é": 1}, "z": 1}"#),
            r#"{"": 5, "Z": 6, "b": {"A": 4, "e": 2, "ee": 3, "é": 1}, "z": 1, "aa": 2}"#
        );
    }

    #[test]
    fn mysql_text_is_left_unchanged() {
        for mysql in [
            r#"{"a": 2, "bb": 1, "ccc": [1e15, 100000000000000.0, 0.000000000000001, 1e-16, 3.0, -0.0, 18446744073709551615, -9223372036854775808, 1.8446744073709552e19]}"#,
            r#"["\u0001", "\u001f", "\t\n\r\b\f", "/", "é", "😀", "a\\b", "q\"q", "\u0000"]"#,
            r#"{"k\"ey": {"\u0001": 1}}"#,
            r#"[1.50, 0.000001, "2024-01-02 03:04:05.500000", "base64:type15:AQI=", true, false, null]"#,
            r#""plain""#,
            "123",
            "[[], {}]",
            "null",
        ] {
            assert_eq!(text(mysql), mysql);
        }
        assert_eq!(text("\"\u{7f}\""), "\"\u{7f}\"", "DEL stays as is");
    }

    #[test]
    fn escapes_and_spacing_are_normalised() {
        assert_eq!(
            text("{\"b\":[1,2.5,\"\\/\\u00e9\\ud83d\\ude00\\u001F\"],\"a\":{}}"),
            "{\"a\": {}, \"b\": [1, 2.5, \"/é😀\\u001f\"]}"
        );
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        let deep = "[".repeat(MAX_DEPTH + 2);
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "\"\\x\"",
            "\"\\ud800\"",
            "01x",
            "-",
            "1.",
            "1e",
            "tru",
            "[1] 2",
            "\"abc",
            "\"\\u12",
            &deep,
        ] {
            assert!(mysql_text(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(mysql_text(&[b'"', 0xff, b'"']).is_err());
    }
}
