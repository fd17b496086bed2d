//! The delivery plan of a message accepted whole: who gets a copy, which
//! copies are tagged as spam, what the queue takes. Pure: the shell looks
//! up sizes, quotas and address books first and carries the plan out.

use super::facts::DataOutcome;
use crate::route::Destination;
use crate::wire::address::Address;
use std::path::{Path, PathBuf};

/// A mailbox and its directory.
pub type Mailbox = (Address, PathBuf);

/// Where the copies of a message go, one per mailbox and per remote
/// address, whatever led there.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Targets {
    /// Local mailboxes, in directory order.
    pub mailboxes: Vec<Mailbox>,
    /// Remote addresses the client sent to.
    pub relayed: Vec<String>,
    /// Remote addresses reached through aliases or forwards.
    pub forwarded: Vec<String>,
}

impl Targets {
    /// Gathers the destinations of the accepted recipients.
    pub fn of<'a>(
        destinations: impl IntoIterator<Item = &'a Destination>,
        dir_of: impl Fn(&Address) -> PathBuf,
    ) -> Self {
        let mut targets = Targets::default();
        for destination in destinations {
            match destination {
                Destination::Mailbox(account) => {
                    let dir = dir_of(account);
                    if !targets.mailboxes.iter().any(|(_, d)| *d == dir) {
                        targets.mailboxes.push((account.clone(), dir));
                    }
                }
                Destination::Remote { to, forwarded } => {
                    let list = if *forwarded {
                        &mut targets.forwarded
                    } else {
                        &mut targets.relayed
                    };
                    if !list.iter().any(|a| a.eq_ignore_ascii_case(to.as_str())) {
                        list.push(to.as_str().to_string());
                    }
                }
            }
        }
        targets.mailboxes.sort_by(|a, b| a.1.cmp(&b.1));
        targets
    }

    fn remote(&self) -> bool {
        !self.relayed.is_empty() || !self.forwarded.is_empty()
    }

    /// The real size against each quota (the declared one was checked at
    /// RCPT): mailboxes without room get the message through the queue,
    /// which reports to the sender, unless no one else gets it at all.
    /// `over_quota`: `Some(temporary)` for a mailbox without room.
    pub fn within_quota(
        mut self,
        over_quota: impl Fn(&Address) -> Option<bool>,
    ) -> Result<(Self, Vec<String>), DataOutcome> {
        let (room, full): (Vec<_>, Vec<_>) = std::mem::take(&mut self.mailboxes)
            .into_iter()
            .partition(|(account, _)| over_quota(account).is_none());
        if room.is_empty() && !self.remote() && !full.is_empty() {
            let temporary = full.iter().all(|(a, _)| over_quota(a) == Some(true));
            return Err(DataOutcome::OverQuota { temporary });
        }
        self.mailboxes = room;
        let full = full.iter().map(|(a, _)| a.as_str().to_string()).collect();
        Ok((self, full))
    }
}

/// What is done with a message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Mailboxes that get the copy tagged as spam.
    pub tagged: Vec<Mailbox>,
    /// Mailboxes that get the message as it came.
    pub clean: Vec<Mailbox>,
    /// For the queue, with the sender as given.
    pub relayed: Vec<String>,
    /// For the queue, with the sender rewritten (SRS).
    pub forwarded: Vec<String>,
    /// Mailboxes without room now: the queue retries them.
    pub waiting: Vec<String>,
}

/// How spam is handled, from the configuration and the message.
pub struct SpamRule<'a> {
    /// Refuse mail that is spam for every recipient (else tag it).
    pub reject: bool,
    /// Why a stranger's message is tagged for everyone, if it is (a
    /// member's address in its From:, a DMARC quarantine).
    pub tag_all: Option<&'a str>,
}

/// Splits the mailboxes into tagged and clean copies. `is_spam` is the
/// recipient rule for one mailbox. Refused as spam only when every
/// recipient is local and judged so, and nothing else marks it.
pub fn plan(
    targets: Targets,
    waiting: Vec<String>,
    rule: &SpamRule<'_>,
    mut is_spam: impl FnMut(&Address, &Path) -> bool,
) -> Result<Plan, DataOutcome> {
    let remote = targets.remote();
    let (tagged, clean): (Vec<_>, Vec<_>) = targets
        .mailboxes
        .into_iter()
        .partition(|(account, dir)| is_spam(account, dir));
    if !tagged.is_empty() && clean.is_empty() && !remote && rule.tag_all.is_none() && rule.reject {
        return Err(DataOutcome::Spam);
    }
    // A stranger writing as a member, or failing a quarantine policy:
    // tagged for everyone, never refused for this alone (mailing lists and
    // forwarders do it too).
    let (tagged, clean) = match rule.tag_all {
        Some(_) => (tagged.into_iter().chain(clean).collect(), Vec::new()),
        None => (tagged, clean),
    };
    Ok(Plan {
        tagged,
        clean,
        relayed: targets.relayed,
        forwarded: targets.forwarded,
        waiting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse_path(s).unwrap()
    }

    fn to(destinations: Vec<Destination>) -> Vec<Destination> {
        destinations
    }

    fn targets() -> Targets {
        let recipients = [
            to(vec![Destination::Mailbox(a("bob@localhost"))]),
            to(vec![
                Destination::Mailbox(a("alice@localhost")),
                Destination::Mailbox(a("Bob@localhost")),
                Destination::Remote {
                    to: a("f@far.test"),
                    forwarded: true,
                },
            ]),
            to(vec![Destination::Remote {
                to: a("F@far.test"),
                forwarded: true,
            }]),
        ];
        Targets::of(recipients.iter().flatten(), |m| {
            PathBuf::from(m.local().to_ascii_lowercase())
        })
    }

    #[test]
    fn one_copy_per_mailbox_and_remote_address() {
        let t = targets();
        let dirs: Vec<_> = t.mailboxes.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(dirs, [PathBuf::from("alice"), PathBuf::from("bob")]);
        assert_eq!(t.forwarded, ["f@far.test"]);
        assert!(t.relayed.is_empty());
    }

    #[test]
    fn full_mailboxes_wait_in_the_queue_unless_alone() {
        let full_bob = |m: &Address| (m.local() == "bob").then_some(true);
        let (t, waiting) = targets().within_quota(full_bob).unwrap();
        assert_eq!(waiting, ["bob@localhost"]);
        assert_eq!(t.mailboxes.len(), 1);
        let mut only_local = targets();
        only_local.forwarded.clear();
        let all_full = |m: &Address| Some(m.local() == "bob");
        assert_eq!(
            only_local.within_quota(all_full),
            Err(DataOutcome::OverQuota { temporary: false })
        );
    }

    #[test]
    fn spam_is_tagged_or_refused() {
        let local = || {
            let mut t = targets();
            t.forwarded.clear();
            t
        };
        let reject = SpamRule {
            reject: true,
            tag_all: None,
        };
        // Spam for everyone, all local, rejection on: refused.
        assert_eq!(
            plan(local(), vec![], &reject, |_, _| true),
            Err(DataOutcome::Spam)
        );
        // Spam for one: tagged for that one only.
        let p = plan(local(), vec![], &reject, |m, _| m.local() == "alice").unwrap();
        assert_eq!((p.tagged.len(), p.clean.len()), (1, 1));
        // A remote copy goes too: never refused.
        assert!(plan(targets(), vec![], &reject, |_, _| true).is_ok());
        // A forged member From: tags every copy, refuses none.
        let forged = SpamRule {
            reject: true,
            tag_all: Some("From: <alice@localhost> is a member's"),
        };
        let p = plan(local(), vec![], &forged, |_, _| true).unwrap();
        assert_eq!((p.tagged.len(), p.clean.len()), (2, 0));
        let p = plan(local(), vec![], &forged, |_, _| false).unwrap();
        assert_eq!((p.tagged.len(), p.clean.len()), (2, 0));
    }
}
