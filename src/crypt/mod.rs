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
//! mixing is refused ([`dir`]). [`log`] holds the append-only files
//! (ledgers, the failed file) as a series of age segments.

pub mod dir;
pub mod log;
mod stream;

use std::path::Path;
use std::sync::OnceLock;

use bech32::ToBase32 as _;

use crate::error::{Error, Result};
pub use stream::{Opened, Sealed, is_sealed, open, open_file, seal};

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

static KEY: OnceLock<Key> = OnceLock::new();

/// The key of this process's data directory, if it is encrypted.
pub fn current() -> Option<&'static Key> {
    KEY.get()
}

/// Makes `key` the process's key ([`dir::open_data_dir`]); the first wins.
fn install(key: Key) -> &'static Key {
    let _ = KEY.set(key);
    KEY.get().expect("just set")
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
}
