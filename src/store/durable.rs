//! The crash-safety primitives every file Postbox writes goes through:
//! write beside, fsync, rename over, fsync the directory (on ext4's
//! ordered journal: write beside, rename over, fsync the file).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::disk::{Disk, Kind};

/// Replaces `path` with `bytes` so that a crash leaves either the old or the
/// new content, never a mix.
pub fn replace_file(disk: &dyn Disk, path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_file_with(disk, path, |write| write(bytes))
}

/// [`replace_file`] for content made piece by piece: `fill` gets a writer
/// to call with each piece, so a large file is never whole in memory.
pub fn replace_file_with(
    disk: &dyn Disk,
    path: &Path,
    fill: impl FnOnce(&mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>,
) -> io::Result<()> {
    // A bare name ("users") has the empty path as its parent.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Unique per write: two writers of one file in one process must not
    // share (and rename away) each other's temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(
        "{TEMPORARY}{}.{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);
    // A leftover of a crash, or a link someone planted: a new file is made
    // at that name, never written through what is there.
    let _ = disk.unlink(&tmp);
    let result = (|| {
        // Private: the users file holds password hashes.
        let mut file = disk.create_new(&tmp, 0o600)?;
        fill(&mut |bytes| disk.write(&mut file, bytes))?;
        if disk.sync_keeps_names(&file) {
            // Renamed first, then one sync for data and name: an ordered
            // journal never keeps the name without the data.
            disk.rename(&tmp, path)?;
            return disk.sync(&file);
        }
        disk.sync(&file)?;
        disk.rename(&tmp, path)?;
        disk.sync_dir(dir)
    })();
    if result.is_err() {
        let _ = disk.unlink(&tmp);
    }
    result
}

/// What `replace_file` puts between a file's name and the process and
/// write numbers of its temporary file.
const TEMPORARY: &str = ".tmp.";

/// Whether `name` is a temporary file of [`replace_file`], left behind by
/// a crash (or a failed removal) part-way through a replacement.
pub fn is_leftover(name: &str) -> bool {
    name.rsplit_once(TEMPORARY).is_some_and(|(file, numbers)| {
        let mut parts = numbers.split('.');
        let number = |part: Option<&str>| {
            part.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        !file.is_empty() && number(parts.next()) && number(parts.next()) && parts.next().is_none()
    })
}

/// Creates `dir` and its parents, syncing each parent that gained an entry.
pub fn create_dir_durable(disk: &dyn Disk, dir: &Path) -> io::Result<()> {
    if disk.metadata(dir).is_ok_and(|m| m.kind == Kind::Dir) {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable(disk, parent)?;
    }
    // Mail is private to the server: owner-only directories.
    match disk.create_dir(dir, 0o700) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Err(e) = disk.sync_dir(parent) {
        // Not durable, so taken back: a directory found later is trusted
        // (what is stored in it made durable in it alone), and a retry
        // creates this one again.
        let removed = (0..3).any(|_| match disk.remove_dir(dir) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        });
        if !removed {
            log::error!(
                "could not take back {} after its creation failed: a power cut may lose what is stored in it",
                dir.display()
            );
        }
        return Err(e);
    }
    Ok(())
}

/// True for errors that mean "no space": the client should retry later (452).
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk::Fs;
    use std::fs;

    #[test]
    fn replace_file_swaps_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        replace_file(&Fs, &path, b"one").unwrap();
        replace_file(&Fs, &path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn leftovers_are_told_by_their_temporary_names() {
        let disk = crate::store::memory::Memory::new();
        create_dir_durable(&disk, Path::new("/queue")).unwrap();
        // Created and written, then the power goes before the sync.
        disk.cut_power_after(2);
        assert!(replace_file(&disk, Path::new("/queue/q1.env"), b"x").is_err());
        let left = disk.list(Path::new("/queue")).unwrap();
        assert_eq!(left.len(), 1);
        assert!(is_leftover(left[0].name.to_str().unwrap()), "{left:?}");
        for name in [
            "q1.env",
            "q1.msg",
            ".tmp.1.2",
            "q1.env.tmp.1",
            "q1.env.tmp.1.x",
            "a.tmp.1.2.3",
        ] {
            assert!(!is_leftover(name), "{name}");
        }
    }

    #[test]
    fn create_dir_durable_makes_parents() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_durable(&Fs, &deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durable(&Fs, &deep).unwrap();
    }

    /// A directory whose parent could not be synced is not left to be
    /// found and trusted later: what is then stored in a directory made
    /// under it would go with it at a power cut.
    #[test]
    fn a_directory_not_made_durable_is_taken_back() {
        use crate::store::faults::{Faulty, Plan};
        use crate::store::memory::Memory;
        use std::sync::Arc;
        let memory = Arc::new(Memory::new());
        let failing = Faulty::new(memory.clone(), Plan::parse("rate=1,ops=syncdir").unwrap());
        assert!(create_dir_durable(&failing, Path::new("/mail/a/new")).is_err());
        assert!(memory.list(Path::new("/")).unwrap().is_empty());

        create_dir_durable(&*memory, Path::new("/mail/a/new")).unwrap();
        memory.crash();
        assert_eq!(
            memory.metadata(Path::new("/mail/a/new")).unwrap().kind,
            Kind::Dir
        );
    }
}
