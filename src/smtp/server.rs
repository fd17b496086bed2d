//! The async shell around the SMTP conversation core: moves bytes between
//! the socket and the core, sleeps until the core's deadline, answers its
//! questions (blocklists, logins), streams the chunks it hands out into
//! the spool, and carries out the policy's delivery plan, durable before
//! the 250.

use super::arrival::{self, Arrival};
use super::conversation::{Action, Conversation, Reading, Settings, Timeouts};
use super::data::DataFacts;
use super::headers::Missing;
use super::received::{trace_headers, Trace};
use super::session::{DataOutcome, Directory, Limits, Login, RcptVerdict, Security, Session};
use crate::auth::sasl::Credentials;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::conn::{self, Gate, Handshake, ReadOutcome, Seat, Service, Shutdown, Stream};
use crate::dkim::{keys, Signer, Verifier};
use crate::dmarc::{DkimMode, Verdict};
use crate::limits::{SHUTDOWN_GRACE, WRITE_CHUNK};
use crate::ops::clock::rfc5322_date;
use crate::ops::stats::{Counters, Refusal};
use crate::policy::greylist::Greylist;
use crate::policy::{
    self,
    delivery::{self, Plan, SpamRule, Targets},
};
use crate::queue::Queue;
use crate::route::Router;
use crate::smtp::command::RcptTo;
use crate::spam::AddressBooks;
use crate::store::disk;
use crate::store::durable::is_no_space;
use crate::store::maildir::{self, Incoming};
use crate::store::Mailstore;
use crate::wire::address::Address;
use std::cell::RefCell;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// What an SMTP session uses.
pub struct Context {
    pub config: Rc<Config>,
    pub tls: Rc<crate::tls::Tls>,
    pub shutdown: Rc<Shutdown>,
    pub router: Rc<Router>,
    pub auth: Rc<Authenticator>,
    pub store: Rc<Mailstore>,
    pub counters: Rc<Counters>,
    pub queue: Rc<Queue>,
    /// Members' automatic address books, for the spam recipient rule.
    pub books: Rc<AddressBooks>,
    /// Greylisting of strangers' first attempts, when turned on.
    pub greylist: Option<RefCell<Greylist>>,
    /// DNS, with the answers it remembers: SPF, DKIM keys, DMARC.
    pub resolver: Rc<crate::dns::Resolver>,
}

impl Context {
    /// What sends mail of our own (reports, away replies) needs.
    pub fn outbox(&self) -> crate::queue::Context {
        crate::queue::Context {
            config: self.config.clone(),
            queue: self.queue.clone(),
            router: self.router.clone(),
            store: self.store.clone(),
            counters: self.counters.clone(),
            shutdown: self.shutdown.clone(),
        }
    }

    fn handshake(&self) -> Handshake<'_> {
        Handshake {
            acceptor: self.tls.acceptor(),
            timeout: self.config.limits.tls_handshake_timeout,
            shutdown: &self.shutdown,
        }
    }
}

/// What SMTP says when it turns a connection away.
pub const GATE: Gate = Gate {
    busy: (
        b"421 4.3.2 Too many connections, try again later\r\n",
        Refusal::Smtp(421, Some("4.3.2")),
    ),
    address: (
        b"421 4.7.0 Too many connections from your address, try again later\r\n",
        Refusal::Smtp(421, Some("4.7.0")),
    ),
};

struct LiveDirectory<'a>(&'a Context, IpAddr);

impl Directory for LiveDirectory<'_> {
    fn lookup(&mut self, rcpt: &RcptTo) -> RcptVerdict {
        match rcpt {
            RcptTo::Postmaster => self.0.router.lookup_postmaster(),
            RcptTo::Mailbox(address) => self.0.router.lookup(address),
        }
    }

    fn owns(&mut self, user: &Address, address: &str) -> bool {
        !self.0.config.from_must_match || self.0.router.owns(user, address)
    }

    fn is_member(&mut self, address: &Address) -> bool {
        self.0.router.is_member(address)
    }

    fn over_quota_with(&mut self, mailbox: &Address, size: u64) -> Option<bool> {
        self.0.router.over_quota_with(mailbox, size)
    }

    fn greylist(&mut self, sender: Option<&Address>, rcpt: &Address) -> Option<u64> {
        let mut list = self.0.greylist.as_ref()?.borrow_mut();
        let sender = sender.map(Address::as_str).unwrap_or("");
        let wait = list.check(self.1, sender, rcpt.as_str())?;
        log::info!("greylisted {} <{sender}> -> <{rcpt}>", self.1);
        Some(wait.as_secs().max(1))
    }
}

struct Connection {
    shared: Rc<Context>,
    stream: Stream,
    seat: Seat,
    peer: SocketAddr,
    id: u64,
    /// The message streaming in, if any.
    message: Option<Spooled>,
}

/// A message in the spool while it streams in.
struct Spooled {
    name: String,
    sink: Sink,
    /// A member's message: its DKIM body hash and header section, taken
    /// as it streams, for signing if it leaves.
    signer: Option<Box<Signer>>,
    /// A stranger's message: its DKIM signatures' body hashes and the
    /// header section, taken as it streams, for verifying at the end.
    verifier: Option<Box<Verifier>>,
    /// Bytes of our trace fields at the start of the spool file; the
    /// Authentication-Results field goes right after them.
    trace_len: usize,
}

/// Where the body is going while it streams in.
enum Sink {
    Spool(Incoming),
    /// Refused on the way in (size, line length).
    Refused,
    Failed(io::Error),
}

impl Connection {
    fn who(&self) -> String {
        format!("smtp#{} {}", self.id, self.peer)
    }

    async fn flush(&mut self, conversation: &mut Conversation) -> io::Result<()> {
        let out = conversation.replies();
        for (code, enhanced) in out.take_refusals() {
            let refusal = Refusal::Smtp(code, enhanced.as_deref());
            self.shared.counters.count(|s| s.count_refusal(refusal));
        }
        let timeout = self.shared.config.smtp.command_timeout;
        let result = conn::write(&mut self.stream, out.as_bytes(), timeout).await;
        conversation.sent();
        result
    }

    /// Reads until the core's next deadline; `Err`: the client is gone.
    /// A command wait keeps the session idle meanwhile, so it may be
    /// closed early to make room; a message in flight keeps reading
    /// through a shutdown for the grace period.
    async fn fill(&mut self, conversation: &mut Conversation) -> Result<(), &'static str> {
        let timeout = conversation
            .poll_at()
            .saturating_duration_since(Instant::now());
        let shutdown: &Shutdown = &self.shared.shutdown;
        let watch = conversation.watches_shutdown().then_some(shutdown);
        let reading = conversation.reading();
        let buf = conversation.input();
        let outcome = match reading {
            Reading::Command { since } => {
                let seat = &self.seat;
                conn::read_command(&mut self.stream, buf, timeout, shutdown, seat, since).await
            }
            _ => conn::read(&mut self.stream, buf, timeout, watch).await,
        };
        match outcome {
            ReadOutcome::Data(n) => conversation.received(n, Instant::now()),
            ReadOutcome::TimedOut => conversation.timed_out(),
            ReadOutcome::Shutdown => {
                let grace = shutdown.grace_left().unwrap_or(SHUTDOWN_GRACE);
                conversation.shutdown(Instant::now() + grace);
            }
            ReadOutcome::Closed if reading == Reading::Data => {
                return Err("client disconnected during data")
            }
            ReadOutcome::Closed => return Err("client disconnected"),
        }
        Ok(())
    }
}

/// Serves session `id`, admitted to `seat` on a `service` listener.
pub async fn serve_connection(
    shared: Rc<Context>,
    mut stream: Stream,
    peer: SocketAddr,
    service: Service,
    id: u64,
    seat: Seat,
) {
    log::info!("smtp#{id} {peer} connected to {}", service.name());
    if service.implicit_tls()
        && !stream
            .start_tls(shared.handshake(), &seat, format_args!("smtp#{id} {peer}"))
            .await
    {
        return;
    }
    let settings = settings(&shared, &stream, peer, service);
    let mut conversation = Conversation::new(&shared.config.hostname, settings, Instant::now());
    let mut connection = Connection {
        shared,
        stream,
        seat,
        peer,
        id,
        message: None,
    };
    let end = run(&mut connection, &mut conversation).await;
    if let Some(Spooled {
        sink: Sink::Spool(m),
        ..
    }) = connection.message.take()
    {
        m.discard_off_thread().await;
    }
    connection.stream.close_tls().await;
    log::info!("smtp#{id} {peer} closed: {end}");
}

/// What this listener, the client's address and the configuration allow.
fn settings(shared: &Context, stream: &Stream, peer: SocketAddr, service: Service) -> Settings {
    // The maildrop's session carries mail local programs wrote there,
    // which only the server's own user (or root) can.
    let local = matches!(stream, Stream::Local(_));
    let relay_client = local || shared.auth.relay_client(peer.ip());
    let connect = policy::connect(service == Service::Smtp, relay_client);
    let smtp = &shared.config.smtp;
    Settings {
        limits: Limits {
            max_message_size: smtp.max_message_size,
            max_recipients: smtp.max_recipients,
            max_errors: smtp.max_errors,
        },
        security: Security {
            starttls: !service.implicit_tls(),
            tls: stream.is_tls(),
            plaintext_login: shared.auth.plaintext_login_allowed(peer.ip()),
            submission: service.is_submission(),
            relay_client,
            check_helo: connect.check_helo,
        },
        timeouts: Timeouts {
            command: smtp.command_timeout,
            data: smtp.data_timeout,
            greet_delay: if connect.greet_delay {
                smtp.greet_delay
            } else {
                Duration::ZERO
            },
        },
        check_blocklists: connect.check_blocklists && !shared.config.dnsbl.is_empty(),
        scan_recipients: shared.config.spam.recipient_limit > 0,
    }
}

/// Carries out what the core asks until it closes; returns why it ended.
async fn run(c: &mut Connection, conversation: &mut Conversation) -> &'static str {
    loop {
        let directory = &mut LiveDirectory(&c.shared, c.peer.ip());
        match conversation.poll(Instant::now(), directory) {
            Action::Send => {
                if c.flush(conversation).await.is_err() {
                    return "write failed";
                }
            }
            Action::Read => {
                let commands = matches!(conversation.reading(), Reading::Command { .. });
                if let Err(why) = c.fill(conversation).await {
                    return why;
                }
                // The directory answers from memory: bring it up to date
                // before the commands that may ask it.
                if commands {
                    c.shared.router.refresh().await;
                }
            }
            Action::CheckBlocklist => {
                // Boxed, as every rare wait: idle sessions carry none of it.
                let zone = Box::pin(blocklisted(&c.shared, c.peer.ip())).await;
                if let Some(zone) = &zone {
                    log::warn!("{} refused: listed in {zone}", c.who());
                }
                let listed = zone.as_deref().map(|zone| (zone, c.peer.ip()));
                conversation.blocklisted(listed, Instant::now());
            }
            Action::StartTls { discarded } => {
                if discarded > 0 {
                    let who = c.who();
                    log::warn!("{who} discarded {discarded} bytes sent before the TLS handshake");
                }
                let who = format_args!("smtp#{} {}", c.id, c.peer);
                let handshake = Box::pin(c.stream.start_tls(c.shared.handshake(), &c.seat, who));
                if !handshake.await {
                    return "TLS handshake failed";
                }
                conversation.tls_started();
            }
            Action::Authenticate(credentials) => {
                let login = Box::pin(authenticate(c, &credentials)).await;
                conversation.auth_done(login);
            }
            Action::DataStart => {
                // Boxed, as the rest of DATA: its state exists only while a
                // message comes in, not in every idle session.
                let missing = Box::pin(open_message(c, conversation.session())).await;
                conversation.data_opened(missing, Instant::now());
            }
            Action::Store(bytes) => {
                let bytes = Box::pin(store_chunk(c, bytes)).await;
                conversation.recycle(bytes);
            }
            Action::Discard => {
                // A storage failure stays what the client hears.
                if let Some(m) = c
                    .message
                    .as_mut()
                    .filter(|m| matches!(m.sink, Sink::Spool(_)))
                {
                    if let Sink::Spool(m) = std::mem::replace(&mut m.sink, Sink::Refused) {
                        m.discard_off_thread().await;
                    }
                }
            }
            Action::DataEnd(facts) => {
                c.shared.router.refresh().await;
                let outcome = Box::pin(end_message(c, conversation.session(), &facts)).await;
                conversation.data_done(outcome, Instant::now());
            }
            Action::Close(why) => {
                if why == "talked before the greeting" {
                    log::warn!("{} refused: talked before the greeting", c.who());
                }
                return why;
            }
        }
    }
}

/// Checks a login and logs how it went.
async fn authenticate(c: &mut Connection, credentials: &Credentials) -> Login {
    let login = c
        .shared
        .auth
        .login(&credentials.user, &credentials.password, c.peer.ip())
        .await;
    let (who, name) = (c.who(), credentials.user.as_str());
    match &login {
        Login::Ok(u) => {
            c.seat.member();
            log::info!("{who} logged in as {u}")
        }
        Login::Failed => log::warn!("{who} failed login for {name:?}"),
        Login::Refused => log::warn!("{who} login for {name:?} refused: too many failures"),
    }
    login
}

/// Opens the spool for a message, its trace headers first; returns the
/// header fields a member's message gets when it lacks them.
async fn open_message(c: &mut Connection, session: &Session) -> Option<Missing> {
    let shared = &c.shared;
    let name = shared.store.names.next();
    let recipients = session.recipients();
    let now = SystemTime::now();
    let headers = trace_headers(&Trace {
        sender: session.sender(),
        helo: session.helo(),
        peer: c.peer.ip(),
        hostname: &shared.config.hostname,
        esmtp: session.esmtp(),
        tls: session.tls(),
        authenticated: session.user().is_some(),
        id: &name,
        single_recipient: (recipients.len() == 1).then(|| &recipients[0].given),
        now,
    });
    let trace_len = headers.len();
    let sink = match Incoming::spool(
        disk::system(),
        shared.store.spool_root(),
        name.clone(),
        headers.into(),
    )
    .await
    {
        Ok(m) => Sink::Spool(m),
        Err(e) => Sink::Failed(e),
    };
    let missing = session.user().map(|user| Missing {
        date: format!("Date: {}\r\n", rfc5322_date(now)),
        message_id: format!("Message-ID: <{name}@{}>\r\n", shared.config.hostname),
        from: format!("From: <{user}>\r\n"),
    });
    let sign = shared.config.dkim.sign && session.trusted();
    let signer = sign.then(|| Box::new(Signer::new()));
    let verify =
        checks_arrival(&shared.config, session) && shared.config.inbound.dkim == DkimMode::Verify;
    let verifier = verify.then(|| Box::new(Verifier::new()));
    c.message = Some(Spooled {
        name,
        sink,
        signer,
        verifier,
        trace_len,
    });
    missing
}

/// Appends decoded bytes to the spool file unless the message is already
/// refused. The buffer comes back for the next chunk.
async fn store_chunk(c: &mut Connection, bytes: Vec<u8>) -> Vec<u8> {
    let Some(message) = c.message.as_mut() else {
        return bytes;
    };
    if !matches!(message.sink, Sink::Spool(_)) {
        return bytes;
    }
    let Sink::Spool(m) = std::mem::replace(&mut message.sink, Sink::Refused) else {
        unreachable!("checked")
    };
    if let Some(signer) = &mut message.signer {
        signer.update(&bytes);
    }
    if let Some(verifier) = &mut message.verifier {
        verifier.update(&bytes);
    }
    let (m, bytes, result) = m.append(bytes).await;
    message.sink = match result {
        Ok(()) => Sink::Spool(m),
        Err(e) => {
            m.discard_off_thread().await;
            Sink::Failed(e)
        }
    };
    bytes
}

/// The message ended: the data-end policy decides, then its copies are
/// stored as planned.
async fn end_message(c: &mut Connection, session: &Session, facts: &DataFacts) -> DataOutcome {
    let Some(Spooled {
        name,
        sink,
        signer,
        verifier,
        trace_len,
    }) = c.message.take()
    else {
        return DataOutcome::Failed;
    };
    let who = c.who();
    let shared = c.shared.clone();
    let end = policy::DataEnd {
        strict_headers: session.strict_headers(),
        from_owner: session
            .from_header_owner()
            .filter(|_| shared.config.from_must_match),
        max_size: session.max_message_size(),
    };
    let verdict = policy::data_end(facts, &end, |user, a| shared.router.owns(user, a));
    let incoming = match (sink, verdict) {
        (Sink::Failed(e), _) => {
            log::error!("{who} cannot store message: {e}");
            return storage_failure(&e);
        }
        (sink, Err(refusal)) => {
            log::warn!("{who} {name} refused: {}", refusal.why);
            if let Sink::Spool(m) = sink {
                m.discard_off_thread().await;
            }
            return refusal.outcome;
        }
        (Sink::Spool(m), Ok(())) => m,
        (Sink::Refused, Ok(())) => return DataOutcome::Failed,
    };
    let (incoming, tag_reason) = if checks_arrival(&shared.config, session) {
        let checked = Box::pin(check_arrival(c, session, facts, verifier)).await;
        match arrival_outcome(&shared, &who, &name, incoming, trace_len, checked).await {
            Ok(passed) => passed,
            Err(outcome) => return outcome,
        }
    } else {
        (incoming, None)
    };
    let message = Accepted {
        shared: &shared,
        session,
        who,
        peer: c.peer.ip(),
        name: &name,
        facts,
        signer,
        tag_reason,
    };
    message.deliver(incoming).await
}

/// Whether a message gets the arrival checks (SPF, DKIM, DMARC): a
/// stranger's, when any check is on. Members and `relay_from` clients
/// are not judged.
fn checks_arrival(config: &Config, session: &Session) -> bool {
    !session.trusted() && config.inbound.any()
}

/// Runs the arrival checks on a stranger's message.
async fn check_arrival(
    c: &Connection,
    session: &Session,
    facts: &DataFacts,
    verifier: Option<Box<Verifier>>,
) -> arrival::Checked {
    let shared = &c.shared;
    let from_header = facts.from_header.as_deref().unwrap_or(&[]);
    let directory = &mut LiveDirectory(shared, c.peer.ip());
    let from_is_member = session.forged_member_from(from_header, directory).is_some();
    let arrival = Arrival {
        peer: c.peer.ip(),
        sender: session.sender().map_or("", Address::as_str),
        helo: session.helo(),
        from_header,
        from_is_member,
    };
    let config = &shared.config;
    let verifier = verifier.map(|v| *v);
    let now = unix_seconds(SystemTime::now());
    arrival::check(
        &shared.resolver,
        &config.hostname,
        config.inbound,
        &arrival,
        verifier,
        now,
    )
    .await
}

/// Carries out what the arrival checks decided: counted and logged; a
/// refusal or a deferral ends the message; otherwise the stored message
/// gets the Authentication-Results field after our trace fields (a new
/// spool file, written before anything is synced, so the card sees it
/// once), with why every copy is to be tagged, if it is.
async fn arrival_outcome(
    shared: &Context,
    who: &str,
    name: &str,
    incoming: Incoming,
    trace_len: usize,
    checked: arrival::Checked,
) -> Result<(Incoming, Option<String>), DataOutcome> {
    let arrival::Checked {
        verdict,
        header,
        findings,
    } = checked;
    let (done, tag) = match &verdict {
        Verdict::Deliver => ("delivered", None),
        Verdict::Spam { reason } => ("tagged", Some(reason.clone())),
        Verdict::Refuse { .. } => ("refused", None),
        Verdict::Defer { .. } => ("deferred", None),
    };
    shared.counters.count(|s| {
        for finding in &findings {
            s.count_check(finding);
        }
        s.count_check(done);
    });
    let found = findings.join(" ");
    match verdict {
        Verdict::Refuse {
            code,
            enhanced,
            reason,
        }
        | Verdict::Defer {
            code,
            enhanced,
            reason,
        } => {
            log::warn!("{who} {name} {done} ({found}): {reason}");
            incoming.discard_off_thread().await;
            return Err(DataOutcome::NotAuthenticated {
                code,
                enhanced,
                reason,
            });
        }
        Verdict::Deliver | Verdict::Spam { .. } => {
            log::info!("{who} {name} checked ({found}): {done}")
        }
    }
    let copied = incoming
        .copy_with(
            shared.store.spool_root(),
            shared.store.names.next(),
            move |source, copy| {
                let mut trace = vec![0; trace_len];
                source.read_exact(&mut trace)?;
                copy.write(&trace)?;
                copy.write(header.as_bytes())?;
                let mut chunk = vec![0; WRITE_CHUNK];
                loop {
                    match source.read(&mut chunk)? {
                        0 => return Ok(()),
                        n => copy.write(&chunk[..n])?,
                    }
                }
            },
        )
        .await;
    let replaced = match copied {
        Ok(copy) => incoming.replace_with(copy).await,
        Err(e) => {
            incoming.discard_off_thread().await;
            Err(e)
        }
    };
    match replaced {
        Ok(message) => Ok((message, tag)),
        Err(e) => {
            log::error!("{who} cannot store message: {e}");
            Err(storage_failure(&e))
        }
    }
}

/// A message the data-end policy let through, on its way to its copies.
struct Accepted<'a> {
    shared: &'a Context,
    session: &'a Session,
    who: String,
    peer: IpAddr,
    name: &'a str,
    facts: &'a DataFacts,
    signer: Option<Box<Signer>>,
    /// The arrival checks ask for every copy to be tagged as spam: why.
    tag_reason: Option<String>,
}

impl Accepted<'_> {
    /// Plans the copies (quota, spam) and stores them.
    async fn deliver(self, incoming: Incoming) -> DataOutcome {
        let (shared, who, name) = (self.shared, &self.who, self.name);
        let targets = Targets::of(
            self.session
                .recipients()
                .iter()
                .flat_map(|r| &r.destinations),
            |a| shared.store.mailbox_dir(a),
        );
        let size = incoming.size();
        let limited = targets
            .mailboxes
            .iter()
            .filter(|(a, _)| shared.router.quota_of(a) > 0);
        shared
            .store
            .load_usage(limited.map(|(_, dir)| dir.clone()))
            .await;
        let from = self.session.sender().map(|a| a.as_str()).unwrap_or("");
        let accounts: Vec<&str> = targets.mailboxes.iter().map(|(a, _)| a.as_str()).collect();
        let accounts = accounts.join(",");
        let (targets, waiting) =
            match targets.within_quota(|a| shared.router.over_quota_with(a, size)) {
                Ok(split) => split,
                Err(outcome) => {
                    // Every mailbox is full.
                    log::info!("{who} refused {name} from=<{from}> to={accounts}: mailbox full");
                    incoming.discard_off_thread().await;
                    return outcome;
                }
            };
        let judge_spam = !self.session.trusted() && shared.config.spam.recipient_limit > 0;
        if judge_spam {
            // Read from flash off the executor thread, before the rule asks.
            let dirs = targets.mailboxes.iter().map(|(_, dir)| dir.as_path());
            shared.books.load(dirs).await;
        }
        // With the arrival checks on, they judge a member's address in
        // From: (an aligned pass clears it); without, it is spam as such.
        let tag_all = match (&self.tag_reason, &self.facts.from_header) {
            (Some(why), _) => Some(why.clone()),
            _ if checks_arrival(&shared.config, self.session) => None,
            (None, Ok(addresses)) => self
                .session
                .forged_member_from(addresses, &mut LiveDirectory(shared, self.peer))
                .map(|address| format!("From: <{address}> is a member's")),
            (None, Err(_)) => None,
        };
        if let Some(why) = &tag_all {
            log::warn!("{who} {name} is spam: {why}");
        }
        let rule = SpamRule {
            reject: shared.config.spam.action == crate::spam::Action::Reject,
            tag_all: tag_all.as_deref(),
        };
        // Members' To:/Cc: are read for their names only: never judged.
        let listed: &[String] = match judge_spam {
            true => &self.facts.listed,
            false => &[],
        };
        let mailboxes = targets.mailboxes.len() as u64;
        let plan = delivery::plan(targets, waiting, &rule, |account, dir| {
            let verdict = crate::spam::recipient_rule(&shared.config.spam, listed, |a| {
                shared.books.knows(dir, a)
            });
            if let Some(why) = &verdict {
                log::warn!("{who} {name} is spam for {account}: {why}");
            }
            verdict.is_some()
        });
        let plan = match plan {
            Ok(plan) => plan,
            Err(outcome) => {
                shared.counters.count(|s| s.spam += mailboxes);
                log::info!("{who} rejected {name} from=<{from}> as spam");
                incoming.discard_off_thread().await;
                return outcome;
            }
        };
        self.carry_out(plan, incoming, size).await
    }

    /// The DKIM signatures for the domain of the From: header, when it is
    /// one we serve; made on the blocking pool (RSA takes a board's CPU a
    /// while). Empty, and logged, when the message cannot be signed.
    async fn sign(&self, signer: Signer) -> String {
        let (who, name) = (&self.who, self.name);
        let config = &self.shared.config;
        let domain = match self.facts.from_header.as_deref() {
            Ok([address, ..]) => keys::signing_domain(address, &config.domains),
            _ => None,
        };
        let Some(domain) = domain else {
            return String::new();
        };
        let data_dir = config.data_dir.clone();
        let now = unix_seconds(SystemTime::now());
        let signed =
            smol::unblock(move || keys::sign(disk::system(), &data_dir, &domain, signer, now))
                .await;
        match signed {
            Ok(headers) => headers,
            Err(why) => {
                log::warn!("{who} {name} leaves unsigned: {why}");
                String::new()
            }
        }
    }

    /// Stores the copies as planned.
    async fn carry_out(mut self, plan: Plan, incoming: Incoming, size: u64) -> DataOutcome {
        let shared = self.shared;
        // Signed before the 250, so what waits in the queue is signed.
        let signatures = match self.signer.take() {
            Some(signer) if !plan.relayed.is_empty() => self.sign(*signer).await,
            _ => String::new(),
        };
        let from = self.session.sender().map(|a| a.as_str()).unwrap_or("");
        if !plan.tagged.is_empty() {
            shared
                .counters
                .count(|s| s.spam += plan.tagged.len() as u64);
        }
        let mut delivery = Delivery {
            shared,
            who: self.who.clone(),
            name: self.name,
            from,
            stored: false,
            links: Vec::new(),
            queued: false,
        };
        // Spam is delivered as a tagged copy; the original goes to the rest.
        if !plan.tagged.is_empty() {
            match crate::spam::tag::tagged_copy(
                &shared.store,
                &incoming,
                shared.config.spam.subject_tag.clone(),
            )
            .await
            {
                Ok(copy) => {
                    if let Err(e) = delivery.deliver_copy(copy, &plan.tagged, true).await {
                        incoming.discard_off_thread().await;
                        return storage_failure(&e);
                    }
                }
                // The first copy: nothing is stored yet.
                Err(e) => {
                    log::error!("{} cannot store message: {e}", self.who);
                    incoming.discard_off_thread().await;
                    return storage_failure(&e);
                }
            }
        }
        let mut incoming = incoming;
        if !plan.clean.is_empty() {
            incoming = match delivery.deliver(incoming, &plan.clean, false).await {
                Ok(back) => back,
                Err((back, e)) => {
                    back.discard_off_thread().await;
                    return storage_failure(&e);
                }
            };
        }
        // Remote copies, and local ones that wait for room, are the queue's.
        // Only a member's own mail leaves signed as ours: what a forward
        // sends on keeps its own signatures.
        for (rcpts, sender, headers) in [
            (plan.relayed, from.to_string(), signatures),
            (
                plan.forwarded,
                shared.router.forwarding_sender(from),
                String::new(),
            ),
            (plan.waiting, from.to_string(), String::new()),
        ] {
            incoming = match delivery
                .hand_to_queue(incoming, sender, rcpts, headers)
                .await
            {
                Ok(back) => back,
                Err((back, e)) => {
                    back.discard_off_thread().await;
                    return storage_failure(&e);
                }
            };
        }
        incoming.discard_off_thread().await;
        let now = crate::ops::stats::now();
        shared.counters.count(|s| s.count_received(now, size));
        learn_correspondents(shared, self.session, self.facts, &plan.clean);
        DataOutcome::Stored {
            id: self.name.to_string(),
        }
    }
}

/// Stores the copies of one message. Until a copy is durable, a failure
/// is the client's to retry (4xx); after that, a 4xx would make it send
/// the copies already stored again, so whoever could not be served yet
/// goes through the queue: retried there, reported on final failure.
struct Delivery<'a> {
    shared: &'a Context,
    who: String,
    name: &'a str,
    from: &'a str,
    /// A copy is on stable storage (a mailbox or the queue).
    stored: bool,
    /// The copies stored in mailboxes, to take back if the rest fails.
    links: Vec<PathBuf>,
    /// Something went to the queue, which cannot be taken back.
    queued: bool,
}

impl Delivery<'_> {
    /// Delivers `message` into the targets' mailboxes, then ends it.
    /// `Err`: nothing stored at all yet, the client should retry.
    async fn deliver_copy(
        &mut self,
        message: Incoming,
        targets: &[(Address, PathBuf)],
        tagged: bool,
    ) -> io::Result<()> {
        let result = self.deliver(message, targets, tagged).await;
        match result {
            Ok(message) => {
                message.discard_off_thread().await;
                Ok(())
            }
            Err((message, e)) => {
                message.discard_off_thread().await;
                Err(e)
            }
        }
    }

    /// Delivers `message` into the targets' mailboxes and gives it back
    /// (for the queue). `Err`: nothing stored at all yet.
    async fn deliver(
        &mut self,
        message: Incoming,
        targets: &[(Address, PathBuf)],
        tagged: bool,
    ) -> Result<Incoming, (Incoming, io::Error)> {
        let (shared, who, name, from) = (self.shared, &self.who, self.name, self.from);
        let dirs = targets.iter().map(|(_, dir)| dir.clone()).collect();
        let copy_size = message.size();
        let (message, result) = shared.store.commits.deliver(message, dirs).await;
        let (failed, stored_as) = match result {
            Ok(delivered) => (delivered.failed, delivered.name),
            Err(e) if !self.stored => {
                log::error!("{who} delivery of {name} failed: {e}");
                return Err((message, e));
            }
            // This copy's data may not be on flash (a failed sync is not
            // tried again on the same bytes): the queue cannot take it.
            Err(e) => return self.take_back(message, e).await,
        };
        let (took, later): (Vec<_>, Vec<_>) = targets
            .iter()
            .partition(|(_, dir)| !failed.iter().any(|(d, _)| d == dir));
        if !took.is_empty() {
            self.stored = true;
            self.links
                .extend(took.iter().map(|(_, dir)| dir.join("new").join(&stored_as)));
            let accounts: Vec<Address> = took.iter().map(|(a, _)| a.clone()).collect();
            shared.router.after_delivery(&accounts, copy_size).await;
            let now = crate::ops::stats::now();
            let copies = accounts.len() as u64;
            shared.counters.count(|s| s.count_delivered(now, copies));
            let to: Vec<&str> = accounts.iter().map(|a| a.as_str()).collect();
            log::info!(
                "{who} delivered {name}{} from=<{from}> to={} size={copy_size}",
                if tagged { " tagged as spam" } else { "" },
                to.join(",")
            );
        }
        let message = match took.is_empty() {
            true => message,
            false => {
                let took: Vec<_> = took.into_iter().cloned().collect();
                let prefix = format!("{who} {name}");
                let outbox = shared.outbox();
                crate::away::answer(&outbox, message, from, &took, tagged, &prefix).await
            }
        };
        for (account, dir) in &later {
            if let Some((_, e)) = failed.iter().find(|(d, _)| d == dir) {
                log::error!("{who} cannot deliver {name} to {account} now: {e}");
            }
        }
        let later = later.iter().map(|(a, _)| a.as_str().to_string()).collect();
        self.hand_to_queue(message, from.to_string(), later, String::new())
            .await
    }

    /// Makes the queue responsible for `rcpts`.
    async fn hand_to_queue(
        &mut self,
        message: Incoming,
        sender: String,
        rcpts: Vec<String>,
        headers: String,
    ) -> Result<Incoming, (Incoming, io::Error)> {
        if rcpts.is_empty() {
            return Ok(message);
        }
        let (shared, who, name) = (self.shared, &self.who, self.name);
        let queue_id = shared.store.names.next();
        let (message, queued) = shared
            .queue
            .submit(
                message,
                queue_id.clone(),
                sender.clone(),
                rcpts.clone(),
                headers,
            )
            .await;
        match queued {
            Ok(()) => {
                self.stored = true;
                self.queued = true;
                log::info!(
                    "{who} queued {name} as {queue_id} from=<{sender}> to={} size={}",
                    rcpts.join(","),
                    message.size()
                );
                shared.counters.count(|s| s.queued += rcpts.len() as u64);
                Ok(message)
            }
            Err(e) if !self.stored => {
                log::error!("{who} cannot queue {name}: {e}");
                Err((message, e))
            }
            Err(e) => {
                log::error!("{who} cannot queue {name} for {}: {e}", rcpts.join(","));
                self.take_back(message, e).await
            }
        }
    }

    /// After copies were stored, the rest failed: the copies in mailboxes
    /// are taken back so the client's retry (it hears 4xx) duplicates
    /// nothing. Once the queue holds one, nothing can be taken back, and
    /// the client hears 250: those still unserved are lost, and said so.
    async fn take_back(
        &mut self,
        message: Incoming,
        e: io::Error,
    ) -> Result<Incoming, (Incoming, io::Error)> {
        let (who, name) = (&self.who, self.name);
        if self.queued {
            log::error!("{who} {name}: some copies are lost: {e}");
            return Ok(message);
        }
        let links = std::mem::take(&mut self.links);
        let count = links.len();
        smol::unblock(move || maildir::unlink_all(disk::system(), &links)).await;
        self.stored = false;
        log::error!("{who} {name}: {count} stored copies taken back after: {e}");
        Err((message, e))
    }
}

/// Teaches the address books: the sender (envelope and From:) becomes
/// known to recipients who got the message as mail, not spam, and a
/// member who sends through us gets to know everyone they wrote to; each
/// with the display name the header section gave the address.
fn learn_correspondents(
    shared: &Context,
    session: &Session,
    facts: &DataFacts,
    clean: &[(Address, PathBuf)],
) {
    let name_of = |address: &str| {
        facts
            .names
            .iter()
            .find(|m| m.address.eq_ignore_ascii_case(address))
            .map_or("", |m| m.name.as_str())
    };
    let named = |address| (address, name_of(address));
    let sender = session.sender().map(Address::as_str);
    let from_header = facts.from_header.as_deref().unwrap_or(&[]);
    for (_, dir) in clean {
        let from = from_header.iter().map(String::as_str);
        shared
            .books
            .learn(dir, sender.into_iter().chain(from).map(named));
    }
    if let Some(user) = session.user() {
        let given = session.recipients().iter().map(|r| r.given.as_str());
        shared
            .books
            .learn(&shared.store.mailbox_dir(user), given.map(named));
    }
}

/// How a failure to store or queue a message is answered: a full disk is
/// 452 4.3.1 (the client retries later), anything else 451 4.3.0.
fn storage_failure(e: &io::Error) -> DataOutcome {
    if is_no_space(e) {
        DataOutcome::NoSpace
    } else {
        DataOutcome::Failed
    }
}

/// The first configured blocklist that lists `ip`, if any.
async fn blocklisted(shared: &Context, ip: IpAddr) -> Option<String> {
    if shared.config.dnsbl.is_empty() {
        return None;
    }
    let Some(resolver) = shared
        .config
        .dns_resolver
        .or_else(crate::dns::system_resolver)
    else {
        log::warn!("blocklists configured but no DNS resolver known");
        return None;
    };
    for zone in &shared.config.dnsbl {
        if crate::dns::listed(resolver, ip, zone).await {
            return Some(zone.clone());
        }
    }
    None
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
