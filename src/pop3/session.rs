//! The POP3 session as a state machine (RFC 1939 AUTHORIZATION,
//! TRANSACTION and UPDATE states), free of sockets and files. The server
//! checks passwords, streams message files and removes deleted ones when
//! the session asks it to.

use super::command::{self, Command, ParseError};
use crate::auth::sasl::{self, Name, Secret};
use crate::wire::line::LineEvent;
use core::fmt::Write;

/// Replies waiting to be sent.
pub type Replies = heapless::String<{ crate::limits::REPLY_BUFFER }>;

/// One message of the mailbox, as the session lists and sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Where it is, relative to the mailbox.
    pub name: Box<str>,
    pub size: u64,
    uid: Uid,
}

/// The unique id (UIDL): usually part of the name, kept as its place.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Uid {
    Within(u32, u32),
    Own(Box<str>),
}

impl Message {
    pub fn new(name: Box<str>, size: u64, uid: &str) -> Self {
        let uid = match name.find(uid) {
            Some(at) => Uid::Within(at as u32, (at + uid.len()) as u32),
            None => Uid::Own(uid.into()),
        };
        Message { name, size, uid }
    }

    pub fn uid(&self) -> &str {
        match &self.uid {
            Uid::Within(start, end) => &self.name[*start as usize..*end as usize],
            Uid::Own(uid) => uid,
        }
    }
}

/// What the listener and the client's address allow.
#[derive(Debug, Clone, Copy, Default)]
pub struct Security {
    /// STLS may be offered (RFC 2595).
    pub stls: bool,
    /// The connection is encrypted.
    pub tls: bool,
    /// Passwords may cross this connection without TLS (loopback, if allowed).
    pub plaintext_login: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Continue,
    /// Check these credentials, then call [`Session::login_succeeded`] or
    /// [`Session::login_failed`].
    Authenticate {
        user: Name,
        password: Secret,
    },
    /// The `+OK` line is written; send message `index` (0-based), stuffed,
    /// whole or cut to `body_lines` (TOP), then `.CRLF`.
    SendMessage {
        index: usize,
        body_lines: Option<u32>,
    },
    /// The `+OK` line is written; send [`Session::listing_line`] for every
    /// message, then `.CRLF`.
    Listing(Listing),
    /// QUIT in TRANSACTION: remove [`Session::deleted`] for good, then call
    /// [`Session::update_done`]; the session ends.
    Update,
    /// `+OK` was sent: drop any input read so far, run the TLS handshake,
    /// then call [`Session::tls_started`].
    StartTls,
    /// Send the replies and close.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Sizes,
    Uids,
}

/// Why a login did not lead to the TRANSACTION state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    BadCredentials,
    InUse,
    /// The mailbox could not be read.
    Unavailable,
    /// Too many failed logins from this address lately.
    TooManyFailures,
}

/// For the log, which a person reads.
impl std::fmt::Display for LoginFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoginFailure::BadCredentials => "wrong user name or password",
            LoginFailure::InUse => "the mailbox is in use by another session",
            LoginFailure::Unavailable => "the mailbox cannot be read",
            LoginFailure::TooManyFailures => "too many failed logins from this address",
        })
    }
}

enum State {
    Authorization {
        user: Option<Name>,
    },
    /// `AUTH PLAIN` sent without an initial response; the next line is it.
    AuthContinuation,
    /// Waiting for the server to check a password.
    Checking,
    Transaction,
    Done,
}

pub struct Session {
    security: Security,
    state: State,
    messages: Vec<Message>,
    deleted: Vec<bool>,
    errors: u32,
    max_errors: u32,
    /// Response codes of the -ERR replies written since the last
    /// [`Session::take_refusals`] (for the statistics).
    refusals: Vec<Option<&'static str>>,
}

impl Session {
    pub fn new(hostname: &str, max_errors: u32, security: Security, out: &mut Replies) -> Self {
        let _ = write!(
            out,
            "+OK {} Postbox POP3 ready\r\n",
            &hostname[..hostname.len().min(255)]
        );
        Session {
            security,
            state: State::Authorization { user: None },
            messages: Vec::new(),
            deleted: Vec::new(),
            errors: 0,
            max_errors,
            refusals: Vec::new(),
        }
    }

    fn err(&mut self, out: &mut Replies, text: &str) -> Step {
        self.err_coded(out, None, text)
    }

    /// A client error; `code` is the response code (RFC 2449) before `text`.
    fn err_coded(&mut self, out: &mut Replies, code: Option<&'static str>, text: &str) -> Step {
        self.errors += 1;
        if self.errors >= self.max_errors {
            self.refuse(out, None, "Too many errors, closing connection");
            self.state = State::Done;
            return Step::Close;
        }
        self.refuse(out, code, text);
        Step::Continue
    }

    /// Writes an -ERR reply and notes it as a refusal.
    fn refuse(&mut self, out: &mut Replies, code: Option<&'static str>, text: &str) {
        self.refusals.push(code);
        let _ = match code {
            Some(code) => write!(out, "-ERR [{code}] {text}\r\n"),
            None => write!(out, "-ERR {text}\r\n"),
        };
    }

    /// The response codes of the -ERR replies written since the last call.
    pub fn take_refusals(&mut self) -> Vec<Option<&'static str>> {
        std::mem::take(&mut self.refusals)
    }

    fn ok(out: &mut Replies, text: &str) -> Step {
        let _ = write!(out, "+OK {text}\r\n");
        Step::Continue
    }

    pub fn handle(&mut self, event: LineEvent<'_>, out: &mut Replies) -> Step {
        let line = match event {
            LineEvent::Line(line) => line,
            LineEvent::TooLong => return self.err(out, "Line too long"),
        };
        if matches!(self.state, State::AuthContinuation) {
            self.state = State::Authorization { user: None };
            return self.sasl_plain(line, out);
        }
        let command = match command::parse(line) {
            Ok(c) => c,
            Err(ParseError::Unknown) => return self.err(out, "Unknown command"),
            Err(ParseError::Syntax(why)) => return self.err(out, why),
        };
        match command {
            Command::Capa => {
                self.capabilities(out);
                return Step::Continue;
            }
            Command::Stls => return self.stls(out),
            Command::Noop if matches!(self.state, State::Transaction) => return Self::ok(out, ""),
            Command::Quit => return self.quit(out),
            _ => {}
        }
        match self.state {
            State::Authorization { .. } => self.authorization(command, out),
            State::Transaction => self.transaction(command, out),
            _ => self.err(out, "Command not valid now"),
        }
    }

    fn login_allowed(&self) -> bool {
        self.security.tls || self.security.plaintext_login
    }

    fn capabilities(&self, out: &mut Replies) {
        let _ = out.push_str("+OK Capability list follows\r\nTOP\r\nUIDL\r\n");
        if matches!(self.state, State::Authorization { .. }) {
            if self.login_allowed() {
                let _ = out.push_str("USER\r\nSASL PLAIN\r\n");
            }
            if self.security.stls && !self.security.tls {
                let _ = out.push_str("STLS\r\n");
            }
        }
        let _ = out.push_str(
            "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION Postbox\r\n.\r\n",
        );
    }

    fn stls(&mut self, out: &mut Replies) -> Step {
        if self.security.tls {
            return self.err(out, "Command not permitted when TLS active");
        }
        if !self.security.stls {
            return self.err(out, "STLS not available");
        }
        if !matches!(self.state, State::Authorization { .. }) {
            return self.err(out, "STLS only before login");
        }
        let _ = out.push_str("+OK Begin TLS negotiation\r\n");
        Step::StartTls
    }

    /// The handshake finished: forget what was said before it (RFC 2595 §4).
    pub fn tls_started(&mut self) {
        self.security.tls = true;
        self.state = State::Authorization { user: None };
    }

    fn authorization(&mut self, command: Command<'_>, out: &mut Replies) -> Step {
        if matches!(
            command,
            Command::User(_) | Command::Pass(_) | Command::Auth { .. }
        ) && !self.login_allowed()
        {
            return self.err_coded(
                out,
                Some("AUTH"),
                "Plaintext authentication disallowed on non-secure connections; use STLS",
            );
        }
        match command {
            Command::User(name) => {
                let mut user = Name::new();
                if user.push_str(name).is_err() {
                    return self.err(out, "User name too long");
                }
                self.state = State::Authorization { user: Some(user) };
                Self::ok(out, "Send PASS")
            }
            Command::Pass(password) => {
                let State::Authorization { user: Some(user) } = &self.state else {
                    return self.err(out, "Send USER first");
                };
                let user = user.clone();
                self.check(user, password.as_bytes(), out)
            }
            Command::Auth { mechanism, initial } => {
                if !mechanism.eq_ignore_ascii_case("PLAIN") {
                    return self.err(out, "Unsupported authentication mechanism");
                }
                match initial {
                    Some(response) => self.sasl_plain(response.as_bytes(), out),
                    None => {
                        self.state = State::AuthContinuation;
                        let _ = out.push_str("+ \r\n");
                        Step::Continue
                    }
                }
            }
            _ => self.err(out, "Not logged in"),
        }
    }

    fn sasl_plain(&mut self, response: &[u8], out: &mut Replies) -> Step {
        match sasl::decode_plain(response) {
            Ok(c) => {
                self.state = State::Checking;
                Step::Authenticate {
                    user: c.user,
                    password: c.password,
                }
            }
            Err(e) => self.err_coded(out, Some("AUTH"), e.text()),
        }
    }

    fn check(&mut self, user: Name, password: &[u8], out: &mut Replies) -> Step {
        let mut secret = Secret::new();
        match std::str::from_utf8(password) {
            Ok(p) if secret.push_str(p).is_ok() => {}
            _ => {
                self.state = State::Checking;
                self.login_failed(LoginFailure::BadCredentials, out);
                return Step::Continue;
            }
        }
        self.state = State::Checking;
        Step::Authenticate {
            user,
            password: secret,
        }
    }

    /// The password was right and the mailbox is ours: enter TRANSACTION.
    pub fn login_succeeded(&mut self, messages: Vec<Message>, out: &mut Replies) {
        self.deleted = vec![false; messages.len()];
        self.messages = messages;
        self.state = State::Transaction;
        let (count, size) = self.totals();
        let _ = write!(out, "+OK Logged in, {count} messages ({size} octets)\r\n");
    }

    pub fn login_failed(&mut self, why: LoginFailure, out: &mut Replies) {
        self.state = State::Authorization { user: None };
        self.errors += 1;
        let (code, text) = match why {
            LoginFailure::BadCredentials => ("AUTH", "Authentication failed"),
            LoginFailure::InUse => ("IN-USE", "Mailbox is in use by another session"),
            LoginFailure::Unavailable => ("SYS/TEMP", "Mailbox unavailable, try again later"),
            LoginFailure::TooManyFailures => (
                "SYS/TEMP",
                "Too many failed logins from your address, try again later",
            ),
        };
        self.refuse(out, Some(code), text);
    }

    fn totals(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, s), (_, m)| (n + 1, s + m.size))
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Message)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
    }

    /// Index of a live message by its 1-based number.
    fn message(&self, number: u32) -> Option<usize> {
        let i = (number as usize).checked_sub(1)?;
        (i < self.messages.len() && !self.deleted[i]).then_some(i)
    }

    fn transaction(&mut self, command: Command<'_>, out: &mut Replies) -> Step {
        match command {
            Command::Stat => {
                let (count, size) = self.totals();
                let _ = write!(out, "+OK {count} {size}\r\n");
                Step::Continue
            }
            Command::List(None) => {
                let (count, size) = self.totals();
                let _ = write!(out, "+OK {count} messages ({size} octets)\r\n");
                Step::Listing(Listing::Sizes)
            }
            Command::Uidl(None) => {
                let _ = out.push_str("+OK Unique-ID listing follows\r\n");
                Step::Listing(Listing::Uids)
            }
            Command::List(Some(n)) | Command::Uidl(Some(n)) => {
                let Some(i) = self.message(n) else {
                    return self.err(out, "No such message");
                };
                let kind = if matches!(command, Command::List(_)) {
                    Listing::Sizes
                } else {
                    Listing::Uids
                };
                let _ = out.push_str("+OK ");
                self.listing_line(kind, i, out);
                Step::Continue
            }
            Command::Retr(n) => match self.message(n) {
                Some(index) => {
                    let _ = write!(out, "+OK {} octets\r\n", self.messages[index].size);
                    Step::SendMessage {
                        index,
                        body_lines: None,
                    }
                }
                None => self.err(out, "No such message"),
            },
            Command::Top(n, lines) => match self.message(n) {
                Some(index) => {
                    let _ = out.push_str("+OK Top of message follows\r\n");
                    Step::SendMessage {
                        index,
                        body_lines: Some(lines),
                    }
                }
                None => self.err(out, "No such message"),
            },
            Command::Dele(n) => match self.message(n) {
                Some(i) => {
                    self.deleted[i] = true;
                    Self::ok(out, "Message deleted")
                }
                None => self.err(out, "No such message"),
            },
            Command::Rset => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                let (count, size) = self.totals();
                let _ = write!(out, "+OK {count} messages ({size} octets)\r\n");
                Step::Continue
            }
            _ => self.err(out, "Command not valid in this state"),
        }
    }

    fn quit(&mut self, out: &mut Replies) -> Step {
        if matches!(self.state, State::Transaction) {
            self.state = State::Done;
            return Step::Update;
        }
        self.state = State::Done;
        let _ = out.push_str("+OK Bye\r\n");
        Step::Close
    }

    /// Messages marked for deletion (mailbox-relative names).
    pub fn deleted(&self) -> impl Iterator<Item = &str> {
        self.messages
            .iter()
            .zip(&self.deleted)
            .filter(|(_, d)| **d)
            .map(|(m, _)| &*m.name)
    }

    /// Bytes of the messages marked for deletion.
    pub fn deleted_bytes(&self) -> u64 {
        self.messages
            .iter()
            .zip(&self.deleted)
            .filter(|(_, d)| **d)
            .map(|(m, _)| m.size)
            .sum()
    }

    pub fn update_done(&mut self, ok: bool, out: &mut Replies) {
        if ok {
            let _ = out.push_str("+OK Bye\r\n");
        } else {
            self.refuse(out, Some("SYS/TEMP"), "Some deleted messages not removed");
        }
    }

    /// The mailbox as listed at login, taken as the session ends (deleted
    /// messages included).
    pub fn take_listing(&mut self) -> Vec<Message> {
        self.deleted.clear();
        std::mem::take(&mut self.messages)
    }

    pub fn message_count(&self) -> usize {
        self.messages.len()
    }

    pub fn message_name(&self, index: usize) -> &str {
        &self.messages[index].name
    }

    /// Writes one line of a LIST or UIDL listing; `false` for deleted messages.
    pub fn listing_line(&self, kind: Listing, index: usize, out: &mut Replies) -> bool {
        if self.deleted[index] {
            return false;
        }
        let m = &self.messages[index];
        let _ = match kind {
            Listing::Sizes => write!(out, "{} {}\r\n", index + 1, m.size),
            Listing::Uids => write!(out, "{} {}\r\n", index + 1, m.uid()),
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(name: &str, size: u64) -> Message {
        let file = name.rsplit('/').next().unwrap();
        Message::new(name.into(), size, file.split(':').next().unwrap())
    }

    struct H {
        s: Session,
        out: Replies,
    }

    impl H {
        fn new() -> Self {
            let mut out = Replies::new();
            let security = Security {
                stls: true,
                tls: true,
                plaintext_login: false,
            };
            let s = Session::new("mx.test", 5, security, &mut out);
            assert_eq!(out.as_str(), "+OK mx.test Postbox POP3 ready\r\n");
            H { s, out }
        }

        fn send(&mut self, line: &str) -> (String, Step) {
            self.out.clear();
            let step = self
                .s
                .handle(LineEvent::Line(line.as_bytes()), &mut self.out);
            (self.out.to_string(), step)
        }

        fn logged_in() -> Self {
            let mut h = H::new();
            h.send("USER alice");
            let (_, step) = h.send("PASS secret");
            assert!(matches!(step, Step::Authenticate { .. }));
            h.out.clear();
            h.s.login_succeeded(
                vec![
                    msg("new/1.a,S=10", 10),
                    msg("new/2.b,S=20", 20),
                    msg("cur/3.c:2,S", 30),
                ],
                &mut h.out,
            );
            assert_eq!(h.out.as_str(), "+OK Logged in, 3 messages (60 octets)\r\n");
            h
        }

        fn listing(&mut self, kind: Listing) -> String {
            let mut out = Replies::new();
            for i in 0..self.s.message_count() {
                self.s.listing_line(kind, i, &mut out);
            }
            out.to_string()
        }
    }

    #[test]
    fn user_pass_hands_credentials_over() {
        let mut h = H::new();
        assert_eq!(h.send("PASS x").0, "-ERR Send USER first\r\n");
        assert_eq!(h.send("USER alice").0, "+OK Send PASS\r\n");
        let (_, step) = h.send("PASS two words");
        assert_eq!(
            step,
            Step::Authenticate {
                user: "alice".try_into().unwrap(),
                password: "two words".try_into().unwrap()
            }
        );
        h.out.clear();
        h.s.login_failed(LoginFailure::BadCredentials, &mut h.out);
        assert_eq!(h.out.as_str(), "-ERR [AUTH] Authentication failed\r\n");
        h.out.clear();
        h.s.login_failed(LoginFailure::InUse, &mut h.out);
        assert!(h.out.starts_with("-ERR [IN-USE]"));
    }

    #[test]
    fn auth_plain_inline_and_continued() {
        let mut h = H::new();
        // "\0alice\0secret"
        let (_, step) = h.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
        assert_eq!(
            step,
            Step::Authenticate {
                user: "alice".try_into().unwrap(),
                password: "secret".try_into().unwrap()
            }
        );
        let mut h = H::new();
        assert_eq!(h.send("AUTH PLAIN").0, "+ \r\n");
        assert!(matches!(
            h.send("AGFsaWNlAHNlY3JldA==").1,
            Step::Authenticate { .. }
        ));
        let mut h = H::new();
        h.send("AUTH PLAIN");
        assert!(h.send("*").0.starts_with("-ERR [AUTH]"));
        assert!(h.send("AUTH PLAIN !!!").0.starts_with("-ERR [AUTH]"));
        // "bob\0alice\0secret": acting as someone else
        assert!(h
            .send("AUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==")
            .0
            .starts_with("-ERR [AUTH]"));
        assert!(h.send("AUTH CRAM-MD5").0.starts_with("-ERR"));
    }

    #[test]
    fn capa_lists_everything() {
        let mut h = H::new();
        let (reply, _) = h.send("CAPA");
        for cap in [
            "TOP",
            "UIDL",
            "USER",
            "SASL PLAIN",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "IMPLEMENTATION",
        ] {
            assert!(reply.contains(&format!("\r\n{cap}")), "{cap}");
        }
        assert!(reply.ends_with("\r\n.\r\n"));
    }

    #[test]
    fn transaction_commands_need_login() {
        let mut h = H::new();
        for cmd in [
            "STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1", "RSET",
        ] {
            assert!(h.send(cmd).0.starts_with("-ERR"), "{cmd}");
            h.s.errors = 0;
        }
        assert_eq!(h.send("QUIT"), ("+OK Bye\r\n".to_string(), Step::Close));
    }

    #[test]
    fn stat_list_uidl_retr_top() {
        let mut h = H::logged_in();
        assert_eq!(h.send("STAT").0, "+OK 3 60\r\n");
        assert_eq!(h.send("LIST").1, Step::Listing(Listing::Sizes));
        assert_eq!(h.listing(Listing::Sizes), "1 10\r\n2 20\r\n3 30\r\n");
        assert_eq!(
            h.listing(Listing::Uids),
            "1 1.a,S=10\r\n2 2.b,S=20\r\n3 3.c\r\n"
        );
        assert_eq!(h.send("LIST 2").0, "+OK 2 20\r\n");
        assert_eq!(h.send("UIDL 3").0, "+OK 3 3.c\r\n");
        assert_eq!(h.send("LIST 4").0, "-ERR No such message\r\n");
        let (reply, step) = h.send("RETR 2");
        assert_eq!(reply, "+OK 20 octets\r\n");
        assert_eq!(
            step,
            Step::SendMessage {
                index: 1,
                body_lines: None
            }
        );
        assert_eq!(
            h.send("TOP 1 5").1,
            Step::SendMessage {
                index: 0,
                body_lines: Some(5)
            }
        );
        assert_eq!(h.s.message_name(2), "cur/3.c:2,S");
        assert_eq!(h.send("NOOP").0, "+OK \r\n");
    }

    #[test]
    fn dele_rset_and_update() {
        let mut h = H::logged_in();
        assert_eq!(h.send("DELE 1").0, "+OK Message deleted\r\n");
        assert_eq!(h.send("DELE 1").0, "-ERR No such message\r\n");
        assert_eq!(h.send("RETR 1").0, "-ERR No such message\r\n");
        assert_eq!(h.send("STAT").0, "+OK 2 50\r\n");
        assert_eq!(h.listing(Listing::Sizes), "2 20\r\n3 30\r\n");
        assert_eq!(h.send("RSET").0, "+OK 3 messages (60 octets)\r\n");
        h.send("DELE 3");
        assert_eq!(h.send("QUIT").1, Step::Update);
        assert_eq!(h.s.deleted().collect::<Vec<_>>(), vec!["cur/3.c:2,S"]);
        h.out.clear();
        h.s.update_done(true, &mut h.out);
        assert_eq!(h.out.as_str(), "+OK Bye\r\n");
    }

    #[test]
    fn refusals_are_kept_as_values() {
        let mut h = H::logged_in();
        h.s.take_refusals();
        h.send("LIST");
        h.listing(Listing::Sizes);
        h.send("LIST 9");
        h.send("FROB");
        assert_eq!(h.s.take_refusals(), vec![None, None]);
        h.s.login_failed(LoginFailure::InUse, &mut h.out);
        assert_eq!(h.s.take_refusals(), vec![Some("IN-USE")]);
        assert!(h.s.take_refusals().is_empty());
    }

    #[test]
    fn errors_close_the_session() {
        let mut h = H::new();
        for _ in 0..4 {
            assert_eq!(h.send("BOGUS").1, Step::Continue);
        }
        assert_eq!(h.send("BOGUS").1, Step::Close);
    }

    #[test]
    fn too_long_line() {
        let mut h = H::new();
        h.out.clear();
        assert_eq!(h.s.handle(LineEvent::TooLong, &mut h.out), Step::Continue);
        assert_eq!(h.out.as_str(), "-ERR Line too long\r\n");
    }

    #[test]
    fn stls_and_login_gating() {
        let mut out = Replies::new();
        let plain = Security {
            stls: true,
            tls: false,
            plaintext_login: false,
        };
        let mut s = Session::new("mx.test", 10, plain, &mut out);
        out.clear();
        s.handle(LineEvent::Line(b"CAPA"), &mut out);
        assert!(
            out.contains("STLS\r\n") && !out.contains("USER\r\n"),
            "{out}"
        );
        out.clear();
        s.handle(LineEvent::Line(b"USER alice"), &mut out);
        assert!(out.starts_with("-ERR [AUTH] Plaintext"), "{out}");
        out.clear();
        assert_eq!(s.handle(LineEvent::Line(b"STLS"), &mut out), Step::StartTls);
        assert_eq!(out.as_str(), "+OK Begin TLS negotiation\r\n");
        s.tls_started();
        out.clear();
        s.handle(LineEvent::Line(b"CAPA"), &mut out);
        assert!(
            !out.contains("STLS") && out.contains("USER\r\nSASL PLAIN\r\n"),
            "{out}"
        );
        out.clear();
        s.handle(LineEvent::Line(b"STLS"), &mut out);
        assert!(out.starts_with("-ERR"), "{out}");
        out.clear();
        s.handle(LineEvent::Line(b"USER alice"), &mut out);
        assert!(out.starts_with("+OK"));
    }
}
