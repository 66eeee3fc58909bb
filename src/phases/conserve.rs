//! The conservation check every phase makes before it keeps its output
//! (docs/safety.md, "No silent truncation"): it read as many records as its
//! input's manifest holds, and every record read came out somewhere.

use std::path::Path;

use crate::error::{Error, Result};

/// Fails unless `read` equals the input manifest's `expected` record count
/// and the `outputs` (name, count) add up to `read`.
pub fn conserved(
    phase: &str,
    entity: &str,
    input: &Path,
    expected: u64,
    read: u64,
    outputs: &[(&str, u64)],
) -> Result<()> {
    if read != expected {
        return Err(Error::Incomplete(format!(
            "{phase} of {entity}: read {read} records of {} but its manifest holds {expected}; \
             nothing was kept",
            input.display()
        )));
    }
    let out: u64 = outputs.iter().map(|(_, n)| n).sum();
    if out != read {
        let parts: Vec<String> = outputs.iter().map(|(k, n)| format!("{n} {k}")).collect();
        return Err(Error::Incomplete(format!(
            "{phase} of {entity}: {read} records read but {} ({out}) came out; nothing was kept",
            parts.join(" + ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_is_accounted_for() {
        let p = Path::new("data/extracted/buyers.jsonl");
        conserved("transform", "buyers", p, 10, 10, &[("items", 8), ("q", 2)]).unwrap();
        let short = conserved("transform", "buyers", p, 10, 9, &[("items", 9)]).unwrap_err();
        assert!(
            short.to_string().contains("read 9 records") && short.to_string().contains("10"),
            "{short}"
        );
        let lost = conserved(
            "validate",
            "sales",
            p,
            10,
            10,
            &[("valid", 7), ("rejected", 2)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            lost.contains("validate of sales") && lost.contains("(9)"),
            "{lost}"
        );
    }
}
