//! Each member's automatic address book: the addresses they have sent
//! mail to through Postbox and received mail from. Only hashes are kept
//! (8 bytes an address, a bounded number a member, oldest forgotten
//! first), in a record in the member's maildir. Books live in RAM while
//! in use and reach flash at most once a minute and at shutdown: losing a
//! minute of learning to a power cut costs nothing that matters, while a
//! write per message would wear the card.

use crate::limits::ADDRESS_BOOK_ENTRIES;
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
    dirty: bool,
}

impl Book {
    fn learn(&mut self, hash: u64) {
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
    }
}

/// Address books by maildir, cached between saves.
#[derive(Default)]
pub struct AddressBooks {
    open: RefCell<HashMap<PathBuf, Book>>,
}

/// Addresses compare case-insensitively, and a trailing dot on the domain
/// changes nothing.
fn hash(address: &str) -> u64 {
    // FNV-1a: stable across builds, which the saved books need.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in address.trim().trim_end_matches('.').bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn load(mailbox: &Path) -> Book {
    match record::load::<Vec<u64>>(&mailbox.join(FILE), KIND, VERSION) {
        Ok(known) => Book {
            known: known.unwrap_or_default().into(),
            dirty: false,
        },
        Err(e) => {
            // A damaged book only makes the rule stricter until it relearns.
            log::warn!(
                "address book in {} unreadable, starting afresh: {e}",
                mailbox.display()
            );
            Book::default()
        }
    }
}

impl AddressBooks {
    fn with<T>(&self, mailbox: &Path, f: impl FnOnce(&mut Book) -> T) -> T {
        let mut open = self.open.borrow_mut();
        let book = open
            .entry(mailbox.to_path_buf())
            .or_insert_with(|| load(mailbox));
        f(book)
    }

    /// Whether the member owning `mailbox` knows `address`.
    pub fn knows(&self, mailbox: &Path, address: &str) -> bool {
        let h = hash(address);
        self.with(mailbox, |b| b.known.contains(&h))
    }

    pub fn learn<'a>(&self, mailbox: &Path, addresses: impl IntoIterator<Item = &'a str>) {
        self.with(mailbox, |b| {
            for a in addresses {
                if a.contains('@') {
                    b.learn(hash(a));
                }
            }
        })
    }

    /// Writes the changed books and forgets them all, so RAM holds only
    /// books used since the last save. Blocking: call it off the executor.
    pub fn take_changes(&self) -> Vec<(PathBuf, Vec<u64>)> {
        self.open
            .borrow_mut()
            .drain()
            .filter(|(_, b)| b.dirty)
            .map(|(path, b)| (path, b.known.into()))
            .collect()
    }
}

/// Saves what [`AddressBooks::take_changes`] returned; a member deleted
/// meanwhile (no maildir any more) is skipped.
pub fn save(changes: &[(PathBuf, Vec<u64>)]) -> io::Result<()> {
    let mut first_error = None;
    for (mailbox, known) in changes {
        if !mailbox.is_dir() {
            continue;
        }
        if let Err(e) = record::save(&mailbox.join(FILE), KIND, VERSION, known) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_saves_and_forgets_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = dir.path().join("alice");
        std::fs::create_dir(&mailbox).unwrap();
        let books = AddressBooks::default();
        assert!(!books.knows(&mailbox, "bob@example.test"));
        books.learn(&mailbox, ["Bob@Example.TEST.", "not-an-address"]);
        assert!(books.knows(&mailbox, "bob@example.test"));
        save(&books.take_changes()).unwrap();
        // Reloaded from flash.
        assert!(books.knows(&mailbox, "BOB@example.test"));
        assert!(books.take_changes().is_empty(), "nothing changed");

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
    fn a_deleted_member_is_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = dir.path().join("gone");
        let books = AddressBooks::default();
        books.learn(&mailbox, ["x@example.test"]);
        save(&books.take_changes()).unwrap();
        assert!(!mailbox.exists());
    }
}
