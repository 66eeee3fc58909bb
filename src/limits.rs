//! DynamoDB's limits on an item's values, checked before anything is sent
//! (validate rejects an item that breaks one, code `dynamodb_limit`), so an
//! item DynamoDB would refuse never reaches a load: numbers of at most 38
//! significant digits between 1E-130 and 9.99…E+125 in magnitude, key
//! attributes that are non-empty strings (partition key at most 2048 bytes,
//! sort key at most 1024), and at most 32 levels of nesting. The item size
//! limit is checked with [`crate::dynamo::item_size`].

use crate::json::{Obj, Val};

/// Significant digits a number may have.
pub const MAX_NUMBER_DIGITS: usize = 38;
/// Smallest decimal exponent of a non-zero number's magnitude (1E-130).
pub const MIN_NUMBER_EXPONENT: i64 = -130;
/// Largest decimal exponent of a number's magnitude (9.99…E+125).
pub const MAX_NUMBER_EXPONENT: i64 = 125;
/// Bytes a partition key value may have.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
/// Bytes a sort key value may have.
pub const MAX_SORT_KEY_BYTES: usize = 1024;
/// Levels of nested maps and lists.
pub const MAX_DEPTH: usize = 32;

/// What in `item` DynamoDB would refuse, one message per problem (empty when
/// nothing).
pub fn check(item: &Obj<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, max) in [("PK", MAX_PARTITION_KEY_BYTES), ("SK", MAX_SORT_KEY_BYTES)] {
        match item.get(name) {
            Some(Val::Str(s)) if s.is_empty() => {
                problems.push(format!("key attribute {name} is an empty string"))
            }
            Some(Val::Str(s)) if s.len() > max => problems.push(format!(
                "key attribute {name} has {} bytes; DynamoDB allows {max}",
                s.len()
            )),
            Some(Val::Str(_)) => {}
            Some(_) => problems.push(format!("key attribute {name} is not a string")),
            None => problems.push(format!("key attribute {name} is missing")),
        }
    }
    for (name, value) in &item.0 {
        // Messages (and their allocations) only for a value with a problem.
        if !fine(value, 1) {
            walk(value, name, 1, &mut problems);
        }
    }
    problems
}

/// Whether a value is within the limits, without allocating.
fn fine(v: &Val<'_>, depth: usize) -> bool {
    match v {
        Val::Num(n) => check_number(n).is_ok(),
        Val::Arr(_) | Val::Obj(_) if depth > MAX_DEPTH => false,
        Val::Arr(items) => items.iter().all(|i| fine(i, depth + 1)),
        Val::Obj(o) => o.0.iter().all(|(_, i)| fine(i, depth + 1)),
        Val::Str(_) | Val::Bool(_) | Val::Null => true,
    }
}

fn walk(v: &Val<'_>, path: &str, depth: usize, problems: &mut Vec<String>) {
    match v {
        Val::Num(n) => {
            if let Err(e) = check_number(n) {
                problems.push(format!("{path}: {e}"));
            }
        }
        Val::Arr(_) | Val::Obj(_) if depth > MAX_DEPTH => problems.push(format!(
            "{path}: nested deeper than the {MAX_DEPTH} levels DynamoDB allows"
        )),
        Val::Arr(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), depth + 1, problems);
            }
        }
        Val::Obj(o) => {
            for (k, item) in &o.0 {
                walk(item, &format!("{path}.{k}"), depth + 1, problems);
            }
        }
        Val::Str(_) | Val::Bool(_) | Val::Null => {}
    }
}

/// Checks a JSON number's text against DynamoDB's number limits.
pub fn check_number(text: &str) -> Result<(), String> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (
            &unsigned[..i],
            unsigned[i + 1..]
                .parse::<i64>()
                .map_err(|_| format!("number {text} has an exponent out of range"))?,
        ),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = || int.bytes().chain(frac.bytes());
    let Some(first) = digits().position(|d| d != b'0') else {
        return Ok(()); // zero
    };
    let trailing = digits().rev().take_while(|d| *d == b'0').count();
    let significant = int.len() + frac.len() - trailing - first;
    if significant > MAX_NUMBER_DIGITS {
        return Err(format!(
            "number {text} has {significant} significant digits; DynamoDB allows {MAX_NUMBER_DIGITS}"
        ));
    }
    // The decimal exponent of the first significant digit.
    let magnitude = exponent.saturating_add(int.len() as i64 - 1 - first as i64);
    if magnitude > MAX_NUMBER_EXPONENT {
        return Err(format!(
            "number {text} is too large for DynamoDB (at most 9.99…E+{MAX_NUMBER_EXPONENT})"
        ));
    }
    if magnitude < MIN_NUMBER_EXPONENT {
        return Err(format!(
            "number {text} is too small for DynamoDB (at least 1E{MIN_NUMBER_EXPONENT})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_dynamodb_takes_them() {
        for ok in [
            "0",
            "-0.000",
            "1234.50",
            "12345678901234567890123456789012345678", // 38 digits
            "0.00000000000000000000000000000000000000012345678901234567890123456789012345678",
            "1000000000000000000000000000000000000000000", // 1 significant digit
            "1E-130",
            "9.9999999999999999999999999999999999999E+125",
            "-1e125",
        ] {
            assert_eq!(check_number(ok), Ok(()), "{ok}");
        }
        for bad in [
            "123456789012345678901234567890123456789", // 39 digits
            "1.23456789012345678901234567890123456789",
            "-12345678901234567890.1234567890123456789",
            "1E126",
            "10E125",
            "1E-131",
            "0.1E-130",
        ] {
            assert!(check_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_and_nesting() {
        let ok = r#"{"PK": "B#1", "SK": "METADATA", "n": 1.5, "m": {"l": [1, 2]}}"#;
        assert!(check(&Obj::parse(ok).unwrap()).is_empty());
        let bad = r#"{"PK": "", "n": {"x": [1, 123456789012345678901234567890123456789]}}"#;
        let problems = check(&Obj::parse(bad).unwrap());
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].contains("PK is an empty string"),
            "{problems:?}"
        );
        assert!(problems[1].contains("SK is missing"), "{problems:?}");
        assert!(
            problems[2].starts_with("n.x[1]: number") && problems[2].contains("39 significant"),
            "{problems:?}"
        );
        let deep = format!(
            r#"{{"PK": "a", "SK": "b", "d": {}1{}}}"#,
            "[".repeat(33),
            "]".repeat(33)
        );
        let problems = check(&Obj::parse(&deep).unwrap());
        assert!(
            problems.iter().any(|p| p.contains("nested deeper")),
            "{problems:?}"
        );
    }
}
