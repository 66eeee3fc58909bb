//! The dry run of the S3 import path: the bytes and objects an import would
//! upload, its cost at the published price next to the BatchWriteItem
//! path's write units and their cost, and which path is cheaper for this
//! data (README "Two ways to load"). Prices are integers of micro-dollars:
//! no cost passes through a float.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::dynamo;
use crate::progress::thousands;

/// Import from S3, us-east-1: USD 0.15 per GB of uncompressed source data.
pub const IMPORT_MICRO_USD_PER_GB: u128 = 150_000;
/// On-demand writes, us-east-1: USD 0.625 per million write request units.
pub const WRITE_MICRO_USD_PER_MILLION_UNITS: u128 = 625_000;
/// A GB as AWS bills it.
const GB: u128 = 1 << 30;
/// The sample compressed to estimate the GZIP ratio.
const SAMPLE_BYTES: usize = 4 << 20;

/// What the parts of one entity would be.
pub struct Sizes {
    pub items: u64,
    /// DynamoDB JSON lines, uncompressed.
    pub raw_bytes: u64,
    sample_in: u64,
    sample: GzEncoder<Counter>,
    line: Vec<u8>,
}

struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            items: 0,
            raw_bytes: 0,
            sample_in: 0,
            sample: GzEncoder::new(Counter(0), Compression::fast()),
            line: Vec::new(),
        }
    }
}

impl Sizes {
    /// Adds one artifact line (a JSON object).
    pub fn add(&mut self, line: &str) -> serde_json::Result<()> {
        self.line.clear();
        self.line.extend_from_slice(br#"{"Item":"#);
        dynamo::item_wire_json(line, &mut self.line)?;
        self.line.extend_from_slice(b"}\n");
        self.items += 1;
        self.raw_bytes += self.line.len() as u64;
        if (self.sample_in as usize) < SAMPLE_BYTES {
            self.sample_in += self.line.len() as u64;
            self.sample
                .write_all(&self.line)
                .expect("writing to a counter cannot fail");
        }
        Ok(())
    }

    /// The row of the plan, with the BatchWriteItem path's `write_units`
    /// (indexes included) beside it.
    pub fn finish(self, part_bytes: u64, write_units: u64) -> Row {
        let compressed = self
            .sample
            .finish()
            .expect("writing to a counter cannot fail")
            .0;
        let gzip_bytes = if self.sample_in == 0 {
            0
        } else {
            (u128::from(self.raw_bytes) * u128::from(compressed) / u128::from(self.sample_in))
                as u64
        };
        Row {
            objects: self.raw_bytes.div_ceil(part_bytes).max(1),
            raw_bytes: self.raw_bytes,
            gzip_bytes,
            import_micro_usd: import_cost(self.raw_bytes),
            write_units,
            write_micro_usd: write_cost(write_units),
        }
    }
}

/// One entity's comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub objects: u64,
    pub raw_bytes: u64,
    pub gzip_bytes: u64,
    pub import_micro_usd: u128,
    pub write_units: u64,
    pub write_micro_usd: u128,
}

impl Row {
    pub fn cheaper(&self) -> &'static str {
        if self.import_micro_usd < self.write_micro_usd {
            "s3-import"
        } else {
            "batch-write"
        }
    }
}

pub fn import_cost(raw_bytes: u64) -> u128 {
    (u128::from(raw_bytes) * IMPORT_MICRO_USD_PER_GB).div_ceil(GB)
}

pub fn write_cost(units: u64) -> u128 {
    (u128::from(units) * WRITE_MICRO_USD_PER_MILLION_UNITS).div_ceil(1_000_000)
}

/// `$1.2345` from micro-dollars.
pub fn dollars(micro: u128) -> String {
    format!("${}.{:04}", micro / 1_000_000, (micro % 1_000_000) / 100)
}

fn megabytes(bytes: u64) -> String {
    format!("{}.{} MB", bytes / 1_000_000, (bytes % 1_000_000) / 100_000)
}

/// The S3 import section of the dry-run plan.
pub fn table(rows: &[(&str, Row)], destination: &str) -> String {
    let mut out = format!(
        "\nS3 import (--via s3-import): parts to {destination}<run>/<entity>/, one ImportTable per entity\n"
    );
    out.push_str(&format!(
        "  {:<10} {:>8} {:>14} {:>12} {:>12} {:>14} {:>12}  {}\n",
        "entity",
        "objects",
        "DynamoDB JSON",
        "GZIP (est.)",
        "import cost",
        "write units",
        "writes cost",
        "cheaper"
    ));
    for (entity, r) in rows {
        out.push_str(&format!(
            "  {:<10} {:>8} {:>14} {:>12} {:>12} {:>14} {:>12}  {}\n",
            entity,
            thousands(r.objects),
            megabytes(r.raw_bytes),
            megabytes(r.gzip_bytes),
            dollars(r.import_micro_usd),
            thousands(r.write_units),
            dollars(r.write_micro_usd),
            r.cheaper()
        ));
    }
    out.push_str(
        "  (us-east-1 list prices: import USD 0.15 per GB of uncompressed data, no write units used; \
         on-demand writes USD 0.625 per million write units, indexes included; S3 storage and requests not counted)",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_exact_integers_and_the_cheaper_path_is_named() {
        // One GB imported: 15 cents; one million write units: 62.5 cents.
        assert_eq!(dollars(import_cost(1 << 30)), "$0.1500");
        assert_eq!(dollars(write_cost(1_000_000)), "$0.6250");
        let mut s = Sizes::default();
        for i in 0..1000 {
            s.add(&format!(
                r#"{{"PK":"SALE#{i}","SK":"METADATA","amount":"12.50"}}"#
            ))
            .unwrap();
        }
        let row = s.finish(10_000, 3_000);
        let line = |i: u32| {
            format!(r#"{{"Item":{{"PK":{{"S":"SALE#{i}"}},"SK":{{"S":"METADATA"}},"amount":{{"S":"12.50"}}}}}}"#)
                .len() as u64
                + 1
        };
        assert_eq!(row.raw_bytes, (0..1000).map(line).sum::<u64>());
        assert_eq!(row.objects, 8);
        assert!(row.gzip_bytes > 0 && row.gzip_bytes < row.raw_bytes);
        // Three write units an item (two indexes) cost more than the bytes.
        assert_eq!(row.cheaper(), "s3-import");
    }
}
