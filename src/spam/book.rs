//! Each member's automatic address book: the addresses they have sent
//! mail to through Postbox and received mail from. Only hashes are kept
//! (8 bytes an address, a bounded number a member, oldest forgotten
//! first), in a record in the member's maildir. Books live in RAM while
//! in use and reach flash at most once a minute and at shutdown: losing a
//! minute of learning to a power cut costs nothing that matters, while a
//! write per message would wear the card.

use crate::limits::ADDRESS_BOOK_ENTRIES;
use crate::store::disk;
use crate::store::record;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

const FILE: &str = "postbox-addressbook";
const KIND: [u8; 4] = *b"PBAB";
const VERSION: u16 = 1;

/// One member's known addresses, oldest first.
#[derive(Default)]
struct Book {
    known: VecDeque<u64>,
    /// Read from flash (and merged with what was learned before that).
    loaded: bool,
    /// Changed since it was last saved.
    dirty: bool,
    /// Counts changes, so a save only clears `dirty` when nothing was
    /// learned while it was under way.
    changes: u64,
    /// Asked about or taught since the last save.
    used: bool,
}

impl Book {
    fn learn(&mut self, hash: u64) {
        self.used = true;
        if let Some(i) = self.known.iter().position(|&h| h == hash) {
            if i + 1 == self.known.len() {
                return;
            }
            self.known.remove(i);
        } else if self.known.len() >= ADDRESS_BOOK_ENTRIES {
            self.known.pop_front();
        }
        self.known.push_back(hash);
        self.dirty = true;
        self.changes += 1;
    }
}

/// `saved` (older) with `learned` (newer) after it, each address once,
/// the oldest forgotten beyond the bound.
fn merge(saved: &[u64], learned: impl IntoIterator<Item = u64>) -> VecDeque<u64> {
    let learned: Vec<u64> = learned.into_iter().collect();
    let mut out: VecDeque<u64> = saved
        .iter()
        .copied()
        .filter(|h| !learned.contains(h))
        .collect();
    out.extend(learned);
    while out.len() > ADDRESS_BOOK_ENTRIES {
        out.pop_front();
    }
    out
}

/// Address books by maildir, kept in RAM while in use. Reading and
/// writing them happens on the blocking pool: [`AddressBooks::load`]
/// before asking, [`save`] (with [`AddressBooks::take_changes`] and
/// [`AddressBooks::saved`]) once a minute.
#[derive(Default)]
pub struct AddressBooks {
    open: RefCell<HashMap<PathBuf, Book>>,
}

/// A changed book to write: its maildir, its addresses, whether they
/// still need merging with the saved ones, and its change count.
pub struct Change {
    mailbox: PathBuf,
    known: Vec<u64>,
    merge: bool,
    changes: u64,
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

/// Blocking: a member's saved book; a damaged one is set aside (it only
/// makes the rule stricter until it relearns).
fn read(mailbox: &Path) -> Vec<u64> {
    record::load_or_start_afresh(disk::system(), &mailbox.join(FILE), KIND, VERSION)
        .unwrap_or_default()
}

impl AddressBooks {
    /// Reads the books of `mailboxes` not in RAM yet, off the executor
    /// thread; what was learned meanwhile is merged in.
    pub async fn load(&self, mailboxes: impl IntoIterator<Item = &Path>) {
        let wanted: Vec<PathBuf> = {
            let open = self.open.borrow();
            mailboxes
                .into_iter()
                .filter(|m| !open.get(*m).is_some_and(|b| b.loaded))
                .map(Path::to_path_buf)
                .collect()
        };
        if wanted.is_empty() {
            return;
        }
        let read = smol::unblock(move || {
            wanted
                .into_iter()
                .map(|m| {
                    let known = read(&m);
                    (m, known)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let mut open = self.open.borrow_mut();
        for (mailbox, saved) in read {
            let book = open.entry(mailbox).or_default();
            if !book.loaded {
                book.known = merge(&saved, book.known.drain(..));
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
                book.known.contains(&h)
            }
            None => false,
        }
    }

    /// Teaches a member's book; one not loaded yet is merged with the
    /// saved one when loaded or saved.
    pub fn learn<'a>(&self, mailbox: &Path, addresses: impl IntoIterator<Item = &'a str>) {
        let mut open = self.open.borrow_mut();
        let book = open.entry(mailbox.to_path_buf()).or_default();
        for a in addresses {
            if a.contains('@') {
                book.learn(hash(a));
            }
        }
    }

    /// The books changed since they were last saved, to hand to [`save`].
    /// Books nobody used since the previous call are forgotten (they are
    /// all saved by then), so RAM holds only books in use.
    pub fn take_changes(&self) -> Vec<Change> {
        let mut open = self.open.borrow_mut();
        open.retain(|_, b| b.used || b.dirty);
        open.iter_mut()
            .filter_map(|(mailbox, b)| {
                b.used = false;
                b.dirty.then(|| Change {
                    mailbox: mailbox.clone(),
                    known: b.known.iter().copied().collect(),
                    merge: !b.loaded,
                    changes: b.changes,
                })
            })
            .collect()
    }

    /// Marks what [`save`] wrote as saved, unless learned more since.
    pub fn saved(&self, written: &[(PathBuf, u64)]) {
        let mut open = self.open.borrow_mut();
        for (mailbox, changes) in written {
            if let Some(book) = open.get_mut(mailbox) {
                if book.changes == *changes {
                    book.dirty = false;
                }
            }
        }
    }
}

/// Blocking: writes what [`AddressBooks::take_changes`] returned; a
/// member deleted meanwhile (no maildir any more) is skipped. Returns
/// what was written, for [`AddressBooks::saved`], and the first error.
pub fn save(changes: Vec<Change>) -> (Vec<(PathBuf, u64)>, io::Result<()>) {
    let mut written = Vec::new();
    let mut first_error = None;
    for change in changes {
        if !change.mailbox.is_dir() {
            written.push((change.mailbox, change.changes));
            continue;
        }
        let known: Vec<u64> = match change.merge {
            true => merge(&read(&change.mailbox), change.known).into(),
            false => change.known,
        };
        match record::save(
            disk::system(),
            &change.mailbox.join(FILE),
            KIND,
            VERSION,
            &known,
        ) {
            Ok(()) => written.push((change.mailbox, change.changes)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    (written, first_error.map_or(Ok(()), Err))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One minute's save, as the server does it.
    fn save_all(books: &AddressBooks) {
        let (written, result) = save(books.take_changes());
        result.unwrap();
        books.saved(&written);
    }

    fn load(books: &AddressBooks, mailbox: &Path) {
        smol::block_on(books.load([mailbox]));
    }

    /// A mailbox folder whose saved address book holds `known`.
    fn mailbox_knowing(known: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = dir.path().join("alice");
        std::fs::create_dir(&mailbox).unwrap();
        if !known.is_empty() {
            let hashes: Vec<_> = known.iter().map(|a| hash(a)).collect();
            record::save(
                &crate::store::disk::Fs,
                &mailbox.join(FILE),
                KIND,
                VERSION,
                &hashes,
            )
            .unwrap();
        }
        (dir, mailbox)
    }

    #[test]
    fn learns_saves_and_forgets_the_oldest() {
        let (_dir, mailbox) = mailbox_knowing(&[]);
        let books = AddressBooks::default();
        load(&books, &mailbox);
        assert!(!books.knows(&mailbox, "bob@example.test"));
        books.learn(&mailbox, ["Bob@Example.TEST.", "not-an-address"]);
        assert!(books.knows(&mailbox, "bob@example.test"));
        save_all(&books);
        assert!(books.take_changes().is_empty(), "nothing changed");
        // Reloaded from flash.
        let fresh = AddressBooks::default();
        load(&fresh, &mailbox);
        assert!(fresh.knows(&mailbox, "BOB@example.test"));

        let many: Vec<String> = (0..=ADDRESS_BOOK_ENTRIES)
            .map(|i| format!("u{i}@example.test"))
            .collect();
        books.learn(&mailbox, many.iter().map(String::as_str));
        assert!(
            !books.knows(&mailbox, "bob@example.test"),
            "oldest forgotten"
        );
        assert!(books.knows(&mailbox, "u1@example.test"));
        assert!(books.knows(&mailbox, &many[ADDRESS_BOOK_ENTRIES]));
    }

    #[test]
    fn clean_books_stay_in_memory_across_saves() {
        let (_dir, mailbox) = mailbox_knowing(&["bob@example.test"]);
        let books = AddressBooks::default();
        load(&books, &mailbox);
        assert!(books.knows(&mailbox, "bob@example.test"));
        save_all(&books);
        // Still in use: answered from memory, not read again from flash.
        std::fs::remove_file(mailbox.join(FILE)).unwrap();
        load(&books, &mailbox);
        assert!(books.knows(&mailbox, "bob@example.test"));
        // Unused for a whole minute: forgotten, read again when needed.
        save_all(&books);
        save_all(&books);
        load(&books, &mailbox);
        assert!(!books.knows(&mailbox, "bob@example.test"));
    }

    #[test]
    fn learning_while_a_save_is_under_way_is_kept() {
        let (_dir, mailbox) = mailbox_knowing(&[]);
        let books = AddressBooks::default();
        load(&books, &mailbox);
        books.learn(&mailbox, ["first@example.test"]);
        let changes = books.take_changes();
        // Learned after the changes were taken, before they are on flash.
        books.learn(&mailbox, ["second@example.test"]);
        let (written, result) = save(changes);
        result.unwrap();
        books.saved(&written);
        save_all(&books);
        let fresh = AddressBooks::default();
        load(&fresh, &mailbox);
        assert!(fresh.knows(&mailbox, "first@example.test"), "lost");
        assert!(fresh.knows(&mailbox, "second@example.test"));
    }

    #[test]
    fn learning_before_loading_is_merged_with_the_saved_book() {
        let (_dir, mailbox) = mailbox_knowing(&["old@example.test"]);
        let books = AddressBooks::default();
        books.learn(&mailbox, ["new@example.test"]);
        save_all(&books);
        load(&books, &mailbox);
        assert!(books.knows(&mailbox, "old@example.test"));
        assert!(books.knows(&mailbox, "new@example.test"));
        let fresh = AddressBooks::default();
        load(&fresh, &mailbox);
        assert!(fresh.knows(&mailbox, "old@example.test"));
        assert!(fresh.knows(&mailbox, "new@example.test"));
    }

    #[test]
    fn a_failed_save_is_tried_again() {
        let (_dir, mailbox) = mailbox_knowing(&[]);
        let books = AddressBooks::default();
        books.learn(&mailbox, ["x@example.test"]);
        // The save never reports back (say, cancelled at shutdown).
        drop(books.take_changes());
        assert_eq!(books.take_changes().len(), 1, "change forgotten");
    }

    #[test]
    fn a_deleted_member_is_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = dir.path().join("gone");
        let books = AddressBooks::default();
        books.learn(&mailbox, ["x@example.test"]);
        save_all(&books);
        assert!(!mailbox.exists());
        assert!(books.take_changes().is_empty());
    }
}
