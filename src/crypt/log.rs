//! Append-only files (the ledgers, the load's failed file) that a killed
//! command may leave with a torn end. Plain, they are JSON Lines appended in
//! place. Encrypted, an age stream cannot be reopened for appending, so each
//! append is one *segment*: a 4-byte big-endian length, then a whole age
//! file holding the appended lines. A segment is written with one write and
//! made durable by the caller's sync; a segment cut short by a kill is cut
//! off when the file is next opened for appending and skipped (with a
//! warning) when it is read, exactly as a torn plain line is.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Key, check_form, is_sealed, seal};
use crate::error::{Error, Result};

/// Appends to a log, plain or in segments.
pub struct Appender {
    path: PathBuf,
    file: File,
    key: Option<&'static Key>,
}

impl Appender {
    /// Opens `path` for appending (owner only), first cutting an end a
    /// killed process left half written.
    pub fn open(path: &Path, key: Option<&'static Key>) -> Result<Appender> {
        if let Some(parent) = path.parent() {
            crate::artifact::create_private_dir(parent)?;
        }
        cut_torn_tail(path, key)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Appender {
            path: path.to_path_buf(),
            file,
            key,
        })
    }

    /// Appends whole lines (each ending in a newline) with one write.
    pub fn append(&mut self, lines: &[u8]) -> Result<()> {
        let bytes = match self.key {
            None => std::borrow::Cow::Borrowed(lines),
            Some(k) => std::borrow::Cow::Owned(segment(k, lines)?),
        };
        self.file
            .write_all(&bytes)
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Makes what was appended durable.
    pub fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// One segment holding `lines`.
fn segment(key: &Key, lines: &[u8]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; 4];
    let mut w = seal(key, &mut out).map_err(io_other)?;
    w.write_all(lines).map_err(io_other)?;
    w.finish().map_err(io_other)?;
    let len = u32::try_from(out.len() - 4).map_err(|_| {
        Error::Incomplete(format!("{} bytes do not fit one log segment", lines.len()))
    })?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

fn io_other(e: io::Error) -> Error {
    Error::Incomplete(format!("encrypting a log segment: {e}"))
}

/// Replaces the whole log with `lines` atomically (one segment when
/// encrypted).
pub fn write_atomic(path: &Path, lines: &[u8], key: Option<&Key>) -> Result<()> {
    match key {
        None => crate::artifact::write_atomic(path, lines),
        Some(k) => crate::artifact::write_atomic(path, &segment(k, lines)?),
    }
}

/// The length of the log's intact beginning: up to its last newline when
/// plain, its last whole segment when encrypted. Reads the end (plain) or
/// the segments' lengths (encrypted), never the whole log: a ledger of a
/// million items is a hundred megabytes.
fn intact_len(file: &mut File, len: u64, key: Option<&Key>) -> io::Result<u64> {
    match key {
        None => {
            let mut end = len;
            let mut block = vec![0u8; 1 << 16];
            while end > 0 {
                let from = end.saturating_sub(block.len() as u64);
                let part = &mut block[..(end - from) as usize];
                file.seek(SeekFrom::Start(from))?;
                file.read_exact(part)?;
                if let Some(i) = part.iter().rposition(|b| *b == b'\n') {
                    return Ok(from + i as u64 + 1);
                }
                end = from;
            }
            Ok(0)
        }
        Some(_) => {
            let mut at = 0u64;
            let mut head = [0u8; 4];
            while len - at >= 4 {
                file.seek(SeekFrom::Start(at))?;
                file.read_exact(&mut head)?;
                let n = u64::from(u32::from_be_bytes(head));
                if len - at - 4 < n {
                    break;
                }
                at += 4 + n;
            }
            Ok(at)
        }
    }
}

/// Cuts an end left half written (a write cut short by `kill -9`; its
/// chunk was never sent, since the sync comes before the send).
pub fn cut_torn_tail(path: &Path, key: Option<&Key>) -> Result<()> {
    let Ok(mut file) = OpenOptions::new().read(true).write(true).open(path) else {
        return Ok(()); // not there yet
    };
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Ok(());
    }
    check_form(path, looks_segmented(path)?, key)?;
    let keep = intact_len(&mut file, len, key).map_err(|e| Error::io(path, e))?;
    if keep == len {
        return Ok(());
    }
    tracing::warn!(
        "{}: cutting an end left half written ({} bytes)",
        path.display(),
        len - keep
    );
    file.set_len(keep).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// Whether `bytes` start with a segment (an age file after 4 length bytes).
fn is_sealed_segments(bytes: &[u8]) -> bool {
    bytes
        .get(4..)
        .is_some_and(|b| b.starts_with(b"age-encryption.org/"))
}

/// Opens a log for reading its lines; `None` if it does not exist. A torn
/// end is left for the caller (plain: a last line without its newline) or
/// skipped with a warning (encrypted: a segment cut short).
pub fn reader(path: &Path, key: Option<&'static Key>) -> Result<Option<Box<dyn BufRead + Send>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > 0 {
        let sealed = match key {
            // A plain log starts with a JSON line; an age stream is not one.
            None => is_sealed(path)? || looks_segmented(path)?,
            Some(_) => looks_segmented(path)?,
        };
        check_form(path, sealed, key)?;
    }
    Ok(Some(match key {
        None => Box::new(BufReader::with_capacity(1 << 20, file)),
        Some(k) => Box::new(BufReader::with_capacity(
            1 << 16,
            Segments {
                path: path.to_path_buf(),
                file: BufReader::with_capacity(1 << 20, file),
                key: k,
                current: Cursor::new(Vec::new()),
            },
        )),
    }))
}

fn looks_segmented(path: &Path) -> Result<bool> {
    let mut head = [0u8; 24];
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let n = file.read(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(is_sealed_segments(&head[..n]))
}

/// The plain lines of a segmented log, one segment at a time.
struct Segments {
    path: PathBuf,
    file: BufReader<File>,
    key: &'static Key,
    current: Cursor<Vec<u8>>,
}

impl Segments {
    /// Decrypts the next segment into `current`; false at the end.
    fn next_segment(&mut self) -> io::Result<bool> {
        let mut len = [0u8; 4];
        let got = read_full(&mut self.file, &mut len)?;
        if got == 0 {
            return Ok(false);
        }
        let torn = || {
            tracing::warn!(
                "{}: its last segment was cut short by an interrupted command and is left out",
                self.path.display()
            );
            Ok(false)
        };
        if got < 4 {
            return torn();
        }
        let mut sealed = vec![0u8; u32::from_be_bytes(len) as usize];
        if read_full(&mut self.file, &mut sealed)? < sealed.len() {
            return torn();
        }
        let mut plain = Vec::new();
        super::open(self.key, &sealed[..], &self.path)
            .and_then(|mut r| {
                r.read_to_end(&mut plain)
                    .map_err(|e| super::unreadable(&self.path, e))
            })
            .map_err(io::Error::other)?;
        self.current = Cursor::new(plain);
        Ok(true)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}

impl Read for Segments {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if !self.next_segment()? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::test_key;

    fn lines(path: &Path, key: Option<&'static Key>) -> String {
        let mut out = String::new();
        reader(path, key)
            .unwrap()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn appends_survive_a_torn_end_plain_and_encrypted() {
        let dir = crate::crypt::temp_dir("log");
        for key in [None, Some(test_key("k"))] {
            let path = dir.join(format!("l-{}.jsonl", key.is_some()));
            let mut a = Appender::open(&path, key).unwrap();
            a.append(b"{\"PK\":\"BUYER#1\"}\n").unwrap();
            a.append(b"{\"PK\":\"BUYER#2\"}\n{\"PK\":\"BUYER#3\"}\n")
                .unwrap();
            a.sync().unwrap();
            drop(a);
            let whole = std::fs::read(&path).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&whole).contains("BUYER#2"),
                key.is_none()
            );
            // A kill in the middle of the next append leaves a torn end...
            let mut torn = whole.clone();
            torn.extend_from_slice(&[0, 0, 1, 0, b'a', b'g']);
            if key.is_none() {
                // a torn line longer than the block the end is read in
                torn.extend(std::iter::repeat_n(b'x', 100_000));
            }
            std::fs::write(&path, &torn).unwrap();
            if key.is_some() {
                // ...which reading skips...
                assert_eq!(lines(&path, key).lines().count(), 3);
            }
            // ...and the next append cuts.
            let mut a = Appender::open(&path, key).unwrap();
            a.append(b"{\"PK\":\"BUYER#4\"}\n").unwrap();
            drop(a);
            let text = lines(&path, key);
            assert_eq!(text.lines().count(), 4, "{text}");
            assert!(text.ends_with("{\"PK\":\"BUYER#4\"}\n"));
            write_atomic(&path, b"{\"PK\":\"BUYER#9\"}\n", key.map(|k| k as &Key)).unwrap();
            assert_eq!(lines(&path, key), "{\"PK\":\"BUYER#9\"}\n");
            // The other form is refused.
            let other = if key.is_some() {
                None
            } else {
                Some(test_key("k"))
            };
            assert!(reader(&path, other).is_err());
        }
        assert!(reader(&dir.join("none"), None).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
