//! The session's directory: where a recipient's mail goes (users, aliases,
//! forwards, SRS return paths), who may send as whom, and each mailbox's
//! quota, with the warning sent as a mailbox fills.

use super::aliases::AliasesCache;
use super::forward::{ForwardCache, Forwards};
use super::{ExpandError, Forward, Srs, Target};
use crate::config::Config;
use crate::store::maildir;
use crate::store::mailstore::Mailstore;
use crate::store::quota::QuotaCache;
use crate::store::record::Refreshes;
use crate::store::users::{self, UserCache, UserList};
use crate::wire::address::Address;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::SystemTime;

/// Where a recipient's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptVerdict {
    /// Deliver into this user's mailbox (`local@domain` of the account).
    Local(Address),
    /// A served domain, but no such user.
    UnknownUser,
    /// Not a domain we serve: relaying, if the client may.
    Remote,
    /// A user whose mailbox is at its quota.
    OverQuota { temporary: bool },
    /// An alias, list or forward: where its copies go.
    Routed(Vec<Destination>),
    /// A rewritten return path (SRS) of mail we forwarded: it leads back
    /// to this outside address, for delivery reports (null sender) only.
    ReturnPath(Address),
    /// An alias that leads nowhere (a loop, too deep): refused with why.
    Unroutable {
        code: u16,
        enhanced: &'static str,
        text: String,
    },
}

/// Where one copy of a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Mailbox(Address),
    /// Out through the queue. `forwarded`: reached through an alias or a
    /// forward, so bounces must come back here (the sender is rewritten).
    Remote {
        to: Address,
        forwarded: bool,
    },
}

pub struct Router {
    config: Rc<Config>,
    users: Rc<UserCache>,
    aliases: RefCell<AliasesCache>,
    forwards: RefCell<ForwardCache>,
    srs: Srs,
    quotas: RefCell<QuotaCache>,
    store: Rc<Mailstore>,
    refreshes: Refreshes,
    /// Which users list had its mailboxes counted (`None`: none yet).
    counted_for: Cell<Option<u64>>,
}

/// Users, forwards and domains as alias expansion sees them.
struct RouteDirectory<'a> {
    config: &'a Config,
    users: &'a UserList,
    forwards: &'a Forwards,
}

impl super::Directory for RouteDirectory<'_> {
    fn serves(&self, domain: &str) -> bool {
        self.config.serves(domain)
    }

    fn account(&self, local: &str, domain: &str) -> Option<String> {
        self.users
            .find(local, domain)
            .map(|u| format!("{}@{}", u.local, u.domain))
    }

    fn forward(&self, account: &str) -> Option<Forward> {
        self.forwards.get(account).cloned()
    }
}

impl Router {
    /// The directory of `config.mail_dir()`, sharing the users file with
    /// the authenticator; fails if the SRS secret cannot be made.
    pub fn open(
        config: Rc<Config>,
        users: Rc<UserCache>,
        store: Rc<Mailstore>,
    ) -> Result<Router, String> {
        let data_dir = config.mail_dir();
        let disk = store.disk();
        Ok(Router {
            aliases: RefCell::new(AliasesCache::open(disk, &config.aliases)),
            forwards: RefCell::new(ForwardCache::open(disk, data_dir)),
            srs: Srs::load_or_create(data_dir)?,
            quotas: RefCell::new(QuotaCache::open(disk, data_dir)),
            users,
            store,
            config,
            refreshes: Refreshes::default(),
            counted_for: Cell::new(None),
        })
    }

    /// Takes every change to the users, aliases, forwards and quotas files
    /// into service, and counts the mailboxes of new users, all on the
    /// blocking pool; concurrent callers share one refresh. Lookups answer
    /// from what the last refresh found, so a session refreshes before it
    /// asks and a change made before then is seen at once.
    pub async fn refresh(&self) {
        self.refreshes
            .run(|| async {
                // One trip to the blocking pool for all four files.
                let (look, users) = self.users.check();
                let aliases = self.aliases.borrow().check();
                let forwards = self.forwards.borrow().check();
                let quotas = self.quotas.borrow().check();
                let (users, aliases, forwards, quotas) =
                    smol::unblock(move || (users(), aliases(), forwards(), quotas())).await;
                self.users.apply(look, users);
                self.aliases.borrow_mut().apply(aliases);
                self.forwards.borrow_mut().apply(forwards);
                self.quotas.borrow_mut().apply(quotas);
                self.count_new_mailboxes().await;
            })
            .await
    }

    /// Counts the mailboxes (for quotas) of users added since they were
    /// last counted, so no lookup lists one on the executor thread.
    async fn count_new_mailboxes(&self) {
        let list = self.users.reloads();
        if self.counted_for.get() == Some(list) {
            return;
        }
        let dirs: Vec<_> = self
            .users
            .current()
            .users
            .iter()
            .map(|u| maildir::mailbox_dir(self.store.mail_dir(), &u.local, &u.domain))
            .collect();
        self.store.load_usage(dirs).await;
        self.counted_for.set(Some(list));
    }

    /// Where the postmaster's mail goes (`RCPT TO:<Postmaster>`).
    pub fn lookup_postmaster(&self) -> RcptVerdict {
        self.lookup_parts("postmaster", self.config.default_domain())
    }

    /// Where an RCPT goes: a bounce to forwarded mail (SRS), an alias or a
    /// forward, a user, the postmaster, or nowhere. While the users or
    /// aliases file is damaged with no good copy in service, "nowhere"
    /// cannot be known, so such mail is deferred rather than refused.
    pub fn lookup(&self, rcpt: &Address) -> RcptVerdict {
        self.lookup_parts(rcpt.local(), rcpt.domain())
    }

    fn lookup_parts(&self, local: &str, domain: &str) -> RcptVerdict {
        match self.resolve(local, domain) {
            RcptVerdict::UnknownUser
                if self.users.without_good_copy() || self.aliases.borrow().without_good_copy() =>
            {
                RcptVerdict::Unroutable {
                    code: 451,
                    enhanced: "4.3.0",
                    text: "Users or aliases file damaged, try again later".into(),
                }
            }
            verdict => verdict,
        }
    }

    fn resolve(&self, local: &str, domain: &str) -> RcptVerdict {
        if !self.config.serves(domain) {
            return RcptVerdict::Remote;
        }
        if Srs::is_srs(local) {
            let today = super::srs::day_number(SystemTime::now());
            return match self
                .srs
                .reverse(local, today)
                .and_then(|a| Address::parse_path(&a).ok())
            {
                Some(to) => RcptVerdict::ReturnPath(to),
                None => RcptVerdict::UnknownUser,
            };
        }
        if let Some(verdict) = self.route(local, domain) {
            return verdict;
        }
        let Some(address) = self.account(local, domain) else {
            return RcptVerdict::UnknownUser;
        };
        let limit = self.quota_of(&address);
        if limit > 0 && self.store.mailbox_usage(&self.store.mailbox_dir(&address)) >= limit {
            return RcptVerdict::OverQuota {
                temporary: self.config.quota.temporary,
            };
        }
        RcptVerdict::Local(address)
    }

    /// The account `local@domain` names; reports to the postmaster or
    /// MAILER-DAEMON go to the configured postmaster or the domain's
    /// first admin.
    fn account(&self, local: &str, domain: &str) -> Option<Address> {
        let list = self.users.current();
        let account = list.find(local, domain).or_else(|| {
            if !local.eq_ignore_ascii_case("postmaster")
                && !local.eq_ignore_ascii_case("mailer-daemon")
            {
                return None;
            }
            let named = self.config.postmaster.as_deref().and_then(|name| {
                let (l, d) = users::split_name(name, self.config.default_domain()).ok()?;
                list.find(&l, &d)
            });
            named.or_else(|| list.first_admin(domain))
        });
        account.and_then(|u| Address::new(&u.local, &u.domain).ok())
    }

    /// An address with an alias, or a user with a forward: where its
    /// copies go. `None`: neither (plain user lookup applies).
    fn route(&self, local: &str, domain: &str) -> Option<RcptVerdict> {
        let users = self.users.current();
        let forwards = self.forwards.borrow();
        let aliases = self.aliases.borrow();
        let (users, forwards, aliases) = (&*users, forwards.current(), aliases.current());
        let aliased = aliases
            .targets(&format!("{local}@{domain}"))
            .or_else(|| aliases.targets(local))
            .is_some();
        let forwarded = users
            .find(local, domain)
            .is_some_and(|u| forwards.contains_key(&format!("{}@{}", u.local, u.domain)));
        if !aliased && !forwarded {
            return None;
        }
        let directory = RouteDirectory {
            config: &self.config,
            users,
            forwards,
        };
        Some(match super::expand(aliases, &directory, local, domain) {
            Ok(targets) => RcptVerdict::Routed(targets.into_iter().filter_map(copy_to).collect()),
            Err(ExpandError::NoSuchUser) => RcptVerdict::UnknownUser,
            Err(e) => {
                log::warn!("routing {local}@{domain}: {e}");
                RcptVerdict::Unroutable {
                    code: e.code(),
                    enhanced: e.enhanced(),
                    text: e.to_string(),
                }
            }
        })
    }

    /// Whether `account` is a user of ours (not an alias).
    pub fn is_user(&self, account: &Address) -> bool {
        self.users
            .current()
            .find(account.local(), account.domain())
            .is_some()
    }

    /// Whether `address` is a member's: a user or an alias (or the
    /// postmaster) in a domain we serve, so only members may send as it.
    pub fn is_member(&self, address: &Address) -> bool {
        self.config.serves(address.domain())
            && matches!(
                self.lookup(address),
                RcptVerdict::Local(_)
                    | RcptVerdict::Routed(_)
                    | RcptVerdict::OverQuota { .. }
                    | RcptVerdict::Unroutable { .. }
            )
    }

    /// Whether the logged-in `user` may send as `address`: their own
    /// account's address, in any letter case.
    pub fn owns(&self, user: &Address, address: &str) -> bool {
        match address.rsplit_once('@') {
            Some((local, domain)) => {
                local.eq_ignore_ascii_case(user.local())
                    && domain
                        .trim_end_matches('.')
                        .eq_ignore_ascii_case(user.domain())
            }
            None => false,
        }
    }

    /// Whether `size` more bytes would take `account` over its quota:
    /// `Some(temporary)` if so, `temporary` as configured.
    pub fn over_quota_with(&self, account: &Address, size: u64) -> Option<bool> {
        let limit = self.quota_of(account);
        let dir = self.store.mailbox_dir(account);
        let usage = (limit > 0).then(|| self.store.mailbox_usage(&dir))?;
        (usage.saturating_add(size) > limit).then_some(self.config.quota.temporary)
    }

    /// The user's mailbox limit in bytes (0: unlimited).
    pub fn quota_of(&self, account: &Address) -> u64 {
        self.quotas
            .borrow()
            .limit(account.as_str(), self.config.quota.default)
    }

    /// Counts a delivery against each account's quota and warns the owner
    /// (once, as the mailbox passes `warn_percent`) by a message.
    pub async fn after_delivery(&self, accounts: &[Address], size: u64) {
        let store = &self.store;
        for account in accounts {
            let limit = self.quota_of(account);
            let dir = store.mailbox_dir(account);
            if limit == 0 {
                store.add_known_usage(&dir, size);
                continue;
            }
            store.load_usage([dir.clone()]).await;
            let before = store.add_usage(&dir, size);
            let warn_percent = self.config.quota.warn_percent;
            if crate::store::quota::warning_crossed(before, size, limit, warn_percent) {
                let text = format!(
                    "Your mailbox {account} holds {} of its {} bytes ({}%).\r\n\r\nWhen it is full, new mail is refused. Fetch and delete\r\nsome messages with your mail program to make room.\r\n",
                    before + size,
                    limit,
                    (before + size) * 100 / limit
                );
                self.deliver_notice(account, "Your mailbox is nearly full", &text)
                    .await;
            }
        }
    }

    /// Puts a message from the postmaster straight into a user's mailbox.
    pub async fn deliver_notice(&self, account: &Address, subject: &str, text: &str) {
        let store = &self.store;
        let name = store.names.next();
        let message = format!(
            "Return-Path: <>\r\nFrom: Mail system <MAILER-DAEMON@{host}>\r\nTo: <{account}>\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{name}@{host}>\r\nAuto-Submitted: auto-generated\r\n\r\n{text}",
            host = self.config.hostname,
            date = crate::ops::clock::rfc5322_date(SystemTime::now()),
        );
        let dir = store.mailbox_dir(account);
        let size = message.len() as u64;
        let result =
            maildir::Incoming::spool(store.disk(), store.spool_root(), name, message.into()).await;
        let delivered = match result {
            Ok(incoming) => {
                let (incoming, result) = store.commits.deliver(incoming, vec![dir.clone()]).await;
                incoming.discard_off_thread().await;
                result
            }
            Err(e) => Err(e),
        };
        match delivered {
            Ok(_) => {
                store.load_usage([dir.clone()]).await;
                store.add_usage(&dir, size);
                log::info!("notice \"{subject}\" delivered to {account}");
            }
            Err(e) => log::error!("cannot deliver notice to {account}: {e}"),
        }
    }

    /// The envelope sender for a copy forwarded to another domain (through
    /// an alias or a forward), so its bounces come back here (SRS).
    pub fn forwarding_sender(&self, sender: &str) -> String {
        let today = super::srs::day_number(SystemTime::now());
        self.srs
            .forward(sender, self.config.default_domain(), today)
    }
}

/// One copy an alias or forward expanded to.
fn copy_to(target: Target) -> Option<Destination> {
    match target {
        Target::Mailbox(account) => Address::parse_path(&account).ok().map(Destination::Mailbox),
        Target::External(address) => {
            Address::parse_path(&address)
                .ok()
                .map(|to| Destination::Remote {
                    to,
                    forwarded: true,
                })
        }
    }
}
