//! The async shell around the SMTP core: reads the socket, feeds lines to
//! the session and body bytes to the DATA decoder, streams the message into
//! the spool, and makes it durable before the 250.

use super::from_header::{FromHeaderScanner, ReceivedCounter, RecipientHeaderScanner};
use super::headers::{HeaderFilter, Missing};
use super::received::{rfc5322_date, trace_headers, Trace};
use super::session::{
    DataOutcome, Destination, Directory, Limits, Login, RcptVerdict, Security, Session, Step,
};
use crate::limits::{
    DATA_DEADLINE_FACTOR, MAX_RECEIVED_HEADERS, READ_CHUNK, REPLY_BUFFER, WRITE_CHUNK,
};
use crate::ops::stats::Refusal;
use crate::server::conn::{self, ReadOutcome, Stream};
use crate::server::{admit, Admission, Gate, Service, Shared};
use crate::smtp::command::RcptTo;
use crate::spam::Action;
use crate::store::disk;
use crate::store::durable::is_no_space;
use crate::store::maildir::{self, Incoming};
use crate::wire::address::Address;
use crate::wire::dot::DataDecoder;
use crate::wire::line::LineBuffer;
use crate::wire::reply::{push, Replies, REPLY_HEADROOM};
use smol::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

struct LiveDirectory<'a>(&'a Shared, std::net::IpAddr);

impl Directory for LiveDirectory<'_> {
    fn lookup(&mut self, rcpt: &RcptTo) -> RcptVerdict {
        self.0.lookup(rcpt)
    }

    fn owns(&mut self, user: &Address, address: &str) -> bool {
        !self.0.config.from_must_match || self.0.owns(user, address)
    }

    fn is_member(&mut self, address: &Address) -> bool {
        self.0.is_member(address)
    }

    fn over_quota_with(&mut self, mailbox: &Address, size: u64) -> Option<bool> {
        self.0.over_quota_with(mailbox, size)
    }

    fn greylist(&mut self, sender: Option<&Address>, rcpt: &Address) -> Option<u64> {
        let mut list = self.0.greylist.as_ref()?.borrow_mut();
        let sender = sender.map(Address::as_str).unwrap_or("");
        let wait = list.check(self.1, sender, rcpt.as_str())?;
        log::info!("greylisted {} <{sender}> -> <{rcpt}>", self.1);
        Some(wait.as_secs().max(1))
    }
}

/// Input bytes read from the socket but not yet used.
struct Input {
    buf: Box<[u8; READ_CHUNK]>,
    start: usize,
    end: usize,
}

impl Input {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

struct Connection {
    shared: Rc<Shared>,
    stream: Stream,
    admission: Admission,
    peer: SocketAddr,
    id: u64,
    input: Input,
    out: Replies,
}

impl Connection {
    async fn flush(&mut self) -> io::Result<()> {
        for (code, enhanced) in self.out.take_refusals() {
            let refusal = Refusal::Smtp(code, enhanced.as_deref());
            self.shared.count(|s| s.count_refusal(refusal));
        }
        let timeout = self.shared.config.smtp.command_timeout;
        let result = conn::write(&mut self.stream, self.out.as_bytes(), timeout).await;
        self.out.clear();
        result
    }

    /// Refills the input buffer; `in_data` keeps reading through a shutdown
    /// for the grace period so a message in flight can finish.
    /// `deadline` bounds the whole command line or message, so a client
    /// dripping a byte at a time cannot hold the session (slowloris).
    async fn fill(&mut self, in_data: bool, deadline: Instant) -> ReadOutcome {
        let smtp = &self.shared.config.smtp;
        let shutdown = &self.shared.shutdown;
        let outcome = loop {
            let (timeout, watch) = match (in_data, shutdown.grace_left()) {
                (false, _) => (smtp.command_timeout, Some(shutdown)),
                // Watching for shutdown only to start the grace clock.
                (true, None) => (smtp.data_timeout, Some(shutdown)),
                (true, Some(left)) => (smtp.data_timeout.min(left), None),
            };
            let timeout = timeout.min(deadline.saturating_duration_since(Instant::now()));
            let buf = &mut self.input.buf[..];
            let read = if in_data {
                conn::read(&mut self.stream, buf, timeout, watch).await
            } else {
                let since = deadline.checked_sub(smtp.command_timeout);
                let since = since.unwrap_or_else(Instant::now);
                let (shared, seat) = (&self.shared, &self.admission.seat);
                conn::read_command(&mut self.stream, buf, timeout, shared, seat, since).await
            };
            match read {
                ReadOutcome::Shutdown if in_data => continue,
                outcome => break outcome,
            }
        };
        if let ReadOutcome::Data(n) = outcome {
            self.input.start = 0;
            self.input.end = n;
        }
        outcome
    }
}

pub async fn serve_connection(
    shared: Rc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    service: Service,
) {
    let id = shared.session_id();
    let mut stream = Stream::Plain(tcp);
    let gate = Gate {
        busy: (
            b"421 4.3.2 Too many connections, try again later\r\n",
            Refusal::Smtp(421, Some("4.3.2")),
        ),
        address: (
            b"421 4.7.0 Too many connections from your address, try again later\r\n",
            Refusal::Smtp(421, Some("4.7.0")),
        ),
    };
    let who = format_args!("smtp#{id} {peer}");
    let admission = admit(&shared, &mut stream, peer.ip(), service, gate, who);
    let Some(admission) = admission.await else {
        return;
    };
    log::info!("smtp#{id} {peer} connected to {}", service.name());
    if service.implicit_tls()
        && !stream
            .start_tls(&shared, &admission.seat, format_args!("smtp#{id} {peer}"))
            .await
    {
        return;
    }
    if service == Service::Smtp && !shared.relay_client(peer.ip()) {
        if let Some(zone) = blocklisted(&shared, peer.ip()).await {
            log::warn!("smtp#{id} {peer} refused: listed in {zone}");
            let reply = format!(
                "554 5.7.1 Service unavailable; client [{}] blocked using {zone}\r\n",
                peer.ip()
            );
            shared.count(|s| s.count_refusal(Refusal::Smtp(554, Some("5.7.1"))));
            let timeout = shared.config.smtp.command_timeout;
            let _ = conn::write(&mut stream, reply.as_bytes(), timeout).await;
            return;
        }
    }
    let greet_delay = shared.config.smtp.greet_delay;
    if service == Service::Smtp && !greet_delay.is_zero() && !shared.relay_client(peer.ip()) {
        let mut probe = [0u8; 64];
        match conn::read(&mut stream, &mut probe, greet_delay, Some(&shared.shutdown)).await {
            ReadOutcome::TimedOut => {}
            ReadOutcome::Data(_) => {
                log::warn!("smtp#{id} {peer} refused: talked before the greeting");
                let reply = "554 5.5.1 Protocol error: talking before the greeting\r\n";
                shared.count(|s| s.count_refusal(Refusal::Smtp(554, Some("5.5.1"))));
                let timeout = shared.config.smtp.command_timeout;
                let _ = conn::write(&mut stream, reply.as_bytes(), timeout).await;
                return;
            }
            ReadOutcome::Closed | ReadOutcome::Shutdown => return,
        }
    }
    let security = Security {
        starttls: !service.implicit_tls(),
        tls: stream.is_tls(),
        plaintext_login: shared.plaintext_login_allowed(peer.ip()),
        submission: service.is_submission(),
        relay_client: shared.relay_client(peer.ip()),
        check_helo: service == Service::Smtp && !shared.relay_client(peer.ip()),
    };
    let limits = Limits {
        max_message_size: shared.config.smtp.max_message_size,
        max_recipients: shared.config.smtp.max_recipients,
        max_errors: shared.config.smtp.max_errors,
    };
    let mut out = Replies::new();
    let session = Session::new(&shared.config.hostname, limits, security, &mut out);
    let mut connection = Connection {
        shared,
        stream,
        admission,
        peer,
        id,
        input: Input {
            buf: Box::new([0; READ_CHUNK]),
            start: 0,
            end: 0,
        },
        out,
    };
    let end = run(&mut connection, session).await;
    connection.stream.close_tls().await;
    log::info!("smtp#{id} {peer} closed: {end}");
}

/// Drives one session to its end; returns why it ended.
async fn run(c: &mut Connection, mut session: Session) -> &'static str {
    let mut lines = LineBuffer::new();
    let mut body_buf: Option<Box<[u8]>> = None;
    let command_timeout = c.shared.config.smtp.command_timeout;
    let mut command_deadline = Instant::now() + command_timeout;
    loop {
        while !c.input.pending().is_empty() {
            lines.expect_sasl(session.awaiting_sasl());
            let (used, event) = lines.push(c.input.pending());
            c.input.start += used;
            let Some(event) = event else { break };
            command_deadline = Instant::now() + command_timeout;
            let step = session.handle(
                event,
                &mut LiveDirectory(&c.shared, c.peer.ip()),
                &mut c.out,
            );
            match step {
                Step::Continue => {}
                Step::Close => {
                    let _ = c.flush().await;
                    return "session ended";
                }
                Step::StartTls => {
                    if c.flush().await.is_err() {
                        return "write failed";
                    }
                    // Anything pipelined behind STARTTLS came in the clear and
                    // must not count as said inside TLS (RFC 3207 §4.2; the
                    // STARTTLS command-injection attacks).
                    let dropped = c.input.pending().len();
                    c.input.start = c.input.end;
                    lines = LineBuffer::new();
                    if dropped > 0 {
                        log::warn!(
                            "smtp#{} {} discarded {dropped} bytes sent before the TLS handshake",
                            c.id,
                            c.peer
                        );
                    }
                    let who = format_args!("smtp#{} {}", c.id, c.peer);
                    let seat = &c.admission.seat;
                    if !c.stream.start_tls(&c.shared, seat, who).await {
                        return "TLS handshake failed";
                    }
                    session.tls_started();
                }
                Step::Authenticate(credentials) => {
                    let login = c
                        .shared
                        .login(&credentials.user, &credentials.password, c.peer.ip())
                        .await;
                    let (id, peer, name) = (c.id, c.peer, credentials.user.as_str());
                    match &login {
                        Login::Ok(u) => {
                            c.admission.seat.member();
                            log::info!("smtp#{id} {peer} logged in as {u}")
                        }
                        Login::Failed => log::warn!("smtp#{id} {peer} failed login for {name:?}"),
                        Login::Refused => {
                            log::warn!(
                                "smtp#{id} {peer} login for {name:?} refused: too many failures"
                            )
                        }
                    }
                    if session.auth_done(login, &mut c.out) == Step::Close {
                        let _ = c.flush().await;
                        return "too many errors";
                    }
                }
                Step::ReceiveData => {
                    if c.flush().await.is_err() {
                        return "write failed";
                    }
                    let buf =
                        body_buf.get_or_insert_with(|| vec![0; WRITE_CHUNK].into_boxed_slice());
                    // Boxed: its state (header scanners, spool file) exists
                    // only during DATA, not in every idle session.
                    match Box::pin(receive_message(c, &session, buf)).await {
                        Ok(outcome) => session.data_done(outcome, &mut c.out),
                        Err(why) => return why,
                    }
                }
            }
            if c.out.len() > REPLY_BUFFER - REPLY_HEADROOM && c.flush().await.is_err() {
                return "write failed";
            }
        }
        if c.flush().await.is_err() {
            return "write failed";
        }
        match c.fill(false, command_deadline).await {
            ReadOutcome::Data(_) => {}
            ReadOutcome::Closed => return "client disconnected",
            ReadOutcome::TimedOut => {
                push(
                    &mut c.out,
                    421,
                    Some("4.4.2"),
                    "Timeout, closing connection",
                );
                let _ = c.flush().await;
                return "command timeout";
            }
            ReadOutcome::Shutdown => {
                push(
                    &mut c.out,
                    421,
                    Some("4.3.2"),
                    "Service shutting down, try again later",
                );
                let _ = c.flush().await;
                return "shutdown";
            }
        }
    }
}

/// Where the body is going while it streams in.
enum Sink {
    Spool(Incoming),
    TooBig,
    LineTooLong,
    Failed(io::Error),
}

/// Reads the body up to `<CRLF>.<CRLF>`, storing it as it comes. `Err`
/// means the connection is over (dropped, timed out) and nothing was stored.
async fn receive_message(
    c: &mut Connection,
    session: &Session,
    chunk: &mut [u8],
) -> Result<DataOutcome, &'static str> {
    let shared = c.shared.clone();
    let name = shared.names.next();
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
    let limit = session.max_message_size() + headers.len() as u64;
    let mut sink = match Incoming::spool(
        disk::system(),
        &shared.config.data_dir,
        name.clone(),
        headers.into(),
    )
    .await
    {
        Ok(m) => Sink::Spool(m),
        Err(e) => Sink::Failed(e),
    };
    let data_deadline = Instant::now() + DATA_DEADLINE_FACTOR * shared.config.smtp.data_timeout;
    let mut decoder = DataDecoder::new();
    let missing = session.user().map(|user| Missing {
        date: format!("Date: {}\r\n", rfc5322_date(now)),
        message_id: format!("Message-ID: <{name}@{}>\r\n", shared.config.hostname),
        from: format!("From: <{user}>\r\n"),
    });
    let mut filter = HeaderFilter::new(missing);
    let mut filtered = Vec::with_capacity(chunk.len() + 512);
    // Submission: the From: header must name the logged-in user; for
    // everyone, its addresses teach the recipients' address books.
    let mut from_scan = FromHeaderScanner::new();
    let judge_spam = !session.trusted() && shared.config.spam.recipient_limit > 0;
    let mut rcpt_scan = judge_spam.then(RecipientHeaderScanner::recipients);
    let mut received = ReceivedCounter::for_fields(&["received"]);
    let mut filled = 0;
    let mut bare_lf_at = None;
    loop {
        let mut finished = false;
        while !c.input.pending().is_empty() && !finished {
            let p = decoder.feed(c.input.pending(), &mut chunk[filled..]);
            c.input.start += p.consumed;
            if bare_lf_at.is_none() {
                bare_lf_at = p.bare_lf_at.map(|at| filled + at);
            }
            filled += p.produced;
            finished = p.finished;
            if finished || chunk.len() - filled < 2 {
                filtered.clear();
                filter.feed(&chunk[..filled], bare_lf_at.take(), &mut filtered);
                if finished {
                    filter.finish(&mut filtered);
                }
                from_scan.feed(&filtered);
                received.feed(&filtered);
                if let Some(scan) = rcpt_scan.as_mut() {
                    scan.feed(&filtered);
                }
                (sink, filtered) =
                    store_chunk(sink, filtered, limit, decoder.line_too_long()).await;
                filled = 0;
            }
        }
        if finished {
            break;
        }
        match c.fill(true, data_deadline).await {
            ReadOutcome::Data(_) => {}
            outcome => {
                if let Sink::Spool(m) = sink {
                    m.discard_off_thread().await;
                }
                if matches!(outcome, ReadOutcome::TimedOut) {
                    let text = if shared.shutdown.is_requested() {
                        "Service shutting down, message not accepted"
                    } else {
                        "Timeout waiting for data"
                    };
                    push(&mut c.out, 421, Some("4.4.2"), text);
                    let _ = c.flush().await;
                    return Err("data timeout");
                }
                return Err("client disconnected during data");
            }
        }
    }
    let id = c.id;
    let peer = c.peer;
    let incoming = match sink {
        Sink::Spool(m) => m,
        Sink::TooBig => {
            log::info!(
                "smtp#{id} {peer} rejected message: over {} bytes",
                session.max_message_size()
            );
            return Ok(DataOutcome::TooBig);
        }
        Sink::LineTooLong => {
            log::info!("smtp#{id} {peer} rejected message: a line over 998 octets");
            return Ok(DataOutcome::LineTooLong);
        }
        Sink::Failed(e) => {
            log::error!("smtp#{id} {peer} cannot store message: {e}");
            return Ok(storage_failure(&e));
        }
    };
    if let Some(why) = filter.malformed().filter(|_| session.strict_headers()) {
        log::warn!("smtp#{id} {peer} refused {name}: header section has a {why}");
        incoming.discard_off_thread().await;
        return Ok(DataOutcome::Malformed(why));
    }
    let from_header = from_scan.addresses();
    let from_owner = session
        .from_header_owner()
        .filter(|_| shared.config.from_must_match);
    if let Some(user) = from_owner {
        let foreign = match &from_header {
            Ok(addresses) => addresses.iter().find(|a| !shared.owns(user, a)),
            Err(problem) => {
                log::warn!("smtp#{id} {peer} {user} refused: From: header {problem}");
                incoming.discard_off_thread().await;
                return Ok(DataOutcome::Malformed("From: field that cannot be read"));
            }
        };
        if let Some(address) = foreign {
            log::warn!("smtp#{id} {peer} {user} refused: From: <{address}> is not theirs");
            incoming.discard_off_thread().await;
            return Ok(DataOutcome::ForeignFrom);
        }
    }
    if received.fields_seen() as usize >= MAX_RECEIVED_HEADERS {
        log::warn!(
            "smtp#{id} {peer} refused {name}: {} Received: headers, a mail loop",
            received.fields_seen()
        );
        incoming.discard_off_thread().await;
        return Ok(DataOutcome::Loop);
    }
    // One target per mailbox and per remote address, whatever led there.
    let mut targets: Vec<(Address, PathBuf)> = Vec::new();
    let mut relayed: Vec<String> = Vec::new();
    let mut forwarded: Vec<String> = Vec::new();
    for destination in recipients.iter().flat_map(|r| &r.destinations) {
        match destination {
            Destination::Mailbox(account) => {
                let dir = shared.mailbox_dir(account);
                if !targets.iter().any(|(_, d)| *d == dir) {
                    targets.push((account.clone(), dir));
                }
            }
            Destination::Remote { to, forwarded: f } => {
                let list = if *f { &mut forwarded } else { &mut relayed };
                if !list.iter().any(|a| a.eq_ignore_ascii_case(to.as_str())) {
                    list.push(to.as_str().to_string());
                }
            }
        }
    }
    targets.sort_by(|a, b| a.1.cmp(&b.1));
    let size = incoming.size();
    let remote = !relayed.is_empty() || !forwarded.is_empty();
    // The real size against each quota (the declared one was checked at
    // RCPT): mailboxes without room get it through the queue, which
    // reports to the sender, unless no one else gets it at all.
    let limited = targets.iter().filter(|(a, _)| shared.quota_of(a) > 0);
    shared.load_usage(limited.map(|(_, dir)| dir.clone())).await;
    let (targets, full): (Vec<_>, Vec<_>) = targets
        .into_iter()
        .partition(|(account, _)| shared.over_quota_with(account, size).is_none());
    let from = session.sender().map(|a| a.as_str()).unwrap_or("");
    if targets.is_empty() && !remote && !full.is_empty() {
        let temporary = full
            .iter()
            .all(|(a, _)| shared.over_quota_with(a, size) == Some(true));
        let to: Vec<&str> = full.iter().map(|(a, _)| a.as_str()).collect();
        log::info!(
            "smtp#{id} {peer} refused {name} from=<{from}> to={}: mailbox full",
            to.join(",")
        );
        incoming.discard_off_thread().await;
        return Ok(DataOutcome::OverQuota { temporary });
    }
    let listed = rcpt_scan.map(|s| s.addresses_seen()).unwrap_or_default();
    if judge_spam {
        // Read from flash off the executor thread, before the rule asks.
        shared
            .books
            .load(targets.iter().map(|(_, dir)| dir.as_path()))
            .await;
    }
    let forged = match &from_header {
        Ok(addresses) => session
            .forged_member_from(addresses, &mut LiveDirectory(&shared, peer.ip()))
            .map(str::to_string),
        Err(_) => None,
    };
    let (spam, clean): (Vec<_>, Vec<_>) = targets.into_iter().partition(|(account, dir)| {
        let verdict = crate::spam::recipient_rule(&shared.config.spam, &listed, |a| {
            shared.books.knows(dir, a)
        });
        if let Some(why) = &verdict {
            log::warn!("smtp#{id} {peer} {name} is spam for {account}: {why}");
        }
        verdict.is_some()
    });
    if !spam.is_empty()
        && clean.is_empty()
        && !remote
        && forged.is_none()
        && shared.config.spam.action == Action::Reject
    {
        shared.count(|s| s.spam += spam.len() as u64);
        log::info!("smtp#{id} {peer} rejected {name} from=<{from}> as spam");
        incoming.discard_off_thread().await;
        return Ok(DataOutcome::Spam);
    }
    // A stranger writing as a member: tagged for everyone, never refused
    // for this alone (mailing lists and forwarders do it too).
    let (spam, clean) = match &forged {
        Some(address) => {
            log::warn!("smtp#{id} {peer} {name} is spam: From: <{address}> is a member's");
            (spam.into_iter().chain(clean).collect(), Vec::new())
        }
        None => (spam, clean),
    };
    if !spam.is_empty() {
        shared.count(|s| s.spam += spam.len() as u64);
    }
    let mut delivery = Delivery {
        shared: &shared,
        who: format!("smtp#{id} {peer}"),
        name: &name,
        from,
        stored: false,
        links: Vec::new(),
        queued: false,
    };
    // Spam is delivered as a tagged copy; the original goes to the rest.
    if !spam.is_empty() {
        match tagged_copy(&shared, &incoming).await {
            Ok(copy) => {
                if let Err(e) = delivery.deliver_copy(copy, &spam, true).await {
                    incoming.discard_off_thread().await;
                    return Ok(storage_failure(&e));
                }
            }
            // The first copy: nothing is stored yet.
            Err(e) => {
                log::error!("smtp#{id} {peer} cannot store message: {e}");
                incoming.discard_off_thread().await;
                return Ok(storage_failure(&e));
            }
        }
    }
    let mut incoming = incoming;
    if !clean.is_empty() {
        incoming = match delivery.deliver(incoming, &clean, false).await {
            Ok(back) => back,
            Err((back, e)) => {
                back.discard_off_thread().await;
                return Ok(storage_failure(&e));
            }
        };
    }
    // Remote copies, and local ones that wait for room, are the queue's.
    let full: Vec<String> = full.iter().map(|(a, _)| a.as_str().to_string()).collect();
    for (rcpts, sender) in [
        (relayed, from.to_string()),
        (forwarded, shared.forwarding_sender(from)),
        (full, from.to_string()),
    ] {
        incoming = match delivery.hand_to_queue(incoming, sender, rcpts).await {
            Ok(back) => back,
            Err((back, e)) => {
                back.discard_off_thread().await;
                return Ok(storage_failure(&e));
            }
        };
    }
    incoming.discard_off_thread().await;
    shared.count(|s| {
        s.received_messages += 1;
        s.received_bytes += size;
    });
    learn_correspondents(
        &shared,
        session,
        from_header.as_deref().unwrap_or(&[]),
        &clean,
    );
    Ok(DataOutcome::Stored { id: name })
}

/// Stores the copies of one message. Until a copy is durable, a failure
/// is the client's to retry (4xx); after that, a 4xx would make it send
/// the copies already stored again, so whoever could not be served yet
/// goes through the queue: retried there, reported on final failure.
struct Delivery<'a> {
    shared: &'a Shared,
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
        let (message, result) = shared.commits.deliver(message, dirs).await;
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
            shared.after_delivery(&accounts, copy_size).await;
            shared.count(|s| s.delivered_local += accounts.len() as u64);
            let to: Vec<&str> = accounts.iter().map(|a| a.as_str()).collect();
            log::info!(
                "{who} delivered {name}{} from=<{from}> to={} size={copy_size}",
                if tagged { " tagged as spam" } else { "" },
                to.join(",")
            );
        }
        for (account, dir) in &later {
            if let Some((_, e)) = failed.iter().find(|(d, _)| d == dir) {
                log::error!("{who} cannot deliver {name} to {account} now: {e}");
            }
        }
        let later = later.iter().map(|(a, _)| a.as_str().to_string()).collect();
        self.hand_to_queue(message, from.to_string(), later).await
    }

    /// Makes the queue responsible for `rcpts`.
    async fn hand_to_queue(
        &mut self,
        message: Incoming,
        sender: String,
        rcpts: Vec<String>,
    ) -> Result<Incoming, (Incoming, io::Error)> {
        if rcpts.is_empty() {
            return Ok(message);
        }
        let (shared, who, name) = (self.shared, &self.who, self.name);
        let queue_id = shared.names.next();
        let (message, queued) = shared
            .queue
            .submit(message, queue_id.clone(), sender.clone(), rcpts.clone())
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
                shared.count(|s| s.queued += rcpts.len() as u64);
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
/// member who sends through us gets to know everyone they wrote to.
fn learn_correspondents(
    shared: &Shared,
    session: &Session,
    from_header: &[String],
    clean: &[(Address, PathBuf)],
) {
    let sender = session.sender().map(Address::as_str);
    for (_, dir) in clean {
        let from = from_header.iter().map(String::as_str);
        shared.books.learn(dir, sender.into_iter().chain(from));
    }
    if let Some(user) = session.user() {
        let given = session.recipients().iter().map(|r| r.given.as_str());
        shared.books.learn(&shared.mailbox_dir(user), given);
    }
}

/// A copy of the spooled message marked as spam, in the spool itself.
async fn tagged_copy(shared: &Shared, original: &Incoming) -> io::Result<Incoming> {
    let tag = shared.config.spam.subject_tag.clone();
    original
        .copy_with(
            &shared.config.data_dir,
            shared.names.next(),
            move |source, copy| crate::spam::tag::copy_tagged(source, &tag, |b| copy.write(b)),
        )
        .await
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
async fn blocklisted(shared: &Shared, ip: std::net::IpAddr) -> Option<String> {
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

/// Appends decoded bytes to the spool file unless the message is already
/// refused; going over the size limit or a line over the length limit
/// discards what was written at once.
/// The buffer comes back for the next chunk.
async fn store_chunk(
    sink: Sink,
    bytes: Vec<u8>,
    limit: u64,
    line_too_long: bool,
) -> (Sink, Vec<u8>) {
    let m = match sink {
        Sink::Spool(m) => m,
        other => return (other, bytes),
    };
    if m.size() + bytes.len() as u64 > limit {
        m.discard_off_thread().await;
        return (Sink::TooBig, bytes);
    }
    if line_too_long {
        m.discard_off_thread().await;
        return (Sink::LineTooLong, bytes);
    }
    match m.append(bytes).await {
        (m, bytes, Ok(())) => (Sink::Spool(m), bytes),
        (m, bytes, Err(e)) => {
            m.discard_off_thread().await;
            (Sink::Failed(e), bytes)
        }
    }
}
