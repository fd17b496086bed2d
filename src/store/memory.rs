//! Storage in memory that knows what power loss would keep: a file's data
//! survives [`Memory::crash`] only if it was synced after its last write,
//! a directory entry (made by create, link, rename or unlink) only if its
//! directory was synced after the change, or the whole disk with
//! `syncfs`. Tests run the store on it and cut the power between any two
//! operations to check that every acknowledged message is still there.
//!
//! [`Memory::cut_power_after`] lets a given number of changes through
//! and fails every later one, as a process stopped by power loss would
//! make none; then [`Memory::crash`] keeps only what was durable.
//!
//! Paths are taken from the root whatever their form (`a/b` is `/a/b`);
//! there are no symbolic links.

use super::disk::{Disk, Entry, Handle, Kind, Metadata, Open, Reader};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

#[derive(Default)]
pub struct Memory {
    state: Mutex<State>,
}

struct State {
    nodes: HashMap<u64, Node>,
    next_id: u64,
    /// How many more changes are made before the power goes.
    changes_left: Option<u64>,
    /// A change was refused for want of power.
    cut: bool,
    /// Syncs a file's names with its data, as ext4's ordered journal does
    /// (see [`Disk::sync_keeps_names`]).
    journaled: bool,
    /// Syncs of any kind so far.
    syncs: u64,
}

const ROOT: u64 = 0;

/// A file's contents, shared by the versions that have not diverged.
type Bytes = Arc<Vec<u8>>;

enum Node {
    File {
        data: Bytes,
        /// What a crash leaves of `data`.
        synced: Bytes,
        modified: SystemTime,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
        /// What a crash leaves of `entries`.
        durable: BTreeMap<OsString, u64>,
        modified: SystemTime,
    },
}

impl Default for State {
    fn default() -> Self {
        let root = Node::Dir {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
            modified: SystemTime::now(),
        };
        State {
            nodes: HashMap::from([(ROOT, root)]),
            next_id: ROOT + 1,
            changes_left: None,
            cut: false,
            journaled: false,
            syncs: 0,
        }
    }
}

fn error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// The path's names, from the root.
fn names(path: &Path) -> io::Result<Vec<&std::ffi::OsStr>> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(Ok(name)),
            Component::RootDir | Component::CurDir => None,
            Component::ParentDir | Component::Prefix(_) => Some(Err(error(libc::EINVAL))),
        })
        .collect()
}

impl State {
    /// Counts one change against the power budget.
    fn change(&mut self) -> io::Result<()> {
        match &mut self.changes_left {
            Some(0) => {
                self.cut = true;
                Err(error(libc::EIO))
            }
            Some(left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn add(&mut self, node: Node) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.nodes.insert(id, node);
        id
    }

    fn entries(&self, dir: u64) -> io::Result<&BTreeMap<OsString, u64>> {
        match self.nodes.get(&dir) {
            Some(Node::Dir { entries, .. }) => Ok(entries),
            Some(Node::File { .. }) => Err(error(libc::ENOTDIR)),
            None => Err(error(libc::ENOENT)),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> io::Result<&mut BTreeMap<OsString, u64>> {
        match self.nodes.get_mut(&dir) {
            Some(Node::Dir {
                entries, modified, ..
            }) => {
                *modified = SystemTime::now();
                Ok(entries)
            }
            Some(Node::File { .. }) => Err(error(libc::ENOTDIR)),
            None => Err(error(libc::ENOENT)),
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let mut at = ROOT;
        for name in names(path)? {
            at = *self
                .entries(at)?
                .get(name)
                .ok_or_else(|| error(libc::ENOENT))?;
        }
        Ok(at)
    }

    /// The directory holding `path`, and the name in it.
    fn parent(&self, path: &Path) -> io::Result<(u64, OsString)> {
        let mut names = names(path)?;
        let name = names.pop().ok_or_else(|| error(libc::EEXIST))?;
        let mut at = ROOT;
        for dir in names {
            at = *self
                .entries(at)?
                .get(dir)
                .ok_or_else(|| error(libc::ENOENT))?;
        }
        self.entries(at)?;
        Ok((at, name.to_os_string()))
    }

    /// Adds `name` in `dir` for `node`; fails if the name is taken.
    fn insert(&mut self, dir: u64, name: OsString, node: u64) -> io::Result<()> {
        let entries = self.entries_mut(dir)?;
        if entries.contains_key(&name) {
            return Err(error(libc::EEXIST));
        }
        entries.insert(name, node);
        Ok(())
    }

    /// A file's data, and what of it was synced.
    fn file_mut(&mut self, id: u64) -> io::Result<(&mut Bytes, &mut Bytes)> {
        match self.nodes.get_mut(&id) {
            Some(Node::File { data, synced, .. }) => Ok((data, synced)),
            Some(Node::Dir { .. }) => Err(error(libc::EISDIR)),
            None => Err(error(libc::ENOENT)),
        }
    }

    fn is_dir(&self, id: u64) -> bool {
        matches!(self.nodes.get(&id), Some(Node::Dir { .. }))
    }
}

fn node_of(handle: &Handle) -> u64 {
    match handle.0 {
        Open::Memory(id) => id,
        Open::File(_) => panic!("a file of another disk given to memory"),
    }
}

impl Memory {
    pub fn new() -> Memory {
        Memory::default()
    }

    /// A disk whose file syncs keep the file's names too, as ext4's
    /// ordered journal does.
    pub fn journaled() -> Memory {
        let memory = Memory::default();
        memory.state().journaled = true;
        memory
    }

    /// How many syncs (of files, directories or the whole disk) were made.
    pub fn syncs(&self) -> u64 {
        self.state().syncs
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets `changes` more changes (writes, syncs, names made or removed)
    /// through; every later one fails with `EIO`, until [`Memory::crash`].
    pub fn cut_power_after(&self, changes: u64) {
        self.state().changes_left = Some(changes);
    }

    /// Whether a change was refused for want of power.
    pub fn power_was_cut(&self) -> bool {
        self.state().cut
    }

    /// Power loss: what was not made durable is gone, and the power is back.
    pub fn crash(&self) {
        let mut state = self.state();
        state.changes_left = None;
        state.cut = false;
        for node in state.nodes.values_mut() {
            match node {
                Node::File { data, synced, .. } => *data = synced.clone(),
                Node::Dir {
                    entries, durable, ..
                } => *entries = durable.clone(),
            }
        }
    }
}

impl Disk for Memory {
    fn create_new(&self, path: &Path, _mode: u32) -> io::Result<Handle> {
        let mut state = self.state();
        state.change()?;
        let (dir, name) = state.parent(path)?;
        if state.entries(dir)?.contains_key(&name) {
            return Err(error(libc::EEXIST));
        }
        let id = state.add(Node::File {
            data: Arc::default(),
            synced: Arc::default(),
            modified: SystemTime::now(),
        });
        state.insert(dir, name, id)?;
        Ok(Handle(Open::Memory(id)))
    }

    fn open(&self, path: &Path) -> io::Result<Handle> {
        let mut state = self.state();
        let id = state.lookup(path)?;
        state.file_mut(id)?;
        Ok(Handle(Open::Memory(id)))
    }

    fn write(&self, file: &mut Handle, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        let id = node_of(file);
        if let Some(Node::File { modified, .. }) = state.nodes.get_mut(&id) {
            *modified = SystemTime::now();
        }
        let (data, _) = state.file_mut(id)?;
        Arc::make_mut(data).extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&self, file: &Handle) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        state.syncs += 1;
        let id = node_of(file);
        let (data, synced) = state.file_mut(id)?;
        *synced = data.clone();
        if state.journaled {
            for node in state.nodes.values_mut() {
                if let Node::Dir {
                    entries, durable, ..
                } = node
                {
                    for (name, _) in entries.iter().filter(|(_, node)| **node == id) {
                        durable.insert(name.clone(), id);
                    }
                }
            }
        }
        Ok(())
    }

    fn sync_keeps_names(&self, _file: &Handle) -> bool {
        self.state().journaled
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        state.syncs += 1;
        let id = state.lookup(dir)?;
        match state.nodes.get_mut(&id) {
            Some(Node::Dir {
                entries, durable, ..
            }) => {
                *durable = entries.clone();
                Ok(())
            }
            _ => Err(error(libc::ENOTDIR)),
        }
    }

    fn syncfs(&self, _file: &Handle) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        state.syncs += 1;
        for node in state.nodes.values_mut() {
            match node {
                Node::File { data, synced, .. } => *synced = data.clone(),
                Node::Dir {
                    entries, durable, ..
                } => *durable = entries.clone(),
            }
        }
        Ok(())
    }

    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        let id = state.lookup(from)?;
        if state.is_dir(id) {
            return Err(error(libc::EPERM));
        }
        let (dir, name) = state.parent(to)?;
        state.insert(dir, name, id)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        let (from_dir, from_name) = state.parent(from)?;
        let id = *state
            .entries(from_dir)?
            .get(&from_name)
            .ok_or_else(|| error(libc::ENOENT))?;
        let (to_dir, to_name) = state.parent(to)?;
        if let Some(&there) = state.entries(to_dir)?.get(&to_name) {
            if there == id {
                return Ok(());
            }
            if state.is_dir(there) {
                return Err(error(libc::EISDIR));
            }
        }
        state.entries_mut(from_dir)?.remove(&from_name);
        state.entries_mut(to_dir)?.insert(to_name, id);
        Ok(())
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        let (dir, name) = state.parent(path)?;
        let id = *state
            .entries(dir)?
            .get(&name)
            .ok_or_else(|| error(libc::ENOENT))?;
        if state.is_dir(id) {
            return Err(error(libc::EISDIR));
        }
        state.entries_mut(dir)?.remove(&name);
        Ok(())
    }

    fn create_dir(&self, dir: &Path, _mode: u32) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        let (parent, name) = state.parent(dir)?;
        if state.entries(parent)?.contains_key(&name) {
            return Err(error(libc::EEXIST));
        }
        let id = state.add(Node::Dir {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
            modified: SystemTime::now(),
        });
        state.insert(parent, name, id)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.change()?;
        let (parent, name) = state.parent(dir)?;
        let id = *state
            .entries(parent)?
            .get(&name)
            .ok_or_else(|| error(libc::ENOENT))?;
        if !state.entries(id)?.is_empty() {
            return Err(error(libc::ENOTEMPTY));
        }
        state.entries_mut(parent)?.remove(&name);
        Ok(())
    }

    fn open_read(&self, path: &Path) -> io::Result<Reader> {
        /// The bytes as they were when opened.
        struct Snapshot(Bytes);
        impl AsRef<[u8]> for Snapshot {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
        let mut state = self.state();
        let id = state.lookup(path)?;
        let (data, _) = state.file_mut(id)?;
        Ok(Box::new(io::Cursor::new(Snapshot(data.clone()))))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut state = self.state();
        let id = state.lookup(path)?;
        let (data, _) = state.file_mut(id)?;
        Ok(data.to_vec())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        let state = self.state();
        let id = state.lookup(dir)?;
        Ok(state
            .entries(id)?
            .iter()
            .map(|(name, node)| Entry {
                name: name.clone(),
                kind: if state.is_dir(*node) {
                    Kind::Dir
                } else {
                    Kind::File
                },
            })
            .collect())
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let state = self.state();
        let id = state.lookup(path)?;
        Ok(match &state.nodes[&id] {
            Node::File { data, modified, .. } => Metadata {
                kind: Kind::File,
                len: data.len() as u64,
                modified: *modified,
                id,
            },
            Node::Dir {
                entries, modified, ..
            } => Metadata {
                kind: Kind::Dir,
                len: entries.len() as u64,
                modified: *modified,
                id,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_synced_data_and_synced_entries_survive_a_crash() {
        let disk = Memory::new();
        disk.create_dir(Path::new("/d"), 0o700).unwrap();
        disk.sync_dir(Path::new("/")).unwrap();
        let mut f = disk.create_new(Path::new("/d/f"), 0o600).unwrap();
        disk.write(&mut f, b"one").unwrap();
        disk.sync(&f).unwrap();
        disk.write(&mut f, b" two").unwrap();
        disk.link(Path::new("/d/f"), Path::new("/d/g")).unwrap();
        disk.sync_dir(Path::new("/d")).unwrap();
        disk.unlink(Path::new("/d/f")).unwrap();
        assert_eq!(disk.read(Path::new("/d/g")).unwrap(), b"one two");
        disk.crash();
        // The unlink was not synced, so both names are back, with the
        // data as last synced.
        assert_eq!(disk.read(Path::new("/d/f")).unwrap(), b"one");
        assert_eq!(disk.read(Path::new("/d/g")).unwrap(), b"one");

        disk.create_dir(Path::new("/e"), 0o700).unwrap();
        disk.create_new(Path::new("/e/x"), 0o600).unwrap();
        disk.sync_dir(Path::new("/e")).unwrap();
        disk.crash();
        assert_eq!(
            disk.metadata(Path::new("/e")).unwrap_err().kind(),
            io::ErrorKind::NotFound,
            "a directory whose parent was not synced is lost"
        );
    }

    #[test]
    fn links_share_contents_and_errors_match_the_filesystem() {
        let disk = Memory::new();
        let mut f = disk.create_new(Path::new("/f"), 0o600).unwrap();
        disk.link(Path::new("/f"), Path::new("/g")).unwrap();
        disk.write(&mut f, b"shared").unwrap();
        assert_eq!(disk.read(Path::new("/g")).unwrap(), b"shared");
        let id = |p: &str| disk.metadata(Path::new(p)).unwrap().id;
        assert_eq!(id("/f"), id("/g"));
        let kind = |e: io::Error| e.kind();
        assert_eq!(
            kind(disk.create_new(Path::new("/f"), 0o600).err().unwrap()),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(disk.link(Path::new("/f"), Path::new("/f/x")).unwrap_err()),
            io::ErrorKind::NotADirectory
        );
        assert_eq!(
            kind(
                disk.link(Path::new("/f"), Path::new("/none/x"))
                    .unwrap_err()
            ),
            io::ErrorKind::NotFound
        );
        disk.rename(Path::new("/g"), Path::new("/h")).unwrap();
        let names: Vec<_> = disk
            .list(Path::new("/"))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["f", "h"]);
        let mut read = String::new();
        io::Read::read_to_string(&mut disk.open_read(Path::new("/h")).unwrap(), &mut read).unwrap();
        assert_eq!(read, "shared");
    }

    /// Checked against the filesystem's own answers.
    #[test]
    fn only_empty_directories_are_removed_as_on_the_filesystem() {
        let tmp = tempfile::tempdir().unwrap();
        let memory = Memory::new();
        let disks: [(&dyn Disk, &Path); 2] = [
            (&super::super::disk::Fs, tmp.path()),
            (&memory, Path::new("/")),
        ];
        for (disk, root) in disks {
            let (dir, file) = (root.join("d"), root.join("d/f"));
            disk.create_dir(&dir, 0o700).unwrap();
            disk.create_new(&file, 0o600).unwrap();
            let kind = |e: io::Error| e.kind();
            assert_eq!(
                kind(disk.remove_dir(&dir).unwrap_err()),
                io::ErrorKind::DirectoryNotEmpty
            );
            assert_eq!(
                kind(disk.remove_dir(&file).unwrap_err()),
                io::ErrorKind::NotADirectory
            );
            disk.unlink(&file).unwrap();
            disk.remove_dir(&dir).unwrap();
            assert_eq!(
                kind(disk.remove_dir(&dir).unwrap_err()),
                io::ErrorKind::NotFound
            );
            assert!(disk.list(root).unwrap().is_empty());
        }
    }
}
