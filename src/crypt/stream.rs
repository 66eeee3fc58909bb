//! One file as a stream, plain or age: [`Sealed`] writes (and must be
//! finished, which writes age's last chunk), [`Opened`] reads; age
//! authenticates each 64 KiB chunk and marks the last one, so a file cut
//! short or altered fails to read instead of yielding less.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use age::stream::{StreamReader, StreamWriter};

use super::{Key, check_form, unreadable};
use crate::error::{Error, Result};

/// The first bytes of every age file.
const MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Starts an age stream to `key`'s recipient on `out`.
pub fn seal<W: Write>(key: &Key, out: W) -> io::Result<StreamWriter<W>> {
    age::Encryptor::with_recipients(std::iter::once(&key.recipient as &dyn age::Recipient))
        .expect("one X25519 recipient always encrypts")
        .wrap_output(out)
}

/// Opens an age stream with `key`; `path` names it in the error.
pub fn open<R: BufRead>(key: &Key, input: R, path: &Path) -> Result<StreamReader<R>> {
    age::Decryptor::new_buffered(input)
        .and_then(|d| d.decrypt(std::iter::once(&key.identity as &dyn age::Identity)))
        .map_err(|e| unreadable(path, e))
}

/// Whether the file at `path` is an age file (false if it is empty).
pub fn is_sealed(path: &Path) -> Result<bool> {
    let mut head = [0u8; MAGIC.len()];
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]).map_err(|e| Error::io(path, e))? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n == head.len() && head == MAGIC)
}

/// A writer that encrypts when the directory has a key.
pub enum Sealed<W: Write> {
    Plain(W),
    Age(StreamWriter<W>),
}

impl<W: Write> Sealed<W> {
    pub fn new(out: W, key: Option<&Key>) -> io::Result<Self> {
        Ok(match key {
            None => Sealed::Plain(out),
            Some(k) => Sealed::Age(seal(k, out)?),
        })
    }

    /// Ends the stream (age's last chunk) and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Sealed::Plain(w) => Ok(w),
            Sealed::Age(s) => s.finish(),
        }
    }
}

impl<W: Write> Write for Sealed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sealed::Plain(w) => w.write(buf),
            Sealed::Age(s) => s.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sealed::Plain(w) => w.write_all(buf),
            Sealed::Age(s) => s.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sealed::Plain(w) => w.flush(),
            Sealed::Age(s) => s.flush(),
        }
    }
}

/// A reader of a plain or age file.
pub enum Opened {
    Plain(File),
    Age(StreamReader<BufReader<File>>),
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Opened::Plain(_) => "Opened::Plain",
            Opened::Age(_) => "Opened::Age",
        })
    }
}

impl Read for Opened {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Opened::Plain(f) => f.read(buf),
            Opened::Age(s) => s.read(buf),
        }
    }
}

/// Opens the file at `path` for reading as the directory's key says:
/// refuses a plain file under a key and an age file without one.
pub fn open_file(path: &Path, key: Option<&Key>) -> Result<Opened> {
    let sealed = is_sealed(path)?;
    check_form(path, sealed, key)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(match key {
        None => Opened::Plain(file),
        Some(k) => Opened::Age(open(k, BufReader::with_capacity(1 << 16, file), path)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::test_key;

    #[test]
    fn round_trip_and_what_is_refused() {
        let dir = crate::crypt::temp_dir("stream");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.jsonl");
        let key = test_key("k");
        let text: String = (0..20_000)
            .map(|i| format!("{{\"name\":\"Rossi {i}\"}}\n"))
            .collect();
        let mut w = Sealed::new(File::create(&path).unwrap(), Some(key)).unwrap();
        w.write_all(text.as_bytes()).unwrap();
        w.finish().unwrap();
        let stored = std::fs::read(&path).unwrap();
        assert!(is_sealed(&path).unwrap());
        assert!(!String::from_utf8_lossy(&stored).contains("Rossi"));
        let mut back = String::new();
        open_file(&path, Some(key))
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
        // Without the key, with another key, cut short, one byte changed.
        assert!(
            open_file(&path, None)
                .unwrap_err()
                .to_string()
                .contains("is encrypted")
        );
        let other = open_file(&path, Some(test_key("other")))
            .unwrap_err()
            .to_string();
        assert!(other.contains("cannot be decrypted"), "{other}");
        for bad in [
            stored[..stored.len() - 100].to_vec(),
            stored[..stored.len() / 2].to_vec(),
            {
                let mut b = stored.clone();
                let i = b.len() / 2;
                b[i] ^= 1;
                b
            },
        ] {
            std::fs::write(&path, &bad).unwrap();
            let mut out = Vec::new();
            let read = open_file(&path, Some(key))
                .and_then(|mut r| r.read_to_end(&mut out).map_err(|e| Error::io(&path, e)));
            assert!(read.is_err(), "a damaged file must not read");
        }
        // A plain file under a key is refused.
        std::fs::write(&path, "{}\n").unwrap();
        assert!(
            open_file(&path, Some(key))
                .unwrap_err()
                .to_string()
                .contains("is plain")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
