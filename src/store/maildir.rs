//! Maildir storage, qmail's rules plus a synced directory:
//! a message is written once into the spool (`DATA/tmp`), fsynced, then
//! hard-linked into `new/` of every recipient's mailbox, and each `new/` is
//! fsynced before the sender hears 250. Readers never see a partial file; a
//! crash leaves at most garbage in the spool, which is cleared at start.
//!
//! On ext4's ordered journal (the board's data partition) the links are
//! made first and one fsync of the file makes data and names durable
//! together ([`Disk::sync_keeps_names`]): a reader may then list a
//! message a moment before its sender hears 250.
//!
//! File names follow Dovecot: `SECS.MUSECSPPIDQSEQ.HOST,S=SIZE,W=SIZE`,
//! where both sizes are the stored size because messages are kept with
//! CRLF line ends, exactly as POP3 sends them.

use super::disk::{self, Disk, Handle, Kind, Reader};
use super::durable::create_dir_durable;
use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub const MAIL_DIR: &str = "mail";
pub const SPOOL_DIR: &str = "tmp";

pub fn mailbox_dir(data_dir: &Path, local: &str, domain: &str) -> PathBuf {
    data_dir.join(MAIL_DIR).join(domain).join(local)
}

/// Creates `tmp/`, `new/` and `cur/` of a mailbox, durably.
pub fn create_mailbox(disk: &dyn Disk, dir: &Path) -> io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        create_dir_durable(disk, &dir.join(sub))?;
    }
    Ok(())
}

/// Makes the unique part of new file names.
pub struct NameMaker {
    host: String,
    pid: u32,
    seq: Cell<u64>,
}

impl NameMaker {
    pub fn new(hostname: &str) -> Self {
        // '/' and ':' would break paths and the flags suffix (qmail's escapes).
        let host = hostname.replace('/', "\\057").replace(':', "\\072");
        NameMaker {
            host,
            pid: std::process::id(),
            seq: Cell::new(0),
        }
    }

    pub fn next(&self) -> String {
        self.next_with("")
    }

    /// A name with `extra` after the sequence number, still in Dovecot's
    /// form (a letter and its value) and in arrival order.
    pub fn next_with(&self, extra: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        format!(
            "{}.M{}P{}Q{}{extra}.{}",
            now.as_secs(),
            now.subsec_micros(),
            self.pid,
            seq,
            self.host
        )
    }
}

/// Orders names made by [`NameMaker::next`] by when they were made: the
/// microseconds are not zero-padded (Dovecot's form), so text order is
/// wrong within a second. Other names sort after, by text.
pub fn made_order(name: &str) -> (u64, u64, u64, &str) {
    let number = |part: &str, after: char| -> Option<u64> {
        let rest = part.strip_prefix(after)?;
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    let mut parts = name.splitn(2, '.');
    let secs = parts.next().and_then(|s| s.parse().ok());
    let unique = parts.next().unwrap_or("");
    let micros = number(unique, 'M');
    let seq = unique.find('Q').and_then(|at| number(&unique[at..], 'Q'));
    match (secs, micros, seq) {
        (Some(secs), Some(micros), Some(seq)) => (secs, micros, seq, name),
        _ => (u64::MAX, u64::MAX, u64::MAX, name),
    }
}

/// What a delivery achieved: the message's file name in the mailboxes,
/// and the mailboxes that could not take it, with why.
#[derive(Debug)]
pub struct Delivered {
    pub name: String,
    pub failed: Vec<(PathBuf, io::Error)>,
}

/// A message being received, written to the spool as it streams in.
pub struct Incoming {
    disk: Arc<dyn Disk>,
    file: Handle,
    spool_path: PathBuf,
    base_name: String,
    size: u64,
}

impl Incoming {
    pub fn create(disk: &Arc<dyn Disk>, data_dir: &Path, base_name: String) -> io::Result<Self> {
        let spool_path = data_dir.join(SPOOL_DIR).join(&base_name);
        let file = disk.create_new(&spool_path, 0o600)?;
        Ok(Incoming {
            disk: disk.clone(),
            file,
            spool_path,
            base_name,
            size: 0,
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.disk.write(&mut self.file, bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// [`Incoming::create`] and a first write, on the blocking pool; a
    /// failed write leaves no spool file behind.
    pub async fn spool(
        disk: &Arc<dyn Disk>,
        data_dir: &Path,
        base_name: String,
        first: Vec<u8>,
    ) -> io::Result<Self> {
        let (disk, data_dir) = (disk.clone(), data_dir.to_path_buf());
        smol::unblock(move || {
            let mut message = Incoming::create(&disk, &data_dir, base_name)?;
            match message.write(&first) {
                Ok(()) => Ok(message),
                Err(e) => {
                    message.discard();
                    Err(e)
                }
            }
        })
        .await
    }

    /// [`Incoming::write`] on the blocking pool: one trip per buffer, which
    /// comes back for reuse.
    pub async fn append(mut self, bytes: Vec<u8>) -> (Self, Vec<u8>, io::Result<()>) {
        smol::unblock(move || {
            let result = self.write(&bytes);
            (self, bytes, result)
        })
        .await
    }

    /// [`Incoming::discard`] on the blocking pool.
    pub async fn discard_off_thread(self) {
        smol::unblock(move || self.discard()).await
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Gives the spooled file another name in its spool: one that says
    /// what it holds, known only once it is all written.
    pub fn rename(&mut self, base_name: String) -> io::Result<()> {
        let path = self.spool_path.with_file_name(&base_name);
        self.disk.rename(&self.spool_path, &path)?;
        self.spool_path = path;
        self.base_name = base_name;
        Ok(())
    }

    pub fn base_name(&self) -> &str {
        &self.base_name
    }

    /// Gives the spooled bytes a second name (the outbound queue's).
    pub fn link_to(&self, path: &Path) -> io::Result<()> {
        self.disk.link(&self.spool_path, path)
    }

    /// The spooled bytes, read from the start. Blocking.
    pub fn reopen(&self) -> io::Result<Reader> {
        self.disk.open_read(&self.spool_path)
    }

    /// A copy of the spooled message, written by `copy` from the original's
    /// bytes into a new spool file named `base_name`, on the blocking pool.
    pub async fn copy_with<F>(
        &self,
        data_dir: &Path,
        base_name: String,
        copy: F,
    ) -> io::Result<Incoming>
    where
        F: FnOnce(&mut Reader, &mut Incoming) -> io::Result<()> + Send + 'static,
    {
        let (disk, data_dir) = (self.disk.clone(), data_dir.to_path_buf());
        let source_path = self.spool_path.clone();
        smol::unblock(move || {
            let mut source = disk.open_read(&source_path)?;
            let mut target = Incoming::create(&disk, &data_dir, base_name)?;
            match copy(&mut source, &mut target) {
                Ok(()) => Ok(target),
                Err(e) => {
                    target.discard();
                    Err(e)
                }
            }
        })
        .await
    }

    /// A rewritten copy (see [`Incoming::copy_with`]) takes this message's
    /// place, under its name (the one the client was told); on the
    /// blocking pool. On failure both are gone.
    pub async fn replace_with(self, mut copy: Incoming) -> io::Result<Incoming> {
        smol::unblock(
            move || match self.disk.rename(&copy.spool_path, &self.spool_path) {
                Ok(()) => {
                    copy.spool_path = self.spool_path.clone();
                    copy.base_name = self.base_name.clone();
                    Ok(copy)
                }
                Err(e) => {
                    copy.discard();
                    self.discard();
                    Err(e)
                }
            },
        )
        .await
    }

    /// A second spool name for a message stored elsewhere (the outbound
    /// queue), so it can be delivered like a new one.
    pub fn link_from(
        disk: &Arc<dyn Disk>,
        data_dir: &Path,
        base_name: String,
        source: &Path,
    ) -> io::Result<Self> {
        let spool_path = data_dir.join(SPOOL_DIR).join(&base_name);
        disk.link(source, &spool_path)?;
        let opened = disk
            .open(&spool_path)
            .and_then(|file| Ok((disk.metadata(&spool_path)?.len, file)));
        match opened {
            Ok((size, file)) => Ok(Incoming {
                disk: disk.clone(),
                file,
                spool_path,
                base_name,
                size,
            }),
            Err(e) => {
                let _ = disk.unlink(&spool_path);
                Err(e)
            }
        }
    }

    /// Makes the message durable in every mailbox that can take it; the
    /// ones that cannot are listed, with nothing of it left visible there.
    /// `Err` when none took it. The spool name stays (the caller may still
    /// queue the message for the others): [`Incoming::discard`] ends it.
    /// Blocking (fsync): run it on the blocking pool. [`super::commit`]
    /// does the same for many messages with one round of syncs.
    pub fn deliver(&self, mailboxes: &[PathBuf]) -> io::Result<Delivered> {
        if self.disk.sync_keeps_names(&self.file) {
            // One sync for the data and every new name (see
            // [`Disk::sync_keeps_names`]).
            let (name, linked, failed) = self.link_into(mailboxes)?;
            if let Err(e) = self.disk.sync(&self.file) {
                unlink_all(&*self.disk, &linked);
                return Err(e);
            }
            return Ok(Delivered { name, failed });
        }
        self.disk.sync(&self.file)?;
        let (name, linked, mut failed) = self.link_into(mailboxes)?;
        let took: Vec<&PathBuf> = mailboxes
            .iter()
            .filter(|m| !failed.iter().any(|(f, _)| f == *m))
            .collect();
        for (mailbox, link) in took.into_iter().zip(&linked) {
            if let Err(e) = self.disk.sync_dir(&mailbox.join("new")) {
                unlink_all(&*self.disk, std::slice::from_ref(link));
                failed.push((mailbox.clone(), e));
            }
        }
        if failed.len() == mailboxes.len() && !mailboxes.is_empty() {
            return Err(failed.swap_remove(0).1);
        }
        Ok(Delivered { name, failed })
    }

    /// The spool file, for syncing.
    pub fn file(&self) -> &Handle {
        &self.file
    }

    /// The disk the message is spooled on.
    pub fn disk(&self) -> &Arc<dyn Disk> {
        &self.disk
    }

    /// Links the spool file into each mailbox's new/ (not yet durable).
    /// Returns the name, the links made, and the mailboxes that failed;
    /// `Err` when none could be linked.
    #[allow(clippy::type_complexity)]
    pub fn link_into(
        &self,
        mailboxes: &[PathBuf],
    ) -> io::Result<(String, Vec<PathBuf>, Vec<(PathBuf, io::Error)>)> {
        let name = format!("{},S={},W={}", self.base_name, self.size, self.size);
        let mut linked: Vec<PathBuf> = Vec::with_capacity(mailboxes.len());
        let mut failed = Vec::new();
        for mailbox in mailboxes {
            let target = mailbox.join("new").join(&name);
            let attempt = self.disk.link(&self.spool_path, &target).or_else(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    create_mailbox(&*self.disk, mailbox)?;
                    self.disk.link(&self.spool_path, &target)
                } else {
                    Err(e)
                }
            });
            match attempt {
                Ok(()) => linked.push(target),
                Err(e) => failed.push((mailbox.clone(), e)),
            }
        }
        if linked.is_empty() && !failed.is_empty() {
            return Err(failed.swap_remove(0).1);
        }
        Ok((name, linked, failed))
    }

    /// Ends the spooled message: delivered, queued or refused. A crash
    /// before this leaves it for the start-up sweep.
    pub fn discard(self) {
        drop(self.file);
        let _ = self.disk.unlink(&self.spool_path);
    }
}

/// Rollback of links made for a delivery that failed. A link left behind
/// would be a copy the client is told was not stored, and its retry a
/// duplicate.
pub fn unlink_all(disk: &dyn Disk, links: &[PathBuf]) {
    for link in links {
        if disk::unlink_surely(disk, link).is_err() {
            log::error!(
                "could not take back {} after a failed delivery: the client may send it again",
                link.display()
            );
        }
    }
}

/// Clears the spool. Only the server writes there and it holds the serve
/// lock while it runs, so anything found at start is left by a crash.
pub fn clear_spool(disk: &dyn Disk, data_dir: &Path) -> io::Result<usize> {
    let spool = data_dir.join(SPOOL_DIR);
    create_dir_durable(disk, &spool)?;
    let mut removed = 0;
    for entry in disk.list(&spool)? {
        if entry.kind == Kind::File {
            disk.unlink(&spool.join(&entry.name))?;
            removed += 1;
        }
    }
    if removed > 0 {
        disk.sync_dir(&spool)?;
    }
    Ok(removed)
}

/// Removes files older than `grace` from every mailbox's `tmp/`. Postbox
/// never writes there, but another Maildir writer sharing the mailboxes
/// (a local delivery agent) may; qmail's rule is that a file that old was
/// abandoned by a crashed writer, while younger ones may still be in use.
pub fn sweep_mailbox_tmp(
    disk: &dyn Disk,
    data_dir: &Path,
    grace: std::time::Duration,
) -> io::Result<usize> {
    let now = SystemTime::now();
    let mut removed = 0;
    for mailbox in mailbox_dirs(disk, data_dir) {
        let tmp = mailbox.join("tmp");
        for entry in disk.list(&tmp).into_iter().flatten() {
            if entry.kind != Kind::File {
                continue;
            }
            let path = tmp.join(&entry.name);
            let age = now
                .duration_since(disk.metadata(&path)?.modified)
                .unwrap_or_default();
            if age > grace {
                disk.unlink(&path)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Every mailbox folder, `mail/DOMAIN/LOCAL`; what cannot be read as a
/// folder (missing, or a stray file) is skipped.
fn mailbox_dirs<'a>(disk: &'a dyn Disk, data_dir: &Path) -> impl Iterator<Item = PathBuf> + 'a {
    let subfolders = move |dir: PathBuf| {
        disk.list(&dir)
            .into_iter()
            .flatten()
            .map(move |entry| dir.join(entry.name))
    };
    subfolders(data_dir.join(MAIL_DIR)).flat_map(subfolders)
}

/// One message in a mailbox, as POP3 sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Path relative to the mailbox: `new/NAME` or `cur/NAME:2,FLAGS`.
    pub name: Box<str>,
    pub size: u64,
}

impl StoredMessage {
    /// The POP3 unique id: the file name without directory and flags, which
    /// never changes while the message exists. A name that is no valid id
    /// (RFC 1939 §7: 1 to 70 characters in 0x21..=0x7E; a long host name
    /// makes it longer) becomes its arrival part plus a hash of the whole,
    /// just as stable; names that fit keep the ids clients already know.
    pub fn uid(&self) -> std::borrow::Cow<'_, str> {
        let file = self.name.rsplit('/').next().unwrap_or(&self.name);
        let base = file.split(':').next().unwrap_or(file);
        let printable = |s: &str| s.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if (1..=MAX_UID).contains(&base.len()) && printable(base) {
            return base.into();
        }
        // "SECONDS.MmicrosPpidQseq", without the host part.
        let arrival: String = base
            .splitn(3, '.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
            .chars()
            .filter(|c| ('\x21'..='\x7e').contains(c))
            .take(MAX_UID - 1 - UID_HASH_HEX)
            .collect();
        let digest = ring::digest::digest(&ring::digest::SHA256, base.as_bytes());
        let hash: String = digest.as_ref()[..UID_HASH_HEX / 2]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{arrival}.{hash}").into()
    }
}

/// The longest POP3 unique id (RFC 1939 §7).
const MAX_UID: usize = 70;
/// Hex digits of the hash in a shortened unique id (96 bits).
const UID_HASH_HEX: usize = 24;

/// The `,S=` size from a Dovecot-style name.
fn size_from_name(name: &str) -> Option<u64> {
    let base = name.split(':').next()?;
    let start = base.find(",S=")? + 3;
    let digits = base[start..].split(',').next()?;
    digits.parse().ok()
}

/// Seconds, microseconds (`M`) and sequence (`Q`) of a Maildir name, so
/// sorting follows arrival order; names in other styles sort by seconds.
fn arrival_key(name: &str) -> (u64, u64, u64, &str) {
    let file = name.rsplit('/').next().unwrap_or(name);
    let mut parts = file.split('.');
    let secs = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let unique = parts.next().unwrap_or("");
    let number_after = |tag: char| -> u64 {
        unique
            .split_once(tag)
            .map(|(_, rest)| {
                let digits =
                    rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                rest[..digits].parse().unwrap_or(0)
            })
            .unwrap_or(0)
    };
    (secs, number_after('M'), number_after('Q'), file)
}

/// Lists a mailbox in arrival order; sizes come from file names when they
/// carry them, so a login costs one directory read, not one stat per message.
pub fn scan_mailbox(disk: &dyn Disk, dir: &Path) -> io::Result<Vec<StoredMessage>> {
    let mut messages = Vec::new();
    for sub in ["new", "cur"] {
        let entries = match disk.list(&dir.join(sub)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let Some(file) = entry.name.to_str() else {
                continue;
            };
            if file.starts_with('.') {
                continue;
            }
            let size = match size_from_name(file) {
                Some(size) => size,
                None => disk.metadata(&dir.join(sub).join(file))?.len,
            };
            messages.push(StoredMessage {
                name: format!("{sub}/{file}").into_boxed_str(),
                size,
            });
        }
    }
    Ok(in_arrival_order(messages))
}

/// Sorts by [`arrival_key`], its numbers parsed once per name rather than
/// at every comparison: a 100,000-message mailbox needs about 1.7 million.
fn in_arrival_order(messages: Vec<StoredMessage>) -> Vec<StoredMessage> {
    let mut keyed: Vec<_> = messages
        .into_iter()
        .map(|m| {
            let (secs, micros, sequence, _) = arrival_key(&m.name);
            ((secs, micros, sequence), m)
        })
        .collect();
    keyed.sort_by(|(a, m), (b, n)| {
        a.cmp(b)
            .then_with(|| arrival_key(&m.name).3.cmp(arrival_key(&n.name).3))
    });
    keyed.into_iter().map(|(_, m)| m).collect()
}

/// Removes messages for good (POP3 UPDATE state). Already-missing files are
/// not an error: the goal state is reached. Blocking (fsync).
pub fn delete_messages<'a>(
    disk: &dyn Disk,
    dir: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> io::Result<()> {
    for name in names {
        match disk.unlink(&dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    disk.sync_dir(&dir.join("new"))?;
    disk.sync_dir(&dir.join("cur"))
}

/// Bytes stored in each mailbox, by its folder; unreadable ones are left out.
pub fn usage_by_mailbox(
    disk: &dyn Disk,
    data_dir: &Path,
) -> std::collections::HashMap<PathBuf, u64> {
    mailbox_dirs(disk, data_dir)
        .filter_map(|mailbox| {
            let bytes = scan_mailbox(disk, &mailbox)
                .ok()?
                .iter()
                .map(|m| m.size)
                .sum();
            Some((mailbox, bytes))
        })
        .collect()
}

/// Bytes in one mailbox (0 if it cannot be read). Blocking.
pub fn mailbox_bytes(disk: &dyn Disk, dir: &Path) -> u64 {
    scan_mailbox(disk, dir)
        .map(|messages| messages.iter().map(|m| m.size).sum())
        .unwrap_or(0)
}

/// Messages and bytes stored across all mailboxes (console `status`).
pub fn usage(disk: &dyn Disk, data_dir: &Path) -> (u64, u64) {
    let mut count = 0;
    let mut bytes = 0;
    for mailbox in mailbox_dirs(disk, data_dir) {
        if let Ok(messages) = scan_mailbox(disk, &mailbox) {
            count += messages.len() as u64;
            bytes += messages.iter().map(|m| m.size).sum::<u64>();
        }
    }
    (count, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk::Fs;
    use std::fs::{self, File};

    fn fs() -> Arc<dyn Disk> {
        Arc::new(Fs)
    }

    #[test]
    fn sweeps_only_old_files_from_mailbox_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = mailbox_dir(dir.path(), "a", "localhost");
        create_mailbox(&Fs, &mailbox).unwrap();
        let old = mailbox.join("tmp/old");
        let young = mailbox.join("tmp/young");
        fs::write(&old, b"x").unwrap();
        fs::write(&young, b"x").unwrap();
        let two_days_ago = SystemTime::now() - std::time::Duration::from_secs(48 * 3600);
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        // A stray file where a domain folder belongs is not an error.
        fs::write(dir.path().join(MAIL_DIR).join("stray"), b"x").unwrap();

        let grace = std::time::Duration::from_secs(36 * 3600);
        assert_eq!(sweep_mailbox_tmp(&Fs, dir.path(), grace).unwrap(), 1);
        assert!(!old.exists());
        assert!(young.exists());
        assert_eq!(
            sweep_mailbox_tmp(&Fs, &dir.path().join("none"), grace).unwrap(),
            0
        );
    }

    #[test]
    fn delivers_once_linked_into_each_mailbox() {
        let dir = tempfile::tempdir().unwrap();
        clear_spool(&Fs, dir.path()).unwrap();
        let names = NameMaker::new("host/with:odd");
        let a = mailbox_dir(dir.path(), "a", "localhost");
        let b = mailbox_dir(dir.path(), "b", "localhost");
        create_mailbox(&Fs, &a).unwrap();
        let mut msg = Incoming::create(&fs(), dir.path(), names.next()).unwrap();
        msg.write(b"Subject: x\r\n\r\nhello\r\n").unwrap();
        let delivered = msg.deliver(&[a.clone(), b.clone()]).unwrap();
        assert!(delivered.failed.is_empty());
        msg.discard();
        let name = delivered.name;
        assert!(name.ends_with(",S=21,W=21"));
        assert!(!name.contains('/') && !name.contains(':'));
        for mailbox in [&a, &b] {
            let listed = scan_mailbox(&Fs, mailbox).unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].size, 21);
            assert_eq!(listed[0].uid(), name);
        }
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(a.join("new").join(&name)).unwrap();
        assert_eq!(meta.nlink(), 2, "one copy on disk, two links");
        assert_eq!(fs::read_dir(dir.path().join(SPOOL_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn a_mailbox_that_cannot_take_it_is_reported_and_the_others_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        clear_spool(&Fs, dir.path()).unwrap();
        let a = mailbox_dir(dir.path(), "a", "localhost");
        create_mailbox(&Fs, &a).unwrap();
        // A file where the second mailbox's directory should be.
        let blocked = dir.path().join("blocked");
        fs::write(&blocked, b"").unwrap();
        let mut msg = Incoming::create(&fs(), dir.path(), NameMaker::new("h").next()).unwrap();
        msg.write(b"x\r\n").unwrap();
        let delivered = msg.deliver(&[a.clone(), blocked.clone()]).unwrap();
        assert_eq!(delivered.failed.len(), 1);
        assert_eq!(delivered.failed[0].0, blocked);
        assert_eq!(scan_mailbox(&Fs, &a).unwrap().len(), 1);
        assert!(msg.deliver(std::slice::from_ref(&blocked)).is_err());
        msg.discard();
    }

    #[test]
    fn scan_orders_by_arrival_and_reads_sizes() {
        let dir = tempfile::tempdir().unwrap();
        create_mailbox(&Fs, dir.path()).unwrap();
        fs::write(dir.path().join("new/200.M1P1Q1.h,S=5,W=5"), b"abcde").unwrap();
        fs::write(dir.path().join("cur/100.M1P1Q0.h:2,S"), b"abc").unwrap();
        fs::write(dir.path().join("new/.hidden"), b"").unwrap();
        let listed = scan_mailbox(&Fs, dir.path()).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(&*listed[0].name, "cur/100.M1P1Q0.h:2,S");
        assert_eq!(listed[0].uid(), "100.M1P1Q0.h");
        assert_eq!(listed[1].uid(), "200.M1P1Q1.h,S=5,W=5");
        assert_eq!(listed[0].size, 3);
        assert_eq!(listed[1].size, 5);
        delete_messages(&Fs, dir.path(), listed.iter().map(|m| &*m.name)).unwrap();
        assert!(scan_mailbox(&Fs, dir.path()).unwrap().is_empty());
        assert_eq!(usage(&Fs, dir.path()), (0, 0));
    }

    #[test]
    fn names_are_unique() {
        let names = NameMaker::new("h");
        assert_ne!(names.next(), names.next());
    }

    #[test]
    fn clear_spool_removes_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        clear_spool(&Fs, dir.path()).unwrap();
        fs::write(dir.path().join(SPOOL_DIR).join("partial"), b"half").unwrap();
        assert_eq!(clear_spool(&Fs, dir.path()).unwrap(), 1);
    }

    #[test]
    fn arrival_order_reads_microseconds_as_numbers() {
        let mut names = vec![
            "new/1700000000.M100000P1Q2.h,S=1",
            "new/1700000000.M99999P1Q1.h,S=1",
            "cur/1699999999.M5P1Q9.h,S=1:2,S",
            "new/1700000000.M100000P1Q10.h,S=1",
        ];
        names.sort_by(|a, b| arrival_key(a).cmp(&arrival_key(b)));
        assert_eq!(
            names,
            [
                "cur/1699999999.M5P1Q9.h,S=1:2,S",
                "new/1700000000.M99999P1Q1.h,S=1",
                "new/1700000000.M100000P1Q2.h,S=1",
                "new/1700000000.M100000P1Q10.h,S=1",
            ]
        );
    }

    #[test]
    fn arrival_order_parses_each_name_once_and_sorts_as_the_key_does() {
        // Numbers alike, names not; foreign names (all zeros); new and cur.
        let names = [
            "new/1700000000.M5P1Q1.b,S=1",
            "cur/1700000000.M5P1Q1.a,S=1:2,S",
            "new/mutt-1234",
            "new/1700000000.M5P2Q1.c,S=1",
            "cur/1600000000.M9P1Q3.h,S=1:2,",
            "new/1700000000.M4P1Q7.h,S=1",
            "new/abc",
        ];
        let stored = names
            .iter()
            .rev()
            .map(|name| StoredMessage {
                name: (*name).into(),
                size: 1,
            })
            .collect();
        let listed: Vec<String> = in_arrival_order(stored)
            .into_iter()
            .map(|m| m.name.into())
            .collect();
        let mut expected = names.to_vec();
        expected.sort_by(|a, b| arrival_key(a).cmp(&arrival_key(b)));
        assert_eq!(listed, expected);
        assert_eq!(listed[0], "new/abc");
        assert_eq!(listed[4], "cur/1700000000.M5P1Q1.a,S=1:2,S");
    }

    #[test]
    fn uids_fit_rfc_1939() {
        let uid = |name: &str| {
            StoredMessage {
                name: name.into(),
                size: 0,
            }
            .uid()
            .into_owned()
        };
        let fits = format!("1.M2P3Q4.{},S=9", "h".repeat(70 - 13));
        assert_eq!(fits.len(), 70);
        assert_eq!(uid(&format!("cur/{fits}:2,S")), fits);
        let long = format!("1700000000.M123456P4242Q7.{}.test,S=9,W=9", "h".repeat(60));
        let short = uid(&format!("new/{long}"));
        assert!(short.len() <= 70 && short.starts_with("1700000000.M123456P4242Q7."));
        assert!(short.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{short}");
        assert_eq!(
            uid(&format!("cur/{long}:2,S")),
            short,
            "stable across moves"
        );
        let other = long.replace("Q7", "Q8");
        assert_ne!(uid(&format!("new/{other}")), short);
        let spaced = uid("new/1.M1P1Q1.a host");
        assert!(
            !spaced.contains(' ') && spaced.starts_with("1.M1P1Q1."),
            "{spaced}"
        );
    }

    /// Cuts the power after each number of changes a delivery makes, in
    /// turn, and restarts: every mailbox the delivery answered for holds
    /// the message whole exactly once; the others hold it whole or not
    /// at all; the spool is cleared.
    #[test]
    fn a_power_cut_anywhere_in_a_delivery_loses_nothing_acknowledged() {
        use crate::store::memory::Memory;
        let data = Path::new("/data");
        let text = b"Subject: cut\r\n\r\nfirst part\r\nsecond part\r\n";
        let (a, b) = (
            mailbox_dir(data, "a", "test"),
            mailbox_dir(data, "b", "test"),
        );
        // The filesystem model and ext4's ordered journal (one sync).
        for make in [Memory::new, Memory::journaled] {
            for cut in 0.. {
                let memory = Arc::new(make());
                let disk: Arc<dyn Disk> = memory.clone();
                clear_spool(&*disk, data).unwrap();
                // The second mailbox is made by the delivery itself.
                create_mailbox(&*disk, &a).unwrap();
                memory.cut_power_after(cut);
                let outcome = (|| {
                    let mut message = Incoming::create(&disk, data, NameMaker::new("h").next())?;
                    message.write(&text[..20])?;
                    message.write(&text[20..])?;
                    let delivered = message.deliver(&[a.clone(), b.clone()]);
                    message.discard();
                    delivered
                })();
                let finished = !memory.power_was_cut();
                memory.crash();
                clear_spool(&*disk, data).unwrap();
                for mailbox in [&a, &b] {
                    let acknowledged = outcome
                        .as_ref()
                        .is_ok_and(|d| !d.failed.iter().any(|(m, _)| m == mailbox));
                    let stored = scan_mailbox(&*disk, mailbox).unwrap();
                    for message in &stored {
                        let bytes = disk.read(&mailbox.join(&*message.name)).unwrap();
                        assert_eq!(
                            bytes, text,
                            "power cut after {cut} changes: partial message"
                        );
                    }
                    let expected = if acknowledged { 1..=1 } else { 0..=1 };
                    assert!(
                    expected.contains(&stored.len()),
                    "power cut after {cut} changes: {} copies in {}, acknowledged: {acknowledged}",
                    stored.len(),
                    mailbox.display()
                );
                }
                assert!(disk.list(&data.join(SPOOL_DIR)).unwrap().is_empty());
                if finished {
                    assert!(outcome.is_ok_and(|d| d.failed.is_empty()));
                    break;
                }
            }
        }
    }

    /// Where a file's sync keeps its names (ext4's ordered journal), a
    /// delivery to two mailboxes takes that one sync; elsewhere the file
    /// and each new/ are synced.
    #[test]
    fn a_delivery_syncs_once_where_names_go_with_the_data() {
        use crate::store::memory::Memory;
        let data = Path::new("/data");
        let boxes = [
            mailbox_dir(data, "a", "test"),
            mailbox_dir(data, "b", "test"),
        ];
        for (memory, syncs) in [(Memory::journaled(), 1), (Memory::new(), 3)] {
            let memory = Arc::new(memory);
            let disk: Arc<dyn Disk> = memory.clone();
            clear_spool(&*disk, data).unwrap();
            for mailbox in &boxes {
                create_mailbox(&*disk, mailbox).unwrap();
            }
            let before = memory.syncs();
            let mut message = Incoming::create(&disk, data, NameMaker::new("h").next()).unwrap();
            message.write(b"Subject: once\r\n\r\nbody\r\n").unwrap();
            message.deliver(&boxes).unwrap();
            message.discard();
            assert_eq!(memory.syncs() - before, syncs);
            memory.crash();
            for mailbox in &boxes {
                assert_eq!(scan_mailbox(&*disk, mailbox).unwrap().len(), 1);
            }
        }
    }

    /// POP3's UPDATE with the power cut after each number of changes in
    /// turn: once it said the messages are gone they stay gone; until
    /// then each is whole or gone, and the one not asked for stays.
    #[test]
    fn a_power_cut_anywhere_in_deleting_never_brings_a_deleted_message_back() {
        use crate::store::memory::Memory;
        let data = Path::new("/data");
        let mailbox = mailbox_dir(data, "a", "test");
        let text = |i: usize| format!("Subject: {i}\r\n\r\nbody\r\n");
        for cut in 0.. {
            let memory = Arc::new(Memory::new());
            let disk: Arc<dyn Disk> = memory.clone();
            clear_spool(&*disk, data).unwrap();
            let names = NameMaker::new("h");
            for i in 0..3 {
                let mut message = Incoming::create(&disk, data, names.next()).unwrap();
                message.write(text(i).as_bytes()).unwrap();
                message.deliver(std::slice::from_ref(&mailbox)).unwrap();
                message.discard();
            }
            let listed = scan_mailbox(&*disk, &mailbox).unwrap();
            memory.cut_power_after(cut);
            let deleted = delete_messages(&*disk, &mailbox, listed[..2].iter().map(|m| &*m.name));
            let finished = !memory.power_was_cut();
            memory.crash();
            let left = scan_mailbox(&*disk, &mailbox).unwrap();
            for message in &left {
                let bytes = disk.read(&mailbox.join(&*message.name)).unwrap();
                assert!(
                    (0..3).any(|i| text(i).as_bytes() == bytes),
                    "power cut after {cut}"
                );
            }
            assert!(
                left.contains(&listed[2]),
                "power cut after {cut}: kept message gone"
            );
            if deleted.is_ok() {
                assert_eq!(
                    left,
                    listed[2..],
                    "power cut after {cut}: deleted message back"
                );
            }
            if finished {
                assert!(deleted.is_ok());
                break;
            }
        }
    }
}
