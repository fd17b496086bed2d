//! The running server's hold on the mailboxes: unique names, the group
//! commit that makes messages durable, each mailbox's bytes (for quotas),
//! and which mailboxes a POP3 session holds.

use super::commit::GroupCommit;
use super::disk::Disk;
use super::maildir;
use crate::wire::address::Address;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Mailstore {
    disk: Arc<dyn Disk>,
    mail_dir: PathBuf,
    spool_root: PathBuf,
    pub names: maildir::NameMaker,
    /// Makes finished messages durable, several per round of syncs.
    pub commits: GroupCommit,
    /// Bytes per mailbox directory, for quotas.
    usage: RefCell<HashMap<PathBuf, u64>>,
    /// Mailboxes with a POP3 session in the TRANSACTION state.
    pop3_in_use: RefCell<HashSet<PathBuf>>,
    /// In a cluster: this node's name and how long its POP3 locks last.
    leases: Option<(String, std::time::Duration)>,
    /// The cluster-wide locks held (mailbox, holder), renewed by [`Mailstore::renew_leases`].
    held_leases: RefCell<HashMap<PathBuf, String>>,
    lease_seq: std::cell::Cell<u64>,
}

impl Mailstore {
    /// Counts every mailbox first, so no session waits for a mailbox scan.
    /// `mail_dir` holds `mail/`, `spool_root` this node's `tmp/`; `host`
    /// goes into message file names (with the node's name in a cluster).
    pub fn open(disk: Arc<dyn Disk>, mail_dir: &Path, spool_root: &Path, host: &str) -> Mailstore {
        Mailstore {
            usage: RefCell::new(maildir::usage_by_mailbox(&*disk, mail_dir)),
            disk,
            mail_dir: mail_dir.to_path_buf(),
            spool_root: spool_root.to_path_buf(),
            names: maildir::NameMaker::new(host),
            commits: GroupCommit::default(),
            pop3_in_use: RefCell::new(HashSet::new()),
            leases: None,
            held_leases: RefCell::default(),
            lease_seq: Default::default(),
        }
    }

    /// A cluster node: POP3 locks are lease files other nodes honour.
    pub fn with_leases(mut self, node: &str, lease: std::time::Duration) -> Mailstore {
        self.leases = Some((node.to_string(), lease));
        self
    }

    /// How often the leases held are renewed, in a cluster.
    pub fn lease_renewal(&self) -> Option<std::time::Duration> {
        self.leases.as_ref().map(|(_, lease)| *lease / 3)
    }

    /// Takes a mailbox for a POP3 session on this node and, in a cluster,
    /// on every node; `Ok(false)` when another session holds it.
    pub async fn take_for_pop3(&self, dir: &Path) -> std::io::Result<bool> {
        if !self.lock_for_pop3(dir) {
            return Ok(false);
        }
        let Some((node, lease)) = self.leases.clone() else {
            return Ok(true);
        };
        let seq = self.lease_seq.get() + 1;
        self.lease_seq.set(seq);
        let holder = format!("{node}-{}-{seq}", std::process::id());
        let (mailbox, named) = (dir.to_path_buf(), holder.clone());
        let taken = smol::unblock(move || super::lease::take(&mailbox, &named, lease)).await;
        match taken {
            Ok(true) => {
                self.held_leases
                    .borrow_mut()
                    .insert(dir.to_path_buf(), holder);
            }
            _ => self.unlock_for_pop3(dir),
        }
        taken
    }

    /// Touches every lease this node holds.
    pub async fn renew_leases(&self) {
        let held: Vec<_> = self.held_leases.borrow().clone().into_iter().collect();
        for (dir, holder) in held {
            let mailbox = dir.clone();
            let renewed = smol::unblock(move || super::lease::renew(&mailbox, &holder)).await;
            if !matches!(renewed, Ok(true)) {
                log::error!("POP3 lock on {} lost: {renewed:?}", dir.display());
            }
        }
    }

    /// The disk the mailboxes are on.
    pub fn disk(&self) -> &Arc<dyn Disk> {
        &self.disk
    }

    /// Where the mailboxes are (`mail/` below it).
    pub fn mail_dir(&self) -> &Path {
        &self.mail_dir
    }

    /// Where this node's spool is (`tmp/` below it): on the mailboxes'
    /// filesystem, so delivery is a hard link.
    pub fn spool_root(&self) -> &Path {
        &self.spool_root
    }

    pub fn mailbox_dir(&self, account: &Address) -> PathBuf {
        maildir::mailbox_dir(&self.mail_dir, account.local(), account.domain())
    }

    /// Bytes in a mailbox: counted at start (or by [`Mailstore::load_usage`]),
    /// then kept up to date in RAM. The router counts each new user's
    /// mailbox before it is looked up, so only a mailbox no async path
    /// has loaded is counted here, on the executor thread.
    pub fn mailbox_usage(&self, dir: &Path) -> u64 {
        if let Some(bytes) = self.usage.borrow().get(dir) {
            return *bytes;
        }
        let bytes = maildir::mailbox_bytes(&*self.disk, dir);
        self.usage.borrow_mut().insert(dir.to_path_buf(), bytes);
        bytes
    }

    /// Counts, on the blocking pool, the mailboxes whose usage is not known.
    pub async fn load_usage(&self, dirs: impl IntoIterator<Item = PathBuf>) {
        for dir in dirs {
            if !self.usage.borrow().contains_key(&dir) {
                self.recount_usage(dir).await;
            }
        }
    }

    /// Counts a mailbox again, on the blocking pool.
    pub async fn recount_usage(&self, dir: PathBuf) {
        let disk = self.disk.clone();
        let (counted, bytes) = smol::unblock(move || {
            let bytes = maildir::mailbox_bytes(&*disk, &dir);
            (dir, bytes)
        })
        .await;
        self.usage.borrow_mut().insert(counted, bytes);
    }

    /// Counts again every mailbox whose usage is known, on the blocking
    /// pool: another writer (`postbox import`) added to some.
    pub async fn recount_known(&self) {
        let dirs: Vec<PathBuf> = self.usage.borrow().keys().cloned().collect();
        for dir in dirs {
            self.recount_usage(dir).await;
        }
    }

    /// Records a delivery of `size` bytes; returns the usage before it.
    pub fn add_usage(&self, dir: &Path, size: u64) -> u64 {
        let before = self.mailbox_usage(dir);
        self.usage
            .borrow_mut()
            .insert(dir.to_path_buf(), before + size);
        before
    }

    /// Adds a delivery to a mailbox's usage if it is known, without
    /// counting it otherwise (an unlimited mailbox need not be counted
    /// now, but a count kept from start stays right for when a limit is set).
    pub fn add_known_usage(&self, dir: &Path, size: u64) {
        if let Some(bytes) = self.usage.borrow_mut().get_mut(dir) {
            *bytes += size;
        }
    }

    /// Takes deleted messages off a mailbox's known usage.
    pub fn remove_usage(&self, dir: &Path, bytes: u64) {
        if let Some(usage) = self.usage.borrow_mut().get_mut(dir) {
            *usage = usage.saturating_sub(bytes);
        }
    }

    /// Takes a mailbox for a POP3 session; `false` when another holds it.
    pub fn lock_for_pop3(&self, dir: &Path) -> bool {
        self.pop3_in_use.borrow_mut().insert(dir.to_path_buf())
    }

    pub fn unlock_for_pop3(&self, dir: &Path) {
        self.pop3_in_use.borrow_mut().remove(dir);
        if let Some(holder) = self.held_leases.borrow_mut().remove(dir) {
            let mailbox = dir.to_path_buf();
            smol::unblock(move || super::lease::release(&mailbox, &holder)).detach();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pop3_session_per_mailbox() {
        let data = tempfile::tempdir().unwrap();
        let (fs, path) = (Arc::new(crate::store::disk::Fs), data.path());
        let store = Mailstore::open(fs, path, path, "mail.example");
        let account = Address::new("ann", "example.org").unwrap();
        let dir = store.mailbox_dir(&account);
        assert!(store.lock_for_pop3(&dir));
        assert!(!store.lock_for_pop3(&dir), "held by the first session");
        store.unlock_for_pop3(&dir);
        assert!(store.lock_for_pop3(&dir));
    }

    #[test]
    fn usage_follows_deliveries_and_deletions() {
        let data = tempfile::tempdir().unwrap();
        let (fs, path) = (Arc::new(crate::store::disk::Fs), data.path());
        let store = Mailstore::open(fs, path, path, "mail.example");
        let dir = store.mailbox_dir(&Address::new("ann", "example.org").unwrap());
        // Unknown and unlimited: not counted until someone asks.
        store.add_known_usage(&dir, 10);
        assert_eq!(store.mailbox_usage(&dir), 0);
        assert_eq!(store.add_usage(&dir, 100), 0);
        store.add_known_usage(&dir, 10);
        assert_eq!(store.mailbox_usage(&dir), 110);
        store.remove_usage(&dir, 500);
        assert_eq!(store.mailbox_usage(&dir), 0);
    }
}
