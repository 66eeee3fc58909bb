//! The data directory's side of encryption: `encryption.json` (format,
//! scrypt cost, salt, recipient; nothing secret) and the rules checked
//! before a command reads or writes anything (docs/encryption.md): a key
//! for a directory with plain records, no key for an encrypted one, and a
//! key that is not the directory's are refused.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Key;
use crate::artifact::{hex, read_json, write_json_atomic};
use crate::error::{Error, Result};

/// The file in the data directory that says it is encrypted, and how.
pub const KEY_FILE: &str = "encryption.json";

/// scrypt's cost: 2^15 rounds of 32 MiB, about 0.1 s, once per command. The
/// passphrase should be a random key (docs/encryption.md), which
/// no cost factor needs to protect; the cost guards a weaker one.
const LOG_N: u8 = 15;

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

/// Checks `data_dir` against the configured passphrase and, when there is
/// one, installs the key every artifact read and write of this process
/// uses. Refuses (exit 2, nothing written): a key for a directory that holds
/// plain files with records; no key for an encrypted directory; a key that
/// is not the directory's.
pub fn open_data_dir(data_dir: &Path, passphrase: Option<&str>) -> Result<Option<&'static Key>> {
    let key = check(data_dir, passphrase)?;
    Ok(key.map(super::install))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_encrypted_or_plain_and_a_wrong_key_is_refused() {
        let dir = crate::crypt::temp_dir("crypt");
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
        let dir = crate::crypt::temp_dir("crypt");
        crate::artifact::create_private_dir(&dir.join("extracted")).unwrap();
        std::fs::write(dir.join("extracted/buyers.jsonl"), "{}\n").unwrap();
        let mixed = check(&dir, Some("k1")).unwrap_err().to_string();
        assert!(mixed.contains("all encrypted or all plain"), "{mixed}");
        assert!(!dir.join(KEY_FILE).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
