//! Each member's address book: the people they have sent mail to through
//! Postbox and received mail from (learned by itself, with the display
//! names the mail gave), and those the member added. On flash each entry
//! keeps the address, a display name and whether the member added it, in
//! a record in the member's maildir; books written before names were kept
//! (version 1) held only hashes, and such entries stay known by hash.
//!
//! The server keeps, while a book is in use, only the hashes (8 bytes an
//! address) and what it learned since the last save, and writes that at
//! most once a minute and at shutdown, merged into the file as it is then:
//! losing a minute of learning to a power cut costs nothing that matters,
//! while a write per message would wear the card. The file is read again
//! whenever it changed (an edit from the command line, the console or
//! the member's page), so edits count at once.

use crate::limits::{ADDRESS_BOOK_ENTRIES, ADDRESS_BOOK_NAME, ADDRESS_BOOK_UNSAVED};
use crate::store::disk;
use crate::store::record::{self, RecordError, Stamp};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

const FILE: &str = "postbox-addressbook";
const KIND: [u8; 4] = *b"PBAB";
const VERSION: u16 = 2;
/// Hashes only, oldest first.
const VERSION_HASHES: u16 = 1;

/// One correspondent. `address` is empty for an entry kept from a
/// version 1 book (its hash alone).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub hash: u64,
    pub address: String,
    pub name: String,
    /// Added by the member: its name is theirs, and learning never
    /// forgets it.
    pub added: bool,
}

/// Addresses compare case-insensitively, and a trailing dot on the domain
/// changes nothing.
pub(crate) fn hash(address: &str) -> u64 {
    // FNV-1a: stable across builds, which the saved books need.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in address.trim().trim_end_matches('.').bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The book's file in a maildir.
pub fn path(mailbox: &Path) -> PathBuf {
    mailbox.join(FILE)
}

/// Blocking: a book as its file holds it, oldest first; a version 1 book
/// reads as hash-only entries.
pub fn read(mailbox: &Path) -> Result<Vec<Entry>, RecordError> {
    let bytes = match disk::system().read(&path(mailbox)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    match record::decode(KIND, VERSION, &bytes) {
        Err(RecordError::UnsupportedVersion(VERSION_HASHES)) => {
            let hashes: Vec<u64> = record::decode(KIND, VERSION_HASHES, &bytes)?;
            Ok(hashes
                .into_iter()
                .map(|hash| Entry {
                    hash,
                    address: String::new(),
                    name: String::new(),
                    added: false,
                })
                .collect())
        }
        other => other,
    }
}

/// Blocking: [`read`], with a damaged book set aside and started afresh
/// (it only makes the rule stricter until it relearns); an unreadable one
/// is an error.
fn read_or_start_afresh(mailbox: &Path) -> io::Result<Vec<Entry>> {
    match read(mailbox) {
        Ok(entries) => Ok(entries),
        Err(RecordError::Io(e)) => Err(e),
        Err(damage) => {
            record::start_afresh(disk::system(), &path(mailbox), &damage);
            Ok(Vec::new())
        }
    }
}

fn write(mailbox: &Path, entries: &Vec<Entry>) -> io::Result<()> {
    record::save(disk::system(), &path(mailbox), KIND, VERSION, entries)
}

/// A display name as a book keeps it: encoded words (RFC 2047) decoded,
/// control characters and runs of white space made single spaces, at
/// most [`ADDRESS_BOOK_NAME`] characters.
pub fn clean_name(raw: &str) -> String {
    let decoded = decode_words(raw);
    let words: Vec<&str> = decoded
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    words.join(" ").chars().take(ADDRESS_BOOK_NAME).collect()
}

/// Decodes RFC 2047 encoded words of UTF-8, US-ASCII and ISO-8859-1 (what
/// mail programs write); others are left as they are. White space between
/// two encoded words goes, as the RFC says.
fn decode_words(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, from) = rest.split_at(start);
        let decoded = encoded_word(&from[2..]);
        match decoded {
            Some((text, word_len)) => {
                if !(after_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &from[word_len..];
                after_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &from[2..];
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The encoded word `rest` begins with (after its `=?`): its decoded
/// text and its length with the `=?`.
fn encoded_word(rest: &str) -> Option<(String, usize)> {
    let (charset, after) = rest.split_once('?')?;
    let (encoding, after) = after.split_once('?')?;
    let text = &after[..after.find("?=")?];
    if charset.contains(char::is_whitespace) || text.contains(char::is_whitespace) {
        return None;
    }
    let length = 2 + charset.len() + 1 + encoding.len() + 1 + text.len() + 2;
    decode_word(charset, encoding, text).map(|d| (d, length))
}

fn decode_word(charset: &str, encoding: &str, text: &str) -> Option<String> {
    use base64::Engine;
    let bytes = match encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?,
        "Q" | "q" => {
            let mut bytes = Vec::new();
            let mut input = text.bytes();
            while let Some(b) = input.next() {
                match b {
                    b'_' => bytes.push(b' '),
                    b'=' => {
                        let pair = [input.next()?, input.next()?];
                        let hex = std::str::from_utf8(&pair).ok()?;
                        bytes.push(u8::from_str_radix(hex, 16).ok()?);
                    }
                    _ => bytes.push(b),
                }
            }
            bytes
        }
        _ => return None,
    };
    // A language tag (RFC 2231) may follow the charset.
    let charset = charset.split('*').next().unwrap_or("").to_ascii_lowercase();
    match charset.as_str() {
        "utf-8" | "us-ascii" => Some(String::from_utf8_lossy(&bytes).into_owned()),
        "iso-8859-1" | "latin1" => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        _ => None,
    }
}

/// Learns one correspondent into a book as its file holds it: a known
/// one moves to the newest place (taking the mail's name unless the
/// member chose one), a new one is added, forgetting the oldest learned
/// entry beyond the bound (never one the member added).
fn learn_into(entries: &mut Vec<Entry>, address: &str, name: &str) {
    let hash = hash(address);
    let mut entry = match entries.iter().position(|e| e.hash == hash) {
        Some(i) => entries.remove(i),
        None => {
            if entries.len() >= ADDRESS_BOOK_ENTRIES {
                match entries.iter().position(|e| !e.added) {
                    Some(oldest) => drop(entries.remove(oldest)),
                    None => return,
                }
            }
            Entry {
                hash,
                address: String::new(),
                name: String::new(),
                added: false,
            }
        }
    };
    if entry.address.is_empty() {
        entry.address = address.to_string();
    }
    if !entry.added && !name.is_empty() {
        entry.name = name.to_string();
    }
    entries.push(entry);
}

/// An address as a book keeps it (the domain in lower case), or `None`
/// for what is not one.
fn book_address(address: &str) -> Option<String> {
    crate::wire::address::Address::parse_path(address.trim())
        .ok()
        .map(|a| a.as_str().to_string())
}

/// Blocking: a member's edit of their book, under the lock that
/// serialises admin changes (and the server's saves): read, change,
/// written durably.
pub fn edit<T>(
    data_dir: &Path,
    mailbox: &Path,
    change: impl FnOnce(&mut Vec<Entry>) -> Result<T, String>,
) -> Result<T, String> {
    let _lock = crate::store::users::lock_users(data_dir)?;
    let cannot = |e: io::Error| format!("cannot change {}: {e}", path(mailbox).display());
    let mut entries = read_or_start_afresh(mailbox).map_err(cannot)?;
    let result = change(&mut entries)?;
    write(mailbox, &entries).map_err(cannot)?;
    Ok(result)
}

/// Adds `address` with `name` (or renames it, when there) as the
/// member's own entry. Returns the address as kept.
pub fn add(entries: &mut Vec<Entry>, address: &str, name: &str) -> Result<String, String> {
    let address = book_address(address).ok_or_else(|| format!("{address} is not an address"))?;
    if name.chars().any(char::is_control) {
        return Err("a name is one line of text".into());
    }
    if name.chars().count() > ADDRESS_BOOK_NAME {
        return Err(format!("a name has at most {ADDRESS_BOOK_NAME} characters"));
    }
    let hash = hash(&address);
    let added = entries.iter().filter(|e| e.added && e.hash != hash).count();
    if added >= ADDRESS_BOOK_ENTRIES {
        return Err(format!(
            "the address book is full ({ADDRESS_BOOK_ENTRIES} entries); delete some first"
        ));
    }
    learn_into(entries, &address, "");
    let entry = entries.last_mut().expect("just learned");
    entry.address = address.clone();
    entry.name = clean_name(name);
    entry.added = true;
    Ok(address)
}

/// Deletes `address` (an entry kept by hash alone too). Returns the
/// entry.
pub fn remove(entries: &mut Vec<Entry>, address: &str) -> Result<Entry, String> {
    let hash = hash(&book_address(address).unwrap_or_else(|| address.to_string()));
    match entries.iter().position(|e| e.hash == hash) {
        Some(i) => Ok(entries.remove(i)),
        None => Err(format!("{address} is not in the address book")),
    }
}

/// The entries to show, by address; entries kept by hash alone are left
/// out (there is nothing to show of them).
pub fn listed(entries: &[Entry]) -> Vec<&Entry> {
    let mut shown: Vec<&Entry> = entries.iter().filter(|e| !e.address.is_empty()).collect();
    shown.sort_by_key(|e| e.address.to_ascii_lowercase());
    shown
}

/// A correspondent learned since the book was last saved.
struct Learned {
    hash: u64,
    address: String,
    name: String,
    /// Counts learning, so a save only takes back what it wrote.
    seq: u64,
}

/// One member's book in RAM.
#[derive(Default)]
struct Book {
    /// The hashes of the file's entries, as of `stamp`.
    saved: Vec<u64>,
    /// Learned since the last save, oldest first, each address once.
    learned: VecDeque<Learned>,
    /// The version of the file `saved` was read from.
    stamp: Option<Stamp>,
    /// `saved` was read from flash.
    loaded: bool,
    /// Asked about or taught since the last save.
    used: bool,
    seq: u64,
}

impl Book {
    fn learn(&mut self, address: &str, name: &str) {
        self.used = true;
        let hash = hash(address);
        self.learned.retain(|l| l.hash != hash);
        if self.learned.len() >= ADDRESS_BOOK_UNSAVED {
            self.learned.pop_front();
        }
        self.seq += 1;
        self.learned.push_back(Learned {
            hash,
            address: address.to_string(),
            name: clean_name(name),
            seq: self.seq,
        });
    }

    fn knows(&self, hash: u64) -> bool {
        self.saved.contains(&hash) || self.learned.iter().any(|l| l.hash == hash)
    }
}

/// Address books by maildir, kept in RAM while in use. Reading and
/// writing them happens on the blocking pool: [`AddressBooks::load`]
/// before asking, [`save`] (with [`AddressBooks::take_changes`] and
/// [`AddressBooks::saved`]) once a minute.
#[derive(Default)]
pub struct AddressBooks {
    open: RefCell<HashMap<PathBuf, Book>>,
}

/// A changed book to write: its maildir, what was learned, and up to
/// which learning.
pub struct Change {
    mailbox: PathBuf,
    learned: Vec<(String, String)>,
    upto: u64,
}

/// What [`save`] wrote of one book.
pub struct Saved {
    mailbox: PathBuf,
    upto: u64,
    /// The book as written; `None`: the member is gone.
    written: Option<(Vec<u64>, Option<Stamp>)>,
}

/// Blocking: the version of each book's file, and the hashes of those
/// not held at that version.
type Looked = Vec<(PathBuf, Option<Stamp>, Option<Vec<u64>>)>;

fn look(wanted: Vec<(PathBuf, Option<Option<Stamp>>)>) -> Looked {
    wanted
        .into_iter()
        .map(|(mailbox, held)| {
            let stamp = record::modified(disk::system(), &path(&mailbox));
            let read = (held != Some(stamp)).then(|| {
                read_or_start_afresh(&mailbox)
                    .unwrap_or_default()
                    .iter()
                    .map(|e| e.hash)
                    .collect()
            });
            (mailbox, stamp, read)
        })
        .collect()
}

impl AddressBooks {
    /// Brings the books of `mailboxes` up to date with their files, off
    /// the executor thread: one not in RAM, or changed since it was read,
    /// is read (what was learned meanwhile stays).
    pub async fn load(&self, mailboxes: impl IntoIterator<Item = &Path>) {
        let wanted: Vec<(PathBuf, Option<Option<Stamp>>)> = {
            let open = self.open.borrow();
            let mut wanted: Vec<(PathBuf, Option<Option<Stamp>>)> = Vec::new();
            for m in mailboxes {
                if wanted.iter().all(|(w, _)| w != m) {
                    let held = open.get(m).filter(|b| b.loaded).map(|b| b.stamp);
                    wanted.push((m.to_path_buf(), held));
                }
            }
            wanted
        };
        if wanted.is_empty() {
            return;
        }
        let looked = smol::unblock(move || look(wanted)).await;
        let mut open = self.open.borrow_mut();
        for (mailbox, stamp, read) in looked {
            let book = open.entry(mailbox).or_default();
            book.used = true;
            if let Some(saved) = read {
                book.saved = saved;
                book.stamp = stamp;
                book.loaded = true;
            }
        }
    }

    /// Whether the member owning `mailbox` knows `address`, as far as
    /// their book is in RAM (see [`AddressBooks::load`]).
    pub fn knows(&self, mailbox: &Path, address: &str) -> bool {
        let h = hash(address);
        let mut open = self.open.borrow_mut();
        match open.get_mut(mailbox) {
            Some(book) => {
                book.used = true;
                book.knows(h)
            }
            None => false,
        }
    }

    /// Teaches a member's book correspondents, each an address and the
    /// display name the mail gave it (empty: none); a book not loaded yet
    /// is merged with the saved one when saved.
    pub fn learn<'a>(
        &self,
        mailbox: &Path,
        correspondents: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        let mut open = self.open.borrow_mut();
        let book = open.entry(mailbox.to_path_buf()).or_default();
        for (address, name) in correspondents {
            if !address.contains('@') {
                continue;
            }
            // What is not an address to keep is still known by its hash.
            match book_address(address) {
                Some(kept) => book.learn(&kept, name),
                None => book.learn(address.trim(), ""),
            }
        }
    }

    /// The books that learned since they were last saved, to hand to
    /// [`save`]. Books nobody used since the previous call are forgotten
    /// (they are all saved by then), so RAM holds only books in use.
    pub fn take_changes(&self) -> Vec<Change> {
        let mut open = self.open.borrow_mut();
        open.retain(|_, b| b.used || !b.learned.is_empty());
        open.iter_mut()
            .filter_map(|(mailbox, b)| {
                b.used = false;
                (!b.learned.is_empty()).then(|| Change {
                    mailbox: mailbox.clone(),
                    learned: b
                        .learned
                        .iter()
                        .map(|l| (l.address.clone(), l.name.clone()))
                        .collect(),
                    upto: b.seq,
                })
            })
            .collect()
    }

    /// Takes what [`save`] wrote as the books' saved state, keeping what
    /// was learned since.
    pub fn saved(&self, saved: Vec<Saved>) {
        let mut open = self.open.borrow_mut();
        for s in saved {
            let Some(book) = open.get_mut(&s.mailbox) else {
                continue;
            };
            book.learned.retain(|l| l.seq > s.upto);
            if let Some((hashes, stamp)) = s.written {
                book.saved = hashes;
                book.stamp = stamp;
                book.loaded = true;
            }
        }
    }
}

/// Blocking: writes what [`AddressBooks::take_changes`] returned into
/// each book as its file is now, under the admin lock of `data_dir`; a
/// member deleted meanwhile (no maildir any more) is skipped. Returns what
/// was written, for [`AddressBooks::saved`], and the first error.
pub fn save(data_dir: &Path, changes: Vec<Change>) -> (Vec<Saved>, io::Result<()>) {
    let mut saved = Vec::new();
    let _lock = match crate::store::users::lock_users(data_dir) {
        Ok(lock) => lock,
        Err(e) => return (saved, Err(io::Error::other(e))),
    };
    let mut first_error = None;
    for change in changes {
        if !change.mailbox.is_dir() {
            saved.push(Saved {
                mailbox: change.mailbox,
                upto: change.upto,
                written: None,
            });
            continue;
        }
        let written = read_or_start_afresh(&change.mailbox).and_then(|mut entries| {
            for (address, name) in &change.learned {
                learn_into(&mut entries, address, name);
            }
            write(&change.mailbox, &entries)?;
            let stamp = record::modified(disk::system(), &path(&change.mailbox));
            Ok((entries.iter().map(|e| e.hash).collect(), stamp))
        });
        match written {
            Ok(written) => saved.push(Saved {
                mailbox: change.mailbox,
                upto: change.upto,
                written: Some(written),
            }),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    (saved, first_error.map_or(Ok(()), Err))
}

#[cfg(test)]
mod tests;
