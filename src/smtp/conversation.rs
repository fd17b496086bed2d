//! The whole SMTP conversation of one connection as a sans-IO core: the
//! shell hands it the bytes it reads and the time, and it says what to do
//! next (smoltcp style): send the replies it wrote, read more (until
//! [`Conversation::poll_at`]), store a chunk of a message, report the end
//! of one, check a password, start TLS, answer a blocklist lookup, close.
//! It owns the line buffer, the DATA stream with its header scanners and
//! limits, the rule that input sent before a TLS handshake is dropped,
//! the greet delay and the command and DATA deadlines.

use super::data::{DataFacts, DataStream, Output};
use super::headers::Missing;
use super::session::{self, DataOutcome, Directory, Limits, Login, Security, Session};
use crate::auth::sasl::Credentials;
use crate::limits::{DATA_DEADLINE_FACTOR, READ_CHUNK, REPLY_BUFFER};
use crate::wire::line::LineBuffer;
use crate::wire::reply::{push, Replies, REPLY_HEADROOM};
use std::time::{Duration, Instant};

/// How long the conversation waits for the client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For each command line.
    pub command: Duration,
    /// Between reads of a message; the whole message gets
    /// [`DATA_DEADLINE_FACTOR`] times as long.
    pub data: Duration,
    /// Silence asked of the client before the greeting (zero: none).
    pub greet_delay: Duration,
}

/// What the listener, the client's address and the configuration decide
/// before the first byte.
#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    pub security: Security,
    pub timeouts: Timeouts,
    /// Ask whether the client's address is on a blocklist before greeting.
    pub check_blocklists: bool,
    /// Read To:/Cc: of strangers' mail for the spam recipient rule.
    pub scan_recipients: bool,
}

/// What the shell does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Write [`Conversation::replies`] to the client, then call
    /// [`Conversation::sent`].
    Send,
    /// Read into [`Conversation::input`] until [`Conversation::poll_at`],
    /// then call [`Conversation::received`] (or `timed_out`, `shutdown`).
    Read,
    /// Look the client's address up in the blocklists, then call
    /// [`Conversation::blocklisted`].
    CheckBlocklist,
    /// Run the TLS handshake, then call [`Conversation::tls_started`].
    /// `discarded` bytes sent before it were dropped.
    StartTls { discarded: usize },
    /// Check these credentials, then call [`Conversation::auth_done`].
    /// (Boxed: a password's room is needed only while it is checked.)
    Authenticate(Box<Credentials>),
    /// A message begins: open the spool, then call
    /// [`Conversation::data_opened`].
    DataStart,
    /// Append these bytes to the message, then give the buffer back with
    /// [`Conversation::recycle`].
    Store(Vec<u8>),
    /// The message was refused on the way in, or timed out: drop what was
    /// stored.
    Discard,
    /// The message ended: decide, store, then call
    /// [`Conversation::data_done`].
    DataEnd(Box<DataFacts>),
    /// Close the connection, for this reason.
    Close(&'static str),
}

/// How the shell should wait for input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Before the greeting: any byte is a refusal.
    Greeting,
    /// Waiting for a command; idle since the last one ended.
    Command { since: Instant },
    /// Inside a message.
    Data,
}

enum Mode {
    /// Nothing said yet.
    Connected,
    /// Waiting for the blocklist answer.
    Blocklist,
    /// Holding the greeting back until this time.
    Greeting {
        until: Instant,
    },
    Commands,
    /// Waiting for the shell to answer a request.
    Waiting,
    /// A message is streaming in.
    Data(Box<Message>),
    /// Closed; nothing more happens.
    Closed,
}

struct Message {
    stream: DataStream,
    /// When the last bytes came.
    last_input: Instant,
    /// The whole message must be in by then.
    deadline: Instant,
}

pub struct Conversation {
    session: Session,
    settings: Settings,
    mode: Mode,
    out: Replies,
    lines: LineBuffer,
    input: Box<[u8; READ_CHUNK]>,
    start: usize,
    end: usize,
    /// Decoded message bytes; kept between messages.
    chunk: Option<Box<[u8]>>,
    /// Rewritten message bytes on their way to the store.
    store: Vec<u8>,
    /// The current command must be complete by then.
    command_deadline: Instant,
    /// The shell's timer (or its admission) said the wait is over.
    expired: bool,
    /// Shutdown began: a message in flight may finish until then.
    stop_at: Option<Instant>,
    /// Done once the replies written so far are sent.
    next: Option<Action>,
}

impl Conversation {
    pub fn new(hostname: &str, settings: Settings, now: Instant) -> Self {
        let session =
            Session::before_greeting(hostname, settings.limits.clone(), settings.security);
        Conversation {
            session,
            command_deadline: now + settings.timeouts.command,
            settings,
            mode: Mode::Connected,
            out: Replies::new(),
            lines: LineBuffer::new(),
            input: Box::new([0; READ_CHUNK]),
            start: 0,
            end: 0,
            chunk: None,
            store: Vec::new(),
            expired: false,
            stop_at: None,
            next: None,
        }
    }

    /// The command-level state: who is logged in, the envelope.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Replies waiting to be sent.
    pub fn replies(&mut self) -> &mut Replies {
        &mut self.out
    }

    /// The replies were sent.
    pub fn sent(&mut self) {
        self.out.clear();
    }

    /// Where the shell reads to (asked for only once all input is used).
    pub fn input(&mut self) -> &mut [u8] {
        &mut self.input[..]
    }

    /// `n` bytes were read into [`Conversation::input`] at `now`.
    pub fn received(&mut self, n: usize, now: Instant) {
        self.start = 0;
        self.end = n;
        if let Mode::Data(message) = &mut self.mode {
            message.last_input = now;
        }
    }

    fn pending(&self) -> &[u8] {
        &self.input[self.start..self.end]
    }

    /// The wait ended without input: the current deadline is reached
    /// (the shell's timer fired, or the session was closed to make room).
    pub fn timed_out(&mut self) {
        self.expired = true;
    }

    /// How the shell should wait for input.
    pub fn reading(&self) -> Reading {
        match self.mode {
            Mode::Greeting { .. } => Reading::Greeting,
            Mode::Data(_) => Reading::Data,
            _ => Reading::Command {
                since: self
                    .command_deadline
                    .checked_sub(self.settings.timeouts.command)
                    .unwrap_or(self.command_deadline),
            },
        }
    }

    /// Whether a shutdown request should interrupt the wait for input.
    pub fn watches_shutdown(&self) -> bool {
        self.stop_at.is_none()
    }

    /// When [`Conversation::poll`] must run again even without input.
    pub fn poll_at(&self) -> Instant {
        match &self.mode {
            Mode::Greeting { until } => *until,
            Mode::Data(message) => {
                let idle = message.last_input + self.settings.timeouts.data;
                let end = idle.min(message.deadline);
                self.stop_at.map_or(end, |stop| end.min(stop))
            }
            _ => self.command_deadline,
        }
    }

    /// Shutdown was requested; a message in flight may finish until
    /// `grace_end`, anything else ends now.
    pub fn shutdown(&mut self, grace_end: Instant) {
        match self.mode {
            Mode::Data(_) => self.stop_at = Some(grace_end),
            Mode::Commands | Mode::Waiting => {
                push(
                    &mut self.out,
                    421,
                    Some("4.3.2"),
                    "Service shutting down, try again later",
                );
                self.close("shutdown");
            }
            _ => self.close("shutdown"),
        }
    }

    fn close(&mut self, why: &'static str) {
        self.mode = Mode::Waiting;
        self.next = Some(Action::Close(why));
    }

    /// Says what to do next at `now`; `dir` answers address questions.
    pub fn poll(&mut self, now: Instant, dir: &mut impl Directory) -> Action {
        if self.next.is_some() {
            if !self.out.is_empty() {
                return Action::Send;
            }
            let next = self.next.take().expect("checked");
            if matches!(next, Action::Close(_)) {
                self.mode = Mode::Closed;
            }
            return next;
        }
        match self.mode {
            Mode::Connected => self.connect(now),
            Mode::Blocklist | Mode::Waiting | Mode::Closed => Action::Read,
            Mode::Greeting { until } => self.greeting(now, until),
            Mode::Commands => self.commands(now, dir),
            Mode::Data(_) => self.data(now),
        }
    }

    fn connect(&mut self, now: Instant) -> Action {
        if self.settings.check_blocklists {
            self.mode = Mode::Blocklist;
            return Action::CheckBlocklist;
        }
        self.hold_greeting(now)
    }

    /// The blocklist answer: the first list naming the client, if any.
    pub fn blocklisted(&mut self, listed: Option<(&str, std::net::IpAddr)>, now: Instant) {
        match listed {
            Some((zone, ip)) => {
                let mut text = String::new();
                let _ = std::fmt::Write::write_fmt(
                    &mut text,
                    format_args!("Service unavailable; client [{ip}] blocked using {zone}"),
                );
                push(&mut self.out, 554, Some("5.7.1"), &text);
                self.close("listed in a blocklist");
            }
            None => {
                self.mode = Mode::Connected;
                self.settings.check_blocklists = false;
                self.hold_greeting(now);
            }
        }
    }

    fn hold_greeting(&mut self, now: Instant) -> Action {
        let delay = self.settings.timeouts.greet_delay;
        if delay.is_zero() {
            return self.greet(now);
        }
        self.mode = Mode::Greeting { until: now + delay };
        Action::Read
    }

    fn greeting(&mut self, now: Instant, until: Instant) -> Action {
        if !self.pending().is_empty() {
            self.start = self.end;
            push(
                &mut self.out,
                554,
                Some("5.5.1"),
                "Protocol error: talking before the greeting",
            );
            self.close("talked before the greeting");
            return Action::Send;
        }
        if std::mem::take(&mut self.expired) || now >= until {
            return self.greet(now);
        }
        Action::Read
    }

    fn greet(&mut self, now: Instant) -> Action {
        self.session.greet(&mut self.out);
        self.mode = Mode::Commands;
        self.command_deadline = now + self.settings.timeouts.command;
        Action::Send
    }

    fn commands(&mut self, now: Instant, dir: &mut impl Directory) -> Action {
        while !self.pending().is_empty() {
            self.lines.expect_sasl(self.session.awaiting_sasl());
            let (used, event) = self.lines.push(&self.input[self.start..self.end]);
            self.start += used;
            let Some(event) = event else { break };
            self.command_deadline = now + self.settings.timeouts.command;
            match self.session.handle(event, dir, &mut self.out) {
                session::Step::Continue => {}
                session::Step::Close => {
                    self.close("session ended");
                    return Action::Send;
                }
                session::Step::StartTls => return self.start_tls(),
                session::Step::Authenticate(credentials) => {
                    self.mode = Mode::Waiting;
                    return Action::Authenticate(Box::new(credentials));
                }
                session::Step::ReceiveData => {
                    self.mode = Mode::Waiting;
                    self.next = Some(Action::DataStart);
                    return Action::Send;
                }
            }
            if self.out.len() > REPLY_BUFFER - REPLY_HEADROOM {
                return Action::Send;
            }
        }
        if !self.out.is_empty() {
            return Action::Send;
        }
        if std::mem::take(&mut self.expired) || now >= self.command_deadline {
            push(
                &mut self.out,
                421,
                Some("4.4.2"),
                "Timeout, closing connection",
            );
            self.close("command timeout");
            return Action::Send;
        }
        Action::Read
    }

    /// Anything pipelined behind STARTTLS came in the clear and must not
    /// count as said inside TLS (RFC 3207 §4.2; the STARTTLS
    /// command-injection attacks).
    fn start_tls(&mut self) -> Action {
        let discarded = self.pending().len();
        self.start = self.end;
        self.lines = LineBuffer::new();
        self.mode = Mode::Waiting;
        self.next = Some(Action::StartTls { discarded });
        Action::Send
    }

    /// The handshake succeeded.
    pub fn tls_started(&mut self) {
        self.session.tls_started();
        self.mode = Mode::Commands;
    }

    /// The password check ended.
    pub fn auth_done(&mut self, login: Login) {
        self.mode = Mode::Commands;
        if self.session.auth_done(login, &mut self.out) == session::Step::Close {
            self.close("too many errors");
        }
    }

    /// The spool is open; `missing`: header fields to add to members' mail.
    pub fn data_opened(&mut self, missing: Option<Missing>, now: Instant) {
        let data = self.settings.timeouts.data;
        // Members' To:/Cc: are read too: their display names teach the
        // member's address book (the spam rule never judges members).
        let scan = self.settings.scan_recipients;
        self.mode = Mode::Data(Box::new(Message {
            stream: DataStream::new(
                missing,
                self.session.hostname(),
                scan,
                self.session.max_message_size(),
            ),
            last_input: now,
            deadline: now + DATA_DEADLINE_FACTOR * data,
        }));
    }

    /// A buffer from [`Action::Store`] comes back for the next chunk.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        self.store = buffer;
    }

    fn data(&mut self, now: Instant) -> Action {
        let Mode::Data(message) = &mut self.mode else {
            unreachable!("called in DATA only")
        };
        let chunk = self
            .chunk
            .get_or_insert_with(|| vec![0; READ_CHUNK].into_boxed_slice());
        loop {
            let pending = &self.input[self.start..self.end];
            if pending.is_empty() && !message.stream.finished() {
                break;
            }
            let (used, output) = message.stream.feed(pending, chunk, &mut self.store);
            self.start += used;
            match output {
                Output::NeedInput => {}
                Output::Store => return Action::Store(std::mem::take(&mut self.store)),
                Output::Refused => return Action::Discard,
                Output::Ended => {
                    let facts = message.stream.facts();
                    self.mode = Mode::Waiting;
                    return Action::DataEnd(Box::new(facts));
                }
            }
        }
        let expired = std::mem::take(&mut self.expired);
        if !expired && now < self.poll_at() {
            return Action::Read;
        }
        let text = if self.stop_at.is_some() {
            "Service shutting down, message not accepted"
        } else {
            "Timeout waiting for data"
        };
        push(&mut self.out, 421, Some("4.4.2"), text);
        self.close("data timeout");
        // Gone from the spool before the client hears of it.
        Action::Discard
    }

    /// How storing the message ended; answers the client.
    pub fn data_done(&mut self, outcome: DataOutcome, now: Instant) {
        self.session.data_done(outcome, &mut self.out);
        self.mode = Mode::Commands;
        self.command_deadline = now + self.settings.timeouts.command;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::command::RcptTo;
    use crate::smtp::session::RcptVerdict;
    use crate::wire::address::Address;

    /// Everyone at localhost exists.
    struct Local;

    impl Directory for Local {
        fn lookup(&mut self, rcpt: &RcptTo) -> RcptVerdict {
            match rcpt {
                RcptTo::Mailbox(a) if a.domain() == "localhost" => RcptVerdict::Local(a.clone()),
                RcptTo::Mailbox(_) => RcptVerdict::Remote,
                RcptTo::Postmaster => {
                    RcptVerdict::Local(Address::new("postmaster", "localhost").unwrap())
                }
            }
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    fn settings() -> Settings {
        Settings {
            limits: Limits {
                max_message_size: 2000,
                max_recipients: 5,
                max_errors: 10,
            },
            security: Security {
                starttls: true,
                ..Default::default()
            },
            timeouts: Timeouts {
                command: 60 * SECOND,
                data: 100 * SECOND,
                greet_delay: Duration::ZERO,
            },
            check_blocklists: false,
            scan_recipients: true,
        }
    }

    /// A shell that only records: replies sent, bytes stored, messages.
    struct Shell {
        c: Conversation,
        now: Instant,
        said: String,
        stored: Vec<u8>,
        discarded: bool,
        ends: Vec<DataFacts>,
        closed: Option<&'static str>,
        tls: Option<usize>,
    }

    impl Shell {
        fn new(settings: Settings) -> Self {
            let now = Instant::now();
            Shell {
                c: Conversation::new("mx.test", settings, now),
                now,
                said: String::new(),
                stored: Vec::new(),
                discarded: false,
                ends: Vec::new(),
                closed: None,
                tls: None,
            }
        }

        /// Runs until the core wants input (or closes).
        fn run(&mut self) {
            while self.closed.is_none() {
                match self.c.poll(self.now, &mut Local) {
                    Action::Send => {
                        self.said.push_str(self.c.replies());
                        self.c.sent();
                    }
                    Action::Read | Action::CheckBlocklist => return,
                    Action::StartTls { discarded } => {
                        self.tls = Some(discarded);
                        self.c.tls_started();
                    }
                    Action::Authenticate(_) => self.c.auth_done(Login::Failed),
                    Action::DataStart => self.c.data_opened(None, self.now),
                    Action::Store(bytes) => {
                        self.stored.extend_from_slice(&bytes);
                        self.c.recycle(bytes);
                    }
                    Action::Discard => {
                        self.discarded = true;
                        self.stored.clear();
                    }
                    Action::DataEnd(facts) => {
                        let outcome = match facts.refused {
                            Some(super::super::data::Refused::TooBig) => DataOutcome::TooBig,
                            Some(_) => DataOutcome::LineTooLong,
                            None => DataOutcome::Stored { id: "m1".into() },
                        };
                        self.ends.push(*facts);
                        self.c.data_done(outcome, self.now);
                    }
                    Action::Close(why) => self.closed = Some(why),
                }
            }
        }

        /// Sends `bytes` one at a time, as a slow client would.
        fn drip(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.c.input()[0] = b;
                self.c.received(1, self.now);
                self.run();
            }
        }

        fn send(&mut self, bytes: &[u8]) {
            self.c.input()[..bytes.len()].copy_from_slice(bytes);
            self.c.received(bytes.len(), self.now);
            self.run();
        }

        /// Lets time pass up to the core's next deadline.
        fn wait(&mut self) {
            self.now = self.c.poll_at();
            self.run();
        }

        fn take(&mut self) -> String {
            std::mem::take(&mut self.said)
        }
    }

    const ENVELOPE: &[u8] = b"EHLO c\r\nMAIL FROM:<x@y.test>\r\nRCPT TO:<a@localhost>\r\nDATA\r\n";

    #[test]
    fn data_byte_by_byte_is_stored_and_pipelining_goes_on() {
        let mut s = Shell::new(settings());
        s.run();
        s.drip(ENVELOPE);
        assert!(s
            .take()
            .ends_with("354 Start mail input; end with <CRLF>.<CRLF>\r\n"));
        s.drip(
            b"From: <x@y.test>\r\nTo: a@localhost, b@z.test\r\n\r\n..dot\nbare\r\n.\r\nNOOP\r\n",
        );
        assert_eq!(
            s.stored,
            b"From: <x@y.test>\r\nTo: a@localhost, b@z.test\r\n\r\n.dot\r\nbare\r\n"
        );
        let facts = &s.ends[0];
        assert_eq!(facts.from_header, Ok(vec!["x@y.test".to_string()]));
        assert_eq!(facts.listed, ["a@localhost", "b@z.test"]);
        assert_eq!(facts.size, s.stored.len() as u64);
        assert_eq!(s.take(), "250 2.0.0 OK queued as m1\r\n250 2.0.0 OK\r\n");
    }

    #[test]
    fn too_big_and_too_long_lines_are_refused() {
        let mut s = Shell::new(settings());
        s.run();
        s.send(ENVELOPE);
        s.send(&[b'x'; 1500]);
        s.send(b"\r\n.\r\n");
        assert!(s.discarded && s.stored.is_empty());
        assert!(s
            .take()
            .ends_with("554 5.6.0 Line too long (over 998 octets), message not accepted\r\n"));
        let mut s = Shell::new(settings());
        s.run();
        s.send(ENVELOPE);
        // Bigger than a chunk: refused while it streams in.
        for _ in 0..400 {
            s.send(&[b'y'; 98]);
            s.send(b"\r\n");
        }
        assert!(s.discarded && s.stored.is_empty());
        s.send(b".\r\n");
        assert!(s.discarded && s.stored.is_empty());
        assert!(s
            .take()
            .ends_with("552 5.3.4 Message size exceeds fixed maximum message size\r\n"));
    }

    #[test]
    fn greeting_waits_and_early_talkers_are_refused() {
        let mut greet = settings();
        greet.timeouts.greet_delay = 5 * SECOND;
        let mut s = Shell::new(greet.clone());
        s.run();
        assert_eq!(s.c.reading(), Reading::Greeting);
        assert_eq!(s.c.poll_at(), s.now + 5 * SECOND);
        assert!(s.take().is_empty());
        s.wait();
        assert_eq!(s.take(), "220 mx.test ESMTP Postbox\r\n");
        let mut s = Shell::new(greet);
        s.run();
        s.now += SECOND;
        s.send(b"EHLO spam\r\n");
        assert!(s.take().starts_with("554 5.5.1"));
        assert_eq!(s.closed, Some("talked before the greeting"));
    }

    #[test]
    fn blocklisted_clients_are_refused_before_the_greeting() {
        let mut listed = settings();
        listed.check_blocklists = true;
        let mut s = Shell::new(listed.clone());
        assert_eq!(s.c.poll(s.now, &mut Local), Action::CheckBlocklist);
        s.c.blocklisted(Some(("bl.test", [192, 0, 2, 1].into())), s.now);
        s.run();
        assert_eq!(
            s.take(),
            "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using bl.test\r\n"
        );
        assert!(s.closed.is_some());
        let mut s = Shell::new(listed);
        assert_eq!(s.c.poll(s.now, &mut Local), Action::CheckBlocklist);
        s.c.blocklisted(None, s.now);
        s.run();
        assert!(s.take().starts_with("220 "));
    }

    #[test]
    fn a_silent_client_times_out_and_commands_restart_the_clock() {
        let mut s = Shell::new(settings());
        s.run();
        s.take();
        s.now += 50 * SECOND;
        s.send(b"NOOP\r\n");
        assert_eq!(s.c.poll_at(), s.now + 60 * SECOND);
        // A partial line does not count as a command.
        s.now += 30 * SECOND;
        s.send(b"NO");
        s.wait();
        assert!(s
            .take()
            .ends_with("421 4.4.2 Timeout, closing connection\r\n"));
        assert_eq!(s.closed, Some("command timeout"));
    }

    #[test]
    fn data_times_out_when_idle_and_when_dripped_too_long() {
        let mut s = Shell::new(settings());
        s.run();
        s.send(ENVELOPE);
        s.take();
        s.now += 99 * SECOND;
        s.send(b"a");
        assert_eq!(s.c.poll_at(), s.now + 100 * SECOND);
        s.wait();
        assert_eq!(s.take(), "421 4.4.2 Timeout waiting for data\r\n");
        assert_eq!(s.closed, Some("data timeout"));
        // A byte every while keeps it alive, but not past twice the timeout.
        let mut s = Shell::new(settings());
        s.run();
        s.send(ENVELOPE);
        let start = s.now;
        while s.closed.is_none() {
            s.now += 50 * SECOND;
            s.send(b"a");
        }
        assert_eq!(s.now - start, 200 * SECOND);
    }

    #[test]
    fn shutdown_lets_a_message_finish_within_the_grace() {
        let mut s = Shell::new(settings());
        s.run();
        s.send(ENVELOPE);
        s.take();
        s.c.shutdown(s.now + 10 * SECOND);
        assert!(!s.c.watches_shutdown());
        assert_eq!(s.c.poll_at(), s.now + 10 * SECOND);
        s.send(b"hi\r\n.\r\n");
        assert!(s.take().starts_with("250 2.0.0 OK queued"));
        let mut s = Shell::new(settings());
        s.run();
        s.send(ENVELOPE);
        s.take();
        s.c.shutdown(s.now + 10 * SECOND);
        s.wait();
        assert_eq!(
            s.take(),
            "421 4.4.2 Service shutting down, message not accepted\r\n"
        );
        // Between commands, shutdown ends the session at once.
        let mut s = Shell::new(settings());
        s.run();
        s.take();
        s.c.shutdown(s.now);
        s.run();
        assert!(s.take().starts_with("421 4.3.2"));
    }

    #[test]
    fn input_pipelined_behind_starttls_is_dropped() {
        let mut s = Shell::new(settings());
        s.run();
        s.send(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<x@y.test>\r\n");
        assert_eq!(s.tls, Some(22));
        assert!(s.take().ends_with("220 2.0.0 Ready to start TLS\r\n"));
        s.send(b"MAIL FROM:<x@y.test>\r\n");
        assert!(s.take().starts_with("503 5.5.1"), "EHLO is needed again");
    }
}
