//! `COPY … TO STDOUT (FORMAT binary)` decoded on the migration host: the
//! stream's header, tuples and trailer parsed chunk by chunk, and each tuple
//! written as the very JSON line `row_to_json` would have written (same keys
//! in the same order, same escaping, same number and date text), so the
//! extract artifact does not depend on which side rendered it
//! (docs/extract.md).
//!
//! A [`RowPlan`] comes from the query's own description (its columns' names
//! and types); a column of a type with no decoder here makes the plan
//! [`Unsupported`] and extract falls back to `row_to_json`.

use tokio_postgres::types::Type;

use super::pgtext;
use crate::error::{Error, Result};

/// The 11-byte signature every binary COPY stream starts with.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Header flag bit 16: the tuples carry OIDs (never asked for here).
const FLAG_OIDS: u32 = 1 << 16;

/// How one column's binary value becomes JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    /// text, varchar, bpchar (with its padding), name: the bytes, escaped
    Text,
    Numeric,
    Date,
    Timestamp,
    Uuid,
}

impl Kind {
    fn of(t: &Type) -> Option<Kind> {
        Some(match *t {
            Type::BOOL => Kind::Bool,
            Type::INT2 => Kind::Int2,
            Type::INT4 => Kind::Int4,
            Type::INT8 => Kind::Int8,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Kind::Text,
            Type::NUMERIC => Kind::Numeric,
            Type::DATE => Kind::Date,
            Type::TIMESTAMP => Kind::Timestamp,
            Type::UUID => Kind::Uuid,
            _ => return None,
        })
    }

    fn render(self, data: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
        match self {
            Kind::Bool => pgtext::boolean(data, out),
            Kind::Int2 => pgtext::int(data, 2, out),
            Kind::Int4 => pgtext::int(data, 4, out),
            Kind::Int8 => pgtext::int(data, 8, out),
            Kind::Text => {
                pgtext::escape_json(data, out);
                Ok(())
            }
            Kind::Numeric => pgtext::numeric(data, out),
            Kind::Date => pgtext::date(data, out),
            Kind::Timestamp => pgtext::timestamp(data, out),
            Kind::Uuid => pgtext::uuid(data, out),
        }
    }
}

struct Column {
    name: String,
    type_name: String,
    kind: Kind,
    /// `{"name":` for the first column, `,"name":` for the others.
    key: Vec<u8>,
}

/// A column whose type has no binary decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub column: String,
    pub type_name: String,
}

/// How to render the tuples of one query: its columns, in order.
pub struct RowPlan {
    columns: Vec<Column>,
}

impl RowPlan {
    /// A plan for columns given by name and type, or the first column no
    /// decoder handles.
    pub fn new<'a>(
        columns: impl IntoIterator<Item = (&'a str, &'a Type)>,
    ) -> std::result::Result<RowPlan, Unsupported> {
        let mut out = Vec::new();
        for (i, (name, ty)) in columns.into_iter().enumerate() {
            let type_name = if ty.schema() == "pg_catalog" {
                ty.name().to_string()
            } else {
                format!("{}.{}", ty.schema(), ty.name())
            };
            let kind = Kind::of(ty).ok_or_else(|| Unsupported {
                column: name.to_string(),
                type_name: type_name.clone(),
            })?;
            let mut key = vec![if i == 0 { b'{' } else { b',' }];
            pgtext::escape_json(name.as_bytes(), &mut key);
            key.push(b':');
            out.push(Column {
                name: name.to_string(),
                type_name,
                kind,
                key,
            });
        }
        Ok(RowPlan { columns: out })
    }

    /// Renders the tuple that starts at `data[0]` into `out` (cleared
    /// first). `Ok(None)`: the tuple is not complete in `data`; `Ok(Some(n))`:
    /// it took `n` bytes. The trailer is not a tuple (see [`CopyDecoder`]).
    fn render(&self, data: &[u8], row: u64, out: &mut Vec<u8>) -> Result<Option<usize>> {
        out.clear();
        let Some(count) = data.get(..2) else {
            return Ok(None);
        };
        let count = i16::from_be_bytes([count[0], count[1]]);
        if usize::try_from(count).ok() != Some(self.columns.len()) {
            return Err(Error::Source(format!(
                "binary COPY row {row}: {count} fields, the query has {} columns",
                self.columns.len()
            )));
        }
        let mut p = 2;
        if self.columns.is_empty() {
            out.push(b'{');
        }
        for c in &self.columns {
            let Some(len) = data.get(p..p + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            p += 4;
            out.extend_from_slice(&c.key);
            if len == -1 {
                out.extend_from_slice(b"null");
                continue;
            }
            let len = usize::try_from(len).map_err(|_| {
                Error::Source(format!(
                    "binary COPY row {row}, column {}: field length {len}",
                    c.name
                ))
            })?;
            let Some(value) = data.get(p..p + len) else {
                return Ok(None);
            };
            p += len;
            c.kind.render(value, out).map_err(|e| {
                Error::Source(format!(
                    "binary COPY row {row}, column {} ({}): {e}",
                    c.name, c.type_name
                ))
            })?;
        }
        out.push(b'}');
        Ok(Some(p))
    }
}

/// Parses one binary COPY stream fed in chunks of any size, and hands each
/// tuple over as one JSON line (without its newline).
pub struct CopyDecoder<'p> {
    plan: &'p RowPlan,
    /// Bytes of a header or tuple that a chunk ended in the middle of.
    pending: Vec<u8>,
    header_done: bool,
    trailer_seen: bool,
    rows: u64,
    line: Vec<u8>,
}

impl<'p> CopyDecoder<'p> {
    pub fn new(plan: &'p RowPlan) -> Self {
        CopyDecoder {
            plan,
            pending: Vec::new(),
            header_done: false,
            trailer_seen: false,
            rows: 0,
            line: Vec::with_capacity(1024),
        }
    }

    /// Decodes `chunk`, calling `on_line` for every whole tuple it
    /// completes; returns how many that was.
    pub fn feed<F>(&mut self, chunk: &[u8], on_line: &mut F) -> Result<u64>
    where
        F: FnMut(&[u8]) -> Result<()>,
    {
        let before = self.rows;
        if self.pending.is_empty() {
            let used = self.consume(chunk, on_line)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut data = std::mem::take(&mut self.pending);
            data.extend_from_slice(chunk);
            let used = self.consume(&data, on_line)?;
            data.drain(..used);
            self.pending = data;
        }
        Ok(self.rows - before)
    }

    /// The stream ended: it must have ended with its trailer, nothing after.
    /// Returns the rows decoded.
    pub fn finish(self) -> Result<u64> {
        if !self.trailer_seen || !self.pending.is_empty() {
            return Err(Error::Source(format!(
                "binary COPY ended after {} rows without its trailer ({} bytes left undecoded)",
                self.rows,
                self.pending.len()
            )));
        }
        Ok(self.rows)
    }

    fn consume<F>(&mut self, data: &[u8], on_line: &mut F) -> Result<usize>
    where
        F: FnMut(&[u8]) -> Result<()>,
    {
        let mut pos = 0;
        if !self.header_done {
            // signature, flags, header extension length, extension
            if data.len() < 19 {
                return Ok(0);
            }
            if &data[..11] != SIGNATURE {
                return Err(Error::Source(
                    "binary COPY: the stream does not start with PGCOPY's signature".into(),
                ));
            }
            let flags = u32::from_be_bytes(data[11..15].try_into().expect("4 bytes"));
            if flags & FLAG_OIDS != 0 {
                return Err(Error::Source("binary COPY: tuples with OIDs".into()));
            }
            let ext = u32::from_be_bytes(data[15..19].try_into().expect("4 bytes")) as usize;
            if data.len() < 19 + ext {
                return Ok(0);
            }
            pos = 19 + ext;
            self.header_done = true;
        }
        while pos < data.len() {
            if self.trailer_seen {
                return Err(Error::Source(format!(
                    "binary COPY: {} bytes after the trailer",
                    data.len() - pos
                )));
            }
            if data[pos..].starts_with(&[0xff, 0xff]) {
                self.trailer_seen = true;
                pos += 2;
                continue;
            }
            let row = self.rows + 1;
            match self.plan.render(&data[pos..], row, &mut self.line)? {
                None => break,
                Some(n) => {
                    on_line(&self.line)?;
                    self.rows = row;
                    pos += n;
                }
            }
        }
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RowPlan {
        RowPlan::new([
            ("id", &Type::INT4),
            ("na\"me", &Type::TEXT),
            ("ok", &Type::BOOL),
        ])
        .unwrap()
    }

    fn stream(rows: &[[Option<&[u8]>; 3]]) -> Vec<u8> {
        let mut s = SIGNATURE.to_vec();
        s.extend_from_slice(&0u32.to_be_bytes());
        s.extend_from_slice(&4u32.to_be_bytes());
        s.extend_from_slice(b"junk"); // a header extension is skipped
        for r in rows {
            s.extend_from_slice(&3i16.to_be_bytes());
            for f in r {
                match f {
                    None => s.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => {
                        s.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        s.extend_from_slice(v);
                    }
                }
            }
        }
        s.extend_from_slice(&(-1i16).to_be_bytes());
        s
    }

    fn decode(plan: &RowPlan, bytes: &[u8], chunk: usize) -> Result<Vec<String>> {
        let mut d = CopyDecoder::new(plan);
        let mut lines = Vec::new();
        let mut fed = 0;
        for c in bytes.chunks(chunk) {
            fed += d.feed(c, &mut |l: &[u8]| {
                lines.push(String::from_utf8(l.to_vec()).unwrap());
                Ok(())
            })?;
        }
        assert_eq!(d.finish()?, fed);
        Ok(lines)
    }

    #[test]
    fn tuples_become_row_to_json_lines_whatever_the_chunks() {
        let one = 1i32.to_be_bytes();
        let two = (-2i32).to_be_bytes();
        let bytes = stream(&[
            [Some(&one), Some(b"a\nb"), Some(&[1])],
            [Some(&two), None, None],
            [Some(&one), Some(b""), Some(&[0])],
        ]);
        let want = [
            r#"{"id":1,"na\"me":"a\nb","ok":true}"#,
            r#"{"id":-2,"na\"me":null,"ok":null}"#,
            r#"{"id":1,"na\"me":"","ok":false}"#,
        ];
        for chunk in [1, 2, 3, 7, 19, 20, 64, bytes.len()] {
            assert_eq!(
                decode(&plan(), &bytes, chunk).unwrap(),
                want,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn broken_streams_are_errors() {
        let one = 1i32.to_be_bytes();
        let good = stream(&[[Some(&one), Some(b"x"), Some(&[1])]]);
        // cut short: no trailer
        assert!(decode(&plan(), &good[..good.len() - 2], 5).is_err());
        // bytes after the trailer
        let mut extra = good.clone();
        extra.push(0);
        assert!(decode(&plan(), &extra, 4).is_err());
        // not a binary COPY stream
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(decode(&plan(), &bad, 100).is_err());
        // a field of the wrong width names its row and column
        let e = decode(
            &plan(),
            &stream(&[[Some(&[0, 1]), Some(b"x"), Some(&[1])]]),
            100,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("row 1, column id (int4)"), "{e}");
        // a tuple with another number of fields
        let two = RowPlan::new([("id", &Type::INT4), ("x", &Type::TEXT)]).unwrap();
        assert!(decode(&two, &good, 100).is_err());
    }

    #[test]
    fn types_without_a_decoder_are_named() {
        let e = RowPlan::new([("id", &Type::INT4), ("at", &Type::TIMESTAMPTZ)])
            .err()
            .unwrap();
        assert_eq!(
            e,
            Unsupported {
                column: "at".into(),
                type_name: "timestamptz".into()
            }
        );
        assert!(RowPlan::new([("f", &Type::FLOAT8)]).is_err());
    }
}
