//! PostgreSQL's binary send formats turned into the exact JSON text that
//! `row_to_json` writes for them (see docs/extract.md): `escape_json`'s
//! string escaping, integers, `numeric` digit for digit (never through a
//! float), `date` and `timestamp` in the XSD form with PostgreSQL's own
//! calendar arithmetic, booleans and UUIDs.
//!
//! Every function appends to `out` and checks the length and range of what
//! it reads: a malformed value is an error, never a guess.

/// Days from the Julian day 0 to 2000-01-01, PostgreSQL's epoch.
const POSTGRES_EPOCH_JDATE: i64 = 2_451_545;
const USECS_PER_DAY: i64 = 86_400_000_000;
const USECS_PER_HOUR: i64 = 3_600_000_000;
const USECS_PER_MINUTE: i64 = 60_000_000;
const USECS_PER_SEC: i64 = 1_000_000;

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// `s` as a JSON string the way PostgreSQL's `escape_json` writes it:
/// `"` and `\` backslashed, `\b \f \n \r \t` by name, every other byte
/// below 0x20 as `\u00xx` (lower-case hex), everything else (DEL and all
/// non-ASCII) as is.
pub fn escape_json(s: &[u8], out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&s[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

/// Appends the decimal digits of `v` (with `-` when negative).
pub fn integer(v: i64, out: &mut Vec<u8>) {
    if v < 0 {
        out.push(b'-');
    }
    unsigned(v.unsigned_abs(), 1, out);
}

/// Appends `v` in decimal, zero-padded to at least `width` digits
/// (PostgreSQL's `pg_ultostr_zeropad`).
fn unsigned(mut v: u64, width: usize, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for _ in (buf.len() - i)..width {
        out.push(b'0');
    }
    out.extend_from_slice(&buf[i..]);
}

/// `int2`, `int4` or `int8` in network byte order, by its length.
pub fn int(data: &[u8], width: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let v = match (width, data) {
        (2, &[a, b]) => i64::from(i16::from_be_bytes([a, b])),
        (4, &[a, b, c, d]) => i64::from(i32::from_be_bytes([a, b, c, d])),
        (8, d) if d.len() == 8 => i64::from_be_bytes(d.try_into().expect("8 bytes")),
        _ => return Err(format!("{} bytes for an {width}-byte integer", data.len())),
    };
    integer(v, out);
    Ok(())
}

/// `bool`: one byte, non-zero is true (PostgreSQL's `boolrecv`).
pub fn boolean(data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    match data {
        [0] => out.extend_from_slice(b"false"),
        [_] => out.extend_from_slice(b"true"),
        _ => return Err(format!("{} bytes for a bool", data.len())),
    }
    Ok(())
}

/// `uuid`: 16 bytes, written as PostgreSQL's `uuid_out` does (lower-case,
/// 8-4-4-4-12), as a JSON string.
pub fn uuid(data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if data.len() != 16 {
        return Err(format!("{} bytes for a uuid", data.len()));
    }
    out.push(b'"');
    for (i, b) in data.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push(b'-');
        }
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    out.push(b'"');
    Ok(())
}

fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// `numeric`: PostgreSQL's `numeric_send` (digit count, weight, sign,
/// display scale, then base-10000 digits) written as `numeric_out` writes
/// it (`get_str_from_var`): every digit of the display scale, trailing
/// zeros kept. NaN and ±Infinity are not JSON numbers, so `row_to_json`
/// quotes them, and so does this.
pub fn numeric(data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    if data.len() < 8 {
        return Err(format!("{} bytes for a numeric header", data.len()));
    }
    let ndigits = be16(data, 0) as i16;
    let weight = i32::from(be16(data, 2) as i16);
    let sign = be16(data, 4);
    let dscale = be16(data, 6);
    if ndigits < 0 || data.len() != 8 + 2 * ndigits as usize {
        return Err(format!(
            "numeric of {ndigits} digits in {} bytes",
            data.len()
        ));
    }
    match sign {
        NUMERIC_POS | NUMERIC_NEG => {}
        NUMERIC_NAN => {
            out.extend_from_slice(b"\"NaN\"");
            return Ok(());
        }
        NUMERIC_PINF => {
            out.extend_from_slice(b"\"Infinity\"");
            return Ok(());
        }
        NUMERIC_NINF => {
            out.extend_from_slice(b"\"-Infinity\"");
            return Ok(());
        }
        other => return Err(format!("numeric sign {other:#06x}")),
    }
    if dscale > 0x3fff {
        return Err(format!("numeric display scale {dscale}"));
    }
    let digits = &data[8..];
    let ndigits = i32::from(ndigits);
    let digit = |d: i32| -> Result<u16, String> {
        if d < 0 || d >= ndigits {
            return Ok(0);
        }
        let v = be16(digits, 2 * d as usize);
        if v > 9999 {
            return Err(format!("numeric digit {v} is not below 10000"));
        }
        Ok(v)
    };
    if sign == NUMERIC_NEG {
        out.push(b'-');
    }
    let mut d;
    if weight < 0 {
        d = weight + 1;
        out.push(b'0');
    } else {
        d = 0;
        while d <= weight {
            let dig = digit(d)?;
            if d == 0 {
                // the first group without its leading zeros (one digit at least)
                unsigned(u64::from(dig), 1, out);
            } else {
                unsigned(u64::from(dig), 4, out);
            }
            d += 1;
        }
    }
    if dscale > 0 {
        out.push(b'.');
        let end = out.len() + usize::from(dscale);
        let mut i = 0;
        while i < dscale {
            unsigned(u64::from(digit(d)?), 4, out);
            d += 1;
            i += 4;
        }
        out.truncate(end);
    }
    Ok(())
}

/// PostgreSQL's `j2date`: a Julian day number to year, month, day
/// (proleptic Gregorian; year 0 is 1 BC).
fn j2date(jd: u32) -> (i64, u32, u32) {
    let mut julian = jd.wrapping_add(32044);
    let mut quad = julian / 146_097;
    let extra = (julian - quad * 146_097) * 4 + 3;
    julian += 60 + quad * 3 + extra / 146_097;
    quad = julian / 1461;
    julian -= quad * 1461;
    let mut y = julian * 4 / 1461;
    julian = if y != 0 {
        (julian + 305) % 365
    } else {
        (julian + 306) % 366
    } + 123;
    y += quad * 4;
    let year = i64::from(y) - 4800;
    let quad = julian * 2141 / 65536;
    let day = julian - 7834 * quad / 256;
    let month = (quad + 10) % 12 + 1;
    (year, month, day)
}

/// `YYYY-MM-DD` (at least four year digits; ` BC` goes after the whole
/// value, so it is returned for the caller to append).
fn ymd(jd: i64, out: &mut Vec<u8>) -> Result<bool, String> {
    let jd = u32::try_from(jd)
        .ok()
        .filter(|j| *j <= i32::MAX as u32)
        .ok_or_else(|| format!("Julian day {jd} is out of range"))?;
    let (year, month, day) = j2date(jd);
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year };
    unsigned(shown as u64, 4, out);
    out.push(b'-');
    unsigned(u64::from(month), 2, out);
    out.push(b'-');
    unsigned(u64::from(day), 2, out);
    Ok(bc)
}

/// `date`: days since 2000-01-01 (`i32::MIN`/`MAX` are ∓infinity), as the
/// JSON string `row_to_json` writes (`2024-03-31`, `0044-03-15 BC`).
pub fn date(data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let days = match data {
        &[a, b, c, d] => i32::from_be_bytes([a, b, c, d]),
        _ => return Err(format!("{} bytes for a date", data.len())),
    };
    out.push(b'"');
    match days {
        i32::MIN => out.extend_from_slice(b"-infinity"),
        i32::MAX => out.extend_from_slice(b"infinity"),
        _ => {
            if ymd(i64::from(days) + POSTGRES_EPOCH_JDATE, out)? {
                out.extend_from_slice(b" BC");
            }
        }
    }
    out.push(b'"');
    Ok(())
}

/// `timestamp` (without time zone): microseconds since 2000-01-01 00:00
/// (`i64::MIN`/`MAX` are ∓infinity), as the JSON string `row_to_json`
/// writes: `2024-10-27T02:30:00`, fractional seconds only when not zero and
/// without trailing zeros (`…:05.25`), ` BC` last.
pub fn timestamp(data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let ts = match data.try_into() {
        Ok(b) => i64::from_be_bytes(b),
        Err(_) => return Err(format!("{} bytes for a timestamp", data.len())),
    };
    out.push(b'"');
    match ts {
        i64::MIN => out.extend_from_slice(b"-infinity"),
        i64::MAX => out.extend_from_slice(b"infinity"),
        _ => {
            // timestamp2tm: whole days (toward zero), then a non-negative time of day
            let mut date = ts / USECS_PER_DAY;
            let mut time = ts - date * USECS_PER_DAY;
            if time < 0 {
                time += USECS_PER_DAY;
                date -= 1;
            }
            let bc = ymd(date + POSTGRES_EPOCH_JDATE, out)?;
            let hour = time / USECS_PER_HOUR;
            time -= hour * USECS_PER_HOUR;
            let min = time / USECS_PER_MINUTE;
            time -= min * USECS_PER_MINUTE;
            let sec = time / USECS_PER_SEC;
            let fsec = time - sec * USECS_PER_SEC;
            out.push(b'T');
            unsigned(hour as u64, 2, out);
            out.push(b':');
            unsigned(min as u64, 2, out);
            out.push(b':');
            unsigned(sec as u64, 2, out);
            if fsec != 0 {
                out.push(b'.');
                let mut frac = [0u8; 6];
                let mut v = fsec;
                for slot in frac.iter_mut().rev() {
                    *slot = b'0' + (v % 10) as u8;
                    v /= 10;
                }
                let keep = frac.iter().rposition(|b| *b != b'0').map_or(0, |i| i + 1);
                out.extend_from_slice(&frac[..keep]);
            }
            if bc {
                out.extend_from_slice(b" BC");
            }
        }
    }
    out.push(b'"');
    Ok(())
}

#[cfg(test)]
#[path = "pgtext_tests.rs"]
mod tests;
