//! The whole POP3 conversation of one connection as a sans-IO core: the
//! shell hands it the bytes it reads and the time, and it says what to do
//! next: send or queue the replies it wrote, read more (until
//! [`Conversation::poll_at`]), check a password, list, send a message,
//! remove the deleted ones, start TLS, close. It owns the line buffer,
//! the rule that input sent before a TLS handshake is dropped, and the
//! idle deadline.

use super::session::{Listing, LoginFailure, Message, Replies, Security, Session, Step};
use crate::auth::sasl::{Name, Secret};
use crate::limits::{READ_CHUNK, REPLY_BUFFER};
use crate::wire::line::LineBuffer;
use std::time::{Duration, Instant};

/// What the shell does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Write everything queued and [`Conversation::replies`] now.
    Flush,
    /// Move the replies behind the queued output; write once a batch is full.
    Queue,
    /// Read into [`Conversation::input`] until [`Conversation::poll_at`],
    /// then call [`Conversation::received`] (or `timed_out`, `shutdown`).
    Read,
    /// Run the TLS handshake, then call [`Conversation::tls_started`].
    /// `discarded` bytes sent before it were dropped.
    StartTls { discarded: usize },
    /// Check these credentials and take the mailbox, then call
    /// [`Conversation::login_succeeded`] or [`Conversation::login_failed`].
    Authenticate { user: Name, password: Secret },
    /// The `+OK` line is written; send [`Session::listing_line`] for every
    /// message, then `.CRLF`.
    Listing(Listing),
    /// The `+OK` line is written; send message `index`, stuffed, whole or
    /// cut to `body_lines` (TOP), then `.CRLF`.
    SendMessage {
        index: usize,
        body_lines: Option<u32>,
    },
    /// Remove [`Session::deleted`] for good, then call
    /// [`Conversation::update_done`]; the session ends.
    Update,
    /// Close the connection, for this reason.
    Close(&'static str),
}

pub struct Conversation {
    session: Session,
    out: Replies,
    lines: LineBuffer,
    input: Box<[u8; READ_CHUNK]>,
    start: usize,
    end: usize,
    idle: Duration,
    /// The current command must be complete by then.
    deadline: Instant,
    /// The shell's timer (or its admission) said the wait is over.
    expired: bool,
    /// Done once the replies written so far are sent.
    next: Option<Action>,
    closed: bool,
}

impl Conversation {
    /// Starts with the greeting; `idle`: how long a command may take.
    pub fn new(
        hostname: &str,
        max_errors: u32,
        security: Security,
        idle: Duration,
        now: Instant,
    ) -> Self {
        let mut out = Replies::new();
        let session = Session::new(hostname, max_errors, security, &mut out);
        Conversation {
            session,
            out,
            lines: LineBuffer::new(),
            input: Box::new([0; READ_CHUNK]),
            start: 0,
            end: 0,
            idle,
            deadline: now + idle,
            expired: false,
            next: None,
            closed: false,
        }
    }

    /// The command-level state: the mailbox listing, the deletions.
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Replies waiting to be queued or sent.
    pub fn replies(&mut self) -> &mut Replies {
        &mut self.out
    }

    /// Where the shell reads to (asked for only once all input is used).
    pub fn input(&mut self) -> &mut [u8] {
        &mut self.input[..]
    }

    /// `n` bytes were read into [`Conversation::input`].
    pub fn received(&mut self, n: usize) {
        self.start = 0;
        self.end = n;
    }

    /// The wait ended without input: the deadline is reached (the
    /// shell's timer fired, or the session was closed to make room).
    pub fn timed_out(&mut self) {
        self.expired = true;
    }

    /// When [`Conversation::poll`] must run again even without input.
    pub fn poll_at(&self) -> Instant {
        self.deadline
    }

    /// Since when the session is idle: the end of its last command.
    pub fn idle_since(&self) -> Instant {
        self.deadline
            .checked_sub(self.idle)
            .unwrap_or(self.deadline)
    }

    /// Shutdown was requested: the session ends at once.
    pub fn shutdown(&mut self) {
        let _ = self
            .out
            .push_str("-ERR [SYS/TEMP] Server shutting down\r\n");
        self.close("shutdown");
    }

    fn close(&mut self, why: &'static str) {
        self.next = Some(Action::Close(why));
    }

    /// Says what to do next at `now`.
    pub fn poll(&mut self, now: Instant) -> Action {
        if self.closed {
            return Action::Close("closed");
        }
        if let Some(next) = self.next.take() {
            if !self.out.is_empty() {
                self.next = Some(next);
                return Action::Flush;
            }
            self.closed = matches!(next, Action::Close(_));
            return next;
        }
        while self.start < self.end {
            let (used, event) = self.lines.push(&self.input[self.start..self.end]);
            self.start += used;
            let Some(event) = event else { break };
            self.deadline = now + self.idle;
            match self.session.handle(event, &mut self.out) {
                Step::Continue => {}
                Step::Close => {
                    self.close("session ended");
                    return Action::Flush;
                }
                Step::StartTls => return self.start_tls(),
                Step::Authenticate { user, password } => {
                    return Action::Authenticate { user, password }
                }
                Step::Listing(kind) => return Action::Listing(kind),
                Step::SendMessage { index, body_lines } => {
                    return Action::SendMessage { index, body_lines }
                }
                Step::Update => return Action::Update,
            }
            if self.out.len() > REPLY_BUFFER / 2 {
                return Action::Queue;
            }
        }
        if !self.out.is_empty() {
            return Action::Flush;
        }
        if std::mem::take(&mut self.expired) || now >= self.deadline {
            let _ = self.out.push_str("-ERR Autologout; idle for too long\r\n");
            self.close("timeout");
            return Action::Flush;
        }
        Action::Read
    }

    /// Commands pipelined behind STLS came in the clear: they are dropped.
    fn start_tls(&mut self) -> Action {
        let discarded = self.end - self.start;
        self.start = self.end;
        self.lines = LineBuffer::new();
        self.next = Some(Action::StartTls { discarded });
        Action::Flush
    }

    /// The handshake succeeded.
    pub fn tls_started(&mut self) {
        self.session.tls_started();
    }

    /// The password was right and the mailbox is ours.
    pub fn login_succeeded(&mut self, messages: Vec<Message>) {
        self.session.login_succeeded(messages, &mut self.out);
    }

    pub fn login_failed(&mut self, why: LoginFailure) {
        self.session.login_failed(why, &mut self.out);
    }

    /// The deletions are done (or failed); the session ends.
    pub fn update_done(&mut self, ok: bool) {
        self.session.update_done(ok, &mut self.out);
        self.close("session ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn start(now: Instant) -> Conversation {
        let security = Security {
            stls: true,
            tls: false,
            plaintext_login: true,
        };
        Conversation::new("mx.test", 10, security, 10 * MINUTE, now)
    }

    /// Runs until input is wanted; returns what was written and whether
    /// the conversation closed.
    fn run(c: &mut Conversation, now: Instant) -> (String, Option<&'static str>) {
        let mut said = String::new();
        loop {
            match c.poll(now) {
                Action::Flush | Action::Queue => {
                    said.push_str(c.replies());
                    c.replies().clear();
                }
                Action::Read => return (said, None),
                Action::Close(why) => return (said, Some(why)),
                Action::StartTls { discarded } => {
                    said.push_str(&format!("[tls, {discarded} dropped]"));
                    c.tls_started();
                }
                other => panic!("{other:?}"),
            }
        }
    }

    fn send(c: &mut Conversation, now: Instant, bytes: &[u8]) -> (String, Option<&'static str>) {
        c.input()[..bytes.len()].copy_from_slice(bytes);
        c.received(bytes.len());
        run(c, now)
    }

    #[test]
    fn an_idle_client_is_logged_out_and_commands_restart_the_clock() {
        let t0 = Instant::now();
        let mut c = start(t0);
        assert!(run(&mut c, t0).0.starts_with("+OK mx.test"));
        let t1 = t0 + 9 * MINUTE;
        send(&mut c, t1, b"NOOP\r\n");
        assert_eq!(c.poll_at(), t1 + 10 * MINUTE);
        assert_eq!(c.idle_since(), t1);
        // Bytes that make no whole command do not count.
        send(&mut c, t1 + 5 * MINUTE, b"NO");
        let deadline = c.poll_at();
        let (said, closed) = run(&mut c, deadline);
        assert_eq!(said, "-ERR Autologout; idle for too long\r\n");
        assert_eq!(closed, Some("timeout"));
    }

    #[test]
    fn shutdown_ends_the_session() {
        let t0 = Instant::now();
        let mut c = start(t0);
        run(&mut c, t0);
        c.shutdown();
        let (said, closed) = run(&mut c, t0);
        assert_eq!(said, "-ERR [SYS/TEMP] Server shutting down\r\n");
        assert_eq!(closed, Some("shutdown"));
    }

    #[test]
    fn commands_pipelined_behind_stls_are_dropped() {
        let t0 = Instant::now();
        let mut c = start(t0);
        run(&mut c, t0);
        let (said, _) = send(&mut c, t0, b"STLS\r\nUSER alice\r\n");
        assert_eq!(said, "+OK Begin TLS negotiation\r\n[tls, 12 dropped]");
        let (said, _) = send(&mut c, t0, b"PASS x\r\n");
        assert!(said.starts_with("-ERR"), "{said}");
    }

    #[test]
    fn a_login_is_asked_of_the_shell() {
        let t0 = Instant::now();
        let mut c = start(t0);
        run(&mut c, t0);
        send(&mut c, t0, b"USER alice\r\n");
        c.input()[..13].copy_from_slice(b"PASS secret\r\n");
        c.received(13);
        assert!(matches!(c.poll(t0), Action::Authenticate { .. }));
        c.login_succeeded(vec![Message::new("new/1.a,S=10".into(), 10, "1.a,S=10")]);
        assert_eq!(
            run(&mut c, t0).0,
            "+OK Logged in, 1 messages (10 octets)\r\n"
        );
    }
}
