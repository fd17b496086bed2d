//! `postbox serve`: one single-threaded executor running every SMTP and
//! POP3 session, the state they share, and orderly shutdown on SIGTERM or
//! SIGINT (stop accepting, let messages in flight finish, exit 0).

pub mod clients;
pub mod conn;
pub mod sessions;

use crate::appliance::system::{self, Account};
use crate::auth::cache::LoginCache;
use crate::auth::throttle::{LoginThrottle, Refusal};
use crate::auth::Login;
use crate::config::Config;
use crate::server::clients::{AddressSlot, Clients};
use crate::server::conn::Stream;
use crate::server::sessions::{Budget, Seat};
use crate::smtp::command::RcptTo;
use crate::smtp::session::{Destination, RcptVerdict};
use crate::store::commit::GroupCommit;
use crate::store::disk::{self, Disk};
use crate::store::{maildir, record, users};
use crate::tls::Tls;
use crate::wire::address::Address;
use serde::{Deserialize, Serialize};
use smol::channel::{Receiver, Sender};
use smol::net::TcpListener;
use smol::{future, LocalExecutor, Timer};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LOCK_FILE: &str = "serve.lock";
const STATUS_FILE: &str = "serve.status";
const STATUS_KIND: [u8; 4] = *b"PBST";
const STATUS_VERSION: u16 = 3;

/// What a running server tells the console (`status`).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ServerStatus {
    pub pid: u32,
    pub started_unix: u64,
    /// `service address` for every listener.
    pub listeners: Vec<(String, String)>,
    /// The domains it serves (the config's and `--domain`'s), so user
    /// commands accept them too.
    pub domains: Vec<String>,
}

/// What a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// SMTP for incoming mail (port 25), STARTTLS offered.
    Smtp,
    /// Message submission with STARTTLS (587), login required.
    Submission,
    /// Message submission over implicit TLS (465), login required.
    Submissions,
    Pop3,
    /// POP3 over implicit TLS (995).
    Pop3s,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Smtp => "smtp",
            Service::Submission => "submission",
            Service::Submissions => "submissions",
            Service::Pop3 => "pop3",
            Service::Pop3s => "pop3s",
        }
    }

    pub fn implicit_tls(self) -> bool {
        matches!(self, Service::Submissions | Service::Pop3s)
    }

    pub fn is_submission(self) -> bool {
        matches!(self, Service::Submission | Service::Submissions)
    }

    const ALL: [Service; 5] = [
        Service::Smtp,
        Service::Submission,
        Service::Submissions,
        Service::Pop3,
        Service::Pop3s,
    ];

    /// How many sessions this listener may hold.
    fn max_sessions(self, config: &Config) -> usize {
        match self {
            Service::Smtp => config.smtp.max_sessions,
            Service::Submission => config.listener_sessions.submission,
            Service::Submissions => config.listener_sessions.submissions,
            Service::Pop3 => config.pop3.max_sessions,
            Service::Pop3s => config.listener_sessions.pop3s,
        }
    }
}

/// The running server's status, if one is running on `data_dir`. The
/// serve lock decides, not the PID in the status file: after a crash that
/// number may belong to any other process.
pub fn running_status(data_dir: &Path) -> Option<ServerStatus> {
    if !serve_lock_held(data_dir) {
        return None;
    }
    record::load(
        disk::system(),
        &data_dir.join(STATUS_FILE),
        STATUS_KIND,
        STATUS_VERSION,
    )
    .ok()?
}

/// Records what `status` shows about this server.
pub fn save_status(data_dir: &Path, status: &ServerStatus) -> std::io::Result<()> {
    record::save(
        disk::system(),
        &data_dir.join(STATUS_FILE),
        STATUS_KIND,
        STATUS_VERSION,
        status,
    )
}

/// Whether a server holds the data directory's lock (taking it, briefly,
/// proves none does).
fn serve_lock_held(data_dir: &Path) -> bool {
    // Also asked as root before the ports are bound: never through a link,
    // never waiting on a FIFO put there instead.
    let lock = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(data_dir.join(LOCK_FILE));
    match lock {
        Ok(lock) => lock.try_lock().is_err(),
        Err(_) => false,
    }
}

/// Asks the server running on `data_dir`, if any, to look at its queue
/// again and try everything now (SIGUSR1). `Ok(false)`: none is running.
pub fn nudge_queue(data_dir: &Path) -> Result<bool, String> {
    signal_server(data_dir, libc::SIGUSR1)
}

/// Asks the server running on `data_dir`, if any, to write its traffic
/// counters now (SIGUSR2), for a reader who wants live figures.
/// `Ok(false)`: none is running.
pub fn request_stats(data_dir: &Path) -> Result<bool, String> {
    signal_server(data_dir, libc::SIGUSR2)
}

fn signal_server(data_dir: &Path, signal: libc::c_int) -> Result<bool, String> {
    if !serve_lock_held(data_dir) {
        return Ok(false);
    }
    let status = running_status(data_dir).ok_or("the running server left no status file")?;
    // SAFETY: kill only sends a signal to the process the lock proved alive.
    if unsafe { libc::kill(status.pid as libc::pid_t, signal) } != 0 {
        return Err(format!(
            "cannot signal the server (pid {}): {}",
            status.pid,
            std::io::Error::last_os_error()
        ));
    }
    Ok(true)
}

/// Users, forwards and domains as alias expansion sees them.
struct RouteDirectory<'a> {
    config: &'a Config,
    users: &'a users::UserList,
    forwards: &'a crate::route::forward::Forwards,
}

impl crate::route::Directory for RouteDirectory<'_> {
    fn serves(&self, domain: &str) -> bool {
        self.config.serves(domain)
    }

    fn account(&self, local: &str, domain: &str) -> Option<String> {
        self.users
            .find(local, domain)
            .map(|u| format!("{}@{}", u.local, u.domain))
    }

    fn forward(&self, account: &str) -> Option<crate::route::Forward> {
        self.forwards.get(account).cloned()
    }
}

/// Shutdown as every session sees it.
pub struct Shutdown {
    closed: Receiver<()>,
    since: Cell<Option<Instant>>,
}

impl Shutdown {
    /// Resolves once shutdown has been requested.
    pub async fn requested(&self) {
        let _ = self.closed.recv().await;
    }

    pub fn is_requested(&self) -> bool {
        self.since.get().is_some()
    }

    /// Time left for a message in flight to finish, once shutdown began.
    pub fn grace_left(&self) -> Option<Duration> {
        self.since
            .get()
            .map(|t| crate::limits::SHUTDOWN_GRACE.saturating_sub(t.elapsed()))
    }
}

/// State shared by all sessions on the one executor thread.
pub struct Shared {
    pub config: Config,
    pub tls: Tls,
    /// Sessions and connection rate per client address.
    pub clients: Rc<Clients>,
    /// Greylisting of strangers' first attempts, when turned on.
    pub greylist: Option<RefCell<crate::policy::greylist::Greylist>>,
    throttle: LoginThrottle,
    login_cache: LoginCache,
    pub users: RefCell<users::UserCache>,
    quotas: RefCell<crate::store::quota::QuotaCache>,
    /// Bytes per mailbox directory, for quotas.
    usage: RefCell<std::collections::HashMap<PathBuf, u64>>,
    pub names: maildir::NameMaker,
    /// Makes finished messages durable, several per round of syncs.
    pub commits: GroupCommit,
    pub started: Instant,
    pub shutdown: Shutdown,
    /// Traffic counters; written to flash by a task once a minute at most.
    stats: RefCell<crate::ops::stats::Stats>,
    stats_changed: Cell<bool>,
    /// Members' automatic address books, for the spam recipient rule.
    pub books: crate::spam::AddressBooks,
    /// Mail waiting to leave for other domains.
    pub queue: crate::queue::Queue,
    aliases: RefCell<crate::route::aliases::AliasesCache>,
    forwards: RefCell<crate::route::forward::ForwardCache>,
    srs: crate::route::Srs,
    /// One Argon2 computation at a time bounds login memory on small boards.
    password_gate: smol::lock::Semaphore,
    /// Mailboxes with a POP3 session in the TRANSACTION state.
    pub pop3_in_use: RefCell<HashSet<PathBuf>>,
    /// Each listener's sessions, in the order of `Service::ALL`.
    budgets: Vec<Rc<Budget>>,
    /// Sessions open over all listeners.
    open_sessions: Rc<crate::server::sessions::Open>,
    next_session: Cell<u64>,
}

impl Shared {
    /// Updates the traffic counters.
    pub fn count(&self, change: impl FnOnce(&mut crate::ops::stats::Stats)) {
        change(&mut self.stats.borrow_mut());
        self.stats_changed.set(true);
    }

    /// Writes what is kept in RAM between rare saves: counters and
    /// address books (off the executor thread).
    async fn save_rarely(&self) {
        self.save_stats(false).await;
        let changes = self.books.take_changes();
        if !changes.is_empty() {
            let (written, result) = smol::unblock(move || crate::spam::book::save(changes)).await;
            self.books.saved(&written);
            if let Err(e) = result {
                log::error!("cannot save address books: {e}");
            }
        }
    }

    /// Writes the counters if they changed (or `always`, when asked).
    async fn save_stats(&self, always: bool) {
        if !self.stats_changed.replace(false) && !always {
            return;
        }
        let mut stats = self.stats.borrow().clone();
        stats.saved = crate::ops::stats::now();
        let dir = self.config.data_dir.clone();
        if let Err(e) = smol::unblock(move || crate::ops::stats::save(&dir, &stats)).await {
            log::error!("cannot save statistics: {e}");
        }
    }

    pub fn session_id(&self) -> u64 {
        let id = self.next_session.get() + 1;
        self.next_session.set(id);
        id
    }

    pub fn mailbox_dir(&self, account: &Address) -> PathBuf {
        maildir::mailbox_dir(&self.config.data_dir, account.local(), account.domain())
    }

    /// Whether a client at `ip` may send a password without TLS.
    pub fn plaintext_login_allowed(&self, ip: IpAddr) -> bool {
        self.config.allow_plaintext_on_loopback && ip.to_canonical().is_loopback()
    }

    /// Whether a client at `ip` may relay without logging in.
    pub fn relay_client(&self, ip: IpAddr) -> bool {
        self.config.relay_from.iter().any(|net| net.contains(ip))
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

    /// Checks a login from `ip`; failures wait longer each time, and a
    /// client or account with too many lately is refused without a check
    /// (the account's owner still gets in with a recently verified password).
    pub async fn login(&self, name: &str, password: &str, ip: IpAddr) -> Login {
        let account = users::split_name(name, self.config.default_domain())
            .map(|(local, domain)| format!("{local}@{domain}"))
            .unwrap_or_else(|_| name.to_string());
        let limit = self.config.limits.login_failures;
        let attempt = match self.throttle.begin(ip, &account, limit) {
            Ok(attempt) => Some(attempt),
            Err(Refusal::Account) if self.recently_verified(&account, password) => None,
            Err(_) => {
                Timer::after(crate::limits::FAILED_LOGIN_DELAY).await;
                return Login::Refused;
            }
        };
        match self.authenticate(name, password).await {
            Some(account) => {
                self.count(|s| s.logins += 1);
                Login::Ok(account)
            }
            None => {
                self.count(|s| s.failed_logins += 1);
                if let Some(attempt) = attempt {
                    Timer::after(attempt.failed()).await;
                }
                Login::Failed
            }
        }
    }

    /// Whether `password` was verified for `account` lately (no hash needed).
    fn recently_verified(&self, account: &str, password: &str) -> bool {
        let Some((local, domain)) = account.split_once('@') else {
            return false;
        };
        let stored = self
            .users
            .borrow_mut()
            .current()
            .find(local, domain)
            .map(|u| u.password.clone());
        stored.is_some_and(|phc| self.login_cache.knows(account, &phc, password))
    }

    /// Where an RCPT goes: a bounce to forwarded mail (SRS), an alias or a
    /// forward, a user, the postmaster, or nowhere. While the users or
    /// aliases file is damaged with no good copy in service, "nowhere"
    /// cannot be known, so such mail is deferred rather than refused.
    pub fn lookup(&self, rcpt: &RcptTo) -> RcptVerdict {
        match self.resolve(rcpt) {
            RcptVerdict::UnknownUser
                if self.users.borrow().without_good_copy()
                    || self.aliases.borrow().without_good_copy() =>
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

    fn resolve(&self, rcpt: &RcptTo) -> RcptVerdict {
        let (local, domain) = match rcpt {
            RcptTo::Postmaster => ("postmaster", self.config.default_domain()),
            RcptTo::Mailbox(a) => (a.local(), a.domain()),
        };
        if !self.config.serves(domain) {
            return RcptVerdict::Remote;
        }
        if crate::route::Srs::is_srs(local) {
            let today = crate::route::srs::day_number(SystemTime::now());
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
        let mut cache = self.users.borrow_mut();
        let list = cache.current();
        let account = list.find(local, domain).or_else(|| {
            // Reports to MAILER-DAEMON go where the postmaster's mail goes.
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
        let address = match account.and_then(|u| Address::new(&u.local, &u.domain).ok()) {
            Some(address) => address,
            None => return RcptVerdict::UnknownUser,
        };
        drop(cache);
        let limit = self.quota_of(&address);
        if limit > 0 && self.mailbox_usage(&self.mailbox_dir(&address)) >= limit {
            return RcptVerdict::OverQuota {
                temporary: self.config.quota.temporary,
            };
        }
        RcptVerdict::Local(address)
    }

    /// An address with an alias, or a user with a forward: where its
    /// copies go. `None`: neither (plain user lookup applies).
    fn route(&self, local: &str, domain: &str) -> Option<RcptVerdict> {
        let mut users = self.users.borrow_mut();
        let mut forwards = self.forwards.borrow_mut();
        let mut aliases = self.aliases.borrow_mut();
        let (users, forwards, aliases) = (users.current(), forwards.current(), aliases.current());
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
        Some(
            match crate::route::expand(aliases, &directory, local, domain) {
                Ok(targets) => {
                    let destinations = targets
                        .into_iter()
                        .filter_map(|t| match t {
                            crate::route::Target::Mailbox(account) => {
                                Address::parse_path(&account).ok().map(Destination::Mailbox)
                            }
                            crate::route::Target::External(address) => {
                                Address::parse_path(&address)
                                    .ok()
                                    .map(|to| Destination::Remote {
                                        to,
                                        forwarded: true,
                                    })
                            }
                        })
                        .collect();
                    RcptVerdict::Routed(destinations)
                }
                Err(crate::route::ExpandError::NoSuchUser) => RcptVerdict::UnknownUser,
                Err(e) => {
                    log::warn!("routing {local}@{domain}: {e}");
                    RcptVerdict::Unroutable {
                        code: e.code(),
                        enhanced: e.enhanced(),
                        text: e.to_string(),
                    }
                }
            },
        )
    }

    /// Whether `address` is a member's: a user or an alias (or the
    /// postmaster) in a domain we serve, so only members may send as it.
    pub fn is_member(&self, address: &Address) -> bool {
        self.config.serves(address.domain())
            && matches!(
                self.lookup(&RcptTo::Mailbox(address.clone())),
                RcptVerdict::Local(_)
                    | RcptVerdict::Routed(_)
                    | RcptVerdict::OverQuota { .. }
                    | RcptVerdict::Unroutable { .. }
            )
    }

    /// Whether `size` more bytes would take `account` over its quota:
    /// `Some(temporary)` if so, `temporary` as configured.
    pub fn over_quota_with(&self, account: &Address, size: u64) -> Option<bool> {
        let limit = self.quota_of(account);
        let usage = (limit > 0).then(|| self.mailbox_usage(&self.mailbox_dir(account)))?;
        (usage.saturating_add(size) > limit).then_some(self.config.quota.temporary)
    }

    /// The user's mailbox limit in bytes (0: unlimited).
    pub fn quota_of(&self, account: &Address) -> u64 {
        self.quotas
            .borrow_mut()
            .limit(account.as_str(), self.config.quota.default)
    }

    /// Bytes in a mailbox: counted at start (or by [`Shared::load_usage`]),
    /// then kept up to date in RAM. Only a mailbox made since start that
    /// no async path has loaded yet is counted here, on the executor
    /// thread: its folder is new, if it exists at all.
    pub fn mailbox_usage(&self, dir: &Path) -> u64 {
        if let Some(bytes) = self.usage.borrow().get(dir) {
            return *bytes;
        }
        let bytes = maildir::mailbox_bytes(disk::system(), dir);
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
        let (counted, bytes) = smol::unblock(move || {
            let bytes = maildir::mailbox_bytes(disk::system(), &dir);
            (dir, bytes)
        })
        .await;
        self.usage.borrow_mut().insert(counted, bytes);
    }

    /// Records a delivery of `size` bytes; returns the usage before it.
    pub fn add_usage(&self, dir: &Path, size: u64) -> u64 {
        let before = self.mailbox_usage(dir);
        self.usage
            .borrow_mut()
            .insert(dir.to_path_buf(), before + size);
        before
    }

    /// Counts a delivery against each account's quota and warns the owner
    /// (once, as the mailbox passes `warn_percent`) by a message.
    pub async fn after_delivery(&self, accounts: &[Address], size: u64) {
        for account in accounts {
            let limit = self.quota_of(account);
            let dir = self.mailbox_dir(account);
            if limit == 0 {
                // Unlimited: no need to count it now, but a count kept
                // (from start) stays right for when a limit is set.
                if let Some(bytes) = self.usage.borrow_mut().get_mut(&dir) {
                    *bytes += size;
                }
                continue;
            }
            self.load_usage([dir.clone()]).await;
            let before = self.add_usage(&dir, size);
            if crate::store::quota::warning_crossed(
                before,
                size,
                limit,
                self.config.quota.warn_percent,
            ) {
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

    /// The envelope sender for a copy forwarded to another domain (through
    /// an alias or a forward), so its bounces come back here (SRS).
    pub fn forwarding_sender(&self, sender: &str) -> String {
        let today = crate::route::srs::day_number(SystemTime::now());
        self.srs
            .forward(sender, self.config.default_domain(), today)
    }

    /// Sends a delivery report (complete message text) to `recipient`:
    /// straight into the mailbox when it is a local user, otherwise
    /// through the queue with the null sender, so it is never bounced.
    pub async fn deliver_report(
        &self,
        recipient: &str,
        name: String,
        text: Vec<u8>,
    ) -> std::io::Result<()> {
        let size = text.len() as u64;
        let local = Address::parse_path(recipient)
            .ok()
            .map(|a| self.lookup(&RcptTo::Mailbox(a)));
        let mut incoming =
            maildir::Incoming::spool(disk::system(), &self.config.data_dir, name.clone(), text)
                .await?;
        // Where the report goes: a mailbox here, or out through the queue
        // (also where a bounce to forwarded mail finds the real sender).
        let (mailboxes, remote): (Vec<Address>, Vec<String>) = match local {
            Some(RcptVerdict::Local(account)) => (vec![account], Vec::new()),
            Some(RcptVerdict::Routed(destinations)) => {
                let mut mailboxes = Vec::new();
                let mut remote = Vec::new();
                for d in destinations {
                    match d {
                        Destination::Mailbox(a) => mailboxes.push(a),
                        Destination::Remote { to, .. } => remote.push(to.as_str().to_string()),
                    }
                }
                (mailboxes, remote)
            }
            Some(RcptVerdict::ReturnPath(to)) => (Vec::new(), vec![to.as_str().to_string()]),
            Some(RcptVerdict::Remote) | None => (Vec::new(), vec![recipient.to_string()]),
            Some(_) => (Vec::new(), Vec::new()),
        };
        if mailboxes.is_empty() && remote.is_empty() {
            incoming.discard_off_thread().await;
            return Err(std::io::Error::other("no mailbox here to report to"));
        }
        if !remote.is_empty() {
            let (back, result) = self
                .queue
                .submit(incoming, name, String::new(), remote)
                .await;
            incoming = back;
            if let Err(e) = result {
                incoming.discard_off_thread().await;
                return Err(e);
            }
        }
        if mailboxes.is_empty() {
            incoming.discard_off_thread().await;
            return Ok(());
        }
        let dirs: Vec<PathBuf> = mailboxes.iter().map(|a| self.mailbox_dir(a)).collect();
        let (incoming, result) = self.commits.deliver(incoming, dirs).await;
        incoming.discard_off_thread().await;
        let delivered = result?;
        let took: Vec<Address> = mailboxes
            .into_iter()
            .filter(|a| {
                let dir = self.mailbox_dir(a);
                !delivered.failed.iter().any(|(d, _)| *d == dir)
            })
            .collect();
        for (dir, e) in &delivered.failed {
            log::error!("cannot deliver report to {}: {e}", dir.display());
        }
        self.after_delivery(&took, size).await;
        Ok(())
    }

    /// Puts a message from the postmaster straight into a user's mailbox.
    pub async fn deliver_notice(&self, account: &Address, subject: &str, text: &str) {
        let name = self.names.next();
        let message = format!(
            "Return-Path: <>\r\nFrom: Mail system <MAILER-DAEMON@{host}>\r\nTo: <{account}>\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{name}@{host}>\r\nAuto-Submitted: auto-generated\r\n\r\n{text}",
            host = self.config.hostname,
            date = crate::smtp::received::rfc5322_date(SystemTime::now()),
        );
        let dir = self.mailbox_dir(account);
        let size = message.len() as u64;
        let result =
            maildir::Incoming::spool(disk::system(), &self.config.data_dir, name, message.into())
                .await;
        let delivered = match result {
            Ok(incoming) => {
                let (incoming, result) = self.commits.deliver(incoming, vec![dir.clone()]).await;
                incoming.discard_off_thread().await;
                result
            }
            Err(e) => Err(e),
        };
        match delivered {
            Ok(_) => {
                self.load_usage([dir.clone()]).await;
                self.add_usage(&dir, size);
                log::info!("notice \"{subject}\" delivered to {account}");
            }
            Err(e) => log::error!("cannot deliver notice to {account}: {e}"),
        }
    }

    /// Takes deleted messages off a mailbox's known usage.
    pub fn remove_usage(&self, dir: &Path, bytes: u64) {
        if let Some(usage) = self.usage.borrow_mut().get_mut(dir) {
            *usage = usage.saturating_sub(bytes);
        }
    }

    /// Checks a login (`local` or `local@domain`) off the executor thread.
    async fn authenticate(&self, name: &str, password: &str) -> Option<Address> {
        let (local, domain) = users::split_name(name, self.config.default_domain()).ok()?;
        let account = format!("{local}@{domain}");
        let stored = {
            let mut cache = self.users.borrow_mut();
            cache
                .current()
                .find(&local, &domain)
                .map(|u| u.password.clone())
        };
        if let Some(phc) = &stored {
            if self.login_cache.knows(&account, phc, password) {
                return Address::new(&local, &domain).ok();
            }
        }
        let _permit = self.password_gate.acquire().await;
        // Unknown users cost a hash too, so timing does not reveal them.
        let hash = stored
            .clone()
            .unwrap_or_else(|| crate::auth::password::dummy_hash().to_string());
        let secret = password.to_string();
        let ok = smol::unblock(move || crate::auth::password::verify(&secret, &hash)).await;
        let exists = self
            .users
            .borrow_mut()
            .current()
            .find(&local, &domain)
            .is_some();
        match (ok && exists, &stored) {
            (true, Some(phc)) => {
                self.login_cache.remember(&account, phc, password);
                Address::new(&local, &domain).ok()
            }
            _ => {
                self.login_cache.forget(&account);
                None
            }
        }
    }
}

/// What a protocol says when it turns a connection away (one line each).
pub struct Gate {
    /// The reply when all sessions are taken, and what it counts as.
    pub busy: (&'static [u8], crate::ops::stats::Refusal<'static>),
    /// The reply when this address holds too many, and what it counts as.
    pub address: (&'static [u8], crate::ops::stats::Refusal<'static>),
}

/// A connection's right to a session: its place on the listener and its
/// address's slot, both given back when dropped.
pub struct Admission {
    pub seat: Seat,
    _address: AddressSlot,
}

/// Admits a connection under its listener's and its address's limits,
/// closing an idle stranger's session to make room if need be. A refused
/// plaintext client is told why; a TLS one is just closed (it could not
/// read a plaintext reply). `who` names the session in the log.
pub async fn admit(
    shared: &Rc<Shared>,
    stream: &mut Stream,
    ip: IpAddr,
    service: Service,
    gate: Gate,
    who: std::fmt::Arguments<'_>,
) -> Option<Admission> {
    let budget = &shared.budgets[Service::ALL.iter().position(|s| *s == service).unwrap_or(0)];
    let ((reply, refusal), why) = match shared.clients.admit(ip) {
        Err(why) => (gate.address, why.to_string()),
        Ok(address) => match budget.take(who.to_string()) {
            Some(seat) => {
                if shared.relay_client(ip) {
                    seat.member();
                }
                return Some(Admission {
                    seat,
                    _address: address,
                });
            }
            None => (gate.busy, "too many sessions".to_string()),
        },
    };
    log::warn!("{who} refused: {why}");
    shared.count(|s| s.count_refusal(refusal));
    if !service.implicit_tls() {
        let _ = crate::server::conn::write(stream, reply, shared.config.smtp.command_timeout).await;
    }
    None
}

/// Holds the data directory for this process; released on exit.
fn lock_data_dir(data_dir: &Path) -> Result<File, String> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(data_dir.join(LOCK_FILE))
        .map_err(|e| format!("cannot open {}: {e}", LOCK_FILE))?;
    file.try_lock().map_err(|_| already_serving(data_dir))?;
    Ok(file)
}

fn already_serving(data_dir: &Path) -> String {
    format!(
        "another postbox serve is already using {}",
        data_dir.display()
    )
}

/// As root, for `--user`: makes a missing data directory (and parents)
/// for the service user. One that exists is left as it is: the ownership
/// check refuses it, after the drop, if it is not that user's.
fn make_data_dir_for(data_dir: &Path, account: Account) -> Result<(), String> {
    let cannot =
        |e: std::io::Error| format!("cannot create data directory {}: {e}", data_dir.display());
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(parent)
        .map_err(cannot)?;
    match std::fs::DirBuilder::new().mode(0o700).create(data_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(cannot(e)),
    }
    // lchown: should the new directory be swapped for a link, only the
    // link changes hands.
    std::os::unix::fs::lchown(data_dir, Some(account.uid), Some(account.gid)).map_err(cannot)?;
    disk::system().sync_dir(parent).map_err(cannot)
}

/// Every configured listener, bound (ports below 1024 need root).
fn bind_listeners(config: &Config) -> Result<Vec<(Service, TcpListener, SocketAddr)>, String> {
    let wanted = [
        (Service::Smtp, Some(config.smtp.listen)),
        (Service::Pop3, Some(config.pop3.listen)),
        (Service::Submission, config.submission),
        (Service::Submissions, config.submissions),
        (Service::Pop3s, config.pop3s),
    ];
    let mut listeners = Vec::new();
    for (service, addr) in wanted {
        let Some(addr) = addr else { continue };
        let cannot =
            |e: std::io::Error| format!("cannot listen on {addr} for {}: {e}", service.name());
        let listener = std::net::TcpListener::bind(addr)
            .and_then(TcpListener::try_from)
            .map_err(cannot)?;
        let bound = listener.local_addr().map_err(cannot)?;
        listeners.push((service, listener, bound));
    }
    Ok(listeners)
}

/// glibc keeps freed large blocks in per-thread arenas once its dynamic
/// mmap threshold has risen, so every blocking-pool thread that checked a
/// password would hold ~19 MiB forever. A fixed threshold returns them.
fn return_large_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

pub fn run(config: Config) -> Result<(), String> {
    return_large_allocations_to_the_os();
    let data_dir = config.data_dir.clone();
    // With --user, root only binds the ports (and makes a missing data
    // directory): everything in the data directory is done as the service
    // user, so links it planted there lead nowhere it could not go itself.
    let run_as = match &config.run_as {
        Some(name) => Some((name, system::account(name)?)),
        None => None,
    };
    if let Some((_, account)) = run_as {
        make_data_dir_for(&data_dir, account)?;
    }
    let listeners = bind_listeners(&config).map_err(|e| match serve_lock_held(&data_dir) {
        true => already_serving(&data_dir),
        false => e,
    })?;
    if let Some((name, account)) = run_as {
        system::drop_root(account)?;
        log::info!("running as user {name}");
    }
    crate::store::durable::create_dir_durable(disk::system(), &data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    crate::store::owner::check(&data_dir, unsafe { libc::geteuid() })?;
    let _lock = lock_data_dir(&data_dir)?;
    // Left by a server that did not stop cleanly: its PID is no longer
    // ours to signal.
    let _ = std::fs::remove_file(data_dir.join(STATUS_FILE));
    let cleared = maildir::clear_spool(disk::system(), &data_dir)
        .map_err(|e| format!("cannot prepare spool in {}: {e}", data_dir.display()))?;
    if cleared > 0 {
        log::warn!("removed {cleared} partial messages left in the spool by an earlier crash");
    }
    match maildir::sweep_mailbox_tmp(disk::system(), &data_dir, crate::limits::MAILDIR_TMP_GRACE) {
        Ok(0) => {}
        Ok(swept) => log::warn!("removed {swept} abandoned files from mailboxes' tmp/"),
        Err(e) => log::warn!("cannot sweep mailboxes' tmp/: {e}"),
    }
    let user_cache = users::UserCache::open(&data_dir);
    let tls = Tls::open(&config)?;
    let stats = crate::ops::stats::load_or_start_afresh(&data_dir);
    let (stop, closed): (Sender<()>, Receiver<()>) = smol::channel::bounded(1);
    let open_sessions = Rc::new(crate::server::sessions::Open::default());
    let shared = Rc::new(Shared {
        tls,
        clients: Clients::new(
            config.limits.sessions_per_address,
            config.limits.connections_per_minute,
        ),
        throttle: LoginThrottle::default(),
        greylist: config
            .greylist
            .clone()
            .map(|g| RefCell::new(crate::policy::greylist::Greylist::new(g))),
        login_cache: LoginCache::new()?,
        names: maildir::NameMaker::new(&config.hostname),
        commits: GroupCommit::default(),
        users: RefCell::new(user_cache),
        quotas: RefCell::new(crate::store::quota::QuotaCache::open(&data_dir)),
        // Counted before any session, so none waits for a mailbox scan.
        usage: RefCell::new(maildir::usage_by_mailbox(disk::system(), &data_dir)),
        started: Instant::now(),
        shutdown: Shutdown {
            closed,
            since: Cell::new(None),
        },
        stats: RefCell::new(stats),
        stats_changed: Cell::new(false),
        books: crate::spam::AddressBooks::default(),
        queue: crate::queue::Queue::open(&data_dir, &config.queue)?,
        aliases: RefCell::new(crate::route::aliases::AliasesCache::open(&config.aliases)),
        forwards: RefCell::new(crate::route::forward::ForwardCache::open(&data_dir)),
        srs: crate::route::Srs::load_or_create(&data_dir)?,
        password_gate: smol::lock::Semaphore::new(1),
        pop3_in_use: RefCell::new(HashSet::new()),
        budgets: Service::ALL
            .iter()
            .map(|s| Budget::new(s.max_sessions(&config), open_sessions.clone()))
            .collect(),
        open_sessions,
        next_session: Cell::new(0),
        config,
    });
    let executor = Rc::new(LocalExecutor::new());
    let result = smol::block_on(executor.run(serve(executor.clone(), shared, listeners, stop)));
    let _ = std::fs::remove_file(data_dir.join(STATUS_FILE));
    result
}

async fn serve(
    executor: Rc<LocalExecutor<'static>>,
    shared: Rc<Shared>,
    listeners: Vec<(Service, TcpListener, SocketAddr)>,
    stop: Sender<()>,
) -> Result<(), String> {
    let config = &shared.config;
    let mut signals = async_signal::Signals::new([
        async_signal::Signal::Term,
        async_signal::Signal::Int,
        async_signal::Signal::Usr1,
        async_signal::Signal::Usr2,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let fingerprint = shared.tls.info().fingerprint;
    let status = ServerStatus {
        pid: std::process::id(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        listeners: listeners
            .iter()
            .map(|(service, _, addr)| (service.name().to_string(), addr.to_string()))
            .collect(),
        domains: config.domains.clone(),
    };
    save_status(&config.data_dir, &status).map_err(|e| format!("cannot write status file: {e}"))?;
    let described: Vec<String> = listeners
        .iter()
        .map(|(service, _, addr)| format!("{} {addr}", service.name()))
        .collect();
    log::info!(
        "postbox {} serving {} on {}, data in {}",
        env!("CARGO_PKG_VERSION"),
        config.domains.join(", "),
        described.join(" "),
        config.data_dir.display()
    );
    log::info!("TLS certificate SHA-256 {fingerprint}");
    crate::store::faults::arm();

    let accept_loops: Vec<_> = listeners
        .into_iter()
        .map(|(service, listener, _)| {
            executor.spawn(accept_loop(
                executor.clone(),
                listener,
                shared.clone(),
                service,
            ))
        })
        .collect();

    // Counters and address books reach flash at most once a minute (and
    // at shutdown).
    let saver = {
        let shared = shared.clone();
        executor.spawn(async move {
            loop {
                Timer::after(crate::limits::STATS_SAVE_INTERVAL).await;
                shared.save_rarely().await;
            }
        })
    };

    let queue_runner = executor.spawn(crate::queue::run(shared.clone(), executor.clone()));

    use smol::stream::StreamExt;
    while let Some(signal) = signals.next().await {
        match signal {
            // `postbox queue flush` (and `delete`): look again, try now.
            Ok(async_signal::Signal::Usr1) => {
                log::info!("queue flush requested");
                shared.queue.flush().await;
            }
            // `postbox stats` and the console's `stats`: live figures.
            Ok(async_signal::Signal::Usr2) => shared.save_stats(true).await,
            Ok(signal) => {
                let name = match signal {
                    async_signal::Signal::Int => "SIGINT",
                    _ => "SIGTERM",
                };
                log::info!("received {name}: no new connections, finishing sessions");
                break;
            }
            Err(_) => {}
        }
    }
    shared.shutdown.since.set(Some(Instant::now()));
    stop.close();
    drop(accept_loops);

    // Sessions in DATA may run out their grace; everyone else leaves at once.
    let deadline = Instant::now() + crate::limits::SHUTDOWN_GRACE + Duration::from_secs(5);
    future::or(shared.open_sessions.all_closed(), async {
        Timer::at(deadline).await;
    })
    .await;
    drop(saver);
    drop(queue_runner);
    shared.save_rarely().await;
    log::info!("stopped");
    Ok(())
}

async fn accept_loop(
    executor: Rc<LocalExecutor<'static>>,
    listener: TcpListener,
    shared: Rc<Shared>,
    service: Service,
) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            shared.shutdown.requested().await;
            None
        })
        .await;
        let (stream, peer): (_, SocketAddr) = match accepted {
            None => return,
            Some(Ok(conn)) => conn,
            Some(Err(e)) => {
                // Out of descriptors and the like: pause instead of spinning.
                log::error!("{} accept failed: {e}", service.name());
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.count(|s| *s.connections.entry(service.name().to_string()).or_insert(0) += 1);
        let shared = shared.clone();
        let task = match service {
            Service::Smtp | Service::Submission | Service::Submissions => {
                executor.spawn(async move {
                    crate::smtp::server::serve_connection(shared, stream, peer, service).await
                })
            }
            Service::Pop3 | Service::Pop3s => executor.spawn(async move {
                crate::pop3::server::serve_connection(shared, stream, peer, service).await
            }),
        };
        task.detach();
    }
}
