//! Unit tests of the binary-to-JSON-text renderers (src/source/pgtext.rs).
//! Expected texts are what PostgreSQL 15's `row_to_json` printed for the
//! same values; dates and timestamps are also swept against chrono.

use super::*;
use chrono::{NaiveDate, NaiveDateTime};

fn render(f: fn(&[u8], &mut Vec<u8>) -> Result<(), String>, data: &[u8]) -> String {
    let mut out = Vec::new();
    f(data, &mut out).unwrap_or_else(|e| panic!("{data:?}: {e}"));
    String::from_utf8(out).unwrap()
}

/// `numeric_send`'s bytes for a decimal literal, in PostgreSQL's canonical
/// form: base-10000 groups aligned on the point, zero groups stripped at
/// both ends, weight 0 and a positive sign for zero.
fn numeric_bytes(lit: &str) -> Vec<u8> {
    let (neg, body) = match lit.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, lit),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let dscale = frac.len() as u16;
    let int = format!("{}{int}", "0".repeat((4 - int.len() % 4) % 4));
    let frac = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
    let group = |s: &str| -> Vec<u16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect()
    };
    let mut digits = group(&int);
    let mut weight = digits.len() as i16 - 1;
    digits.extend(group(&frac));
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let sign = if digits.is_empty() {
        weight = 0;
        NUMERIC_POS
    } else if neg {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    raw_numeric(&digits, weight, sign, dscale)
}

fn raw_numeric(digits: &[u16], weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    b.extend_from_slice(&weight.to_be_bytes());
    b.extend_from_slice(&sign.to_be_bytes());
    b.extend_from_slice(&dscale.to_be_bytes());
    for d in digits {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b
}

#[test]
fn numerics_keep_every_digit_of_their_scale() {
    for lit in [
        "0",
        "0.000",
        "1",
        "-1",
        "1234.50",
        "-1234.50",
        "0.01",
        "-0.01",
        "0.0001",
        "0.00001",
        "10000",
        "9999.9999",
        "100000000.000",
        "1.5",
        "12.340",
        "999999999999.99",
        "0.00000000000000000001",
        "12345678901234567890123456789.123456789012345678900",
        "-98765432109876543210.000000000000000000000000000001",
    ] {
        assert_eq!(render(numeric, &numeric_bytes(lit)), lit, "{lit}");
    }
    // 40 integer digits and 60 decimals, the whole precision kept
    let big = format!("{}.{}", "7".repeat(40), "3".repeat(59) + "0");
    assert_eq!(render(numeric, &numeric_bytes(&big)), big);
}

#[test]
fn numeric_forms_postgres_may_send() {
    // 1e20: one digit group, weight 5: the missing groups are zeros
    assert_eq!(
        render(numeric, &raw_numeric(&[1], 5, NUMERIC_POS, 0)),
        "100000000000000000000"
    );
    // display scale shorter than the digits: the digits beyond it are not shown
    assert_eq!(
        render(numeric, &raw_numeric(&[12, 3456], 0, NUMERIC_POS, 2)),
        "12.34"
    );
    // trailing zero groups not stripped change nothing
    assert_eq!(
        render(numeric, &raw_numeric(&[5, 0, 0], 0, NUMERIC_POS, 0)),
        "5"
    );
    assert_eq!(
        render(numeric, &raw_numeric(&[], 0, NUMERIC_POS, 2)),
        "0.00"
    );
    // NaN and the infinities are not JSON numbers: row_to_json quotes them
    assert_eq!(
        render(numeric, &raw_numeric(&[], 0, NUMERIC_NAN, 0)),
        "\"NaN\""
    );
    assert_eq!(
        render(numeric, &raw_numeric(&[], 0, NUMERIC_PINF, 0)),
        "\"Infinity\""
    );
    assert_eq!(
        render(numeric, &raw_numeric(&[], 0, NUMERIC_NINF, 0)),
        "\"-Infinity\""
    );
}

#[test]
fn malformed_numerics_are_errors() {
    let mut out = Vec::new();
    assert!(numeric(&[0, 1, 0, 0], &mut out).is_err());
    assert!(numeric(&raw_numeric(&[10000], 0, NUMERIC_POS, 0), &mut out).is_err());
    assert!(numeric(&raw_numeric(&[1], 0, 0x1234, 0), &mut out).is_err());
    let mut short = raw_numeric(&[1, 2], 0, NUMERIC_POS, 0);
    short.pop();
    assert!(numeric(&short, &mut out).is_err());
}

#[test]
fn strings_escape_like_escape_json() {
    let mut out = Vec::new();
    let all: Vec<u8> = (0u8..0x20).collect();
    escape_json(&all, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\
         \\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\""
    );
    let mut out = Vec::new();
    escape_json("a\"b\\c\u{7f}/ü€😀 Ωμέγα 漢字".as_bytes(), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\"a\\\"b\\\\c\u{7f}/ü€😀 Ωμέγα 漢字\""
    );
    let mut out = Vec::new();
    escape_json(b"", &mut out);
    assert_eq!(out, b"\"\"");
}

#[test]
fn integers_booleans_uuids() {
    let mut out = Vec::new();
    int(&i16::MIN.to_be_bytes(), 2, &mut out).unwrap();
    out.push(b' ');
    int(&0i32.to_be_bytes(), 4, &mut out).unwrap();
    out.push(b' ');
    int(&(-42i32).to_be_bytes(), 4, &mut out).unwrap();
    out.push(b' ');
    int(&i64::MIN.to_be_bytes(), 8, &mut out).unwrap();
    out.push(b' ');
    int(&i64::MAX.to_be_bytes(), 8, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "-32768 0 -42 -9223372036854775808 9223372036854775807"
    );
    assert!(int(&[0, 0, 1], 4, &mut Vec::new()).is_err());
    assert_eq!(render(boolean, &[1]), "true");
    assert_eq!(render(boolean, &[0]), "false");
    assert!(boolean(&[], &mut Vec::new()).is_err());
    let u = uuid::Uuid::parse_str("e6efba72-f0d7-4be9-bfce-399356e044f7").unwrap();
    assert_eq!(
        render(self::uuid, u.as_bytes()),
        "\"e6efba72-f0d7-4be9-bfce-399356e044f7\""
    );
}

fn epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
}

#[test]
fn dates_match_the_calendar_and_postgres_specials() {
    // chrono writes years 1-9999 as PostgreSQL does (BC and 5 digits below)
    for days in (-730_000i32..2_900_000)
        .step_by(37)
        .chain([0, -1, 1, 59, 60])
    {
        let want = (epoch().date() + chrono::Duration::days(i64::from(days)))
            .format("\"%Y-%m-%d\"")
            .to_string();
        assert_eq!(render(date, &days.to_be_bytes()), want, "{days}");
    }
    assert_eq!(render(date, &i32::MAX.to_be_bytes()), "\"infinity\"");
    assert_eq!(render(date, &i32::MIN.to_be_bytes()), "\"-infinity\"");
    // '0001-01-01 BC' and '0044-03-15 BC' as PostgreSQL writes them
    let bc1 = NaiveDate::from_ymd_opt(0, 1, 1).unwrap() - epoch().date();
    assert_eq!(
        render(date, &(bc1.num_days() as i32).to_be_bytes()),
        "\"0001-01-01 BC\""
    );
    let ides = NaiveDate::from_ymd_opt(-43, 3, 15).unwrap() - epoch().date();
    assert_eq!(
        render(date, &(ides.num_days() as i32).to_be_bytes()),
        "\"0044-03-15 BC\""
    );
    // the last date PostgreSQL accepts
    assert_eq!(
        render(date, &(2_147_483_493i32 - 2_451_545).to_be_bytes()),
        "\"5874897-12-31\""
    );
    assert!(date(&[0, 0], &mut Vec::new()).is_err());
}

#[test]
fn timestamps_match_the_calendar_and_trim_fractions() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // ± about 1,900 years around 2000 (years 1-9999 below), to the microsecond
        let us = (x % 120_000_000_000_000_000) as i64 - 60_000_000_000_000_000;
        let t = epoch() + chrono::Duration::microseconds(us);
        let frac = t.format("%6f").to_string();
        let frac = frac.trim_end_matches('0');
        let want = if frac.is_empty() {
            t.format("\"%Y-%m-%dT%H:%M:%S\"").to_string()
        } else {
            format!("{}.{frac}\"", t.format("\"%Y-%m-%dT%H:%M:%S"))
        };
        assert_eq!(render(timestamp, &us.to_be_bytes()), want, "{us}");
    }
    let at = |s: &str| {
        let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        let us = (t - epoch()).num_microseconds().unwrap();
        render(timestamp, &us.to_be_bytes())
    };
    // the DST edges of Europe/Rome are plain wall-clock values here
    assert_eq!(at("2024-03-31 02:30:00"), "\"2024-03-31T02:30:00\"");
    assert_eq!(at("2024-10-27 02:30:00.5"), "\"2024-10-27T02:30:00.5\"");
    assert_eq!(
        at("1999-12-31 23:59:59.999999"),
        "\"1999-12-31T23:59:59.999999\""
    );
    assert_eq!(
        at("2000-01-01 00:00:00.000001"),
        "\"2000-01-01T00:00:00.000001\""
    );
    assert_eq!(at("2024-02-29 12:00:00.120"), "\"2024-02-29T12:00:00.12\"");
    // '4713-01-01 00:00:00.5 BC' (Julian day 38) and the last timestamp
    let bc = (38 - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY + 500_000;
    assert_eq!(
        render(timestamp, &bc.to_be_bytes()),
        "\"4713-01-01T00:00:00.5 BC\""
    );
    let last = (109_203_527 - POSTGRES_EPOCH_JDATE + 1) * USECS_PER_DAY - 1;
    assert_eq!(
        render(timestamp, &last.to_be_bytes()),
        "\"294276-12-31T23:59:59.999999\""
    );
    assert_eq!(render(timestamp, &i64::MAX.to_be_bytes()), "\"infinity\"");
    assert_eq!(render(timestamp, &i64::MIN.to_be_bytes()), "\"-infinity\"");
    assert!(timestamp(&[0; 4], &mut Vec::new()).is_err());
}
