//! `postbox import USER PATH`: an mbox file or a Maildir folder into a
//! member's mailbox, one message at a time, each made durable the way a
//! delivery is (written in the mailbox's `tmp/`, fsynced, linked into
//! `new/`, `new/` fsynced).
//!
//! Nothing is imported twice: a message's file name carries a hash of its
//! bytes as stored (`…Q7H<24 hex>.host`), so the mailbox itself is the
//! record of what came in. The name appears in `new/` in the same step
//! that makes the message visible, so a crash at any point leaves no
//! message that a second run would not recognise. A message deleted from
//! the mailbox since is imported again by a second run.

use super::mbox::{self, Crlf, Event};
use super::{human_bytes, Pieces};
use crate::config::Config;
use crate::store::disk::{self, Disk};
use crate::store::maildir::{self, Incoming, NameMaker};
use crate::store::users;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Hex digits of the content hash in a file name (96 bits).
pub const HASH_HEX: usize = 24;
/// The letter before the hash in a file name's unique part.
pub const HASH_TAG: char = 'H';

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Messages added to the mailbox, and their bytes as stored.
    pub imported: u64,
    pub bytes: u64,
    /// Messages already in the mailbox (an earlier run, or twice in the source).
    pub already: u64,
    /// Messages left out: which, and why.
    pub skipped: Vec<(String, String)>,
    /// Bytes of the source read so far.
    pub read: u64,
}

impl Summary {
    pub fn report(&self, account: &str) -> String {
        let mut text = format!(
            "imported {} messages ({}) into {account}; {} already there; {} skipped\n",
            self.imported,
            human_bytes(self.bytes),
            self.already,
            self.skipped.len()
        );
        for (which, why) in &self.skipped {
            text.push_str(&format!("skipped {which}: {why}\n"));
        }
        text
    }
}

/// Where the mail comes from.
enum Source {
    Mbox(PathBuf),
    Maildir(PathBuf),
}

/// Imports `path` into `user`'s mailbox. `progress` is called after each
/// message. `Err` names what is wrong (the user, the path) or what failed;
/// a failure part-way also gives what was done until then.
pub fn import(
    config: &Config,
    user: &str,
    path: &Path,
    progress: &mut dyn FnMut(&Summary),
) -> Result<Summary, (String, Option<Summary>)> {
    let (address, mailbox) = member_mailbox(config, user).map_err(|e| (e, None))?;
    let source = source(path).map_err(|e| (e, None))?;
    let disk = disk::system().clone();
    maildir::create_mailbox(&*disk, &mailbox)
        .map_err(|e| (format!("cannot create {}: {e}", mailbox.display()), None))?;
    let overrides = crate::store::quota::load(config.mail_dir())
        .map_err(|e| (format!("cannot read quotas: {e}"), None))?;
    let limit = overrides
        .get(&address)
        .copied()
        .unwrap_or(config.quota.default);
    let mut importer = Importer {
        usage: maildir::mailbox_bytes(&*disk, &mailbox),
        known: known_hashes(&*disk, &mailbox).map_err(|e| {
            let e = format!("cannot read {}: {e}", mailbox.display());
            (e, None)
        })?,
        disk,
        mailbox,
        names: NameMaker::new(&config.hostname),
        limit,
        summary: Summary::default(),
    };
    let result = match source {
        Source::Mbox(path) => importer.mbox(&path, progress),
        Source::Maildir(path) => importer.maildir(&path, progress),
    };
    if importer.summary.imported > 0 {
        // A running server counts the mailbox again for its quota.
        let _ = crate::ops::status::nudge_queue(&config.data_dir);
    }
    match result {
        Ok(()) => Ok(importer.summary),
        Err(e) => Err((e, Some(importer.summary))),
    }
}

/// A member's address and mailbox folder, or why there is none.
pub fn member_mailbox(config: &Config, user: &str) -> Result<(String, PathBuf), String> {
    if !config.data_dir.is_dir() {
        return Err(format!(
            "no data directory {} (check --data or data_dir)",
            config.data_dir.display()
        ));
    }
    let (local, domain) = users::split_name(user, config.default_domain())?;
    let list = users::load_or_report(config.mail_dir())?;
    if list.find(&local, &domain).is_none() {
        return Err(format!("no such user {local}@{domain}"));
    }
    let dir = maildir::mailbox_dir(config.mail_dir(), &local, &domain);
    Ok((format!("{local}@{domain}"), dir))
}

/// What `path` is: a Maildir folder (`cur/` or `new/` in it) or an mbox
/// (a file starting with a `From ` line, checked as it is read).
fn source(path: &Path) -> Result<Source, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.is_dir() {
        if path.join("cur").is_dir() || path.join("new").is_dir() {
            return Ok(Source::Maildir(path.to_path_buf()));
        }
        return Err(format!(
            "{} is not an mbox or a Maildir folder (no cur/ or new/ in it)",
            path.display()
        ));
    }
    File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Source::Mbox(path.to_path_buf()))
}

/// The content hashes in a mailbox's file names: what was imported before.
pub fn known_hashes(disk: &dyn Disk, mailbox: &Path) -> io::Result<HashSet<String>> {
    let messages = maildir::scan_mailbox(disk, mailbox)?;
    Ok(messages
        .iter()
        .filter_map(|m| hash_in_name(&m.name).map(str::to_string))
        .collect())
}

/// A digest as file names carry it: its first [`HASH_HEX`] hex digits.
pub fn hash_hex(digest: ring::digest::Digest) -> String {
    digest.as_ref()[..HASH_HEX / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hash in a file name made by an import (`1700000000.M1P2Q3H<hex>.host...`).
pub fn hash_in_name(name: &str) -> Option<&str> {
    let file = name.rsplit('/').next()?;
    let unique = file.split('.').nth(1)?;
    let (_, rest) = unique.split_once(HASH_TAG)?;
    let hash = rest.get(..HASH_HEX)?;
    let hex = hash
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex && rest.len() == HASH_HEX).then_some(hash)
}

struct Importer {
    disk: Arc<dyn Disk>,
    mailbox: PathBuf,
    names: NameMaker,
    known: HashSet<String>,
    usage: u64,
    /// Bytes the mailbox may hold; 0: unlimited.
    limit: u64,
    summary: Summary,
}

/// A message being written to the mailbox's `tmp/`, hashed as it goes.
struct Writing {
    incoming: Incoming,
    hash: ring::digest::Context,
    buffer: Vec<u8>,
    failed: Option<io::Error>,
}

impl Writing {
    fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.hash.update(bytes);
        if self.buffer.len() + bytes.len() > crate::limits::WRITE_CHUNK {
            self.flush();
        }
        if bytes.len() > crate::limits::WRITE_CHUNK {
            if let Err(e) = self.incoming.write(bytes) {
                self.failed = Some(e);
            }
            return;
        }
        self.buffer.extend_from_slice(bytes);
    }

    fn flush(&mut self) {
        if self.failed.is_none() && !self.buffer.is_empty() {
            if let Err(e) = self.incoming.write(&self.buffer) {
                self.failed = Some(e);
            }
        }
        self.buffer.clear();
    }
}

impl Importer {
    fn begin(&self) -> Result<Writing, String> {
        let incoming = Incoming::create(&self.disk, &self.mailbox, self.names.next())
            .map_err(|e| format!("cannot write in {}: {e}", self.mailbox.display()))?;
        Ok(Writing {
            incoming,
            hash: ring::digest::Context::new(&ring::digest::SHA256),
            buffer: Vec::with_capacity(crate::limits::WRITE_CHUNK),
            failed: None,
        })
    }

    /// Ends a message: dropped if the mailbox has it or has no room for
    /// it, else made durable in `new/` (or in `cur/` with `flags`).
    fn end(
        &mut self,
        mut writing: Writing,
        which: String,
        flags: Option<&str>,
    ) -> Result<(), String> {
        writing.flush();
        let Writing {
            mut incoming,
            hash,
            failed,
            ..
        } = writing;
        if let Some(e) = failed {
            incoming.discard();
            return Err(format!("cannot write in {}: {e}", self.mailbox.display()));
        }
        let hash = hash_hex(hash.finish());
        let size = incoming.size();
        if self.known.contains(&hash) {
            incoming.discard();
            self.summary.already += 1;
            return Ok(());
        }
        if self.limit > 0 && self.usage.saturating_add(size) > self.limit {
            incoming.discard();
            let why = format!(
                "over quota ({size} bytes; {} of {} used)",
                self.usage, self.limit
            );
            self.summary.skipped.push((which, why));
            return Ok(());
        }
        let stored = self.store(&mut incoming, &hash, flags);
        incoming.discard();
        stored.map_err(|e| format!("cannot store {which} in {}: {e}", self.mailbox.display()))?;
        self.known.insert(hash);
        self.usage += size;
        self.summary.imported += 1;
        self.summary.bytes += size;
        Ok(())
    }

    /// The delivery's own path: named by its hash, synced, linked into
    /// `new/`, `new/` synced; then moved to `cur/` if it has flags.
    fn store(&self, incoming: &mut Incoming, hash: &str, flags: Option<&str>) -> io::Result<()> {
        incoming.rename(self.names.next_with(&format!("{HASH_TAG}{hash}")))?;
        let delivered = incoming.deliver(std::slice::from_ref(&self.mailbox))?;
        let Some(flags) = flags else {
            return Ok(());
        };
        let new = self.mailbox.join("new").join(&delivered.name);
        let cur = self
            .mailbox
            .join("cur")
            .join(format!("{}:2,{flags}", delivered.name));
        self.disk.rename(&new, &cur)?;
        self.disk.sync_dir(&self.mailbox.join("cur"))?;
        self.disk.sync_dir(&self.mailbox.join("new"))
    }

    fn mbox(&mut self, path: &Path, progress: &mut dyn FnMut(&Summary)) -> Result<(), String> {
        let cannot_read = |e: io::Error| format!("cannot read {}: {e}", path.display());
        let file = File::open(path).map_err(cannot_read)?;
        let mut pieces = Pieces::new(BufReader::with_capacity(crate::limits::MAILIO_PIECE, file));
        let mut reader = mbox::Reader::new();
        let mut writing: Option<Writing> = None;
        let mut from_line = String::new();
        let mut number = 0u64;
        // The reader's events, carried out after each piece.
        let mut failure: Option<String> = None;
        loop {
            let next = pieces.next_piece().map_err(cannot_read)?;
            let mut handle = |event: Event<'_>| {
                if failure.is_some() {
                    return;
                }
                match event {
                    Event::Start(line) => match self.begin() {
                        Ok(w) => {
                            number += 1;
                            from_line = String::from_utf8_lossy(line).into_owned();
                            writing = Some(w);
                        }
                        Err(e) => failure = Some(e),
                    },
                    Event::Bytes(bytes) => {
                        if let Some(w) = writing.as_mut() {
                            w.write(bytes);
                        }
                    }
                    Event::End => {
                        if let Some(w) = writing.take() {
                            let which = format!("message {number} ({from_line})");
                            if let Err(e) = self.end(w, which, None) {
                                failure = Some(e);
                            }
                            progress(&self.summary);
                        }
                    }
                }
            };
            match next {
                Some((piece, starts_line)) => {
                    let read = piece.len() as u64;
                    reader.piece(piece, starts_line, &mut handle).map_err(|_| {
                        format!(
                            "{} is not an mbox or a Maildir folder (it does not start with a \"From \" line)",
                            path.display()
                        )
                    })?;
                    self.summary.read += read;
                }
                None => {
                    reader.finish(&mut handle);
                    break;
                }
            }
            if let Some(e) = failure.take() {
                if let Some(w) = writing.take() {
                    w.incoming.discard();
                }
                return Err(e);
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A Maildir folder's messages in arrival order; those in `cur/` keep
    /// their flags (`S` seen, `R` replied, `F` flagged, `T` trashed, `D`
    /// draft; Dovecot's keyword letters, a-z, mean nothing here and go).
    fn maildir(&mut self, path: &Path, progress: &mut dyn FnMut(&Summary)) -> Result<(), String> {
        let messages = maildir::scan_mailbox(&disk::Fs, path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for message in messages {
            let name: &str = &message.name;
            let file_path = path.join(name);
            let cannot_read = |e: io::Error| format!("cannot read {}: {e}", file_path.display());
            let file = File::open(&file_path).map_err(cannot_read)?;
            let mut pieces =
                Pieces::new(BufReader::with_capacity(crate::limits::MAILIO_PIECE, file));
            let mut writing = self.begin()?;
            let mut crlf = Crlf::default();
            while let Some((piece, _)) = pieces.next_piece().map_err(cannot_read)? {
                self.summary.read += piece.len() as u64;
                crlf.piece(piece, &mut |b| writing.write(b));
            }
            crlf.finish(&mut |b| writing.write(b));
            let flags: Option<String> = name.strip_prefix("cur/").map(|file| {
                file.split_once(":2,")
                    .map(|(_, flags)| flags.chars().filter(char::is_ascii_uppercase).collect())
                    .unwrap_or_default()
            });
            self.end(writing, name.to_string(), flags.as_deref())?;
            progress(&self.summary);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_found_in_names_made_for_them() {
        let names = NameMaker::new("box.test");
        let hash = "0123456789abcdef01234567";
        let name = names.next_with(&format!("H{hash}"));
        assert_eq!(hash_in_name(&format!("new/{name},S=5,W=5")), Some(hash));
        assert_eq!(hash_in_name(&format!("cur/{name},S=5,W=5:2,S")), Some(hash));
        assert_eq!(hash_in_name(&format!("new/{}", names.next())), None);
        assert_eq!(hash_in_name("cur/1.M1P1Q1Hxyz.host:2,S"), None);
        // Arrival order is kept: the sequence still reads as such.
        let later = names.next_with(&format!("H{hash}"));
        assert!(maildir::made_order(&name) < maildir::made_order(&later));
    }

    /// An import cut by a power loss after every number of changes in
    /// turn, then run again: each message is there exactly once, whole.
    #[test]
    fn a_power_cut_anywhere_then_a_second_run_stores_each_message_once() {
        use crate::store::memory::Memory;
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("in.mbox");
        let text = |i: usize| format!("Subject: {i}\r\n\r\nbody {i}\r\n");
        let mbox: String = (0..3)
            .map(|i| {
                format!(
                    "From a@x Mon Jan  1 00:00:00 2024\n{}\n",
                    text(i).replace("\r\n", "\n")
                )
            })
            .collect();
        std::fs::write(&source, mbox).unwrap();
        let mailbox = PathBuf::from("/data/mail/test/a");
        let importer = |disk: &Arc<Memory>| Importer {
            disk: disk.clone(),
            mailbox: mailbox.clone(),
            names: NameMaker::new("test"),
            known: known_hashes(&**disk, &mailbox).unwrap(),
            usage: 0,
            limit: 0,
            summary: Summary::default(),
        };
        for cut in 0.. {
            let memory = Arc::new(Memory::new());
            maildir::create_mailbox(&*memory, &mailbox).unwrap();
            memory.cut_power_after(cut);
            let _ = importer(&memory).mbox(&source, &mut |_| {});
            let finished = !memory.power_was_cut();
            memory.crash();
            importer(&memory).mbox(&source, &mut |_| {}).unwrap();
            let stored = maildir::scan_mailbox(&*memory, &mailbox).unwrap();
            let mut found: Vec<Vec<u8>> = stored
                .iter()
                .map(|m| memory.read(&mailbox.join(&*m.name)).unwrap())
                .collect();
            found.sort();
            let expected: Vec<Vec<u8>> = (0..3).map(|i| text(i).into_bytes()).collect();
            assert_eq!(found, expected, "power cut after {cut} changes");
            if finished {
                break;
            }
        }
    }
}
