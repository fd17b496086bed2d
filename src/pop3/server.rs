//! The async shell around the POP3 core: logins checked off-thread, one
//! session per mailbox, messages streamed from their files in fixed-size
//! chunks, deletions made durable only in the UPDATE state.

use super::conversation::{Action, Conversation};
use super::session::{Listing, LoginFailure, Message, Replies, Security, Session};
use crate::auth::{Authenticator, Login};
use crate::config::Config;
use crate::conn::{self, Gate, Handshake, ReadOutcome, Seat, Service, Shutdown, Stream};
use crate::limits::{POP3_OUTPUT, REPLY_BUFFER, RETR_CHUNK};
use crate::ops::stats::{Counters, Refusal};
use crate::store::disk::{self, Disk};
use crate::store::{index, maildir, Mailstore};
use crate::wire::address::Address;
use crate::wire::dot::Stuffer;
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
    /// The listing came from the directories, to be indexed as the
    /// session ends (no client waits for that), unless it deleted mail.
    unindexed: Option<index::Unindexed>,
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
    /// Replies from the core, taken over for the length of one action.
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

    /// Waits for the client's next command until the core's deadline,
    /// idle meanwhile (so it may be closed early to make room).
    async fn fill(&mut self, conversation: &mut Conversation) -> Result<(), &'static str> {
        let timeout = conversation
            .poll_at()
            .saturating_duration_since(Instant::now());
        let since = conversation.idle_since();
        let (shutdown, seat) = (&self.shared.shutdown, &self.seat);
        let buf = conversation.input();
        match conn::read_command(&mut self.stream, buf, timeout, shutdown, seat, since).await {
            ReadOutcome::Data(n) => conversation.received(n),
            ReadOutcome::Closed => return Err("client disconnected"),
            ReadOutcome::TimedOut => conversation.timed_out(),
            ReadOutcome::Shutdown => conversation.shutdown(),
        }
        Ok(())
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
    let pop3 = &shared.config.pop3;
    let mut conversation = Conversation::new(
        &shared.config.hostname,
        pop3.max_errors,
        security,
        pop3.timeout,
        Instant::now(),
    );
    let mut c = Connection {
        shared,
        stream,
        seat,
        out: Replies::new(),
        bulk: Vec::new(),
        writes: 0,
    };
    let who = format!("pop3#{id} {peer}");
    let mut lock = None;
    let end = run(&mut c, &mut conversation, &mut lock, &who, peer).await;
    c.stream.close_tls().await;
    if let Some(lock) = lock {
        write_index(lock, conversation.session(), &who).await;
    }
    log::info!("{who} closed: {end}");
}

/// Indexes the listing the session was given, if it came from the
/// directories. The mailbox is free meanwhile: another session's listing
/// is as valid, and any change since makes this index stale, not wrong.
async fn write_index(lock: MailboxLock, session: &mut Session, who: &str) {
    let Some(unindexed) = lock.unindexed else {
        return;
    };
    let dir = lock.dir.clone();
    drop(lock);
    let listing = session.take_listing();
    let written = smol::unblock(move || {
        let entries = listing.iter().map(|m| (&*m.name, m.size));
        unindexed.write(&**disk::system(), &dir, listing.len(), entries)
    })
    .await;
    if let Err(e) = written {
        log::warn!("{who} cannot write the mailbox index: {e}");
    }
}

/// Carries out what the core asks until it closes; returns why it ended.
async fn run(
    c: &mut Connection,
    conversation: &mut Conversation,
    lock: &mut Option<MailboxLock>,
    who: &str,
    peer: SocketAddr,
) -> &'static str {
    loop {
        let action = conversation.poll(Instant::now());
        // The shell writes the core's replies in its own batches.
        std::mem::swap(&mut c.out, conversation.replies());
        let result = match action {
            Action::Flush => c.flush().await.map_err(|_| "write failed"),
            Action::Queue => {
                c.queue_replies();
                c.flush_if_full().await.map_err(|_| "write failed")
            }
            Action::Read => {
                // Message bodies queued behind the last reply go first.
                if !c.bulk.is_empty() && c.flush().await.is_err() {
                    return "write failed";
                }
                c.fill(conversation).await
            }
            Action::StartTls { discarded } => {
                if discarded > 0 {
                    log::warn!("{who} discarded {discarded} bytes sent before the TLS handshake");
                }
                let (handshake, seat) = (c.shared.handshake(), &c.seat);
                if !Box::pin(c.stream.start_tls(handshake, seat, format_args!("{who}"))).await {
                    return "TLS handshake failed";
                }
                conversation.tls_started();
                Ok(())
            }
            Action::Authenticate { user, password } => {
                // Boxed with the credentials, as every rare wait: idle
                // sessions carry none of it.
                let (c, conversation) = (&mut *c, &mut *conversation);
                *lock = Box::pin(async move {
                    let login = c.shared.auth.login(&user, &password, peer.ip()).await;
                    log_in(c, conversation, login, &user, who).await
                })
                .await;
                Ok(())
            }
            Action::Listing(kind) => {
                let session = conversation.session();
                send_listing(c, session, kind)
                    .await
                    .map_err(|_| "write failed")
            }
            Action::SendMessage { index, body_lines } => {
                let dir = &lock.as_ref().expect("TRANSACTION holds the lock").dir;
                let name = conversation.session().message_name(index);
                let path = dir.join(name);
                // Boxed: its read buffer exists only while a message is
                // sent, not in every idle session.
                match Box::pin(send_message(c, path, body_lines)).await {
                    Ok(()) => Ok(()),
                    Err(SendError::Client) => Err("write failed"),
                    // Only this message is affected: the client got -ERR
                    // instead of +OK and the session goes on.
                    Err(SendError::Unreadable(e)) => {
                        log::error!("{who} cannot read {name}: {e}");
                        Ok(())
                    }
                    // Part of the message is out; only ending the session
                    // tells the client it is incomplete.
                    Err(SendError::File(e)) => {
                        log::error!("{who} cannot read {name}: {e}");
                        Err("message file unreadable")
                    }
                }
            }
            Action::Update => {
                let held = lock.as_mut().expect("TRANSACTION holds the lock");
                if conversation.session().deleted().next().is_some() {
                    held.unindexed = None;
                }
                let dir = held.dir.clone();
                let ok = Box::pin(update(c, conversation.session(), dir, who)).await;
                conversation.update_done(ok);
                Ok(())
            }
            Action::Close(why) => Err(why),
        };
        // What the core wrote meanwhile (a login's answer) goes last.
        let _ = c.out.push_str(conversation.replies());
        conversation.replies().clear();
        std::mem::swap(&mut c.out, conversation.replies());
        c.count_refusals(conversation.session());
        if let Err(why) = result {
            return why;
        }
    }
}

/// Takes the mailbox after a login; the lock is held while the session is.
async fn log_in(
    c: &mut Connection,
    conversation: &mut Conversation,
    login: Login,
    user: &str,
    who: &str,
) -> Option<MailboxLock> {
    let failure = match login {
        Login::Failed => {
            log::warn!("{who} failed login for {user:?}");
            LoginFailure::BadCredentials
        }
        Login::Refused => {
            log::warn!("{who} login for {user:?} refused: too many failures");
            LoginFailure::TooManyFailures
        }
        Login::Ok(account) => match open_mailbox(&c.shared, &account).await {
            Ok((lock, messages)) => {
                c.seat.member();
                log::info!("{who} {account} logged in, {} messages", messages.len());
                conversation.login_succeeded(messages);
                return Some(lock);
            }
            Err(why) => {
                log::warn!("{who} {account}: {why}");
                why
            }
        },
    };
    conversation.login_failed(failure);
    None
}

/// Removes the deleted messages for good; `false` if that failed.
async fn update(c: &mut Connection, session: &mut Session, dir: PathBuf, who: &str) -> bool {
    let doomed: Vec<String> = session.deleted().map(str::to_owned).collect();
    let count = doomed.len();
    let freed = session.deleted_bytes();
    let mailbox = dir.clone();
    let result = smol::unblock(move || {
        maildir::delete_messages(disk::system(), &dir, doomed.iter().map(String::as_str))
    })
    .await;
    match result {
        Ok(()) => c.shared.store.remove_usage(&mailbox, freed),
        // Some may be gone, some not: count again next time.
        Err(_) => c.shared.store.recount_usage(mailbox).await,
    }
    if let Err(e) = &result {
        log::error!("{who} deleting messages failed: {e}");
    } else if count > 0 {
        log::info!("{who} deleted {count} messages");
    }
    result.is_ok()
}

/// Takes the mailbox for this session and lists it.
async fn open_mailbox(
    shared: &Rc<Context>,
    account: &Address,
) -> Result<(MailboxLock, Vec<Message>), LoginFailure> {
    let dir = shared.store.mailbox_dir(account);
    match shared.store.take_for_pop3(&dir).await {
        Ok(true) => {}
        Ok(false) => return Err(LoginFailure::InUse),
        Err(e) => {
            log::error!("cannot lock mailbox {}: {e}", dir.display());
            return Err(LoginFailure::Unavailable);
        }
    }
    let mut lock = MailboxLock {
        shared: shared.clone(),
        dir: dir.clone(),
        unindexed: None,
    };
    let now = std::time::SystemTime::now();
    match smol::unblock(move || index::read_or_list(&**disk::system(), &dir, now)).await {
        Ok((stored, _, unindexed)) => {
            lock.unindexed = unindexed;
            let messages = stored
                .into_iter()
                .map(|m| {
                    let uid = m.uid().into_owned();
                    Message::new(m.name, m.size, &uid)
                })
                .collect();
            Ok((lock, messages))
        }
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
