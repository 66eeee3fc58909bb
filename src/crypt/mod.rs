//! Encrypted data directories (docs/encryption.md): with
//! `migration.artifactKey` set, every file that holds source records is an
//! [age](https://age-encryption.org/v1) file, written and read as a stream.
//!
//! The passphrase is stretched once per command (scrypt, with the salt and
//! cost recorded in the data directory's plain `encryption.json`) into an age
//! X25519 identity; each file is encrypted to its recipient, so opening a
//! file costs one key agreement, not one scrypt. `encryption.json` also holds
//! the recipient, so a wrong key is refused before anything is read or
//! written, and a directory is encrypted or plain from its first file on:
//! mixing is refused. [`log`] holds the append-only files (ledgers, the
//! failed file) as a series of age segments.

pub mod log;
mod stream;

use std::path::Path;
use std::sync::OnceLock;

use bech32::ToBase32 as _;
use serde::{Deserialize, Serialize};

use crate::artifact::{hex, read_json, write_json_atomic};
use crate::error::{Error, Result};
pub use stream::{Opened, Sealed, is_sealed, open, open_file, seal};

/// The file in the data directory that says it is encrypted, and how.
pub const KEY_FILE: &str = "encryption.json";

/// scrypt's cost: 2^15 rounds of 32 MiB, about 0.1 s, once per command. The
/// passphrase should be a random key (README "Encrypted artifacts"), which
/// no cost factor needs to protect; the cost guards a weaker one.
const LOG_N: u8 = 15;

/// An open data directory key: the identity that decrypts, the recipient
/// that encrypts.
pub struct Key {
    identity: age::x25519::Identity,
    recipient: age::x25519::Recipient,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.recipient)
    }
}

impl Key {
    /// Stretches `passphrase` with `salt` at cost `log_n`.
    pub fn derive(passphrase: &str, salt: &[u8], log_n: u8) -> Result<Key> {
        let params = scrypt::Params::new(log_n, 8, 1, 32)
            .map_err(|e| Error::Key(format!("scrypt parameters (logN {log_n}): {e}")))?;
        let mut secret = [0u8; 32];
        scrypt::scrypt(passphrase.as_bytes(), salt, &params, &mut secret)
            .expect("32 bytes is a valid scrypt output length");
        let text = bech32::encode(
            "age-secret-key-",
            secret.to_base32(),
            bech32::Variant::Bech32,
        )
        .expect("the age prefix is a valid bech32 prefix")
        .to_uppercase();
        secret.fill(0);
        let identity: age::x25519::Identity = text
            .parse()
            .expect("32 bytes in bech32 make an X25519 identity");
        let recipient = identity.to_public();
        Ok(Key {
            identity,
            recipient,
        })
    }

    /// The recipient, as `age1…` (public: recorded in `encryption.json`).
    pub fn recipient(&self) -> String {
        self.recipient.to_string()
    }
}

/// `encryption.json`: plain, holds nothing secret.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFile {
    format: String,
    kdf: String,
    log_n: u8,
    salt: String,
    recipient: String,
    created_at: String,
}

static KEY: OnceLock<Key> = OnceLock::new();

/// The key of this process's data directory, if it is encrypted.
pub fn current() -> Option<&'static Key> {
    KEY.get()
}

/// Checks `data_dir` against the configured passphrase and, when there is
/// one, installs the key every artifact read and write of this process
/// uses. Refuses (exit 2, nothing written): a key for a directory that holds
/// plain files with records; no key for an encrypted directory; a key that
/// is not the directory's.
pub fn open_data_dir(data_dir: &Path, passphrase: Option<&str>) -> Result<Option<&'static Key>> {
    let key = check(data_dir, passphrase)?;
    Ok(key.map(|k| {
        let _ = KEY.set(k);
        KEY.get().expect("just set")
    }))
}

/// [`open_data_dir`] without installing the key.
pub fn check(data_dir: &Path, passphrase: Option<&str>) -> Result<Option<Key>> {
    let path = data_dir.join(KEY_FILE);
    let recorded: Option<KeyFile> = if path.exists() {
        Some(read_json(&path)?)
    } else {
        None
    };
    match (passphrase, recorded) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Error::Key(format!(
            "{} is encrypted ({} exists) but migration.artifactKey is not set; set it to the \
             passphrase this data directory was created with",
            data_dir.display(),
            path.display()
        ))),
        (Some(p), Some(file)) => {
            let salt = unhex(&file.salt)
                .ok_or_else(|| Error::Key(format!("{}: salt is not hex", path.display())))?;
            if file.format != "age-x25519" || file.kdf != "scrypt" {
                return Err(Error::Key(format!(
                    "{}: unknown format {:?} / kdf {:?}",
                    path.display(),
                    file.format,
                    file.kdf
                )));
            }
            let key = Key::derive(p, &salt, file.log_n)?;
            if key.recipient() != file.recipient {
                return Err(Error::Key(format!(
                    "migration.artifactKey is not the key {} was encrypted with; nothing was \
                     read or written",
                    data_dir.display()
                )));
            }
            Ok(Some(key))
        }
        (Some(p), None) => {
            if p.is_empty() {
                return Err(Error::Key(
                    "migration.artifactKey is empty (unset it for a plain data directory)".into(),
                ));
            }
            let plain = crate::purge::personal_files(data_dir)?;
            if let Some(first) = plain.first() {
                return Err(Error::Key(format!(
                    "{} holds {} plain file(s) with source records (e.g. {}), and a data directory \
                     is all encrypted or all plain: use a new data directory for an encrypted \
                     migration, or run `migrate purge` on this one first",
                    data_dir.display(),
                    plain.len(),
                    data_dir.join(first).display()
                )));
            }
            let salt = uuid::Uuid::new_v4().into_bytes();
            let key = Key::derive(p, &salt, LOG_N)?;
            crate::artifact::create_private_dir(data_dir)?;
            write_json_atomic(
                &path,
                &KeyFile {
                    format: "age-x25519".into(),
                    kdf: "scrypt".into(),
                    log_n: LOG_N,
                    salt: hex(&salt),
                    recipient: key.recipient(),
                    created_at: chrono::Utc::now().to_rfc3339(),
                },
            )?;
            tracing::info!(
                "{} is an encrypted data directory from now on",
                data_dir.display()
            );
            Ok(Some(key))
        }
    }
}

/// Refuses a file whose form (plain or sealed) is not the directory's.
pub fn check_form(path: &Path, sealed: bool, key: Option<&Key>) -> Result<()> {
    match (sealed, key) {
        (true, None) => Err(Error::artifact(
            path,
            "is encrypted; set migration.artifactKey to read it",
        )),
        (false, Some(_)) => Err(Error::artifact(
            path,
            "is plain in an encrypted data directory (was it copied in?); refusing to use it",
        )),
        _ => Ok(()),
    }
}

/// The error for a file the key cannot open, or whose stream is cut or
/// altered.
pub fn unreadable(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::artifact(
        path,
        format!("cannot be decrypted ({e}): a wrong key, or the file was cut or changed"),
    )
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.len()
        .is_multiple_of(2)
        .then(|| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

/// A key for unit tests (cheap scrypt), leaked so it lives as long as the
/// files it writes.
#[cfg(test)]
pub fn test_key(passphrase: &str) -> &'static Key {
    Box::leak(Box::new(Key::derive(passphrase, b"salt", 4).unwrap()))
}

/// Where tests put their data directories.
#[cfg(test)]
fn temp_dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("migrate-{tag}-{}", uuid::Uuid::new_v4()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_passphrase_and_salt_give_the_same_key() {
        let a = Key::derive("correct horse", b"salt-1", 4).unwrap();
        let b = Key::derive("correct horse", b"salt-1", 4).unwrap();
        let c = Key::derive("correct horse", b"salt-2", 4).unwrap();
        let d = Key::derive("wrong horse", b"salt-1", 4).unwrap();
        assert_eq!(a.recipient(), b.recipient());
        assert_ne!(a.recipient(), c.recipient());
        assert_ne!(a.recipient(), d.recipient());
        assert!(a.recipient().starts_with("age1"));
        assert!(!format!("{a:?}").contains("SECRET"));
    }

    #[test]
    fn a_directory_is_encrypted_or_plain_and_a_wrong_key_is_refused() {
        let dir = temp_dir("crypt");
        // No key, nothing recorded: plain.
        assert!(check(&dir, None).unwrap().is_none());
        // The first key makes it encrypted...
        let key = check(&dir, Some("k1")).unwrap().unwrap();
        let file: KeyFile = read_json(&dir.join(KEY_FILE)).unwrap();
        assert_eq!(file.recipient, key.recipient());
        // ...the same key opens it again, another is refused, none is refused.
        assert_eq!(
            check(&dir, Some("k1")).unwrap().unwrap().recipient(),
            key.recipient()
        );
        let wrong = check(&dir, Some("k2")).unwrap_err();
        assert!(wrong.to_string().contains("not the key"), "{wrong}");
        assert_eq!(wrong.exit_code(), 2);
        let none = check(&dir, None).unwrap_err().to_string();
        assert!(none.contains("artifactKey is not set"), "{none}");
        std::fs::remove_dir_all(&dir).unwrap();
        // A plain directory with records cannot become encrypted.
        let dir = temp_dir("crypt");
        crate::artifact::create_private_dir(&dir.join("extracted")).unwrap();
        std::fs::write(dir.join("extracted/buyers.jsonl"), "{}\n").unwrap();
        let mixed = check(&dir, Some("k1")).unwrap_err().to_string();
        assert!(mixed.contains("all encrypted or all plain"), "{mixed}");
        assert!(!dir.join(KEY_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
