//! Small durable records: a `postcard` payload behind a header that names
//! the record kind, its format version and a CRC-32 of the payload, so a
//! torn or foreign file is detected instead of misread.
//!
//! Layout: `kind[4] | version u16 LE | length u32 LE | crc32 u32 LE | payload`.

use super::disk::Disk;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

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
    disk: &dyn Disk,
    path: &Path,
    kind: [u8; 4],
    version: u16,
) -> Result<Option<T>, RecordError> {
    match disk.read(path) {
        Ok(bytes) => decode(kind, version, &bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes a record file atomically and durably.
pub fn save<T: Serialize>(
    disk: &dyn Disk,
    path: &Path,
    kind: [u8; 4],
    version: u16,
    value: &T,
) -> io::Result<()> {
    super::durable::replace_file(disk, path, &encode(kind, version, value))
}

impl RecordError {
    /// The file's content is bad (as opposed to the file being unreadable).
    pub fn is_damage(&self) -> bool {
        !matches!(self, RecordError::Io(_))
    }
}

/// Renames a damaged file next to itself as `NAME.damaged-UNIXTIME`, kept
/// for a look, so a fresh one can take its place.
pub fn set_aside(disk: &dyn Disk, path: &Path) -> io::Result<std::path::PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".damaged-{now}"));
    let aside = path.with_file_name(name);
    disk.rename(path, &aside)?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    disk.sync_dir(dir.unwrap_or(Path::new(".")))?;
    Ok(aside)
}

/// What to do about a record the server can do without (counters, caches,
/// address books) that failed to load: a damaged one is set aside and
/// started afresh, so it never stops mail; either way it is logged.
pub fn start_afresh(disk: &dyn Disk, path: &Path, error: &RecordError) {
    if !error.is_damage() {
        log::warn!("cannot read {}, starting afresh: {error}", path.display());
        return;
    }
    match set_aside(disk, path) {
        Ok(aside) => log::warn!(
            "{} is damaged ({error}): set aside as {}, starting afresh",
            path.display(),
            aside.display()
        ),
        Err(e) => log::warn!(
            "{} is damaged ({error}), cannot set it aside ({e}): starting afresh",
            path.display()
        ),
    }
}

/// Reads a record the server can do without: `None` when it does not
/// exist, or when it was damaged (then set aside, see [`start_afresh`]).
pub fn load_or_start_afresh<T: DeserializeOwned>(
    disk: &dyn Disk,
    path: &Path,
    kind: [u8; 4],
    version: u16,
) -> Option<T> {
    load(disk, path, kind, version).unwrap_or_else(|e| {
        start_afresh(disk, path, &e);
        None
    })
}

/// A record file as a long-running reader sees it: read again only when
/// it changes (or appears, or goes); when a new version cannot be read,
/// the last good one is kept (and the error logged), so a damaged write
/// never changes what the server does. Only for records the server can do
/// without: one damaged at start is set aside and started afresh.
pub struct RecordCache<T> {
    disk: Arc<dyn Disk>,
    path: std::path::PathBuf,
    kind: [u8; 4],
    version: u16,
    /// Which version of the file `value` holds; `None`: absent.
    stamp: Option<Stamp>,
    value: T,
    /// Times the file was read, for tests.
    #[cfg(test)]
    reads: usize,
}

/// Identity of one version of a file: a replacement is a new inode, an
/// edit in place changes the time or length.
pub type Stamp = (u64, std::time::SystemTime, u64);

/// The version of the file at `path` now; `None`: absent.
pub fn modified(disk: &dyn Disk, path: &Path) -> Option<Stamp> {
    let m = disk.metadata(path).ok()?;
    Some((m.id, m.modified, m.len))
}

/// What one look at a record file found, on the blocking pool: its
/// version, and its value when that changed.
pub struct Checked<T> {
    stamp: Option<Stamp>,
    loaded: Option<Result<Option<T>, RecordError>>,
}

impl<T: DeserializeOwned + Default + Send + 'static> RecordCache<T> {
    pub fn open(disk: &Arc<dyn Disk>, path: &Path, kind: [u8; 4], version: u16) -> Self {
        let stamp = modified(&**disk, path);
        let value = load_or_start_afresh(&**disk, path, kind, version).unwrap_or_default();
        RecordCache {
            disk: disk.clone(),
            path: path.to_path_buf(),
            kind,
            version,
            // Set aside: absent now.
            stamp: stamp.and_then(|_| modified(&**disk, path)),
            value,
            #[cfg(test)]
            reads: 1,
        }
    }

    /// The file's look, to run on the blocking pool: reads it only when
    /// it is not the version held.
    pub fn check(&self) -> impl FnOnce() -> Checked<T> + Send + 'static {
        let (disk, path, kind, version) = (
            self.disk.clone(),
            self.path.clone(),
            self.kind,
            self.version,
        );
        let held = self.stamp;
        move || {
            let stamp = modified(&*disk, &path);
            let loaded = (stamp != held).then(|| load(&*disk, &path, kind, version));
            Checked { stamp, loaded }
        }
    }

    /// Takes what [`RecordCache::check`] found into service; a version
    /// that cannot be read is logged and the last good value kept.
    pub fn apply(&mut self, checked: Checked<T>) {
        let Some(loaded) = checked.loaded else {
            return;
        };
        // Noted either way: a damaged version is reported once, not on every call.
        self.stamp = checked.stamp;
        #[cfg(test)]
        {
            self.reads += 1;
        }
        match loaded {
            Ok(value) => self.value = value.unwrap_or_default(),
            Err(e) => log::error!(
                "cannot read {}, keeping what was read before: {e}",
                self.path.display()
            ),
        }
    }

    /// Brings `cache` up to date with its file, looking on the blocking pool.
    pub async fn refresh(cache: &std::cell::RefCell<Self>) {
        let check = cache.borrow().check();
        let checked = smol::unblock(check).await;
        cache.borrow_mut().apply(checked);
    }

    /// The value as last refreshed.
    pub fn current(&self) -> &T {
        &self.value
    }

    /// Looks at the file on this thread.
    #[cfg(test)]
    pub fn refresh_here(&mut self) -> &T {
        let checked = self.check()();
        self.apply(checked);
        &self.value
    }
}

/// Lets concurrent callers share refreshes: a caller waits for one that
/// began after it asked (so it sees every change made before), or runs
/// one itself; never two at once.
#[derive(Default)]
pub struct Refreshes {
    turn: smol::lock::Mutex<()>,
    begun: std::cell::Cell<u64>,
    done: std::cell::Cell<u64>,
}

impl Refreshes {
    pub async fn run<F: std::future::Future<Output = ()>>(&self, refresh: impl FnOnce() -> F) {
        let asked = self.begun.get();
        let _turn = self.turn.lock().await;
        if self.done.get() > asked {
            return;
        }
        let number = self.begun.get() + 1;
        self.begun.set(number);
        refresh().await;
        self.done.set(number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk::Fs;

    fn fs() -> Arc<dyn Disk> {
        Arc::new(Fs)
    }

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
        let got: Option<String> = load(&Fs, &dir.path().join("none"), KIND, 1).unwrap();
        assert!(got.is_none());
    }

    #[test]
    fn cache_remembers_an_absent_file_until_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("overrides");
        let mut cache = RecordCache::<Vec<u32>>::open(&fs(), &path, KIND, 1);
        for _ in 0..3 {
            assert!(cache.refresh_here().is_empty());
        }
        assert_eq!(cache.reads, 1, "an absent file was looked for again");
        save(&Fs, &path, KIND, 1, &vec![7u32]).unwrap();
        assert_eq!(cache.refresh_here(), &vec![7]);
        std::fs::remove_file(&path).unwrap();
        assert!(cache.refresh_here().is_empty(), "removal not noticed");
    }

    #[test]
    fn a_damaged_record_is_set_aside_and_started_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters");
        std::fs::write(&path, b"TEST torn").unwrap();
        let mut cache = RecordCache::<Vec<u32>>::open(&fs(), &path, KIND, 1);
        assert!(cache.refresh_here().is_empty());
        assert!(!path.exists());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].starts_with("counters.damaged-"), "{names:?}");
        // A damaged new version later keeps the good one in service.
        save(&Fs, &path, KIND, 1, &vec![1u32]).unwrap();
        assert_eq!(cache.refresh_here(), &vec![1]);
        std::fs::write(&path, b"TEST torn again").unwrap();
        assert_eq!(cache.refresh_here(), &vec![1]);
    }

    /// On ext4's ordered journal a replacement takes one sync; elsewhere
    /// the file's and its directory's.
    #[test]
    fn a_replacement_syncs_once_where_names_go_with_the_data() {
        use crate::store::memory::Memory;
        let path = Path::new("/data/counters");
        for (memory, syncs) in [(Memory::journaled(), 1), (Memory::new(), 2)] {
            crate::store::durable::create_dir_durable(&memory, Path::new("/data")).unwrap();
            let before = memory.syncs();
            save(&memory, path, KIND, 1, &vec![3u32]).unwrap();
            assert_eq!(memory.syncs() - before, syncs);
            memory.crash();
            let loaded: Vec<u32> = load(&memory, path, KIND, 1).unwrap().unwrap();
            assert_eq!(loaded, [3]);
        }
    }

    /// Replacing a record with the power cut after each number of changes
    /// in turn: after the restart it reads as the old or the new value,
    /// and as the new one if the replacement said it was done.
    #[test]
    fn a_power_cut_anywhere_in_a_replacement_leaves_old_or_new() {
        use crate::store::memory::Memory;
        let path = Path::new("/data/counters");
        // The filesystem model and ext4's ordered journal (one sync).
        for make in [Memory::new, Memory::journaled] {
            for cut in 0.. {
                let memory = make();
                crate::store::durable::create_dir_durable(&memory, Path::new("/data")).unwrap();
                save(&memory, path, KIND, 1, &vec![1u32]).unwrap();
                memory.cut_power_after(cut);
                let saved = save(&memory, path, KIND, 1, &vec![2u32, 2]);
                let finished = !memory.power_was_cut();
                memory.crash();
                let loaded: Vec<u32> = load(&memory, path, KIND, 1).unwrap().unwrap();
                if saved.is_ok() {
                    assert_eq!(loaded, [2, 2], "power cut after {cut} changes");
                } else {
                    assert!(
                        loaded == [1] || loaded == [2, 2],
                        "power cut after {cut}: {loaded:?}"
                    );
                }
                if finished {
                    break;
                }
            }
        }
    }
}
