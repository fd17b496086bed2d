//! The one interface every read and change of flash goes through, so the
//! same storage code runs on the filesystem ([`Fs`]), in memory with a
//! power-loss model ([`super::memory::Memory`]), or behind a seeded fault
//! plan ([`super::faults::Faulty`]). Every method blocks: call them on the blocking pool, never on
//! the executor thread.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// Storage as the store sees it: files, directories and hard links, and
/// the syncs that make changes to them durable.
pub trait Disk: Send + Sync {
    /// Creates a new file (never opening one that exists, nor following a
    /// link planted at its name) with `mode`.
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Handle>;

    /// Opens an existing file, to sync or stream it.
    fn open(&self, path: &Path) -> io::Result<Handle>;

    /// Writes all of `bytes` at the end of `file`; a failure may leave part
    /// of them written.
    fn write(&self, file: &mut Handle, bytes: &[u8]) -> io::Result<()>;

    /// Puts a file's data on stable storage.
    fn sync(&self, file: &Handle) -> io::Result<()>;

    /// Makes a directory entry change (create, rename, link, unlink) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Flushes the whole filesystem holding `file` and waits for it.
    fn syncfs(&self, file: &Handle) -> io::Result<()>;

    /// Whether [`Disk::sync`] of `file` also makes durable every name
    /// linked to it so far, and no name of it can reach the disk before
    /// its data: ext4's ordered journal (a commit writes the data of the
    /// files it names first). There one sync after linking does what
    /// elsewhere takes a sync of the file and then of each directory.
    fn sync_keeps_names(&self, file: &Handle) -> bool;

    fn link(&self, from: &Path, to: &Path) -> io::Result<()>;

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    fn unlink(&self, path: &Path) -> io::Result<()>;

    /// Creates one directory (its parent must exist) with `mode`.
    fn create_dir(&self, dir: &Path, mode: u32) -> io::Result<()>;

    /// Removes an empty directory.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;

    /// A stored file's bytes, streamed from the start.
    fn open_read(&self, path: &Path) -> io::Result<Reader>;

    /// A stored file's bytes, whole.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// The entries of a directory, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>>;

    /// What a path is (following links).
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;
}

/// An open file, as the disk that opened it knows it.
pub struct Handle(pub(super) Open);

pub(super) enum Open {
    File(File),
    /// A file of a [`super::memory::Memory`], by its node.
    Memory(u64),
}

/// A file's bytes being read.
pub type Reader = Box<dyn Read + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// A link, device or anything else the store never makes.
    Other,
}

/// One entry of a directory listing (links not followed).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: OsString,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    pub kind: Kind,
    pub len: u64,
    pub modified: SystemTime,
    /// Which file this is: a replacement is a new one.
    pub id: u64,
}

/// A shared disk is that disk (so a test can keep a handle on the one it
/// wraps).
impl<D: Disk + ?Sized> Disk for Arc<D> {
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Handle> {
        (**self).create_new(path, mode)
    }
    fn open(&self, path: &Path) -> io::Result<Handle> {
        (**self).open(path)
    }
    fn write(&self, file: &mut Handle, bytes: &[u8]) -> io::Result<()> {
        (**self).write(file, bytes)
    }
    fn sync(&self, file: &Handle) -> io::Result<()> {
        (**self).sync(file)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        (**self).sync_dir(dir)
    }
    fn syncfs(&self, file: &Handle) -> io::Result<()> {
        (**self).syncfs(file)
    }
    fn sync_keeps_names(&self, file: &Handle) -> bool {
        (**self).sync_keeps_names(file)
    }
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        (**self).link(from, to)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        (**self).rename(from, to)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        (**self).unlink(path)
    }
    fn create_dir(&self, dir: &Path, mode: u32) -> io::Result<()> {
        (**self).create_dir(dir, mode)
    }
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        (**self).remove_dir(dir)
    }
    fn open_read(&self, path: &Path) -> io::Result<Reader> {
        (**self).open_read(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        (**self).read(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        (**self).list(dir)
    }
    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        (**self).metadata(path)
    }
}

/// The disk the server and the admin commands work on: the filesystem,
/// behind the fault plan when one is set (see [`super::faults`]).
pub fn system() -> &'static Arc<dyn Disk> {
    static SYSTEM: OnceLock<Arc<dyn Disk>> = OnceLock::new();
    SYSTEM.get_or_init(|| match super::faults::system() {
        Some(faulty) => faulty.clone(),
        None => Arc::new(Fs),
    })
}

/// Removes a name that must go (a rollback, a finished queue entry): a
/// name left behind means a duplicate later, so a failure is tried again
/// before it is reported. Already gone is success.
pub fn unlink_surely(disk: &dyn Disk, path: &Path) -> io::Result<()> {
    const TRIES: usize = 3;
    let mut last = None;
    for _ in 0..TRIES {
        match disk.unlink(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("unlink failed")))
}

/// The filesystem.
pub struct Fs;

/// Whether the filesystem on device `dev` is ext4 with an ordered (or
/// full data) journal, as its options in /proc/fs/ext4 say; without a
/// journal ext4 prints no `data=` option. Read each time (a few
/// microseconds beside an fsync): a device may be mounted again
/// differently while the process runs.
fn ordered_journal(dev: u64) -> bool {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    // The kernel's name for the device (vda, mmcblk0p2, loop0) is the
    // name ext4 files its options under.
    fs::read_link(format!("/sys/dev/block/{major}:{minor}"))
        .ok()
        .and_then(|link| link.file_name().map(|n| n.to_owned()))
        .and_then(|name| {
            let mut path = std::path::PathBuf::from("/proc/fs/ext4");
            path.push(name);
            path.push("options");
            fs::read_to_string(path).ok()
        })
        .is_some_and(|options| {
            options
                .lines()
                .any(|line| line == "data=ordered" || line == "data=journal")
        })
}

impl Fs {
    fn file(handle: &Handle) -> &File {
        match &handle.0 {
            Open::File(file) => file,
            Open::Memory(_) => panic!("a file of another disk given to the filesystem"),
        }
    }
}

fn kind_of(file_type: fs::FileType) -> Kind {
    if file_type.is_file() {
        Kind::File
    } else if file_type.is_dir() {
        Kind::Dir
    } else {
        Kind::Other
    }
}

impl Disk for Fs {
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Handle> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(mode)
            .open(path)
            .map(|file| Handle(Open::File(file)))
    }

    fn open(&self, path: &Path) -> io::Result<Handle> {
        File::open(path).map(|file| Handle(Open::File(file)))
    }

    fn write(&self, file: &mut Handle, bytes: &[u8]) -> io::Result<()> {
        Fs::file(file).write_all(bytes)
    }

    fn sync(&self, file: &Handle) -> io::Result<()> {
        Fs::file(file).sync_all()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn syncfs(&self, file: &Handle) -> io::Result<()> {
        // SAFETY: syncfs only reads the descriptor, which `file` keeps open.
        if unsafe { libc::syncfs(Fs::file(file).as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn sync_keeps_names(&self, file: &Handle) -> bool {
        Fs::file(file)
            .metadata()
            .is_ok_and(|meta| ordered_journal(meta.dev()))
    }

    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::hard_link(from, to)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn create_dir(&self, dir: &Path, mode: u32) -> io::Result<()> {
        fs::DirBuilder::new().mode(mode).create(dir)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn open_read(&self, path: &Path) -> io::Result<Reader> {
        Ok(Box::new(File::open(path)?))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        fs::read_dir(dir)?
            .map(|entry| {
                let entry = entry?;
                Ok(Entry {
                    name: entry.file_name(),
                    kind: kind_of(entry.file_type()?),
                })
            })
            .collect()
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let meta = fs::metadata(path)?;
        Ok(Metadata {
            kind: kind_of(meta.file_type()),
            len: meta.len(),
            modified: meta.modified()?,
            id: meta.ino(),
        })
    }
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
        assert!(Fs.create_new(&planted, 0o600).is_err());
        assert_eq!(fs::read(&other).unwrap(), b"keep");
    }

    /// The one-sync path is taken on ext4 with an ordered journal only:
    /// not without a journal, not with data=writeback (loop devices, so
    /// root only; CI runs as root).
    #[test]
    fn names_go_with_the_data_only_on_an_ordered_journal() {
        use std::process::Command;
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: making loop devices needs root");
            return;
        }
        let run = |cmd: &mut Command| assert!(cmd.status().unwrap().success(), "{cmd:?}");
        for (features, options, expected) in [
            ("fast_commit", "noatime", true),
            ("^has_journal", "noatime", false),
            ("fast_commit", "noatime,data=writeback", false),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (image, mnt) = (dir.path().join("fs"), dir.path().join("m"));
            run(Command::new("truncate").args(["-s", "32M"]).arg(&image));
            run(Command::new("mkfs.ext4")
                .args(["-q", "-O", features])
                .arg(&image));
            fs::create_dir(&mnt).unwrap();
            run(Command::new("mount")
                .args(["-o", &format!("loop,{options}")])
                .arg(&image)
                .arg(&mnt));
            let file = Fs.create_new(&mnt.join("x"), 0o600);
            let keeps = file.map(|f| Fs.sync_keeps_names(&f));
            run(Command::new("umount").arg(&mnt));
            assert_eq!(keeps.unwrap(), expected, "{features} {options}");
        }
    }
}
