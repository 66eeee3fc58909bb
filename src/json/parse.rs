//! The one-pass parser behind [`Val::parse`] and [`Obj::parse`]: every byte
//! of a line is looked at once, strings without escapes and every number
//! borrow from it, and the raw text of a member can be kept as it goes by
//! ([`Obj::parse_keeping`]), so validate reads a transformed record's item
//! once (docs/design.md, "One record, from the source to the table").
//!
//! Written here rather than taken from `serde_json`, which either copies
//! every number (`arbitrary_precision` hands a number over as an owned
//! string) or scans each nested value twice (once to skip it as a
//! `RawValue`, once to parse it); measured in docs/performance.md. Strings
//! with escapes are unescaped by `serde_json`, which also checks them.

use std::borrow::Cow;

use super::{Obj, Val};

type Result<T> = std::result::Result<T, serde_json::Error>;

/// As deep as `serde_json` nests before it refuses.
const MAX_DEPTH: u32 = 128;

pub(super) struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: u32,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Parser {
            text,
            pos: 0,
            depth: 0,
        }
    }

    fn error(&self, what: &str) -> serde_json::Error {
        <serde_json::Error as serde::de::Error>::custom(format!(
            "{what} at column {}",
            self.pos + 1
        ))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Nothing but whitespace is left.
    pub(super) fn end(mut self) -> Result<()> {
        self.skip_whitespace();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("trailing characters")),
        }
    }

    pub(super) fn value(&mut self) -> Result<Val<'a>> {
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => Ok(Val::Obj(self.object(None)?)),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Val::Str(self.string()?)),
            Some(b't') => self.literal("true", Val::Bool(true)),
            Some(b'f') => self.literal("false", Val::Bool(false)),
            Some(b'n') => self.literal("null", Val::Null),
            Some(b'-' | b'0'..=b'9') => Ok(Val::Num(self.number()?)),
            Some(_) => Err(self.error("expected value")),
            None => Err(self.error("EOF while parsing a value")),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.pos += 1;
        Ok(())
    }

    /// An object; the raw text of the (first) member named `keep.0` goes
    /// to `keep.1` when asked.
    pub(super) fn object(
        &mut self,
        mut keep: Option<(&str, &mut Option<&'a str>)>,
    ) -> Result<Obj<'a>> {
        self.skip_whitespace();
        if self.peek() != Some(b'{') {
            return Err(self.error("expected a JSON object"));
        }
        self.enter()?;
        let mut members = Vec::with_capacity(24);
        let mut more = !self.closes(b'}');
        while more {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a member name"));
            }
            let name = self.string()?;
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':'"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let start = self.pos;
            let value = self.value()?;
            // The first member of that name, as `Obj::get` finds it.
            if let Some((wanted, raw)) = keep.as_mut()
                && raw.is_none()
                && name == *wanted
            {
                **raw = Some(&self.text[start..self.pos]);
            }
            members.push((name, value));
            more = self.next_or_close(b'}')?;
        }
        self.depth -= 1;
        Ok(Obj(members))
    }

    fn array(&mut self) -> Result<Val<'a>> {
        self.enter()?;
        let mut items = Vec::new();
        let mut more = !self.closes(b']');
        while more {
            items.push(self.value()?);
            more = self.next_or_close(b']')?;
        }
        self.depth -= 1;
        Ok(Val::Arr(items))
    }

    /// Right after an opening bracket: steps over `close` if it comes first
    /// (an empty object or array).
    fn closes(&mut self, close: u8) -> bool {
        self.skip_whitespace();
        let empty = self.peek() == Some(close);
        if empty {
            self.pos += 1;
        }
        empty
    }

    /// After a member or an element: `true` past a `,` (another follows),
    /// `false` past `close` (the end).
    fn next_or_close(&mut self, close: u8) -> Result<bool> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.error(&format!("expected ',' or '{}'", close as char))),
        }
    }

    /// A string literal at `pos`: borrowed when it holds no escape.
    fn string(&mut self) -> Result<Cow<'a, str>> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut i = start + 1;
        let mut escaped = false;
        // The closing quote, stepping over escapes; memchr looks at 16 or 32
        // bytes at a time.
        loop {
            match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                Some(at) if bytes[i + at] == b'"' => {
                    i += at;
                    break;
                }
                Some(at) => {
                    escaped = true;
                    i += at + 2;
                    if i > bytes.len() {
                        i = bytes.len();
                    }
                }
                None => {
                    self.pos = bytes.len();
                    return Err(self.error("EOF while parsing a string"));
                }
            }
        }
        let inner = &bytes[start + 1..i];
        // A branch-free pass the compiler vectorizes.
        if inner.iter().fold(false, |any, &b| any | (b < 0x20)) {
            self.pos = start + 1 + inner.iter().position(|&b| b < 0x20).unwrap_or(0);
            return Err(self.error("control character in a string"));
        }
        self.pos = i + 1;
        let literal = &self.text[start..self.pos];
        if escaped {
            // serde_json checks and decodes the escapes.
            serde_json::from_str::<String>(literal).map(Cow::Owned)
        } else {
            Ok(Cow::Borrowed(&literal[1..literal.len() - 1]))
        }
    }

    /// A number's exact text, checked against JSON's grammar.
    fn number(&mut self) -> Result<&'a str> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while let Some(b'0'..=b'9') = bytes.get(*i) {
                *i += 1;
            }
            *i > from
        };
        if bytes.get(i) == Some(&b'-') {
            i += 1;
        }
        let whole = match bytes.get(i) {
            Some(b'0') => {
                i += 1;
                true
            }
            _ => digits(&mut i),
        };
        let mut ok = whole;
        if ok && bytes.get(i) == Some(&b'.') {
            i += 1;
            ok = digits(&mut i);
        }
        if ok && matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            ok = digits(&mut i);
        }
        self.pos = i;
        if !ok {
            return Err(self.error("invalid number"));
        }
        Ok(&self.text[start..i])
    }

    fn literal(&mut self, word: &str, value: Val<'a>) -> Result<Val<'a>> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected value"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Accepted and refused exactly as `serde_json` does, to the same value.
    #[test]
    fn agrees_with_serde_json() {
        let deep_ok = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let too_deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let cases = [
            r#"{"a":"plain","b":"esc\"aped\\n\u00e9\ud83d\ude00","n":-0.5e-3,"z":0}"#,
            r#" { "a" : [ 1 , 2.0 , true , false , null , { } , [ ] ] } "#,
            r#"{"big":123456789012345678901234567890.01,"e":1E+2,"k":"é€😀"}"#,
            r#"{"dup":1,"dup":2}"#,
            "[]",
            "\"x\"",
            "-0",
            "0.0",
            &deep_ok,
            // refused
            &too_deep,
            "",
            " ",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "{\"a\":1}x",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "\"unterminated",
            "\"tab\there\"",
            "\"bad \\x escape\"",
            "\"bad \\u12 escape\"",
            "\"lone \\ud800 surrogate\"",
            "{a:1}",
            "{\"a\" 1}",
            "NaN",
        ];
        for text in cases {
            let theirs = serde_json::from_str::<Value>(text);
            let ours = Val::parse(text);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(&a.to_value(), b, "{text}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{text}: ours {ours:?}, serde_json {theirs:?}"),
            }
        }
    }

    #[test]
    fn borrows_what_it_can_and_keeps_a_members_text() {
        let line = r#"{"legacyId":7,"item":{"PK":"S#1","n":1.50,"e":"a\"b"},"findings":[]}"#;
        let (o, raw) = Obj::parse_keeping(line, "item").unwrap();
        assert_eq!(raw, Some(r#"{"PK":"S#1","n":1.50,"e":"a\"b"}"#));
        let Some(Val::Obj(item)) = o.get("item") else {
            panic!("{o:?}")
        };
        assert!(matches!(
            item.get("PK"),
            Some(Val::Str(Cow::Borrowed("S#1")))
        ));
        assert!(matches!(item.get("e"), Some(Val::Str(Cow::Owned(s))) if s == "a\"b"));
        assert_eq!(item.get("n"), Some(&Val::Num("1.50")));
        let (_, first) = Obj::parse_keeping(r#"{"item":{"a":1},"item":{"a":2}}"#, "item").unwrap();
        assert_eq!(first, Some(r#"{"a":1}"#));
        let err = Obj::parse(r#"{"a":1,"b":tru}"#).unwrap_err();
        assert!(err.to_string().contains("column 12"), "{err}");
    }
}
