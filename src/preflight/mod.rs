//! Pre-flight checks that refuse a command before it reads or writes
//! anything (exit 2, docs/checks.md): the source columns each entity reads
//! against the source's catalog ([`drift`], before extract), and the indexes
//! each entity declares against its table ([`indexes`], before a load or a
//! verify). The point-in-time recovery pre-flight lives in `crate::pitr`.

pub mod drift;
pub mod indexes;
