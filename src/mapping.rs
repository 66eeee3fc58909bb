//! Pure value mappings shared by the entities: names, VAT numbers, e-mail
//! addresses, Europe/Rome wall-clock times, deterministic ids, exact numbers.
//!
//! Nothing here does I/O; every function is unit-tested below.

use std::borrow::Cow;

use chrono::{DateTime, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Europe::Rome;
use rust_decimal::Decimal;
use uuid::Uuid;

/// Trims and folds inner runs of white space to one space; `None` if blank.
pub fn fold_spaces(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    (!out.is_empty()).then_some(out)
}

/// Trims; `None` if blank.
pub fn trimmed(raw: &str) -> Option<String> {
    let t = raw.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// VAT (docs/mapping.md "Validation rules"): remove spaces, upper-case, prefix `IT` to 11 digits alone.
/// `None` when nothing is left.
pub fn normalize_vat(raw: &str) -> Option<String> {
    let compact: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect();
    if compact.is_empty() {
        None
    } else if compact.len() == 11 && compact.bytes().all(|b| b.is_ascii_digit()) {
        Some(format!("IT{compact}"))
    } else {
        Some(compact)
    }
}

/// Whether a normalized VAT number is valid: `IT` + 11 digits with the right
/// check digit, or two letters and 2–12 letters or digits for other countries.
pub fn vat_is_valid(vat: &str) -> bool {
    let bytes = vat.as_bytes();
    if bytes.len() < 4 || !bytes[0].is_ascii_uppercase() || !bytes[1].is_ascii_uppercase() {
        return false;
    }
    let rest = &bytes[2..];
    if &bytes[..2] == b"IT" {
        return rest.len() == 11
            && rest.iter().all(u8::is_ascii_digit)
            && italian_check_digit(rest) == rest[10] - b'0';
    }
    (2..=12).contains(&rest.len())
        && rest
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The check digit of an Italian VAT number from its first ten digits.
fn italian_check_digit(digits: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, d) in digits[..10].iter().enumerate() {
        let d = u32::from(d - b'0');
        if i % 2 == 0 {
            sum += d;
        } else {
            let doubled = d * 2;
            sum += if doubled > 9 { doubled - 9 } else { doubled };
        }
    }
    ((10 - sum % 10) % 10) as u8
}

/// What an e-mail column held.
#[derive(Debug, PartialEq, Eq)]
pub enum Email {
    Absent,
    Valid(String),
    Invalid(String),
}

/// Trims and lower-cases an address, then checks its form: one `@`, a local
/// part and a dotted domain without spaces or empty labels.
pub fn normalize_email(raw: Option<&str>) -> Email {
    let Some(t) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Email::Absent;
    };
    let email = t.to_lowercase();
    if email_is_valid(&email) {
        Email::Valid(email)
    } else {
        Email::Invalid(t.to_string())
    }
}

fn email_is_valid(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(char::is_alphabetic));
    local_ok && domain_ok && email.len() <= 254
}

/// Parses a PostgreSQL `timestamp` as `row_to_json` writes it
/// (`2024-03-31T02:30:00` with optional fraction).
pub fn parse_legacy_timestamp(raw: &str) -> Option<NaiveDateTime> {
    fast_timestamp(raw).or_else(|| general_timestamp(raw))
}

/// The shape `row_to_json` always writes (`YYYY-MM-DDTHH:MM:SS` and up to
/// nine fraction digits), read without chrono's format parser: at a million
/// rows that parser was a tenth of transform's time.
fn fast_timestamp(raw: &str) -> Option<NaiveDateTime> {
    let b = raw.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let n = num(20, b.len())?;
            n * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    let time =
        chrono::NaiveTime::from_hms_nano_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, nanos)?;
    Some(NaiveDateTime::new(date, time))
}

fn general_timestamp(raw: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
}

/// Reads a Europe/Rome wall-clock time as PostgreSQL's
/// `ts AT TIME ZONE 'Europe/Rome'` does: a time in the spring-forward gap
/// takes the offset in force just before the transition; an ambiguous time in
/// the autumn overlap takes the offset in force just after it (the later one).
pub fn rome_to_utc(local: NaiveDateTime) -> DateTime<Utc> {
    match Rome.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(_, later) => later.with_timezone(&Utc),
        chrono::LocalResult::None => {
            // In a gap: use the offset that held a few hours earlier.
            let before = Rome
                .from_local_datetime(&(local - Duration::hours(3)))
                .earliest()
                .map(|t| t.offset().fix())
                .unwrap_or_else(|| Rome.offset_from_utc_datetime(&local).fix());
            let utc = local - Duration::seconds(i64::from(before.local_minus_utc()));
            Utc.from_utc_datetime(&utc)
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, milliseconds truncated.
pub fn format_utc(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        // Not a four-digit year: rare enough for the general formatter.
        return format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            year,
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.timestamp_subsec_millis().min(999)
        );
    }
    // Digits written in place: `format!` was 7% of transform at a million
    // sales (docs/performance.md).
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    put(20, 3, t.timestamp_subsec_millis().min(999));
    String::from_utf8(out.to_vec()).expect("ASCII digits")
}

/// The UUID v5 of `s9:<kind>:<legacy id>` in `namespace`.
pub fn legacy_uuid(namespace: &Uuid, kind: &str, legacy_id: i64) -> Uuid {
    Uuid::new_v5(namespace, format!("s9:{kind}:{legacy_id}").as_bytes())
}

/// Parses an exact decimal from its text (never through a float).
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    text.parse::<Decimal>()
        .ok()
        .or_else(|| Decimal::from_scientific(text).ok())
}

/// A canonical text for a decimal number: no exponent, no leading zeros, no
/// trailing fractional zeros, `-0` as `0`. Works on any length, without
/// floats, so DynamoDB numbers (38 digits) compare by value.
pub fn canonical_number(text: &str) -> Option<String> {
    canonical_number_cow(text).map(Cow::into_owned)
}

/// [`canonical_number`], borrowing `text` when it is canonical already (as
/// almost every number migrate writes is): no allocation on the hot paths.
pub fn canonical_number_cow(text: &str) -> Option<Cow<'_, str>> {
    if is_canonical_number(text) {
        Some(Cow::Borrowed(text))
    } else {
        canonical_slow(text).map(Cow::Owned)
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?`, but not `-0`.
fn is_canonical_number(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    let (int, frac) = match digits.iter().position(|&c| c == b'.') {
        Some(i) => (&digits[..i], Some(&digits[i + 1..])),
        None => (digits, None),
    };
    let int_ok = int == b"0"
        || (int.first().is_some_and(|c| (b'1'..=b'9').contains(c))
            && int.iter().all(u8::is_ascii_digit));
    let frac_ok = match frac {
        None => !(int == b"0" && digits.len() != b.len()),
        Some(f) => f.iter().all(u8::is_ascii_digit) && f.last().is_some_and(|&c| c != b'0'),
    };
    int_ok && frac_ok
}

fn canonical_slow(text: &str) -> Option<String> {
    let t = text.trim();
    let (neg, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits: String = format!("{int}{frac}");
    // value = digits × 10^(exp − frac.len())
    let point = int.len() as i64 + exp; // position of the decimal point within `digits`
    let digits = digits.trim_start_matches('0');
    let point = point - (int.len() + frac.len() - digits.len()) as i64;
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        return Some("0".into());
    }
    let n = digits.len() as i64;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point >= n {
        format!("{digits}{}", "0".repeat((point - n) as usize))
    } else {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    };
    Some(if neg { format!("-{body}") } else { body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_written_as_chrono_writes_them() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..20_000 {
            let secs = rng.i64(-62_167_219_200..=253_402_300_799); // years 0000..=9999
            let t = DateTime::from_timestamp(secs, rng.u32(0..1_000_000_000)).unwrap();
            assert_eq!(
                format_utc(t),
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "{t:?}"
            );
        }
        let far = DateTime::from_timestamp(253_402_300_800, 0).unwrap();
        assert_eq!(format_utc(far), "10000-01-01T00:00:00.000Z");
    }

    #[test]
    fn names_fold() {
        assert_eq!(
            fold_spaces("  Rossi   &  Figli  srl ").as_deref(),
            Some("Rossi & Figli srl")
        );
        assert_eq!(fold_spaces("\tA\u{a0}B\n"), Some("A B".into()));
        assert_eq!(fold_spaces("   "), None);
        assert_eq!(fold_spaces(""), None);
    }

    #[test]
    fn vat_normalization() {
        assert_eq!(
            normalize_vat("IT01234567897").as_deref(),
            Some("IT01234567897")
        );
        assert_eq!(
            normalize_vat("01234567897").as_deref(),
            Some("IT01234567897")
        );
        assert_eq!(
            normalize_vat(" it 0123 4567 897 ").as_deref(),
            Some("IT01234567897")
        );
        assert_eq!(normalize_vat("de123456789").as_deref(), Some("DE123456789"));
        assert_eq!(normalize_vat("   "), None);
    }

    #[test]
    fn vat_check_digit() {
        assert!(vat_is_valid("IT01234567897"));
        assert!(!vat_is_valid("IT01234567890"));
        assert!(vat_is_valid("IT00743110157")); // a real, published number
        assert!(!vat_is_valid("IT0123456789")); // ten digits
        assert!(!vat_is_valid("IT0123456789A"));
        assert!(vat_is_valid("DE123456789"));
        assert!(vat_is_valid("FR12345678901"));
        assert!(!vat_is_valid("D1123"));
        assert!(!vat_is_valid("DE1"));
        assert!(!vat_is_valid("DE1234567890123"));
        assert!(!vat_is_valid("N/A"));
        assert!(!vat_is_valid("123"));
        // every check digit 0..9 is reachable and only the right one passes
        for last in 0..10u8 {
            let v = format!("IT0123456789{last}");
            assert_eq!(vat_is_valid(&v), last == 7, "{v}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(Some("  Mario.Rossi@Example.IT ")),
            Email::Valid("mario.rossi@example.it".into())
        );
        assert_eq!(normalize_email(None), Email::Absent);
        assert_eq!(normalize_email(Some("   ")), Email::Absent);
        for bad in [
            "not-an-email",
            "mario@",
            "@x.it",
            "a b@x.it",
            "a@x",
            "a@@x.it",
            "a@x..it",
            "a@x.1",
        ] {
            assert!(
                matches!(normalize_email(Some(bad)), Email::Invalid(_)),
                "{bad}"
            );
        }
    }

    fn utc(local: &str) -> String {
        format_utc(rome_to_utc(parse_legacy_timestamp(local).unwrap()))
    }

    #[test]
    fn rome_timestamps_match_postgresql() {
        assert_eq!(utc("2024-03-31T02:30:00"), "2024-03-31T01:30:00.000Z"); // gap
        assert_eq!(utc("2024-10-27T02:30:00"), "2024-10-27T01:30:00.000Z"); // overlap: later
        assert_eq!(utc("2024-01-15T10:00:00"), "2024-01-15T09:00:00.000Z"); // CET
        assert_eq!(utc("2024-07-01T12:00:00"), "2024-07-01T10:00:00.000Z"); // CEST
        assert_eq!(
            utc("2024-03-31T01:59:59.999999"),
            "2024-03-31T00:59:59.999Z"
        ); // truncated
        assert_eq!(utc("2024-03-31T03:00:00"), "2024-03-31T01:00:00.000Z");
        assert_eq!(utc("2024-10-27T01:59:59"), "2024-10-26T23:59:59.000Z");
        assert_eq!(utc("2024-10-27T03:00:00"), "2024-10-27T02:00:00.000Z");
        assert_eq!(
            utc("2024-05-05 08:09:10.123456"),
            "2024-05-05T06:09:10.123Z"
        );
    }

    #[test]
    fn timestamps_parse_as_chrono_does() {
        for raw in [
            "2024-03-31T02:30:00",
            "2024-03-31 02:30:00",
            "2024-03-31T02:30:00.5",
            "2024-03-31T02:30:00.123456",
            "2024-03-31T02:30:00.123456789",
            "1999-12-31T23:59:59.999999",
            "2024-02-29T00:00:00",
            "2023-02-29T00:00:00",
            "2024-13-01T00:00:00",
            "2024-01-01T24:00:00",
            "2024-01-01T00:00:60",
            "2024-01-01T00:00:00.",
            "2024-01-01T00:00:00Z",
            "2024-1-01T00:00:00",
            "20x4-01-01T00:00:00",
            "",
        ] {
            assert_eq!(
                parse_legacy_timestamp(raw),
                general_timestamp(raw),
                "{raw:?}"
            );
        }
        assert!(fast_timestamp("2024-03-31T02:30:00.123").is_some());
    }

    #[test]
    fn ids_are_deterministic_v5() {
        let ns = Uuid::parse_str(crate::config::DEFAULT_UUID_NAMESPACE).unwrap();
        let a = legacy_uuid(&ns, "buyer", 42);
        assert_eq!(a, legacy_uuid(&ns, "buyer", 42));
        assert_ne!(a, legacy_uuid(&ns, "producer", 42));
        assert_eq!(a.get_version_num(), 5);
        assert_eq!(a, Uuid::new_v5(&ns, b"s9:buyer:42"));
    }

    #[test]
    fn numbers_compare_by_value() {
        for (a, b) in [
            ("1234.50", "1234.5"),
            ("0.0", "0"),
            ("-0", "0"),
            ("007", "7"),
            ("1E+2", "100"),
            ("1.5e-3", "0.0015"),
            ("-12.300", "-12.3"),
            (
                "123456789012345678901234567890123456.78",
                "123456789012345678901234567890123456.78",
            ),
        ] {
            assert_eq!(canonical_number(a).unwrap(), b, "{a}");
        }
        assert_eq!(canonical_number("abc"), None);
        // already canonical: borrowed, and the same as the slow path gives
        for t in [
            "0",
            "7",
            "-7",
            "12.5",
            "-0.05",
            "100",
            "0.001",
            "123456789012345678901234567890",
        ] {
            assert!(
                matches!(canonical_number_cow(t), Some(Cow::Borrowed(_))),
                "{t}"
            );
            assert_eq!(canonical_slow(t).as_deref(), Some(t), "{t}");
        }
        for t in [
            "-0", "00", "0.0", "1.50", "1.", ".5", "01", "1e2", "+1", " 1", "-", "", "1.2.3", "abc",
        ] {
            assert!(!is_canonical_number(t), "{t}");
            assert_eq!(
                canonical_number_cow(t).map(Cow::into_owned),
                canonical_slow(t),
                "{t}"
            );
        }
        assert_eq!(parse_decimal("1234.50").unwrap().to_string(), "1234.50");
    }
}
