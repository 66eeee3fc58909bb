//! The library's typed errors and the exit status each one maps to.
//!
//! Every variant carries a message that says what went wrong and where (file,
//! JSON path, table, entity), so the binary can print one clear line.

use std::path::PathBuf;

/// What a failure means for what comes next (docs/design.md, "Failures"):
/// whether the same request may succeed later, whether only one item is at
/// fault, or whether nothing will work until someone changes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Throttling: the table or account is over its capacity.
    Throttled,
    /// 5xx, timeouts, dropped connections.
    Transient,
    /// The request was refused for the sake of an item in it
    /// (`ValidationException`: a number out of range, an item too large, a
    /// key of the wrong type): sending it again fails again, but the other
    /// items of a batch can be written without it.
    Refused,
    /// Missing tables, access denied, bad credentials: stop.
    Terminal,
    /// Bad input: the command line, the configuration, an artifact, the
    /// checkpoint, the key; or a pre-flight refusal. Fix it, then run again.
    Input,
}

impl Class {
    /// Whether the same request may succeed later.
    pub fn retryable(self) -> bool {
        matches!(self, Class::Throttled | Class::Transient)
    }
}

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop `migrate`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command-line usage (exit 2).
    #[error("{0}")]
    Usage(String),

    /// The configuration file is unreadable, malformed or invalid (exit 2).
    #[error("configuration {path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An artifact is missing, truncated, edited or malformed.
    #[error("artifact {}: {message}", path.display())]
    Artifact { path: PathBuf, message: String },

    /// The source database refused or failed.
    #[error("PostgreSQL: {0}")]
    Source(String),

    /// DynamoDB refused or failed; `class` says how (a retryable class:
    /// still failing after every retry).
    #[error("DynamoDB: {message}")]
    Target { class: Class, message: String },

    /// S3 refused or failed, or holds other bytes than were sent (the S3
    /// import path).
    #[error("S3: {0}")]
    S3(String),

    /// A table exists with another key schema or other indexes than the
    /// entities declare (exit 2: nothing was created or changed).
    #[error("{0}")]
    TableMismatch(String),

    /// The checkpoint is missing, corrupt, or forbids what was asked.
    #[error("checkpoint: {0}")]
    Checkpoint(String),

    /// A phase was asked for an entity whose prerequisites have not run.
    #[error("{0}")]
    Dependency(String),

    /// Items could not be written, or verification found differences.
    #[error("{0}")]
    Incomplete(String),

    /// A pre-flight check refused the command before any write (exit 2):
    /// the target is not as the configuration requires.
    #[error("pre-flight: {0}")]
    Preflight(String),

    /// The operator interrupted the run (Ctrl-C); state was saved.
    #[error("interrupted: {0}")]
    Interrupted(String),

    /// `--time-limit` was reached (exit 3): the command stopped gracefully,
    /// its state saved; the message names the command that goes on.
    #[error("stopped at the time limit; run {0}")]
    TimeLimit(String),

    /// Another command holds the data directory (exit 2): nothing was done.
    #[error("{0}")]
    InUse(String),

    /// The artifact key does not fit the data directory (exit 2): missing,
    /// wrong, or for a directory that holds plain files; nothing was done.
    #[error("artifact key: {0}")]
    Key(String),
}

impl Error {
    /// The process exit status for this error (README "Usage": 2 for usage or
    /// configuration, 3 for a run stopped at its time limit, 1 for everything
    /// that failed while running).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_)
            | Error::Config { .. }
            | Error::Preflight(_)
            | Error::TableMismatch(_)
            | Error::InUse(_)
            | Error::Key(_) => 2,
            Error::TimeLimit(_) => 3,
            _ => 1,
        }
    }

    /// What the failure means for what comes next.
    pub fn class(&self) -> Class {
        match self {
            Error::Target { class, .. } => *class,
            Error::Source(_) | Error::S3(_) | Error::Io { .. } => Class::Terminal,
            Error::Incomplete(_) => Class::Refused,
            Error::Interrupted(_) | Error::TimeLimit(_) => Class::Transient,
            Error::Usage(_)
            | Error::Config { .. }
            | Error::Artifact { .. }
            | Error::TableMismatch(_)
            | Error::Checkpoint(_)
            | Error::Dependency(_)
            | Error::Preflight(_)
            | Error::InUse(_)
            | Error::Key(_) => Class::Input,
        }
    }

    /// A DynamoDB failure nothing will cure but a change on the target's
    /// side (a missing table, a refused permission, a wrong key schema).
    pub fn target(message: impl Into<String>) -> Self {
        Error::Target {
            class: Class::Terminal,
            message: message.into(),
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An artifact problem at `path`.
    pub fn artifact(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Artifact {
            path: path.into(),
            message: message.into(),
        }
    }
}
