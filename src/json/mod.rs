//! Borrowed JSON: one line of an artifact parsed without copying it. Strings
//! without escapes and every number point into the line (numbers keep their
//! exact text, never a float); objects keep their members in order.
//!
//! [`Borrowed`] lets the compiled JSON Schema validators of `jsonschema`
//! check these values in place, so transform and validate parse each line
//! once ([`parse`]) and allocate little per record (the hot path at a
//! million rows).

mod parse;

use std::borrow::Cow;

use jsonschema::JsonType;
use jsonschema::json::{self, JsonNumber, NodeIdentity};
use serde_json::Value;

/// A JSON value borrowing from the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    /// A number as written (exact decimal text).
    Num(&'a str),
    Str(Cow<'a, str>),
    Arr(Vec<Val<'a>>),
    Obj(Obj<'a>),
}

/// A JSON object: members in the order they were written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Obj<'a>(pub Vec<(Cow<'a, str>, Val<'a>)>);

impl<'a> Val<'a> {
    /// Parses one JSON value from `text`, in one pass.
    pub fn parse(text: &'a str) -> serde_json::Result<Val<'a>> {
        let mut p = parse::Parser::new(text);
        let v = p.value()?;
        p.end()?;
        Ok(v)
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An owned `serde_json::Value` (numbers stay exact).
    pub fn to_value(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Num(n) => serde_json::from_str(n).unwrap_or(Value::Null),
            Val::Str(s) => Value::String(s.to_string()),
            Val::Arr(items) => Value::Array(items.iter().map(Val::to_value).collect()),
            Val::Obj(o) => o.to_value(),
        }
    }
}

impl<'a> Obj<'a> {
    /// Parses a JSON object from `text`, in one pass.
    pub fn parse(text: &'a str) -> serde_json::Result<Obj<'a>> {
        let mut p = parse::Parser::new(text);
        let o = p.object(None)?;
        p.end()?;
        Ok(o)
    }

    /// [`Obj::parse`], also giving the raw text of the member named `name`
    /// (the same pass; for a value that must go on byte for byte).
    pub fn parse_keeping(
        text: &'a str,
        name: &str,
    ) -> serde_json::Result<(Obj<'a>, Option<&'a str>)> {
        let mut raw = None;
        let mut p = parse::Parser::new(text);
        let o = p.object(Some((name, &mut raw)))?;
        p.end()?;
        Ok((o, raw))
    }

    /// Takes the member named `key` out (the first, if several).
    pub fn take(&mut self, key: &str) -> Option<Val<'a>> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    /// An owned `serde_json::Value` object (numbers stay exact).
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_value()))
                .collect(),
        )
    }

    /// The member named `key`.
    pub fn get(&self, key: &str) -> Option<&Val<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The member named `key` if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Val::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The borrowed representation for `jsonschema`: validators built with
/// `jsonschema::options_for::<Borrowed>()` check [`Val`]s in place.
pub struct Borrowed;

impl json::Json for Borrowed {
    type Node<'a> = &'a Val<'a>;
    type PreparedKey = String;
    type StringBuffer = Option<Val<'static>>;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>(
        buffer: &mut Option<Val<'static>>,
        string: &str,
        f: impl FnOnce(<Self as json::Json>::Node<'_>) -> T,
    ) -> T {
        let node = buffer.insert(Val::Str(Cow::Owned(string.to_owned())));
        f(node)
    }
}

/// A number's exact text.
pub struct Number<'a>(&'a str);

impl JsonNumber for Number<'_> {
    fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }
    fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }
    fn as_f64(&self) -> Option<f64> {
        self.0.parse().ok()
    }
    fn as_str(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.0)
    }
    fn to_number(&self) -> Cow<'_, serde_json::Number> {
        Cow::Owned(serde_json::from_str(self.0).unwrap_or_else(|_| serde_json::Number::from(0u8)))
    }
    fn is_integer(&self) -> bool {
        if !self.0.contains(['.', 'e', 'E']) {
            return true;
        }
        jsonschema_integer(&self.to_number())
    }
}

/// Whether a number is an integer by value (`2.0` is), as `jsonschema` decides.
fn jsonschema_integer(n: &serde_json::Number) -> bool {
    crate::mapping::canonical_number_cow(n.as_str()).is_some_and(|c| !c.contains('.'))
}

impl<'a> json::Node<'a, Borrowed> for &'a Val<'a> {
    type Object = &'a Obj<'a>;
    type Array = &'a [Val<'a>];
    type Number = Number<'a>;

    fn as_object(&self) -> Option<&'a Obj<'a>> {
        match self {
            Val::Obj(o) => Some(o),
            _ => None,
        }
    }
    fn as_array(&self) -> Option<&'a [Val<'a>]> {
        match self {
            Val::Arr(items) => Some(items),
            _ => None,
        }
    }
    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self {
            Val::Str(Cow::Borrowed(s)) => Some(Cow::Borrowed(s)),
            Val::Str(Cow::Owned(s)) => Some(Cow::Borrowed(s.as_str())),
            _ => None,
        }
    }
    fn as_number(&self) -> Option<Number<'a>> {
        match self {
            Val::Num(n) => Some(Number(n)),
            _ => None,
        }
    }
    fn as_boolean(&self) -> Option<bool> {
        match self {
            Val::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }
    fn is_number(&self) -> bool {
        matches!(self, Val::Num(_))
    }
    fn is_string(&self) -> bool {
        matches!(self, Val::Str(_))
    }
    fn json_type(&self) -> JsonType {
        match self {
            Val::Null => JsonType::Null,
            Val::Bool(_) => JsonType::Boolean,
            Val::Num(_) => JsonType::Number,
            Val::Str(_) => JsonType::String,
            Val::Arr(_) => JsonType::Array,
            Val::Obj(_) => JsonType::Object,
        }
    }
    fn equals_value(&self, expected: &Value) -> bool {
        match (self, expected) {
            (Val::Str(a), Value::String(b)) => a == b,
            (Val::Str(_), _) | (_, Value::String(_)) => false,
            _ => jsonschema::json::cmp::equal(&self.to_value(), expected),
        }
    }
    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(Val::to_value(self))
    }
    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(
            std::ptr::from_ref::<Val<'a>>(*self) as usize
        ))
    }
}

impl<'a> json::Object<'a, Borrowed> for &'a Obj<'a> {
    type Node = &'a Val<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, key: &String) -> Option<&'a Val<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn members(&self) -> Members<'a> {
        Members(self.0.iter())
    }
}

/// The members of an [`Obj`], for the validator.
pub struct Members<'a>(std::slice::Iter<'a, (Cow<'a, str>, Val<'a>)>);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, &'a Val<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<'a> json::Array<'a, Borrowed> for &'a [Val<'a>] {
    type Node = &'a Val<'a>;
    type ElementsIter = std::slice::Iter<'a, Val<'a>>;

    fn len(&self) -> usize {
        <[Val<'a>]>::len(self)
    }
    fn elements(&self) -> std::slice::Iter<'a, Val<'a>> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_without_copying_and_keeps_numbers_exact() {
        let text = r#"{"a": "plain", "b": "esc\"aped", "n": 1234.50, "big": 123456789012345678901234567890.01, "m": {"x": [1, true, null]}}"#;
        let o = Obj::parse(text).unwrap();
        assert!(matches!(o.get("a"), Some(Val::Str(Cow::Borrowed("plain")))));
        assert_eq!(o.str("b"), Some("esc\"aped"));
        assert_eq!(o.get("n"), Some(&Val::Num("1234.50")));
        assert_eq!(
            o.get("big"),
            Some(&Val::Num("123456789012345678901234567890.01"))
        );
        let m = Val::Obj(o.clone()).to_value();
        assert_eq!(m["m"]["x"][1], Value::Bool(true));
        assert_eq!(serde_json::to_string(&m["n"]).unwrap(), "1234.50");
        assert!(Obj::parse("[1]").is_err());
        assert!(Obj::parse(r#"{"a": }"#).is_err());
    }

    #[test]
    fn satisfies_the_validator_contract() {
        let text = jsonschema::json::conformance::document().to_string();
        let v = Val::parse(&text).unwrap();
        jsonschema::json::conformance::assert_conformance::<Borrowed>(&&v);
    }

    #[test]
    fn validates_like_serde_json() {
        let schema = serde_json::json!({
            "type": "object", "additionalProperties": false, "required": ["id", "n"],
            "properties": {"id": {"type": "string", "pattern": "^X[0-9]+$"},
                "n": {"type": "integer", "minimum": 1}, "k": {"const": "METADATA"},
                "s": {"enum": ["a", "b"]}, "d": {"type": "number"},
                "m": {"type": "object", "properties": {"z": {"type": "string", "minLength": 2}}}}
        });
        let ours = jsonschema::options_for::<Borrowed>()
            .build(&schema)
            .unwrap();
        let theirs = jsonschema::validator_for(&schema).unwrap();
        for doc in [
            r#"{"id": "X1", "n": 2}"#,
            r#"{"id": "X1", "n": 2.0}"#,
            r#"{"id": "X1", "n": 2.5}"#,
            r#"{"id": "X1", "n": 0}"#,
            r#"{"id": "Y1", "n": 2}"#,
            r#"{"id": "X1"}"#,
            r#"{"id": "X1", "n": 2, "extra": 1}"#,
            r#"{"id": "X1", "n": 2, "k": "METADATA", "s": "b", "d": 1.25}"#,
            r#"{"id": "X1", "n": 2, "k": "OTHER"}"#,
            r#"{"id": "X1", "n": 2, "s": "c"}"#,
            r#"{"id": "X1", "n": 2, "d": "1.25"}"#,
            r#"{"id": "X1", "n": 2, "m": {"z": "é"}}"#,
            r#"{"id": "X1", "n": 2, "m": {"z": "éé"}}"#,
        ] {
            let v = Val::parse(doc).unwrap();
            let sv: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(ours.is_valid(&v), theirs.is_valid(&sv), "{doc}");
            let a: Vec<String> = ours.iter_errors(&v).map(|e| e.to_string()).collect();
            let b: Vec<String> = theirs.iter_errors(&sv).map(|e| e.to_string()).collect();
            assert_eq!(a, b, "{doc}");
        }
    }
}
