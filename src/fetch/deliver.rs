//! A fetched message into the member's mailbox, by the delivery's own
//! path: spooled in `DATA/tmp` in fixed chunks as it comes, checked
//! against the member's quota, then synced and linked into `new/` (which
//! is synced) by the group commit, and counted for the quota.
//!
//! Its file name carries a hash of where it came from (the upstream and
//! the message's id there, as `postbox import` names by content), so a
//! message fetched again after a crash (between its delivery and the
//! record that says so, or before the upstream deleted it) is recognised
//! and not stored twice.

use crate::mailio::import::{hash_hex, hash_in_name, HASH_TAG};
use crate::route::Router;
use crate::store::maildir::{self, Incoming};
use crate::store::Mailstore;
use crate::wire::address::Address;
use std::collections::HashSet;
use std::io;
use std::path::PathBuf;

/// The hash a fetched message's file name carries.
pub fn tag(upstream: &str, id: &str) -> String {
    let identity = format!("fetch\0{upstream}\0{id}");
    hash_hex(ring::digest::digest(
        &ring::digest::SHA256,
        identity.as_bytes(),
    ))
}

/// The hashes in a mailbox's file names: what is here already. Read on
/// the blocking pool.
pub async fn known(store: &Mailstore, dir: PathBuf) -> io::Result<HashSet<String>> {
    let disk = store.disk().clone();
    smol::unblock(move || match maildir::scan_mailbox(&*disk, &dir) {
        Ok(messages) => Ok(messages
            .iter()
            .filter_map(|m| hash_in_name(&m.name).map(str::to_string))
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(HashSet::new()),
        Err(e) => Err(e),
    })
    .await
}

/// Where fetched mail goes.
pub struct Member<'a> {
    pub account: Address,
    pub dir: PathBuf,
    pub store: &'a Mailstore,
    pub router: &'a Router,
}

/// How a message ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    Durable,
    /// The mailbox has no room: left upstream for a later run.
    OverQuota,
}

/// A message being spooled.
pub struct Message {
    incoming: Incoming,
    /// Bytes gathered until a chunk is full.
    pending: Vec<u8>,
}

impl Message {
    /// Starts the spool file with `head` (our `Received:` line).
    pub async fn begin(store: &Mailstore, head: String) -> io::Result<Message> {
        let name = store.names.next();
        let incoming = Incoming::spool(store.disk(), store.spool_root(), name, head.into()).await?;
        Ok(Message {
            incoming,
            pending: Vec::with_capacity(crate::limits::WRITE_CHUNK),
        })
    }

    /// Takes `bytes` (emptied), writing a chunk once one is full.
    pub async fn write(self, bytes: &mut Vec<u8>) -> (Message, io::Result<()>) {
        let mut message = self;
        message.pending.append(bytes);
        if message.pending.len() < crate::limits::WRITE_CHUNK {
            return (message, Ok(()));
        }
        message.flush().await
    }

    async fn flush(self) -> (Message, io::Result<()>) {
        let Message { incoming, pending } = self;
        let (incoming, mut pending, result) = incoming.append(pending).await;
        pending.clear();
        (Message { incoming, pending }, result)
    }

    /// Ends the message: into the member's mailbox, named by `tag`, or
    /// left out when the mailbox has no room.
    pub async fn finish(self, member: &Member<'_>, tag: &str) -> io::Result<Stored> {
        let (message, flushed) = match self.pending.is_empty() {
            true => (self, Ok(())),
            false => self.flush().await,
        };
        let mut incoming = message.incoming;
        if let Err(e) = flushed {
            incoming.discard_off_thread().await;
            return Err(e);
        }
        let size = incoming.size();
        if member
            .router
            .over_quota_with(&member.account, size)
            .is_some()
        {
            incoming.discard_off_thread().await;
            return Ok(Stored::OverQuota);
        }
        let name = member.store.names.next_with(&format!("{HASH_TAG}{tag}"));
        let (incoming, renamed) = smol::unblock(move || {
            let renamed = incoming.rename(name);
            (incoming, renamed)
        })
        .await;
        if let Err(e) = renamed {
            incoming.discard_off_thread().await;
            return Err(e);
        }
        let commits = &member.store.commits;
        let (incoming, delivered) = commits.deliver(incoming, vec![member.dir.clone()]).await;
        incoming.discard_off_thread().await;
        delivered?;
        member
            .router
            .after_delivery(std::slice::from_ref(&member.account), size)
            .await;
        Ok(Stored::Durable)
    }

    /// Drops the spooled part (the transfer failed).
    pub async fn abandon(self) {
        self.incoming.discard_off_thread().await
    }
}
