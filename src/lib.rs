//! `migrate`: moves business entities from a legacy PostgreSQL database into
//! Amazon DynamoDB in five phases — extract, transform, validate, load,
//! verify — safely enough to run against production.
//!
//! A map of the modules:
//! - [`cli`]: the command line; [`config`]: the configuration file, checked
//!   against its JSON Schema and typed.
//! - [`runner`]: which phases run for which entities, in what order, with
//!   dependency checks and the [`checkpoint`]; `--resume` replays it;
//!   [`ctx`]: what every phase needs from the run.
//! - [`phases`]: one module per phase; [`pipeline`]: concurrent batch writes;
//!   [`rate`]: the write-rate cap they keep to.
//! - [`entities`]: the entity contract, the registry, and one module per
//!   entity; [`mapping`]: the pure value mappings they share; [`json`]:
//!   borrowed JSON lines, checked in place by the compiled schemas.
//! - [`artifact`]: JSON Lines with manifests and atomic writes;
//!   [`source`]: PostgreSQL; [`dynamo`]: DynamoDB, limits and retries;
//!   [`limits`]: what DynamoDB refuses in an item's values;
//!   [`backup`]: backups, the ledger, the baseline and rollback;
//!   [`fingerprint`]: item fingerprints (verify, ledger, rollback);
//!   [`pitr`]: point-in-time recovery; [`tables`]: the target tables from
//!   the entities' definitions (`migrate tables create`); [`import`]: the
//!   S3 import load path (parts in S3, `ImportTable`).
//! - [`lock`]: one writing command per data directory; [`crypt`]: the
//!   encrypted data directory (age files, `migration.artifactKey`).
//! - [`report`] (the JSON reports and the HTML page), [`progress`],
//!   [`logging`], [`status`], [`metrics`]: what the operator sees.
//!
//! Only what the binary and the integration tests use is public; the
//! phases, the artifact format, the fingerprints and the other inner
//! modules are `pub(crate)`, so the compiler reports their dead code.

pub(crate) mod artifact;
pub mod backup;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod crypt;
pub(crate) mod ctx;
pub mod dynamo;
pub mod entities;
pub mod error;
pub(crate) mod fingerprint;
pub mod import;
pub(crate) mod json;
pub(crate) mod limits;
pub mod lock;
pub mod logging;
pub mod mapping;
pub mod metrics;
pub(crate) mod parallel;
pub(crate) mod phases;
pub(crate) mod pipeline;
pub(crate) mod pitr;
pub(crate) mod preflight;
pub mod progress;
pub mod purge;
pub(crate) mod rate;
pub mod report;
pub mod runner;
pub mod source;
pub mod status;
pub mod tables;

pub use error::{Error, Result};
