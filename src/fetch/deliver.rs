//! A fetched message into the member's mailbox, by the delivery's own
//! path: spooled in `DATA/tmp` in fixed chunks as it comes, checked
//! against the member's quota, then synced and linked into `new/` (which
//! is synced) by the group commit, and counted for the quota.
//!
//! The recipient rule judges it as it judges mail arriving by SMTP (a
//! message to many people none of whom the member knows is tagged; never
//! refused, as there is nobody to refuse it to), and a clean one teaches
//! the member's address book its From: addresses.
//!
//! Its file name carries a hash of where it came from (the upstream and
//! the message's id there, as `postbox import` names by content), so a
//! message fetched again after a crash (between its delivery and the
//! record that says so, or before the upstream deleted it) is recognised
//! and not stored twice.

use crate::mailio::import::{hash_hex, hash_in_name, HASH_TAG};
use crate::policy::from_header::{FromHeaderScanner, RecipientHeaderScanner};
use crate::route::Router;
use crate::spam::AddressBooks;
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
    pub books: &'a AddressBooks,
    pub spam: &'a crate::spam::Settings,
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
    /// To: and Cc:, for the recipient rule.
    recipients: RecipientHeaderScanner,
    /// From:, for the address book.
    from: FromHeaderScanner,
}

impl Message {
    /// Starts the spool file with `head` (our `Received:` line).
    pub async fn begin(store: &Mailstore, head: String) -> io::Result<Message> {
        let name = store.names.next();
        let incoming = Incoming::spool(store.disk(), store.spool_root(), name, head.into()).await?;
        Ok(Message {
            incoming,
            pending: Vec::with_capacity(crate::limits::WRITE_CHUNK),
            recipients: RecipientHeaderScanner::recipients(),
            from: FromHeaderScanner::new(),
        })
    }

    /// Takes `bytes` (emptied), writing a chunk once one is full.
    pub async fn write(self, bytes: &mut Vec<u8>) -> (Message, io::Result<()>) {
        let mut message = self;
        message.recipients.feed(bytes);
        message.from.feed(bytes);
        message.pending.append(bytes);
        if message.pending.len() < crate::limits::WRITE_CHUNK {
            return (message, Ok(()));
        }
        message.flush().await
    }

    async fn flush(mut self) -> (Message, io::Result<()>) {
        let pending = std::mem::take(&mut self.pending);
        let (incoming, mut pending, result) = self.incoming.append(pending).await;
        pending.clear();
        self.incoming = incoming;
        self.pending = pending;
        (self, result)
    }

    /// Ends the message: into the member's mailbox, named by `tag`, or
    /// left out when the mailbox has no room.
    pub async fn finish(self, member: &Member<'_>, tag: &str) -> io::Result<Stored> {
        let (message, flushed) = match self.pending.is_empty() {
            true => (self, Ok(())),
            false => self.flush().await,
        };
        let Message {
            incoming,
            recipients,
            from,
            ..
        } = message;
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
        let mut incoming = match member.judge(&recipients, &from).await {
            None => incoming,
            Some(why) => {
                log::warn!("fetched message is spam for {}: {why}", member.account);
                let tag = member.spam.subject_tag.clone();
                let tagged = crate::spam::tag::tagged_copy(member.store, &incoming, tag).await;
                incoming.discard_off_thread().await;
                tagged?
            }
        };
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

impl Member<'_> {
    /// Why the message is spam for the member (the recipient rule), or
    /// `None`; a clean message teaches the book its From: addresses.
    async fn judge(
        &self,
        recipients: &RecipientHeaderScanner,
        from: &FromHeaderScanner,
    ) -> Option<String> {
        if self.spam.recipient_limit > 0 {
            // Read from flash off the executor thread, before the rule asks.
            self.books.load([self.dir.as_path()]).await;
            let listed = recipients.addresses_seen();
            let verdict =
                crate::spam::recipient_rule(self.spam, &listed, |a| self.books.knows(&self.dir, a));
            if verdict.is_some() {
                return verdict;
            }
        }
        let named = from.named().unwrap_or_default();
        let correspondents = named.iter().map(|m| (m.address.as_str(), m.name.as_str()));
        self.books.learn(&self.dir, correspondents);
        None
    }
}
