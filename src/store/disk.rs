//! Every change Postbox makes to flash goes through these few calls, so
//! that the fault plan ([`super::faults`]) can fail any of them. They are
//! blocking: call them on the blocking pool, never on the executor thread.

use super::faults::{check, inject, pause, Op};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates a new file (never opening one that exists, nor following a
/// link planted at its name) with `mode`.
pub fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    check(Op::Create)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(path)
}

/// Opens a stored file for reading.
pub fn open(path: &Path) -> io::Result<File> {
    pause(Op::Read);
    File::open(path)
}

/// Writes all of `bytes`; an injected fault may leave part of them written.
pub fn write_all(file: &mut File, bytes: &[u8]) -> io::Result<()> {
    if let Some(fault) = inject(Op::Write, bytes.len()) {
        if let Some(at) = fault.torn_at {
            file.write_all(&bytes[..at])?;
        }
        return Err(fault.error);
    }
    file.write_all(bytes)
}

/// Puts a file's data on stable storage.
pub fn sync(file: &File) -> io::Result<()> {
    check(Op::Sync)?;
    file.sync_all()
}

/// Makes a directory entry change (create, rename, link, unlink) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    check(Op::SyncDir)?;
    File::open(dir)?.sync_all()
}

/// Flushes the whole filesystem holding `file` and waits for it.
pub fn syncfs(file: &File) -> io::Result<()> {
    check(Op::Sync)?;
    // SAFETY: syncfs only reads the descriptor, which `file` keeps open.
    if unsafe { libc::syncfs(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn link(from: &Path, to: &Path) -> io::Result<()> {
    check(Op::Link)?;
    fs::hard_link(from, to)
}

pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    check(Op::Rename)?;
    fs::rename(from, to)
}

pub fn unlink(path: &Path) -> io::Result<()> {
    check(Op::Unlink)?;
    fs::remove_file(path)
}

/// Removes a name that must go (a rollback, a finished queue entry): a
/// name left behind means a duplicate later, so a failure is tried again
/// before it is reported. Already gone is success.
pub fn unlink_surely(path: &Path) -> io::Result<()> {
    const TRIES: usize = 3;
    let mut last = None;
    for _ in 0..TRIES {
        match unlink(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("unlink failed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What keeps `replace_file` from writing through a link planted at
    /// its temporary name.
    #[test]
    fn create_new_never_writes_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other");
        fs::write(&other, b"keep").unwrap();
        let planted = dir.path().join("key.pem.tmp");
        std::os::unix::fs::symlink(&other, &planted).unwrap();
        assert!(create_new(&planted, 0o600).is_err());
        assert_eq!(fs::read(&other).unwrap(), b"keep");
    }
}
