//! The outbound queue: mail for other domains is made durable here before
//! the 250, then handed on (to a smarthost, or to each domain's MX hosts)
//! by tasks on the same executor, retried with growing delays, and
//! reported back to the sender when it fails or takes long.
//!
//! * `store`: the files on flash (message + checksummed envelope).
//! * `dsn`: delivery status notifications (RFC 3464).
//! * this file: the in-RAM index, the scheduler and one delivery attempt.

pub mod dsn;
pub mod store;

use crate::config::{Config, QueueConfig, SmarthostTls};
use crate::conn::Shutdown;
use crate::ops::stats::Counters;
use crate::outbound::client::{self, Attempt};
use crate::outbound::mx::Route;
use crate::outbound::tls::{self, TlsPolicy};
use crate::outbound::{Failure, RecipientResults};
use crate::route::{Destination, RcptVerdict, Router};
use crate::store::disk;
use crate::store::Mailstore;
use crate::wire::address::Address;
use smol::{future, LocalExecutor, Timer};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{Envelope, RcptState};

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Slot {
    envelope: Envelope,
    /// An attempt is running.
    busy: bool,
}

pub struct Queue {
    data_dir: PathBuf,
    config: QueueConfig,
    entries: RefCell<BTreeMap<String, Slot>>,
    running: Cell<usize>,
    /// Attempts running per destination (a domain, or the smarthost).
    per_destination: RefCell<HashMap<String, usize>>,
    wake_tx: smol::channel::Sender<()>,
    wake_rx: smol::channel::Receiver<()>,
    smarthost_tls: Option<TlsPolicy>,
    opportunistic: Arc<rustls::ClientConfig>,
}

impl Queue {
    /// Opens the queue on flash, sweeping what a crash left half-made.
    pub fn open(data_dir: &std::path::Path, config: &QueueConfig) -> Result<Queue, String> {
        let found = store::scan(disk::system(), data_dir, true)
            .map_err(|e| format!("cannot read the queue: {e}"))?;
        if !found.is_empty() {
            log::info!("queue: {} messages waiting", found.len());
        }
        let smarthost_tls = match &config.smarthost {
            None => None,
            Some(s) => Some(match s.tls {
                SmarthostTls::None => TlsPolicy::Off,
                SmarthostTls::StartTls => {
                    TlsPolicy::Required(tls::verified_config(s.ca.as_deref())?)
                }
                SmarthostTls::Implicit => {
                    TlsPolicy::Implicit(tls::verified_config(s.ca.as_deref())?)
                }
            }),
        };
        let (wake_tx, wake_rx) = smol::channel::bounded(1);
        Ok(Queue {
            data_dir: data_dir.to_path_buf(),
            config: config.clone(),
            entries: RefCell::new(
                found
                    .into_iter()
                    .map(|envelope| {
                        (
                            envelope.id.clone(),
                            Slot {
                                envelope,
                                busy: false,
                            },
                        )
                    })
                    .collect(),
            ),
            running: Cell::new(0),
            per_destination: RefCell::new(HashMap::new()),
            wake_tx,
            wake_rx,
            smarthost_tls,
            opportunistic: tls::opportunistic_config(),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// Puts a spooled message in the queue for `recipients`, durably;
    /// `headers` are sent ahead of it (its DKIM signatures).
    pub async fn submit(
        &self,
        message: crate::store::maildir::Incoming,
        id: String,
        sender: String,
        recipients: Vec<String>,
        headers: String,
    ) -> (crate::store::maildir::Incoming, std::io::Result<()>) {
        let mut envelope = Envelope::new(id, sender, recipients, unix_now());
        envelope.headers = headers;
        let dir = self.data_dir.clone();
        let saved = envelope.clone();
        let (message, result) = smol::unblock(move || {
            let result = store::enqueue(&dir, &message, &saved);
            (message, result)
        })
        .await;
        if result.is_ok() {
            self.entries.borrow_mut().insert(
                envelope.id.clone(),
                Slot {
                    envelope,
                    busy: false,
                },
            );
            self.wake();
        }
        (message, result)
    }

    /// Re-reads the queue directory (an admin deleted or added entries)
    /// and makes everything due now: `postbox queue flush`.
    pub async fn flush(&self) {
        let dir = self.data_dir.clone();
        match smol::unblock(move || store::scan(disk::system(), &dir, false)).await {
            Ok(found) => {
                let mut entries = self.entries.borrow_mut();
                entries.retain(|id, slot| slot.busy || found.iter().any(|e| &e.id == id));
                for envelope in found {
                    entries.entry(envelope.id.clone()).or_insert(Slot {
                        envelope,
                        busy: false,
                    });
                }
                for slot in entries.values_mut() {
                    slot.envelope.next_try = 0;
                }
            }
            Err(e) => log::error!("queue: cannot rescan: {e}"),
        }
        self.wake();
    }

    /// Where a recipient's mail is handed on: the smarthost, or its domain.
    fn destination_of(&self, address: &str) -> String {
        match &self.config.smarthost {
            Some(s) => format!("{}:{}", s.host, s.port),
            None => domain_of(address),
        }
    }

    /// Ids of the entries to attempt now, marked busy, with a delivery
    /// slot taken for each of their destinations (both limits hold).
    fn take_due(&self, now: u64) -> Vec<String> {
        let mut due = Vec::new();
        let mut entries = self.entries.borrow_mut();
        let mut per_destination = self.per_destination.borrow_mut();
        for (id, slot) in entries.iter_mut() {
            if self.running.get() + due.len() >= self.config.max_deliveries {
                break;
            }
            if slot.busy || slot.envelope.next_try > now {
                continue;
            }
            let destinations = self.destinations(&slot.envelope);
            let full = destinations.iter().any(|d| {
                per_destination.get(d).copied().unwrap_or(0) >= self.config.max_per_destination
            });
            if full {
                continue;
            }
            for d in destinations {
                *per_destination.entry(d).or_insert(0) += 1;
            }
            slot.busy = true;
            due.push(id.clone());
        }
        due
    }

    /// Each destination of `envelope`'s pending recipients, once.
    fn destinations(&self, envelope: &Envelope) -> Vec<String> {
        let mut destinations: Vec<String> = envelope
            .pending()
            .map(|r| self.destination_of(&r.address))
            .collect();
        destinations.sort();
        destinations.dedup();
        destinations
    }

    /// Gives back the slots [`Queue::take_due`] took for `destinations`.
    fn release(&self, destinations: Vec<String>) {
        let mut per_destination = self.per_destination.borrow_mut();
        for d in destinations {
            if let Some(n) = per_destination.get_mut(&d) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// How long the scheduler may sleep.
    fn next_wakeup(&self, now: u64) -> Duration {
        let entries = self.entries.borrow();
        let soonest = entries
            .values()
            .filter(|s| !s.busy)
            .map(|s| s.envelope.next_try)
            .min();
        match soonest {
            Some(t) => Duration::from_secs(t.saturating_sub(now).clamp(1, 60)),
            None => Duration::from_secs(60),
        }
    }

    fn backoff(&self, attempts: u32) -> u64 {
        let first = self.config.retry_first.as_secs().max(1);
        let factor = 1u64 << attempts.saturating_sub(1).min(20);
        first
            .saturating_mul(factor)
            .min(self.config.retry_max.as_secs().max(first))
    }
}

/// What the queue runner uses: the queue, and for mail that stays here,
/// the directory and the mailboxes.
pub struct Context {
    pub config: Rc<Config>,
    pub queue: Rc<Queue>,
    pub router: Rc<Router>,
    pub store: Rc<Mailstore>,
    pub counters: Rc<Counters>,
    pub shutdown: Rc<Shutdown>,
}

/// The scheduler: runs until the executor is dropped.
pub async fn run(shared: Rc<Context>, executor: Rc<LocalExecutor<'static>>) {
    let queue = &shared.queue;
    loop {
        if shared.shutdown.is_requested() {
            return;
        }
        let now = unix_now();
        for id in queue.take_due(now) {
            queue.running.set(queue.running.get() + 1);
            let shared = shared.clone();
            executor
                .spawn(async move {
                    attempt(&shared, &id).await;
                    let queue = &shared.queue;
                    queue.running.set(queue.running.get() - 1);
                    queue.wake();
                })
                .detach();
        }
        let wait = queue.next_wakeup(now);
        future::or(
            async {
                let _ = queue.wake_rx.recv().await;
            },
            async {
                Timer::after(wait).await;
            },
        )
        .await;
    }
}

/// A destination and the recipients going there.
struct Group {
    destination: String,
    recipients: Vec<String>,
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default()
}

/// One delivery attempt for every pending recipient of entry `id`.
async fn attempt(shared: &Context, id: &str) {
    let queue = &shared.queue;
    let Some(mut envelope) = queue.entries.borrow().get(id).map(|s| s.envelope.clone()) else {
        return;
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut local: Vec<String> = Vec::new();
    for r in envelope.pending() {
        // Our own domains: a copy that could not be stored at once.
        if shared.config.serves(&domain_of(&r.address)) {
            local.push(r.address.clone());
            continue;
        }
        let destination = queue.destination_of(&r.address);
        match groups.iter_mut().find(|g| g.destination == destination) {
            Some(g) => g.recipients.push(r.address.clone()),
            None => groups.push(Group {
                destination,
                recipients: vec![r.address.clone()],
            }),
        }
    }
    // The slots were taken for the recipients pending now.
    let taken = queue.destinations(&envelope);
    let message = store::queue_dir(&queue.data_dir).join(format!("{id}.msg"));
    let size = smol::unblock(move || std::fs::metadata(message).map(|m| m.len()))
        .await
        .unwrap_or(0)
        + envelope.headers.len() as u64;
    for rcpt in local {
        let result = deliver_locally(shared, id, &rcpt).await;
        note(shared, &mut envelope, &rcpt, result, None);
    }
    for group in groups {
        let outcome = deliver_group(shared, &envelope, &group, size).await;
        match outcome {
            Ok((results, mta)) => {
                for (rcpt, result) in group.recipients.iter().zip(results) {
                    note(shared, &mut envelope, rcpt, result, Some(&mta));
                }
            }
            Err(failure) => {
                for rcpt in &group.recipients {
                    note(shared, &mut envelope, rcpt, Err(failure.clone()), None);
                }
            }
        }
    }
    queue.release(taken);
    finish_attempt(shared, envelope).await;
}

/// Puts the queued message into the mailbox of `rcpt`, a user of ours.
async fn deliver_locally(shared: &Context, id: &str, rcpt: &str) -> Result<(), Failure> {
    let fail = |permanent: bool, text: String| Failure { permanent, text };
    shared.router.refresh().await;
    let account = crate::wire::address::Address::parse_path(rcpt)
        .ok()
        .filter(|a| shared.router.is_user(a))
        .ok_or_else(|| fail(true, "5.1.1 no such user here".into()))?;
    let source = store::message_path(&shared.queue.data_dir, id);
    let name = shared.store.names.next();
    let spool_root = shared.store.spool_root().to_path_buf();
    let message = smol::unblock(move || {
        crate::store::maildir::Incoming::link_from(disk::system(), &spool_root, name, &source)
    })
    .await
    .map_err(|e| fail(false, format!("4.3.0 queued message unreadable: {e}")))?;
    shared
        .store
        .load_usage([shared.store.mailbox_dir(&account)])
        .await;
    if let Some(temporary) = shared.router.over_quota_with(&account, message.size()) {
        message.discard_off_thread().await;
        return Err(match temporary {
            true => fail(false, "4.2.2 mailbox full".into()),
            false => fail(true, "5.2.2 mailbox full".into()),
        });
    }
    let size = message.size();
    let dir = shared.store.mailbox_dir(&account);
    let (message, result) = shared.store.commits.deliver(message, vec![dir]).await;
    message.discard_off_thread().await;
    match result {
        Ok(delivered) if delivered.failed.is_empty() => {
            shared
                .router
                .after_delivery(std::slice::from_ref(&account), size)
                .await;
            let now = crate::ops::stats::now();
            shared.counters.count(|s| s.count_delivered(now, 1));
            Ok(())
        }
        Ok(delivered) => Err(fail(
            false,
            format!(
                "4.3.0 cannot store in the mailbox: {}",
                delivered.failed[0].1
            ),
        )),
        Err(e) => Err(fail(
            false,
            format!("4.3.0 cannot store in the mailbox: {e}"),
        )),
    }
}

/// Records one recipient's result in the envelope and the log.
fn note(
    shared: &Context,
    envelope: &mut Envelope,
    rcpt: &str,
    result: Result<(), Failure>,
    mta: Option<&str>,
) {
    let Some(r) = envelope
        .recipients
        .iter_mut()
        .find(|r| r.address == rcpt && r.state == RcptState::Pending)
    else {
        return;
    };
    r.remote_mta = mta.map(str::to_string);
    match result {
        Ok(()) => {
            r.state = RcptState::Delivered;
            r.last_error = None;
            // Without a next server it went into a mailbox here, counted there.
            if mta.is_some() {
                let now = crate::ops::stats::now();
                shared.counters.count(|s| s.count_sent(now));
            }
            log::info!(
                "queue {} delivered to <{rcpt}> via {}",
                envelope.id,
                mta.unwrap_or("a mailbox here")
            );
        }
        Err(f) => {
            if f.permanent {
                r.state = RcptState::Failed;
                shared.counters.count(|s| s.bounced += 1);
                log::warn!("queue {} <{rcpt}> failed: {}", envelope.id, f.text);
            } else {
                log::info!("queue {} <{rcpt}> deferred: {}", envelope.id, f.text);
            }
            r.last_error = Some(f.text);
        }
    }
}

/// Tries the group's hosts in order until one gives answers.
async fn deliver_group(
    shared: &Context,
    envelope: &Envelope,
    group: &Group,
    size: u64,
) -> Result<(RecipientResults, String), Failure> {
    let id = envelope.id.as_str();
    let queue = &shared.queue;
    let mut last = Failure {
        permanent: false,
        text: "no host to try".into(),
    };
    let route = Route {
        smarthost: (queue.config.smarthost.as_ref()).map(|s| (s.host.as_str(), s.port)),
        smtp_port: queue.config.smtp_port,
        resolver: shared.config.dns_resolver,
    };
    for (host, addr) in route.targets(&group.destination).await? {
        let (dir, queued) = (queue.data_dir.clone(), id.to_string());
        let opened =
            smol::unblock(move || store::open_message(disk::system(), &dir, &queued)).await;
        let message = opened.map_err(|e| Failure {
            permanent: false,
            text: format!("queued message unreadable: {e}"),
        })?;
        let tls = match &queue.smarthost_tls {
            Some(policy) => policy.clone(),
            None => TlsPolicy::Opportunistic(queue.opportunistic.clone()),
        };
        let login = queue
            .config
            .smarthost
            .as_ref()
            .and_then(|s| s.login.as_ref())
            .map(|(u, p)| (u.as_str(), p.as_str()));
        let attempt = Attempt {
            host: &host,
            addr,
            helo: &shared.config.hostname,
            tls,
            login,
            sender: &envelope.sender,
            recipients: &group.recipients,
            size,
            headers: &envelope.headers,
        };
        match client::deliver(&attempt, message).await {
            Ok(results) => return Ok((results, format!("{host} [{}]", addr.ip()))),
            Err(f) if f.permanent => return Err(f),
            Err(f) => {
                log::info!("queue {id}: {host} [{addr}]: {}", f.text);
                last = f;
            }
        }
    }
    Err(last)
}

/// After an attempt: expire, warn, bounce, reschedule or remove.
async fn finish_attempt(shared: &Context, mut envelope: Envelope) {
    let queue = &shared.queue;
    let now = unix_now();
    let id = envelope.id.clone();
    let age = now.saturating_sub(envelope.arrived);
    if age >= queue.config.expire.as_secs() {
        for r in envelope
            .recipients
            .iter_mut()
            .filter(|r| r.state == RcptState::Pending)
        {
            let last = r.last_error.take().unwrap_or_default();
            r.last_error = Some(format!(
                "4.4.7 message expired after {age} seconds in the queue; last error: {last}"
            ));
            r.state = RcptState::Failed;
            shared.counters.count(|s| s.bounced += 1);
            log::warn!("queue {id} <{}> expired", r.address);
        }
    }
    envelope.attempts += 1;
    let done = envelope.pending().next().is_none();
    // An admin may have deleted the entry meanwhile: leave it deleted.
    let envelope_file = store::queue_dir(&queue.data_dir).join(format!("{id}.env"));
    let deleted = !smol::unblock(move || envelope_file.exists()).await;
    if deleted {
        queue.entries.borrow_mut().remove(&id);
        return;
    }
    if done {
        if envelope
            .recipients
            .iter()
            .any(|r| r.state == RcptState::Failed)
        {
            notify_sender(shared, &envelope, dsn::Kind::Failed).await;
        }
        let dir = queue.data_dir.clone();
        let gone = id.clone();
        if let Err(e) = smol::unblock(move || store::remove(disk::system(), &dir, &gone)).await {
            // Kept, it must at least say that nobody is waiting any more,
            // or the next start would deliver it again.
            let dir = queue.data_dir.clone();
            let saved = smol::unblock(move || store::save(disk::system(), &dir, &envelope)).await;
            log::error!(
                "queue {id}: cannot remove: {e}{}",
                if saved.is_ok() {
                    ""
                } else {
                    "; it may be sent again"
                }
            );
        }
        queue.entries.borrow_mut().remove(&id);
        return;
    }
    if !envelope.warned && age >= queue.config.warn.as_secs() {
        notify_sender(shared, &envelope, dsn::Kind::Delayed).await;
        envelope.warned = true;
    }
    // A `queue flush` during this attempt asked for another one now.
    let flushed = queue
        .entries
        .borrow()
        .get(&id)
        .is_some_and(|slot| slot.envelope.next_try == 0);
    envelope.next_try = match flushed {
        true => now,
        false => now + queue.backoff(envelope.attempts),
    };
    let dir = queue.data_dir.clone();
    let saved = envelope.clone();
    if let Err(e) = smol::unblock(move || store::save(disk::system(), &dir, &saved)).await {
        log::error!("queue {id}: cannot save its state: {e}");
    }
    if let Some(slot) = queue.entries.borrow_mut().get_mut(&id) {
        slot.envelope = envelope;
        slot.busy = false;
    }
}

/// The enhanced status code in a reply text, or a generic one.
pub fn status_of(text: &str, failed: bool) -> String {
    let found = text.split_whitespace().find(|w| {
        let parts: Vec<&str> = w.split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
    });
    match found {
        Some(code) if !failed || code.starts_with('5') || code == "4.4.7" => code.to_string(),
        _ if failed => "5.0.0".into(),
        _ => "4.0.0".into(),
    }
}

/// Tells the envelope sender what happened (failure or delay), unless the
/// message was itself a notification.
async fn notify_sender(shared: &Context, envelope: &Envelope, kind: dsn::Kind) {
    if dsn::must_not_bounce(&envelope.sender) {
        log::info!(
            "queue {}: no report for a message from <{}>",
            envelope.id,
            envelope.sender
        );
        return;
    }
    let wanted = match kind {
        dsn::Kind::Failed => RcptState::Failed,
        dsn::Kind::Delayed => RcptState::Pending,
    };
    let recipients: Vec<dsn::RecipientStatus> = envelope
        .recipients
        .iter()
        .filter(|r| r.state == wanted)
        .map(|r| {
            let text = r.last_error.clone().unwrap_or_default();
            dsn::RecipientStatus {
                recipient: r.address.clone(),
                status: status_of(&text, kind == dsn::Kind::Failed),
                diagnostic: (!text.is_empty()).then_some(text),
                remote_mta: r.remote_mta.clone(),
            }
        })
        .collect();
    let queue = &shared.queue;
    let name = shared.store.names.next();
    let (hostname, id, sender) = (
        shared.config.hostname.clone(),
        envelope.id.clone(),
        envelope.sender.clone(),
    );
    let (data_dir, arrival, expire) = (
        queue.data_dir.clone(),
        UNIX_EPOCH + Duration::from_secs(envelope.arrived),
        queue.config.expire,
    );
    let message_id = name.clone();
    // The original is read from flash: on the blocking pool.
    let written = smol::unblock(move || {
        let report = dsn::Report {
            kind,
            hostname: &hostname,
            queue_id: &id,
            sender: &sender,
            arrival,
            retry_until: Some(arrival + expire),
            recipients: &recipients,
            message_id: &message_id,
            now: SystemTime::now(),
        };
        let mut text = Vec::new();
        let mut original =
            std::io::BufReader::new(store::open_message(disk::system(), &data_dir, &id)?);
        dsn::write(&report, &mut original, &mut text).map(|()| text)
    })
    .await;
    let text = match written {
        Ok(text) => text,
        Err(e) => {
            log::error!("queue {}: cannot write the report: {e}", envelope.id);
            return;
        }
    };
    let what = match kind {
        dsn::Kind::Failed => "failure report",
        dsn::Kind::Delayed => "delay notice",
    };
    let mailer_daemon = format!("MAILER-DAEMON@{}", shared.config.hostname);
    match deliver_report(shared, &mailer_daemon, &envelope.sender, name, text).await {
        Ok(()) => log::info!(
            "queue {}: {what} sent to <{}>",
            envelope.id,
            envelope.sender
        ),
        Err(e) => log::error!(
            "queue {}: cannot send the {what} to <{}>: {e}",
            envelope.id,
            envelope.sender
        ),
    }
}

/// The DKIM signatures of a report leaving for another server, for the
/// served domain of its From: address (MAILER-DAEMON at our host name, or
/// a member); empty when there is none or signing is off.
async fn sign_report(shared: &Context, from: &str, name: &str, text: &[u8]) -> String {
    let config = &shared.config;
    let domain = crate::dkim::keys::signing_domain(from, &config.domains);
    let Some(domain) = domain.filter(|_| config.dkim.sign) else {
        return String::new();
    };
    let mut signer = crate::dkim::Signer::new();
    signer.update(text);
    let data_dir = config.data_dir.clone();
    let signed = smol::unblock(move || {
        crate::dkim::keys::sign(disk::system(), &data_dir, &domain, signer, unix_now())
    })
    .await;
    signed.unwrap_or_else(|why| {
        log::warn!("report {name} leaves unsigned: {why}");
        String::new()
    })
}

/// Sends a delivery report or another automatic message (complete
/// message text, `From:` address `from`) to `recipient`: straight into
/// the mailbox when it is a local user, otherwise through the queue with
/// the null sender, so it is never bounced.
pub async fn deliver_report(
    shared: &Context,
    from: &str,
    recipient: &str,
    name: String,
    text: Vec<u8>,
) -> std::io::Result<()> {
    let size = text.len() as u64;
    shared.router.refresh().await;
    let local = Address::parse_path(recipient)
        .ok()
        .map(|a| shared.router.lookup(&a));
    let store = &shared.store;
    let (mailboxes, remote) = report_destinations(local, recipient);
    let signatures = match remote.is_empty() {
        true => String::new(),
        false => sign_report(shared, from, &name, &text).await,
    };
    let spooled = crate::store::maildir::Incoming::spool(
        disk::system(),
        store.spool_root(),
        name.clone(),
        text,
    );
    let mut incoming = spooled.await?;
    if mailboxes.is_empty() && remote.is_empty() {
        incoming.discard_off_thread().await;
        return Err(std::io::Error::other("no mailbox here to report to"));
    }
    if !remote.is_empty() {
        let (back, result) = shared
            .queue
            .submit(incoming, name, String::new(), remote, signatures)
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
    let dirs: Vec<PathBuf> = mailboxes.iter().map(|a| store.mailbox_dir(a)).collect();
    let (incoming, result) = store.commits.deliver(incoming, dirs).await;
    incoming.discard_off_thread().await;
    let delivered = result?;
    let took: Vec<Address> = mailboxes
        .into_iter()
        .filter(|a| {
            let dir = store.mailbox_dir(a);
            !delivered.failed.iter().any(|(d, _)| *d == dir)
        })
        .collect();
    for (dir, e) in &delivered.failed {
        log::error!("cannot deliver report to {}: {e}", dir.display());
    }
    shared.router.after_delivery(&took, size).await;
    Ok(())
}

/// Where a report goes: mailboxes here, or out through the queue (also
/// where a bounce to forwarded mail finds the real sender).
fn report_destinations(local: Option<RcptVerdict>, recipient: &str) -> (Vec<Address>, Vec<String>) {
    match local {
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
    }
}

/// One line per entry for `postbox queue list`.
pub fn list(data_dir: &std::path::Path) -> Result<String, String> {
    let entries = store::scan(disk::system(), data_dir, false)
        .map_err(|e| format!("cannot read the queue: {e}"))?;
    let damaged = store::damaged_report(disk::system(), data_dir)
        .map(|line| line + "\n")
        .unwrap_or_default();
    if entries.is_empty() {
        return Ok(format!("queue is empty\n{damaged}"));
    }
    let now = unix_now();
    let mut out = String::new();
    for e in &entries {
        let recipients: Vec<&str> = e.pending().map(|r| r.address.as_str()).collect();
        let next = if e.next_try <= now {
            "now".to_string()
        } else {
            format!("in {}", human(e.next_try - now))
        };
        out.push_str(&format!(
            "{}  age {}  from <{}>  to {}  tries {}  next {}\n",
            e.id,
            human(now.saturating_sub(e.arrived)),
            e.sender,
            recipients.join(","),
            e.attempts,
            next
        ));
        if let Some(err) = e.last_error() {
            out.push_str(&format!("    last error: {err}\n"));
        }
    }
    out.push_str(&format!("{} messages\n", entries.len()));
    out.push_str(&damaged);
    Ok(out)
}

/// A duration as `90s`, `12m`, `5h` or `3d`.
pub fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_from_replies() {
        assert_eq!(status_of("RCPT TO: 550 5.1.1 No such user", true), "5.1.1");
        assert_eq!(status_of("RCPT TO: 550 No such user", true), "5.0.0");
        assert_eq!(status_of("connect: refused", false), "4.0.0");
        assert_eq!(
            status_of("4.4.7 message expired; last error: 451 4.3.0 x", true),
            "4.4.7"
        );
        assert_eq!(status_of("RCPT TO: 451 4.3.0 later", false), "4.3.0");
    }
}
