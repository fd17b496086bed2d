//! What the last attempts came to, kept in DATA/tls/acme-status for
//! `tls show` and `status`: a small checksummed record, replaced durably.
//! A damaged one is read as empty (it only informs and paces retries).

use crate::store::disk::Disk;
use crate::store::record;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const STATUS_FILE: &str = "acme-status";
const KIND: [u8; 4] = *b"PBAC";
const VERSION: u16 = 1;

/// Times are seconds since 1970.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct AcmeStatus {
    pub last_success: Option<i64>,
    /// The expiry of the certificate last obtained.
    pub expires: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Failed attempts since the last success.
    pub failures: u32,
    pub next_attempt: Option<i64>,
}

pub fn path(tls_dir: &Path) -> PathBuf {
    tls_dir.join(STATUS_FILE)
}

/// The record, or an empty one when missing or damaged (said in `Err`
/// for the log, with the empty record).
pub fn load(disk: &dyn Disk, tls_dir: &Path) -> (AcmeStatus, Option<String>) {
    match record::load(disk, &path(tls_dir), KIND, VERSION) {
        Ok(found) => (found.unwrap_or_default(), None),
        Err(e) => (
            AcmeStatus::default(),
            Some(format!("{}: {e}", path(tls_dir).display())),
        ),
    }
}

pub fn save(disk: &dyn Disk, tls_dir: &Path, status: &AcmeStatus) -> std::io::Result<()> {
    record::save(disk, &path(tls_dir), KIND, VERSION, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let disk = disk::system();
        assert_eq!(load(disk, dir.path()), (AcmeStatus::default(), None));
        let status = AcmeStatus {
            last_success: Some(1_700_000_000),
            expires: Some(1_707_776_000),
            last_error: Some("mx.test is invalid: http-01 connection: refused".into()),
            last_error_at: Some(1_699_999_000),
            failures: 2,
            next_attempt: Some(1_705_000_000),
        };
        save(disk, dir.path(), &status).unwrap();
        assert_eq!(load(disk, dir.path()), (status.clone(), None));
        let file = path(dir.path());
        let good = std::fs::read(&file).unwrap();
        // Every flipped byte and every cut is noticed, never misread.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x41;
            std::fs::write(&file, &bad).unwrap();
            let (read, damage) = load(disk, dir.path());
            assert_eq!(read, AcmeStatus::default(), "byte {at}");
            assert!(damage.is_some(), "byte {at}");
        }
        for cut in 0..good.len() {
            std::fs::write(&file, &good[..cut]).unwrap();
            assert_eq!(load(disk, dir.path()).0, AcmeStatus::default(), "cut {cut}");
        }
        // And a good record replaces a damaged one.
        save(disk, dir.path(), &status).unwrap();
        assert_eq!(load(disk, dir.path()).0, status);
    }
}
