//! `postbox backup`, `postbox backup --verify` and `postbox restore`: the
//! whole data directory (and the config file) as one tar whose first
//! member, `postbox-backup.json`, names every file with its size and
//! SHA-256.
//!
//! While the server runs: every file is first pinned in a snapshot
//! directory inside the data directory, a hard link for a message (linked
//! once and never changed) and a copy for a small record (records are
//! replaced whole by a rename, so the copy is one version of it). The
//! manifest is hashed from the snapshot and the archive streamed from it,
//! so both see the same bytes, and memory stays bounded by the file count.

use super::tar;
use crate::store::durable::is_leftover;
use ring::digest::{Context, SHA256};
use serde_json::{json, Value};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The archive's first member.
pub const MANIFEST: &str = "postbox-backup.json";
/// The manifest's `format`; `version` changes with what it holds.
const FORMAT: &str = "postbox-backup";
const VERSION: u64 = 1;
/// Where a restore puts the config file (and anything else from outside
/// the data directory), inside the restored data directory.
pub const RESTORED_CONFIG: &str = "restored-config";
/// Files up to this size are copied into the snapshot, larger ones linked:
/// records are small, messages are linked whatever their size is.
const COPY_BELOW: u64 = 64 * 1024;
/// The snapshot directory's name, before the process number.
const SNAPSHOT: &str = ".backup-snapshot-";

/// One file of the archive.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `data/...` or `config/NAME`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub mtime: u64,
}

/// What a backup, a verification or a restore counted.
#[derive(Debug, Default)]
pub struct Summary {
    pub files: u64,
    pub bytes: u64,
    pub created: u64,
    pub hostname: String,
}

impl Summary {
    pub fn report(&self) -> String {
        format!(
            "{} files, {} (made {} on {})",
            self.files,
            super::human_bytes(self.bytes),
            self.created,
            self.hostname
        )
    }
}

/// Writes a backup of `data_dir` (and `config_file`) to `out`.
pub fn backup(
    data_dir: &Path,
    config_file: Option<&Path>,
    hostname: &str,
    out: &mut dyn Write,
) -> Result<Summary, String> {
    remove_stale_snapshots(data_dir);
    let snapshot = data_dir.join(format!("{SNAPSHOT}{}", std::process::id()));
    let _ = fs::remove_dir_all(&snapshot);
    fs::create_dir(&snapshot).map_err(|e| format!("cannot make {}: {e}", snapshot.display()))?;
    let result = (|| {
        let mut staged = Vec::new();
        take_snapshot(data_dir, &snapshot, config_file, &mut staged)?;
        write_archive(&snapshot, &staged, hostname, out)
    })();
    let _ = fs::remove_dir_all(&snapshot);
    result
}

/// Snapshots of backups that ended without cleaning up (killed).
fn remove_stale_snapshots(data_dir: &Path) {
    let Ok(entries) = fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(SNAPSHOT)) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A file pinned in the snapshot: its archive path and snapshot number.
struct Staged {
    path: String,
    mtime: u64,
}

fn take_snapshot(
    data_dir: &Path,
    snapshot: &Path,
    config_file: Option<&Path>,
    staged: &mut Vec<Staged>,
) -> Result<(), String> {
    if let Some(config) = config_file {
        let name = config
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("postbox.toml");
        pin(config, snapshot, staged, format!("config/{name}"))
            .map_err(|e| format!("cannot read {}: {e}", config.display()))?;
    }
    walk(data_dir, data_dir, snapshot, staged)
}

/// Adds every file under `dir` but what is in the middle of being written
/// (`tmp/` directories, leftovers of replacements), locks and snapshots.
fn walk(
    data_dir: &Path,
    dir: &Path,
    snapshot: &Path,
    staged: &mut Vec<Staged>,
) -> Result<(), String> {
    let unreadable = |e: io::Error| format!("cannot read {}: {e}", dir.display());
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for name in names {
        let Some(text) = name.to_str() else {
            log::warn!("skipped {:?}: not UTF-8", dir.join(&name));
            continue;
        };
        let path = dir.join(text);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue; // gone meanwhile
        };
        if meta.is_dir() {
            if text == "tmp" || text.starts_with(SNAPSHOT) {
                continue;
            }
            walk(data_dir, &path, snapshot, staged)?;
            continue;
        }
        if !meta.is_file() || is_leftover(text) || text.ends_with(".lock") {
            continue;
        }
        let relative = path.strip_prefix(data_dir).unwrap_or(&path);
        let archived = format!("data/{}", relative.to_string_lossy());
        match pin(&path, snapshot, staged, archived.clone()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A message a POP3 session moved (new/ to cur/, or new
                // flags) since the listing: pinned under its new name.
                if let Some(moved) = moved_message(&path) {
                    let relative = moved.strip_prefix(data_dir).unwrap_or(&moved);
                    let archived = format!("data/{}", relative.to_string_lossy());
                    match pin(&moved, snapshot, staged, archived) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(format!("cannot read {}: {e}", moved.display())),
                    }
                }
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        }
    }
    Ok(())
}

/// Where a maildir message listed at `path` is now, if it is in `cur/`.
fn moved_message(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let base = name.split(':').next()?;
    let cur = path.parent()?.parent()?.join("cur");
    fs::read_dir(&cur).ok()?.flatten().find_map(|e| {
        let other = e.file_name();
        let other = other.to_str()?;
        (other.split(':').next() == Some(base) && other != name).then(|| cur.join(other))
    })
}

/// Links (or, small, copies) `path` into the snapshot.
fn pin(path: &Path, snapshot: &Path, staged: &mut Vec<Staged>, archived: String) -> io::Result<()> {
    let target = snapshot.join(staged.len().to_string());
    let meta = fs::metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    if meta.len() >= COPY_BELOW && fs::hard_link(path, &target).is_ok() {
        staged.push(Staged {
            path: archived,
            mtime,
        });
        return Ok(());
    }
    // One open, so the copy is one version of a record replaced meanwhile.
    let mut from = File::open(path)?;
    let mut to = File::create(&target)?;
    io::copy(&mut from, &mut to)?;
    staged.push(Staged {
        path: archived,
        mtime,
    });
    Ok(())
}

fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut context = Context::new(&SHA256);
    let mut buf = vec![0; crate::limits::MAILIO_PIECE];
    let mut size = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                context.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((size, hex(context.finish().as_ref())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_archive(
    snapshot: &Path,
    staged: &[Staged],
    hostname: &str,
    out: &mut dyn Write,
) -> Result<Summary, String> {
    let mut entries = Vec::with_capacity(staged.len());
    for (i, file) in staged.iter().enumerate() {
        let (size, sha256) = hash_file(&snapshot.join(i.to_string()))
            .map_err(|e| format!("cannot read {}: {e}", file.path))?;
        entries.push(Entry {
            path: file.path.clone(),
            size,
            sha256,
            mtime: file.mtime,
        });
    }
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let manifest = manifest_json(created, hostname, &entries);
    let failed_write = |e: io::Error| format!("cannot write the backup: {e}");
    let mut put = |bytes: &[u8]| out.write_all(bytes).map_err(failed_write);
    put(&tar::header(MANIFEST, manifest.len() as u64, created)?)?;
    put(&manifest)?;
    put(&[0; tar::BLOCK][..tar::padding(manifest.len() as u64)])?;
    let mut buf = vec![0; crate::limits::MAILIO_PIECE];
    let mut bytes = 0;
    for (i, entry) in entries.iter().enumerate() {
        put(&tar::header(&entry.path, entry.size, entry.mtime)?)?;
        let mut file = File::open(snapshot.join(i.to_string()))
            .map_err(|e| format!("cannot read {}: {e}", entry.path))?;
        let mut left = entry.size;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = match file.read(&mut buf[..want]) {
                Ok(0) => return Err(format!("{} shrank while backed up", entry.path)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("cannot read {}: {e}", entry.path)),
            };
            put(&buf[..n])?;
            left -= n as u64;
        }
        put(&[0; tar::BLOCK][..tar::padding(entry.size)])?;
        bytes += entry.size;
    }
    put(&tar::END)?;
    out.flush().map_err(failed_write)?;
    Ok(Summary {
        files: entries.len() as u64,
        bytes,
        created,
        hostname: hostname.into(),
    })
}

fn manifest_json(created: u64, hostname: &str, entries: &[Entry]) -> Vec<u8> {
    let files: Vec<Value> = entries
        .iter()
        .map(|e| json!({"path": e.path, "size": e.size, "sha256": e.sha256}))
        .collect();
    let manifest = json!({
        "format": FORMAT,
        "version": VERSION,
        "created": created,
        "hostname": hostname,
        "files": files,
    });
    let mut text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    text.push(b'\n');
    text
}

/// What to do with each member's bytes as an archive is read.
pub trait Sink {
    /// A member is about to be read: where its bytes go, if anywhere.
    fn open(&mut self, entry: &Entry) -> Result<(), String>;
    fn write(&mut self, bytes: &[u8]) -> Result<(), String>;
    /// Its bytes matched the manifest.
    fn finish(&mut self, entry: &Entry) -> Result<(), String>;
}

/// Checks nothing but the archive.
pub struct Discard;

impl Sink for Discard {
    fn open(&mut self, _: &Entry) -> Result<(), String> {
        Ok(())
    }
    fn write(&mut self, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
    fn finish(&mut self, _: &Entry) -> Result<(), String> {
        Ok(())
    }
}

/// Reads an archive through, checking the manifest and every member's
/// size and SHA-256 against it; an error names the damaged file.
pub fn read_archive(input: &mut dyn Read, sink: &mut dyn Sink) -> Result<Summary, String> {
    let mut reader = Blocks { input };
    let (manifest_path, manifest_bytes) = match reader.member()? {
        Some((path, size, _)) if size <= 256 << 20 => {
            let mut bytes = vec![0; size as usize];
            reader
                .exact(&mut bytes)
                .map_err(|_| format!("the archive ends inside {MANIFEST}"))?;
            reader.skip_padding(size)?;
            (path, bytes)
        }
        Some((path, ..)) => return Err(format!("{path} is no backup manifest")),
        None => return Err("the archive is empty".into()),
    };
    if manifest_path != MANIFEST {
        return Err(format!(
            "the archive starts with {manifest_path}, not {MANIFEST}: not a postbox backup"
        ));
    }
    let manifest: Value = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| format!("{MANIFEST} is damaged: {e}"))?;
    if manifest["format"] != FORMAT {
        return Err(format!("{MANIFEST} is no postbox backup manifest"));
    }
    if manifest["version"].as_u64() != Some(VERSION) {
        return Err(format!(
            "{MANIFEST}: version {} is not known",
            manifest["version"]
        ));
    }
    let files = manifest["files"]
        .as_array()
        .ok_or(format!("{MANIFEST} lists no files"))?;
    let mut summary = Summary {
        created: manifest["created"].as_u64().unwrap_or(0),
        hostname: manifest["hostname"].as_str().unwrap_or("").into(),
        ..Summary::default()
    };
    let mut buf = vec![0; crate::limits::MAILIO_PIECE];
    for listed in files {
        let (Some(path), Some(size), Some(sha256)) = (
            listed["path"].as_str(),
            listed["size"].as_u64(),
            listed["sha256"].as_str(),
        ) else {
            return Err(format!("{MANIFEST} is damaged: an entry lacks a field"));
        };
        let member = reader.member().map_err(|e| format!("{e} (at {path})"))?;
        let Some((member_path, member_size, mtime)) = member else {
            return Err(format!("the archive ends before {path}: it is truncated"));
        };
        if member_path != path {
            return Err(format!(
                "{path} is missing: the archive has {member_path} there"
            ));
        }
        if member_size != size {
            return Err(format!(
                "{path} is damaged: {member_size} bytes, the manifest says {size}"
            ));
        }
        let entry = Entry {
            path: path.into(),
            size,
            sha256: sha256.into(),
            mtime,
        };
        sink.open(&entry)?;
        let mut context = Context::new(&SHA256);
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(left as usize);
            reader
                .exact(&mut buf[..want])
                .map_err(|_| format!("the archive ends inside {path}: it is truncated"))?;
            context.update(&buf[..want]);
            sink.write(&buf[..want])?;
            left -= want as u64;
        }
        reader
            .skip_padding(size)
            .map_err(|_| format!("the archive ends inside {path}: it is truncated"))?;
        if hex(context.finish().as_ref()) != sha256 {
            return Err(format!(
                "{path} is damaged: its SHA-256 does not match the manifest"
            ));
        }
        sink.finish(&entry)?;
        summary.files += 1;
        summary.bytes += size;
    }
    match reader.member() {
        Ok(None) => Ok(summary),
        Ok(Some((path, ..))) => Err(format!("{path} is in the archive but not in the manifest")),
        Err(e) => Err(format!("{e} (after the last file)")),
    }
}

/// A tar read a block at a time.
struct Blocks<'a> {
    input: &'a mut dyn Read,
}

impl Blocks<'_> {
    fn exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.input.read_exact(buf)
    }

    fn skip_padding(&mut self, size: u64) -> Result<(), String> {
        let mut pad = [0; tar::BLOCK];
        let n = tar::padding(size);
        self.exact(&mut pad[..n])
            .map_err(|_| "the archive is truncated".to_string())
    }

    /// The next file member's path, size and time (pax paths applied);
    /// `None` at the end.
    fn member(&mut self) -> Result<Option<(String, u64, u64)>, String> {
        let mut long_path = None;
        loop {
            let mut block = [0; tar::BLOCK];
            if self.exact(&mut block).is_err() {
                return Err("the archive is truncated".into());
            }
            match tar::parse(&block)? {
                tar::Header::End => return Ok(None),
                tar::Header::Member {
                    size, kind: b'x', ..
                } if size <= 64 * 1024 => {
                    let mut records = vec![0; size as usize];
                    self.exact(&mut records)
                        .map_err(|_| "the archive is truncated".to_string())?;
                    self.skip_padding(size)?;
                    long_path = tar::pax_path(&records);
                }
                tar::Header::Member {
                    path,
                    size,
                    mtime,
                    kind: b'0' | 0,
                } => return Ok(Some((long_path.unwrap_or(path), size, mtime))),
                tar::Header::Member { path, kind, .. } => {
                    return Err(format!(
                        "{path}: member type {:?} is not from a postbox backup",
                        kind as char
                    ))
                }
            }
        }
    }
}

/// Restores an archive into `dir`, which must be absent or empty. The
/// files are written, each fsynced, into a directory beside it that is
/// renamed to `dir` only when every checksum matched: `dir` is whole or
/// not there.
pub fn restore(input: &mut dyn Read, dir: &Path) -> Result<Summary, String> {
    if let Ok(mut entries) = fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(format!(
                "{} is not empty: restore into a new directory",
                dir.display()
            ));
        }
    }
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or(format!("{} names no directory", dir.display()))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
    let staging = parent.join(format!(".{name}.restoring-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let mut sink = Restorer {
        root: staging.clone(),
        file: None,
        dirs: Vec::new(),
    };
    let result = (|| {
        make_dir(&staging)?;
        let summary = read_archive(input, &mut sink)?;
        // Empty directories are not in the archive: each mailbox's three.
        let mail = staging.join(crate::store::maildir::MAIL_DIR);
        for mailbox in subdirs(&mail).iter().flat_map(|d| subdirs(d)) {
            for sub in ["tmp", "new", "cur"] {
                if !mailbox.join(sub).exists() {
                    make_dir(&mailbox.join(sub))?;
                }
            }
            sink.dirs.push(mailbox);
        }
        for made in sink.dirs.iter().rev() {
            sync_dir(made)?;
        }
        sync_dir(&staging)?;
        // An empty `dir` is replaced by the rename; an absent one made.
        fs::rename(&staging, dir)
            .map_err(|e| format!("cannot rename the restored files to {}: {e}", dir.display()))?;
        sync_dir(&parent)?;
        Ok(summary)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

struct Restorer {
    root: PathBuf,
    file: Option<File>,
    /// Directories made, each fsynced at the end (its new entries).
    dirs: Vec<PathBuf>,
}

impl Restorer {
    /// Where an archive path goes, refusing any that would leave the root.
    fn target(&self, path: &str) -> Result<PathBuf, String> {
        let relative = match path.split_once('/') {
            Some(("data", rest)) => PathBuf::from(rest),
            Some(("config", rest)) => Path::new(RESTORED_CONFIG).join(rest),
            _ => return Err(format!("{path}: not a path of a postbox backup")),
        };
        let safe = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        match safe && !relative.as_os_str().is_empty() {
            true => Ok(self.root.join(relative)),
            false => Err(format!("{path}: not a path of a postbox backup")),
        }
    }
}

impl Sink for Restorer {
    fn open(&mut self, entry: &Entry) -> Result<(), String> {
        let target = self.target(&entry.path)?;
        if let Some(parent) = target.parent() {
            let mut missing = Vec::new();
            let mut at = parent;
            while !at.exists() {
                missing.push(at.to_path_buf());
                at = at.parent().unwrap_or(Path::new("/"));
            }
            for made in missing.into_iter().rev() {
                make_dir(&made)?;
                self.dirs.push(made);
            }
        }
        use std::os::unix::fs::OpenOptionsExt;
        let file = File::options()
            .write(true)
            .mode(0o600)
            .create_new(true)
            .open(&target)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match &mut self.file {
            Some(file) => file
                .write_all(bytes)
                .map_err(|e| format!("cannot write: {e}")),
            None => Ok(()),
        }
    }

    fn finish(&mut self, entry: &Entry) -> Result<(), String> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let failed = |e: io::Error| format!("cannot write {}: {e}", entry.path);
        let mtime = UNIX_EPOCH + std::time::Duration::from_secs(entry.mtime);
        file.set_modified(mtime).map_err(failed)?;
        file.sync_all().map_err(failed)
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

fn make_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot make {}: {e}", dir.display()))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}
