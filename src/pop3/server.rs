//! The async shell around the POP3 core: logins checked off-thread, one
//! session per mailbox, messages streamed from their files in fixed-size
//! chunks, deletions made durable only in the UPDATE state.

use super::session::{Listing, LoginFailure, Replies, Security, Session, Step};
use crate::auth::{Authenticator, Login};
use crate::config::Config;
use crate::conn::{self, Gate, Handshake, ReadOutcome, Seat, Service, Shutdown, Stream};
use crate::limits::{POP3_OUTPUT, READ_CHUNK, REPLY_BUFFER, RETR_CHUNK};
use crate::ops::stats::{Counters, Refusal};
use crate::store::disk::{self, Disk};
use crate::store::{maildir, Mailstore};
use crate::wire::address::Address;
use crate::wire::dot::Stuffer;
use crate::wire::line::LineBuffer;
use smol::io::AsyncReadExt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

/// What a POP3 session uses.
pub struct Context {
    pub config: Rc<Config>,
    pub tls: Rc<crate::tls::Tls>,
    pub shutdown: Rc<Shutdown>,
    pub auth: Rc<Authenticator>,
    pub store: Rc<Mailstore>,
    pub counters: Rc<Counters>,
}

impl Context {
    fn handshake(&self) -> Handshake<'_> {
        Handshake {
            acceptor: self.tls.acceptor(),
            timeout: self.config.limits.tls_handshake_timeout,
            shutdown: &self.shutdown,
        }
    }
}

/// What POP3 says when it turns a connection away.
pub const GATE: Gate = Gate {
    busy: (
        b"-ERR [SYS/TEMP] Too many connections\r\n",
        Refusal::Pop3(Some("SYS/TEMP")),
    ),
    address: (
        b"-ERR [SYS/TEMP] Too many connections from your address\r\n",
        Refusal::Pop3(Some("SYS/TEMP")),
    ),
};

/// Releases the mailbox lock when the session ends, however it ends.
struct MailboxLock {
    shared: Rc<Context>,
    dir: PathBuf,
}

impl Drop for MailboxLock {
    fn drop(&mut self) {
        self.shared.store.unlock_for_pop3(&self.dir);
    }
}

struct Connection {
    shared: Rc<Context>,
    stream: Stream,
    seat: Seat,
    /// Replies from the session core.
    out: Replies,
    /// Everything waiting to go out: replies and message bodies of
    /// pipelined commands share writes (up to [`POP3_OUTPUT`] bytes).
    bulk: Vec<u8>,
    /// Writes so far (to know whether queued output has left).
    writes: u64,
}

impl Connection {
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        conn::write(&mut self.stream, bytes, self.shared.config.pop3.timeout).await
    }

    /// Counts the refusals the session decided on.
    fn count_refusals(&self, session: &mut Session) {
        for code in session.take_refusals() {
            self.shared
                .counters
                .count(|s| s.count_refusal(Refusal::Pop3(code)));
        }
    }

    /// Moves the session's replies behind what is already queued.
    fn queue_replies(&mut self) {
        self.bulk.extend_from_slice(self.out.as_bytes());
        self.out.clear();
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.queue_replies();
        let bulk = std::mem::take(&mut self.bulk);
        self.writes += 1;
        let result = self.send(&bulk).await;
        self.bulk = bulk;
        self.bulk.clear();
        result
    }

    /// Writes once a full batch is queued.
    async fn flush_if_full(&mut self) -> io::Result<()> {
        if self.bulk.len() + self.out.len() >= POP3_OUTPUT {
            self.flush().await?;
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
    log::info!("pop3#{id} {peer} connected to {}", service.name());
    if service.implicit_tls()
        && !stream
            .start_tls(shared.handshake(), &seat, format_args!("pop3#{id} {peer}"))
            .await
    {
        return;
    }
    let security = Security {
        stls: !service.implicit_tls(),
        tls: stream.is_tls(),
        plaintext_login: shared.auth.plaintext_login_allowed(peer.ip()),
    };
    let mut out = Replies::new();
    let session = Session::new(
        &shared.config.hostname,
        shared.config.pop3.max_errors,
        security,
        &mut out,
    );
    let mut c = Connection {
        shared,
        stream,
        seat,
        out,
        bulk: Vec::new(),
        writes: 0,
    };
    let end = run(&mut c, session, id, peer).await;
    c.stream.close_tls().await;
    log::info!("pop3#{id} {peer} closed: {end}");
}

async fn run(c: &mut Connection, mut session: Session, id: u64, peer: SocketAddr) -> &'static str {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut lines = LineBuffer::new();
    let mut lock: Option<MailboxLock> = None;
    let (mut start, mut end) = (0, 0);
    let idle = c.shared.config.pop3.timeout;
    // Bounds a whole command line, so a byte-at-a-time client is cut off too.
    let mut deadline = Instant::now() + idle;
    loop {
        while start < end {
            let (used, event) = lines.push(&buf[start..end]);
            start += used;
            let Some(event) = event else { break };
            deadline = Instant::now() + idle;
            let step = session.handle(event, &mut c.out);
            c.count_refusals(&mut session);
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
                    // Commands pipelined behind STLS came in the clear: drop them.
                    if start < end {
                        log::warn!(
                            "pop3#{id} {peer} discarded {} bytes sent before the TLS handshake",
                            end - start
                        );
                    }
                    start = end;
                    lines = LineBuffer::new();
                    let who = format_args!("pop3#{id} {peer}");
                    if !c.stream.start_tls(c.shared.handshake(), &c.seat, who).await {
                        return "TLS handshake failed";
                    }
                    session.tls_started();
                }
                Step::Authenticate { user, password } => {
                    let login = c.shared.auth.login(&user, &password, peer.ip()).await;
                    match login {
                        Login::Failed => {
                            log::warn!("pop3#{id} {peer} failed login for {user:?}");
                            session.login_failed(LoginFailure::BadCredentials, &mut c.out);
                        }
                        Login::Refused => {
                            log::warn!(
                                "pop3#{id} {peer} login for {user:?} refused: too many failures"
                            );
                            session.login_failed(LoginFailure::TooManyFailures, &mut c.out);
                        }
                        Login::Ok(account) => match open_mailbox(&c.shared, &account).await {
                            Ok((dir_lock, messages)) => {
                                c.seat.member();
                                log::info!(
                                    "pop3#{id} {peer} {account} logged in, {} messages",
                                    messages.len()
                                );
                                lock = Some(dir_lock);
                                session.login_succeeded(messages, &mut c.out);
                            }
                            Err(why) => {
                                log::warn!("pop3#{id} {peer} {account}: {why}");
                                session.login_failed(why, &mut c.out);
                            }
                        },
                    }
                    c.count_refusals(&mut session);
                }
                Step::Listing(kind) => {
                    if send_listing(c, &session, kind).await.is_err() {
                        return "write failed";
                    }
                }
                Step::SendMessage { index, body_lines } => {
                    let dir = &lock.as_ref().expect("TRANSACTION holds the lock").dir;
                    let path = dir.join(session.message_name(index));
                    match send_message(c, path, body_lines).await {
                        Ok(()) => {}
                        Err(SendError::Client) => return "write failed",
                        Err(SendError::Unreadable(e)) => {
                            // Only this message is affected: the client got
                            // -ERR instead of +OK and the session goes on.
                            log::error!(
                                "pop3#{id} {peer} cannot read {}: {e}",
                                session.message_name(index)
                            );
                        }
                        Err(SendError::File(e)) => {
                            // Part of the message is out; only ending the
                            // session tells the client it is incomplete.
                            log::error!(
                                "pop3#{id} {peer} cannot read {}: {e}",
                                session.message_name(index)
                            );
                            return "message file unreadable";
                        }
                    }
                }
                Step::Update => {
                    let dir = lock
                        .as_ref()
                        .expect("TRANSACTION holds the lock")
                        .dir
                        .clone();
                    let doomed: Vec<String> = session.deleted().map(str::to_owned).collect();
                    let count = doomed.len();
                    let freed = session.deleted_bytes();
                    let mailbox = dir.clone();
                    let result = smol::unblock(move || {
                        maildir::delete_messages(
                            disk::system(),
                            &dir,
                            doomed.iter().map(String::as_str),
                        )
                    })
                    .await;
                    match result {
                        Ok(()) => c.shared.store.remove_usage(&mailbox, freed),
                        // Some may be gone, some not: count again next time.
                        Err(_) => c.shared.store.recount_usage(mailbox).await,
                    }
                    if let Err(e) = &result {
                        log::error!("pop3#{id} {peer} deleting messages failed: {e}");
                    } else if count > 0 {
                        log::info!("pop3#{id} {peer} deleted {count} messages");
                    }
                    session.update_done(result.is_ok(), &mut c.out);
                    c.count_refusals(&mut session);
                    let _ = c.flush().await;
                    return "session ended";
                }
            }
            if c.out.len() > REPLY_BUFFER / 2 {
                c.queue_replies();
            }
            if c.flush_if_full().await.is_err() {
                return "write failed";
            }
        }
        if c.flush().await.is_err() {
            return "write failed";
        }
        let timeout = deadline.saturating_duration_since(Instant::now());
        let since = deadline.checked_sub(idle).unwrap_or_else(Instant::now);
        let (shutdown, seat) = (&c.shared.shutdown, &c.seat);
        match conn::read_command(&mut c.stream, &mut buf, timeout, shutdown, seat, since).await {
            ReadOutcome::Data(n) => (start, end) = (0, n),
            ReadOutcome::Closed => return "client disconnected",
            ReadOutcome::TimedOut => {
                let _ = c.send(b"-ERR Autologout; idle for too long\r\n").await;
                return "timeout";
            }
            ReadOutcome::Shutdown => {
                let _ = c.send(b"-ERR [SYS/TEMP] Server shutting down\r\n").await;
                return "shutdown";
            }
        }
    }
}

/// Takes the mailbox for this session and lists it.
async fn open_mailbox(
    shared: &Rc<Context>,
    account: &Address,
) -> Result<(MailboxLock, Vec<maildir::StoredMessage>), LoginFailure> {
    let dir = shared.store.mailbox_dir(account);
    if !shared.store.lock_for_pop3(&dir) {
        return Err(LoginFailure::InUse);
    }
    let lock = MailboxLock {
        shared: shared.clone(),
        dir: dir.clone(),
    };
    match smol::unblock(move || maildir::scan_mailbox(disk::system(), &dir)).await {
        Ok(messages) => Ok((lock, messages)),
        Err(e) => {
            log::error!("cannot read mailbox {}: {e}", lock.dir.display());
            Err(LoginFailure::Unavailable)
        }
    }
}

async fn send_listing(c: &mut Connection, session: &Session, kind: Listing) -> io::Result<()> {
    c.queue_replies();
    for index in 0..session.message_count() {
        session.listing_line(kind, index, &mut c.out);
        if c.out.len() > REPLY_BUFFER - 300 {
            c.queue_replies();
            c.flush_if_full().await?;
        }
    }
    let _ = c.out.push_str(".\r\n");
    Ok(())
}

enum SendError {
    Client,
    /// Unreadable before anything was sent: answered with -ERR instead.
    Unreadable(io::Error),
    /// Failed part-way through.
    File(io::Error),
}

/// Streams one message file, byte-stuffed, then the terminating dot.
async fn send_message(
    c: &mut Connection,
    path: PathBuf,
    body_lines: Option<u32>,
) -> Result<(), SendError> {
    // The session's +OK is the last reply queued; until the first write
    // after it, a file error can still turn it into -ERR.
    let ok_len = c
        .out
        .trim_end_matches("\r\n")
        .rfind("\r\n")
        .map_or(0, |i| i + 2);
    let rollback = c.bulk.len() + ok_len;
    c.queue_replies();
    let writes = c.writes;
    let refuse = |c: &mut Connection, e: io::Error| {
        if c.writes != writes {
            return SendError::File(e);
        }
        c.bulk.truncate(rollback);
        c.bulk
            .extend_from_slice(b"-ERR [SYS/TEMP] Message unreadable\r\n");
        c.shared
            .counters
            .count(|s| s.count_refusal(Refusal::Pop3(Some("SYS/TEMP"))));
        SendError::Unreadable(e)
    };
    let file = match smol::unblock(move || disk::system().open_read(&path)).await {
        Ok(file) => file,
        Err(e) => return Err(refuse(c, e)),
    };
    // Read on the blocking pool, at most one chunk ahead of the client.
    let mut file = smol::Unblock::with_capacity(RETR_CHUNK, file);
    let mut raw = [0u8; RETR_CHUNK];
    let mut stuffer = Stuffer::as_stored(body_lines);
    while !stuffer.is_done() {
        let n = match file.read(&mut raw).await {
            Ok(n) => n,
            Err(e) => return Err(refuse(c, e)),
        };
        if n == 0 {
            break;
        }
        // Stuff straight into the queue.
        stuffer.feed(&raw[..n], &mut c.bulk);
        c.flush_if_full().await.map_err(|_| SendError::Client)?;
    }
    let _ = c.out.push_str(stuffer.finish());
    Ok(())
}
