//! Small durable records: a `postcard` payload behind a header that names
//! the record kind, its format version and a CRC-32 of the payload, so a
//! torn or foreign file is detected instead of misread.
//!
//! Layout: `kind[4] | version u16 LE | length u32 LE | crc32 u32 LE | payload`.

use serde::{de::DeserializeOwned, Serialize};
use std::fmt;
use std::io;
use std::path::Path;

const HEADER: usize = 14;

#[derive(Debug)]
pub enum RecordError {
    Io(io::Error),
    WrongKind,
    UnsupportedVersion(u16),
    Truncated,
    Checksum,
    Decode(postcard::Error),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Io(e) => write!(f, "{e}"),
            RecordError::WrongKind => f.write_str("not a record of the expected kind"),
            RecordError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            RecordError::Truncated => f.write_str("record is truncated"),
            RecordError::Checksum => f.write_str("record checksum mismatch"),
            RecordError::Decode(e) => write!(f, "record does not decode: {e}"),
        }
    }
}

impl std::error::Error for RecordError {}

impl From<io::Error> for RecordError {
    fn from(e: io::Error) -> Self {
        RecordError::Io(e)
    }
}

pub fn encode<T: Serialize>(kind: [u8; 4], version: u16, value: &T) -> Vec<u8> {
    let payload = postcard::to_stdvec(value).expect("serializing to a Vec cannot fail");
    frame(kind, version, &payload)
}

/// Wraps an encoded payload in the record header (kind, version, length,
/// CRC32).
pub fn frame(kind: [u8; 4], version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&kind);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn decode<T: DeserializeOwned>(
    kind: [u8; 4],
    version: u16,
    bytes: &[u8],
) -> Result<T, RecordError> {
    if bytes.len() < HEADER {
        return Err(RecordError::Truncated);
    }
    if bytes[..4] != kind {
        return Err(RecordError::WrongKind);
    }
    let found = u16::from_le_bytes([bytes[4], bytes[5]]);
    if found != version {
        return Err(RecordError::UnsupportedVersion(found));
    }
    let len = u32::from_le_bytes(bytes[6..10].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(bytes[10..14].try_into().unwrap());
    let payload = bytes
        .get(HEADER..HEADER + len)
        .ok_or(RecordError::Truncated)?;
    if crc32fast::hash(payload) != crc {
        return Err(RecordError::Checksum);
    }
    postcard::from_bytes(payload).map_err(RecordError::Decode)
}

/// Reads a record file; `Ok(None)` when it does not exist yet.
pub fn load<T: DeserializeOwned>(
    path: &Path,
    kind: [u8; 4],
    version: u16,
) -> Result<Option<T>, RecordError> {
    match std::fs::read(path) {
        Ok(bytes) => decode(kind, version, &bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes a record file atomically and durably.
pub fn save<T: Serialize>(path: &Path, kind: [u8; 4], version: u16, value: &T) -> io::Result<()> {
    super::durable::replace_file(path, &encode(kind, version, value))
}

/// A record file as a long-running reader sees it: read again only when
/// its modification time changes; when a new version cannot be read, the
/// last good one is kept (and the error logged), so a damaged write never
/// changes what the server does.
pub struct RecordCache<T> {
    path: std::path::PathBuf,
    kind: [u8; 4],
    version: u16,
    stamp: Option<std::time::SystemTime>,
    value: T,
}

impl<T: DeserializeOwned + Default> RecordCache<T> {
    pub fn open(path: &Path, kind: [u8; 4], version: u16) -> Result<Self, RecordError> {
        let mut cache = RecordCache {
            path: path.to_path_buf(),
            kind,
            version,
            stamp: None,
            value: T::default(),
        };
        cache.refresh()?;
        Ok(cache)
    }

    fn refresh(&mut self) -> Result<(), RecordError> {
        let stamp = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if stamp != self.stamp || stamp.is_none() {
            self.value = load(&self.path, self.kind, self.version)?.unwrap_or_default();
            self.stamp = stamp;
        }
        Ok(())
    }

    pub fn current(&mut self) -> &T {
        if let Err(e) = self.refresh() {
            log::error!(
                "cannot read {}, keeping what was read before: {e}",
                self.path.display()
            );
        }
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: [u8; 4] = *b"TEST";

    #[test]
    fn round_trip() {
        let bytes = encode(KIND, 1, &(7u32, "seven".to_string()));
        let back: (u32, String) = decode(KIND, 1, &bytes).unwrap();
        assert_eq!(back, (7, "seven".to_string()));
    }

    #[test]
    fn detects_every_kind_of_damage() {
        let bytes = encode(KIND, 1, &"payload".to_string());
        assert!(matches!(
            decode::<String>(*b"XXXX", 1, &bytes),
            Err(RecordError::WrongKind)
        ));
        assert!(matches!(
            decode::<String>(KIND, 2, &bytes),
            Err(RecordError::UnsupportedVersion(1))
        ));
        for cut in 0..bytes.len() {
            assert!(
                decode::<String>(KIND, 1, &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        for i in HEADER..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x01;
            assert!(matches!(
                decode::<String>(KIND, 1, &flipped),
                Err(RecordError::Checksum)
            ));
        }
    }

    #[test]
    fn load_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let got: Option<String> = load(&dir.path().join("none"), KIND, 1).unwrap();
        assert!(got.is_none());
    }
}
