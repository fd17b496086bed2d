//! The SMTP session as a state machine (RFC 5321 §4.1.4 ordering, with
//! STARTTLS per RFC 3207 and AUTH per RFC 4954), free of sockets and files:
//! the server feeds it command lines and the outcome of TLS handshakes,
//! password checks and message storage, and it writes replies and says
//! what to do next.

use super::command::{self, Command, MailFrom, ParseError, RcptTo};
use crate::auth::sasl::{self, Credentials, Name, SaslError};
pub use crate::auth::Login;
use crate::policy;
use crate::wire::address::{Address, AddressError};
use crate::wire::line::LineEvent;
use crate::wire::reply::{push, push_fmt, push_lines, Replies};
use core::fmt::Write;

/// Where a recipient would go, as decided by the server's directory.
pub use crate::route::{Destination, RcptVerdict};

pub use crate::policy::facts::DataOutcome;

/// The server side of address lookups; a trait so tests use a plain table.
pub trait Directory {
    fn lookup(&mut self, rcpt: &RcptTo) -> RcptVerdict;

    /// Whether the logged-in `user` may send as `address`.
    fn owns(&mut self, user: &Address, address: &str) -> bool {
        user.as_str().eq_ignore_ascii_case(address)
    }

    /// Whether `address` belongs to a member (a user or alias of ours), so
    /// that strangers may not send as it.
    fn is_member(&mut self, _address: &Address) -> bool {
        false
    }

    /// Whether `size` more bytes would take `mailbox` over its quota:
    /// `Some(temporary)` if so.
    fn over_quota_with(&mut self, _mailbox: &Address, _size: u64) -> Option<bool> {
        None
    }

    /// Greylisting: seconds this sender → recipient must still wait, if any.
    fn greylist(&mut self, _sender: Option<&Address>, _rcpt: &Address) -> Option<u64> {
        None
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_errors: u32,
}

/// What the listener and the client's address allow.
#[derive(Debug, Clone, Copy, Default)]
pub struct Security {
    /// STARTTLS may be offered (a TLS certificate is loaded).
    pub starttls: bool,
    /// The connection is encrypted.
    pub tls: bool,
    /// Passwords may cross this connection without TLS (loopback, if allowed).
    pub plaintext_login: bool,
    /// A submission port: login before MAIL (RFC 6409 §4.3).
    pub submission: bool,
    /// The client's address is in `relay_from`.
    pub relay_client: bool,
    /// Refuse HELO names that no honest mail server uses: a bare IP
    /// address, or our own host name (port 25, strangers only).
    pub check_helo: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep reading commands.
    Continue,
    /// 354 was sent: read the message body with a [`crate::wire::dot::DataDecoder`].
    ReceiveData,
    /// 220 was sent: drop any input read so far, run the TLS handshake, then
    /// call [`Session::tls_started`].
    StartTls,
    /// Check these credentials, then call [`Session::auth_done`].
    Authenticate(Credentials),
    /// Send the replies, then close the connection.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthStage {
    /// `AUTH PLAIN` without an initial response: waiting for it.
    PlainResponse,
    /// `AUTH LOGIN`: waiting for the user name, then the password.
    LoginUser,
    LoginPassword,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before HELO/EHLO.
    Connected,
    /// Greeted, no transaction.
    Ready,
    /// In a SASL exchange.
    Auth(AuthStage),
    /// Waiting for the server to check a password.
    Checking,
    /// MAIL accepted.
    Mail,
    /// At least one RCPT accepted.
    Rcpt,
    /// Inside DATA.
    Data,
}

/// One accepted recipient: the address the client gave and where it
/// leads.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub given: Address,
    pub destinations: Vec<Destination>,
}

pub struct Session {
    hostname: heapless::String<255>,
    limits: Limits,
    security: Security,
    phase: Phase,
    helo: heapless::String<{ crate::limits::MAX_HELO }>,
    esmtp: bool,
    /// The logged-in user, once AUTH succeeded.
    user: Option<Address>,
    /// The LOGIN mechanism's user name while its password is awaited.
    login_name: Name,
    from: Option<Address>,
    /// The size the client announced with MAIL (RFC 1870).
    declared_size: Option<u64>,
    recipients: Vec<Recipient>,
    errors: u32,
}

const EHLO_KEYWORDS: [&str; 5] = [
    "PIPELINING",
    "8BITMIME",
    "SMTPUTF8",
    "ENHANCEDSTATUSCODES",
    "HELP",
];

impl Session {
    /// Starts a session and writes the greeting.
    pub fn new(hostname: &str, limits: Limits, security: Security, out: &mut Replies) -> Self {
        let session = Self::before_greeting(hostname, limits, security);
        session.greet(out);
        session
    }

    /// Starts a session whose greeting is written later, with [`Session::greet`].
    /// Our name: in replies, trace fields and as the authserv-id.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    pub fn before_greeting(hostname: &str, limits: Limits, security: Security) -> Self {
        let mut name = heapless::String::new();
        let _ = name.push_str(&hostname[..hostname.len().min(255)]);
        Session {
            hostname: name,
            limits,
            security,
            phase: Phase::Connected,
            helo: heapless::String::new(),
            esmtp: false,
            user: None,
            login_name: Name::new(),
            from: None,
            declared_size: None,
            recipients: Vec::new(),
            errors: 0,
        }
    }

    /// Writes the greeting.
    pub fn greet(&self, out: &mut Replies) {
        let hostname = &self.hostname;
        push_fmt(out, 220, None, format_args!("{hostname} ESMTP Postbox"));
    }

    pub fn helo(&self) -> &str {
        &self.helo
    }

    pub fn esmtp(&self) -> bool {
        self.esmtp
    }

    pub fn tls(&self) -> bool {
        self.security.tls
    }

    /// The logged-in user, if any.
    pub fn user(&self) -> Option<&Address> {
        self.user.as_ref()
    }

    pub fn sender(&self) -> Option<&Address> {
        self.from.as_ref()
    }

    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
    }

    pub fn max_message_size(&self) -> u64 {
        self.limits.max_message_size
    }

    fn reset_transaction(&mut self) {
        self.from = None;
        self.declared_size = None;
        self.recipients.clear();
        if self.phase != Phase::Connected {
            self.phase = Phase::Ready;
        }
    }

    fn login_allowed(&self) -> bool {
        self.security.tls || self.security.plaintext_login
    }

    /// Counts a client error; too many and the session is closed.
    fn error(&mut self, out: &mut Replies, code: u16, enhanced: &str, text: &str) -> Step {
        self.errors += 1;
        if self.errors >= self.limits.max_errors {
            push(
                out,
                421,
                Some("4.7.0"),
                "Too many errors, closing connection",
            );
            return Step::Close;
        }
        push(out, code, Some(enhanced), text);
        Step::Continue
    }

    /// Answers a policy refusal.
    fn refuse(&mut self, r: policy::Reject, out: &mut Replies) -> Step {
        if r.counts_as_error {
            return self.error(out, r.code, r.enhanced, r.text);
        }
        push(out, r.code, Some(r.enhanced), r.text);
        Step::Continue
    }

    /// Whether the next line answers a SASL challenge (and may be long).
    pub fn awaiting_sasl(&self) -> bool {
        matches!(self.phase, Phase::Auth(_))
    }

    /// Handles one command line (or an over-long one).
    pub fn handle(
        &mut self,
        event: LineEvent<'_>,
        dir: &mut impl Directory,
        out: &mut Replies,
    ) -> Step {
        let line = match event {
            LineEvent::Line(line) => line,
            LineEvent::TooLong => {
                if let Phase::Auth(_) = self.phase {
                    self.phase = Phase::Ready;
                }
                return self.error(out, 500, "5.5.2", "Line too long");
            }
        };
        if let Phase::Auth(stage) = self.phase {
            return self.sasl_response(stage, line, out);
        }
        match command::parse(line) {
            Ok(command) => self.command(command, dir, out),
            Err(ParseError::Unknown) => self.error(out, 500, "5.5.1", "Command not recognized"),
            Err(ParseError::Syntax(why)) => {
                let mut text: heapless::String<96> = heapless::String::new();
                let _ = write!(text, "Syntax error: {why}");
                self.error(out, 501, "5.5.4", &text)
            }
            Err(ParseError::BadAddress(e)) => {
                let enhanced = if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"MAIL") {
                    "5.1.7"
                } else {
                    "5.1.3"
                };
                let text = match e {
                    AddressError::TooLong => "Address too long",
                    _ => "Bad address syntax",
                };
                self.error(out, 501, enhanced, text)
            }
            Err(ParseError::UnsupportedParameter) => self.error(
                out,
                555,
                "5.5.4",
                "Parameter not recognized or not implemented",
            ),
        }
    }

    fn ehlo_reply(&self, out: &mut Replies) {
        let mut first: heapless::String<300> = heapless::String::new();
        let _ = write!(first, "{} Hello {}", self.hostname, self.helo);
        let mut size: heapless::String<32> = heapless::String::new();
        let _ = write!(size, "SIZE {}", self.limits.max_message_size);
        let mut lines: heapless::Vec<&str, 10> = heapless::Vec::new();
        let _ = lines.push(&first);
        for keyword in EHLO_KEYWORDS {
            let _ = lines.push(keyword);
        }
        if self.security.starttls && !self.security.tls {
            let _ = lines.push("STARTTLS");
        }
        if self.login_allowed() && self.user.is_none() {
            let _ = lines.push("AUTH PLAIN LOGIN");
        }
        let _ = lines.push(&size);
        push_lines(out, 250, &lines);
    }

    fn command(
        &mut self,
        command: Command<'_>,
        dir: &mut impl Directory,
        out: &mut Replies,
    ) -> Step {
        match command {
            Command::Ehlo(name) | Command::Helo(name) => {
                if let Err(r) = policy::helo(name, &self.hostname, self.security.check_helo) {
                    return self.refuse(r, out);
                }
                let esmtp = matches!(command, Command::Ehlo(_));
                self.reset_transaction();
                self.phase = Phase::Ready;
                self.esmtp = esmtp;
                self.helo.clear();
                let _ = self
                    .helo
                    .push_str(&name[..name.len().min(self.helo.capacity())]);
                if esmtp {
                    self.ehlo_reply(out);
                } else {
                    let (hostname, helo) = (&self.hostname, &self.helo);
                    push_fmt(out, 250, None, format_args!("{hostname} Hello {helo}"));
                }
                Step::Continue
            }
            Command::Mail(mail) => self.mail(mail, dir, out),
            Command::Rcpt(rcpt) => self.rcpt(rcpt, dir, out),
            Command::Data => match self.phase {
                Phase::Rcpt => {
                    self.phase = Phase::Data;
                    push(out, 354, None, "Start mail input; end with <CRLF>.<CRLF>");
                    Step::ReceiveData
                }
                Phase::Mail => self.error(out, 554, "5.5.1", "No valid recipients"),
                _ => self.error(out, 503, "5.5.1", "MAIL and RCPT first"),
            },
            Command::Rset => {
                self.reset_transaction();
                push(out, 250, Some("2.0.0"), "OK");
                Step::Continue
            }
            Command::Noop => {
                push(out, 250, Some("2.0.0"), "OK");
                Step::Continue
            }
            Command::Quit => {
                let mut text: heapless::String<300> = heapless::String::new();
                let _ = write!(text, "{} closing connection", self.hostname);
                push(out, 221, Some("2.0.0"), &text);
                Step::Close
            }
            Command::Help => {
                push_lines(
                    out,
                    214,
                    &[
                        "2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT HELP VRFY",
                        "2.0.0 See RFC 5321",
                    ],
                );
                Step::Continue
            }
            Command::Vrfy => {
                push(
                    out,
                    252,
                    Some("2.5.0"),
                    "Cannot VRFY user, but will accept message and attempt delivery",
                );
                Step::Continue
            }
            Command::Expn => self.error(out, 502, "5.5.1", "EXPN not available"),
            Command::StartTls => self.starttls(out),
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial, out),
        }
    }

    fn starttls(&mut self, out: &mut Replies) -> Step {
        if self.security.tls {
            return self.error(out, 503, "5.5.1", "TLS already active");
        }
        if !self.security.starttls {
            return self.error(out, 502, "5.5.1", "STARTTLS not available");
        }
        if matches!(self.phase, Phase::Mail | Phase::Rcpt) {
            return self.error(
                out,
                503,
                "5.5.1",
                "STARTTLS not allowed inside a transaction",
            );
        }
        push(out, 220, Some("2.0.0"), "Ready to start TLS");
        Step::StartTls
    }

    /// The handshake finished: forget everything the client said before it
    /// (RFC 3207 §4.2); the client must EHLO again.
    pub fn tls_started(&mut self) {
        self.security.tls = true;
        self.phase = Phase::Connected;
        self.helo.clear();
        self.esmtp = false;
        self.user = None;
        self.from = None;
        self.recipients.clear();
    }

    fn auth(&mut self, mechanism: &str, initial: Option<&str>, out: &mut Replies) -> Step {
        if self.user.is_some() {
            return self.error(out, 503, "5.5.1", "Already authenticated");
        }
        match self.phase {
            Phase::Ready => {}
            Phase::Connected => return self.error(out, 503, "5.5.1", "Send EHLO first"),
            _ => return self.error(out, 503, "5.5.1", "AUTH not allowed inside a transaction"),
        }
        if !self.login_allowed() {
            return self.error(
                out,
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            );
        }
        let initial = initial.map(str::as_bytes);
        if mechanism.eq_ignore_ascii_case("PLAIN") {
            match initial {
                // "=" is an empty initial response (RFC 4954 §4).
                Some(response) if response != b"=" => self.plain(response, out),
                _ => {
                    self.phase = Phase::Auth(AuthStage::PlainResponse);
                    push(out, 334, None, "");
                    Step::Continue
                }
            }
        } else if mechanism.eq_ignore_ascii_case("LOGIN") {
            match initial {
                Some(response) => self.sasl_response(AuthStage::LoginUser, response, out),
                None => {
                    self.phase = Phase::Auth(AuthStage::LoginUser);
                    push(out, 334, None, "VXNlcm5hbWU6");
                    Step::Continue
                }
            }
        } else {
            self.error(out, 504, "5.5.4", "Unrecognized authentication mechanism")
        }
    }

    fn plain(&mut self, response: &[u8], out: &mut Replies) -> Step {
        match sasl::decode_plain(response) {
            Ok(credentials) => {
                self.phase = Phase::Checking;
                Step::Authenticate(credentials)
            }
            Err(e) => self.sasl_failed(e, out),
        }
    }

    fn sasl_response(&mut self, stage: AuthStage, line: &[u8], out: &mut Replies) -> Step {
        match stage {
            AuthStage::PlainResponse => self.plain(line, out),
            AuthStage::LoginUser => {
                match sasl::decode_login_field::<{ crate::limits::MAX_ADDRESS }>(line) {
                    Ok(name) if !name.is_empty() => {
                        self.login_name = name;
                        self.phase = Phase::Auth(AuthStage::LoginPassword);
                        push(out, 334, None, "UGFzc3dvcmQ6");
                        Step::Continue
                    }
                    Ok(_) => self.sasl_failed(SaslError::Malformed, out),
                    Err(e) => self.sasl_failed(e, out),
                }
            }
            AuthStage::LoginPassword => match sasl::decode_login_field(line) {
                Ok(password) => {
                    self.phase = Phase::Checking;
                    Step::Authenticate(Credentials {
                        user: core::mem::take(&mut self.login_name),
                        password,
                    })
                }
                Err(e) => self.sasl_failed(e, out),
            },
        }
    }

    fn sasl_failed(&mut self, e: SaslError, out: &mut Replies) -> Step {
        self.phase = Phase::Ready;
        self.login_name.clear();
        if e.is_refusal() {
            return self.error(out, 535, "5.7.8", e.text());
        }
        let code = if e == SaslError::Cancelled {
            "5.0.0"
        } else {
            "5.5.2"
        };
        self.error(out, 501, code, e.text())
    }

    /// Reports the password check.
    pub fn auth_done(&mut self, login: Login, out: &mut Replies) -> Step {
        self.phase = Phase::Ready;
        match login {
            Login::Ok(user) => {
                self.user = Some(user);
                push(out, 235, Some("2.7.0"), "Authentication successful");
                Step::Continue
            }
            Login::Failed => self.error(out, 535, "5.7.8", "Authentication credentials invalid"),
            Login::Refused => self.error(
                out,
                454,
                "4.7.0",
                "Too many failed logins from your address, try again later",
            ),
        }
    }

    fn mail(&mut self, mail: MailFrom, dir: &mut impl Directory, out: &mut Replies) -> Step {
        match self.phase {
            Phase::Connected => return self.error(out, 503, "5.5.1", "Send HELO/EHLO first"),
            Phase::Mail | Phase::Rcpt => {
                return self.error(out, 503, "5.5.1", "Nested MAIL command")
            }
            _ => {}
        }
        let sender = policy::Sender {
            submission: self.security.submission,
            user: self.user.as_ref(),
            trusted: self.trusted(),
            max_size: self.limits.max_message_size,
        };
        let from = mail.from.as_ref();
        let members_address = !sender.trusted && from.is_some_and(|a| dir.is_member(a));
        let owns = |user: &Address, from: &str| dir.owns(user, from);
        let verdict = policy::mail(from, mail.size, &sender, owns, members_address);
        if let Err(r) = verdict {
            return self.refuse(r, out);
        }
        self.from = mail.from;
        self.declared_size = mail.size;
        self.phase = Phase::Mail;
        push(out, 250, Some("2.1.0"), "Sender OK");
        Step::Continue
    }

    fn rcpt(&mut self, rcpt: RcptTo, dir: &mut impl Directory, out: &mut Replies) -> Step {
        if !matches!(self.phase, Phase::Mail | Phase::Rcpt) {
            return self.error(out, 503, "5.5.1", "Need MAIL before RCPT");
        }
        if self.recipients.len() >= self.limits.max_recipients {
            push(out, 452, Some("4.5.3"), "Too many recipients");
            return Step::Continue;
        }
        let mut verdict = dir.lookup(&rcpt);
        if let Some(size) = self.declared_size {
            verdict = policy::declared_size(verdict, size, |m, size| dir.over_quota_with(m, size));
        }
        match verdict {
            RcptVerdict::ReturnPath(to) => {
                // Only reports may take the way back, or anyone could relay
                // through a valid SRS address.
                if let Err(r) = policy::return_path(self.from.is_none()) {
                    return self.refuse(r, out);
                }
                let given = match rcpt {
                    RcptTo::Mailbox(a) => a,
                    RcptTo::Postmaster => to.clone(),
                };
                let destination = Destination::Remote {
                    to,
                    forwarded: false,
                };
                self.accept_rcpt(given, vec![destination], dir, out)
            }
            RcptVerdict::Local(mailbox) => {
                let given = match rcpt {
                    RcptTo::Mailbox(a) => a,
                    RcptTo::Postmaster => mailbox.clone(),
                };
                self.accept_rcpt(given, vec![Destination::Mailbox(mailbox)], dir, out)
            }
            RcptVerdict::Routed(destinations) => {
                let given = match rcpt {
                    RcptTo::Mailbox(a) => a,
                    RcptTo::Postmaster => match destinations.first() {
                        Some(Destination::Mailbox(a)) => a.clone(),
                        Some(Destination::Remote { to, .. }) => to.clone(),
                        None => return self.error(out, 550, "5.1.1", "No such user here"),
                    },
                };
                self.accept_rcpt(given, destinations, dir, out)
            }
            RcptVerdict::Unroutable {
                code,
                enhanced,
                text,
            } => self.error(out, code, enhanced, &text),
            RcptVerdict::UnknownUser => self.error(out, 550, "5.1.1", "No such user here"),
            RcptVerdict::OverQuota { temporary: true } => {
                push(out, 452, Some("4.2.2"), "Mailbox full, try again later");
                Step::Continue
            }
            RcptVerdict::OverQuota { temporary: false } => {
                push(out, 552, Some("5.2.2"), "Mailbox full");
                Step::Continue
            }
            RcptVerdict::Remote if policy::may_relay(self.trusted()) => {
                let RcptTo::Mailbox(to) = rcpt else {
                    return self.error(out, 550, "5.1.1", "No such user here");
                };
                let destination = Destination::Remote {
                    to: to.clone(),
                    forwarded: false,
                };
                self.recipients.push(Recipient {
                    given: to,
                    destinations: vec![destination],
                });
                self.phase = Phase::Rcpt;
                push(out, 250, Some("2.1.5"), "Recipient OK");
                Step::Continue
            }
            RcptVerdict::Remote => self.error(out, 550, "5.7.1", "Relaying denied"),
        }
    }

    /// Accepts a local recipient, unless greylisting defers it.
    fn accept_rcpt(
        &mut self,
        given: Address,
        destinations: Vec<Destination>,
        dir: &mut impl Directory,
        out: &mut Replies,
    ) -> Step {
        let wait = policy::greylist(self.trusted(), || dir.greylist(self.from.as_ref(), &given));
        if let Some(wait) = wait {
            let mut text: heapless::String<96> = heapless::String::new();
            let _ = write!(text, "Greylisted, please try again in {wait} seconds");
            push(out, 451, Some("4.7.1"), &text);
            return Step::Continue;
        }
        self.recipients.push(Recipient {
            given,
            destinations,
        });
        self.phase = Phase::Rcpt;
        push(out, 250, Some("2.1.5"), "Recipient OK");
        Step::Continue
    }

    /// A member or a `relay_from` client: spared greylisting and spam rules.
    pub fn trusted(&self) -> bool {
        self.user.is_some() || self.security.relay_client
    }

    /// Who the From: header must name, when anyone: the logged-in user.
    pub fn from_header_owner(&self) -> Option<&Address> {
        self.user.as_ref()
    }

    /// Members' mail is held to a strict header section (RFC 6409 §8
    /// lets a submission server check and complete what it is given).
    pub fn strict_headers(&self) -> bool {
        self.user.is_some()
    }

    /// A member's address in a stranger's From: header, if any: such mail
    /// is tagged as spam (not refused: lists and forwarders do this too).
    pub fn forged_member_from<'a>(
        &self,
        from_header: &'a [String],
        dir: &mut impl Directory,
    ) -> Option<&'a str> {
        if self.trusted() {
            return None;
        }
        from_header
            .iter()
            .find(|a| Address::parse_path(a).is_ok_and(|a| dir.is_member(&a)))
            .map(String::as_str)
    }

    /// Reports how storing the message ended and answers the client.
    pub fn data_done(&mut self, outcome: DataOutcome, out: &mut Replies) {
        match outcome {
            DataOutcome::Stored { id } => {
                let mut text: heapless::String<200> = heapless::String::new();
                let _ = write!(text, "OK queued as {id}");
                push(out, 250, Some("2.0.0"), &text)
            }
            DataOutcome::TooBig => push(
                out,
                552,
                Some("5.3.4"),
                "Message size exceeds fixed maximum message size",
            ),
            DataOutcome::ForeignFrom => push(
                out,
                553,
                Some("5.7.1"),
                "From: header is not one of your addresses",
            ),
            DataOutcome::Malformed(why) => {
                let mut text: heapless::String<200> = heapless::String::new();
                let _ = write!(text, "Malformed header section: {why}");
                push(out, 550, Some("5.6.0"), &text)
            }
            DataOutcome::LineTooLong => push(
                out,
                554,
                Some("5.6.0"),
                "Line too long (over 998 octets), message not accepted",
            ),
            DataOutcome::OverQuota { temporary: true } => {
                push(out, 452, Some("4.2.2"), "Mailbox full, try again later")
            }
            DataOutcome::OverQuota { temporary: false } => {
                push(out, 552, Some("5.2.2"), "Mailbox full")
            }
            DataOutcome::NoSpace => push(out, 452, Some("4.3.1"), "Insufficient system storage"),
            DataOutcome::Spam => push(out, 554, Some("5.7.1"), "Message refused as spam"),
            DataOutcome::Loop => push(
                out,
                554,
                Some("5.4.6"),
                "Too many hops (Received: headers), mail loop?",
            ),
            DataOutcome::Failed => push(
                out,
                451,
                Some("4.3.0"),
                "Local error in processing, try again later",
            ),
            DataOutcome::NotAuthenticated {
                code,
                enhanced,
                reason,
            } => {
                // The reason may be long (domain names, record text).
                let mut text: heapless::String<200> = heapless::String::new();
                for c in reason.chars().filter(|c| !c.is_control()) {
                    if text.push(c).is_err() {
                        break;
                    }
                }
                push(out, code, Some(enhanced), &text)
            }
        }
        self.reset_transaction();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// alice and bob at localhost; postmaster goes to alice.
    struct Table;

    impl Directory for Table {
        fn lookup(&mut self, rcpt: &RcptTo) -> RcptVerdict {
            let alice = || Address::new("alice", "localhost").unwrap();
            match rcpt {
                RcptTo::Postmaster => RcptVerdict::Local(alice()),
                RcptTo::Mailbox(a) if a.domain() != "localhost" => RcptVerdict::Remote,
                RcptTo::Mailbox(a) => match a.local().to_ascii_lowercase().as_str() {
                    "alice" | "postmaster" => RcptVerdict::Local(alice()),
                    "srs0=hash=tt=elsewhere.test=friend" => {
                        RcptVerdict::ReturnPath(Address::new("friend", "elsewhere.test").unwrap())
                    }
                    "bob" => RcptVerdict::Local(Address::new("bob", "localhost").unwrap()),
                    _ => RcptVerdict::UnknownUser,
                },
            }
        }

        fn is_member(&mut self, address: &Address) -> bool {
            matches!(
                self.lookup(&RcptTo::Mailbox(address.clone())),
                RcptVerdict::Local(_)
            )
        }

        /// bob has 500 bytes left; alice is unlimited.
        fn over_quota_with(&mut self, mailbox: &Address, size: u64) -> Option<bool> {
            (mailbox.local() == "bob" && size > 500).then_some(false)
        }
    }

    fn limits() -> Limits {
        Limits {
            max_message_size: 1000,
            max_recipients: 2,
            max_errors: 10,
        }
    }

    struct Harness {
        session: Session,
        out: Replies,
    }

    impl Harness {
        fn new() -> Self {
            Self::with(Security {
                starttls: true,
                ..Default::default()
            })
        }

        fn with(security: Security) -> Self {
            let mut out = Replies::new();
            let session = Session::new("mx.test", limits(), security, &mut out);
            assert_eq!(out.as_str(), "220 mx.test ESMTP Postbox\r\n");
            Harness { session, out }
        }

        fn send(&mut self, line: &str) -> (String, Step) {
            self.out.clear();
            let step =
                self.session
                    .handle(LineEvent::Line(line.as_bytes()), &mut Table, &mut self.out);
            (self.out.to_string(), step)
        }

        fn code(&mut self, line: &str) -> String {
            self.send(line).0[..9].to_string()
        }
    }

    #[test]
    fn ehlo_advertises_extensions() {
        let mut h = Harness::new();
        let (reply, _) = h.send("EHLO client.test");
        assert!(reply.starts_with("250-mx.test Hello client.test\r\n"));
        for keyword in [
            "PIPELINING",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "SIZE 1000",
        ] {
            assert!(reply.contains(keyword), "{keyword} missing in {reply}");
        }
        assert!(reply.ends_with("250 SIZE 1000\r\n"));
        assert!(h.session.esmtp());
        assert_eq!(h.session.helo(), "client.test");
    }

    #[test]
    fn full_transaction() {
        let mut h = Harness::new();
        assert_eq!(h.code("HELO c"), "250 mx.te");
        assert_eq!(h.code("MAIL FROM:<x@remote.test>"), "250 2.1.0");
        assert_eq!(h.code("RCPT TO:<alice@localhost>"), "250 2.1.5");
        assert_eq!(h.code("RCPT TO:<Postmaster>"), "250 2.1.5");
        let (reply, step) = h.send("DATA");
        assert!(reply.starts_with("354 "));
        assert_eq!(step, Step::ReceiveData);
        assert_eq!(h.session.recipients().len(), 2);
        assert_eq!(h.session.sender().unwrap().as_str(), "x@remote.test");
        h.out.clear();
        h.session
            .data_done(DataOutcome::Stored { id: "abc".into() }, &mut h.out);
        assert_eq!(h.out.as_str(), "250 2.0.0 OK queued as abc\r\n");
        // The transaction is over: RCPT needs a new MAIL.
        assert_eq!(h.code("RCPT TO:<alice@localhost>"), "503 5.5.1");
    }

    #[test]
    fn ordering_errors() {
        let mut h = Harness::new();
        assert_eq!(h.code("MAIL FROM:<x@y.test>"), "503 5.5.1");
        h.send("EHLO c");
        assert_eq!(h.code("RCPT TO:<alice@localhost>"), "503 5.5.1");
        assert_eq!(h.code("DATA"), "503 5.5.1");
        h.send("MAIL FROM:<>");
        assert_eq!(h.code("MAIL FROM:<>"), "503 5.5.1");
        assert_eq!(h.code("DATA"), "554 5.5.1");
    }

    #[test]
    fn recipient_verdicts_and_limit() {
        let mut h = Harness::new();
        h.send("EHLO c");
        h.send("MAIL FROM:<x@y.test>");
        assert_eq!(h.code("RCPT TO:<nobody@localhost>"), "550 5.1.1");
        assert_eq!(h.code("RCPT TO:<bob@elsewhere.test>"), "550 5.7.1");
        assert_eq!(h.code("RCPT TO:<bad address>"), "501 5.1.3");
        assert_eq!(h.code("RCPT TO:<alice@localhost>"), "250 2.1.5");
        assert_eq!(h.code("RCPT TO:<bob@localhost>"), "250 2.1.5");
        assert_eq!(h.code("RCPT TO:<bob@localhost>"), "452 4.5.3");
    }

    #[test]
    fn srs_return_path_takes_only_reports() {
        let srs = "RCPT TO:<SRS0=hash=TT=elsewhere.test=friend@localhost>";
        let mut h = Harness::new();
        h.send("EHLO c");
        h.send("MAIL FROM:<x@y.test>");
        assert_eq!(h.code(srs), "550 5.7.1");
        h.send("RSET");
        h.send("MAIL FROM:<>");
        assert_eq!(h.code(srs), "250 2.1.5");
        assert!(matches!(
            &h.session.recipients()[0].destinations[..],
            [Destination::Remote { to, .. }] if to.as_str() == "friend@elsewhere.test"
        ));
    }

    #[test]
    fn strangers_may_not_use_members_addresses() {
        let mut h = Harness::new();
        h.send("EHLO c");
        assert_eq!(h.code("MAIL FROM:<alice@localhost>"), "550 5.7.1");
        assert_eq!(h.code("MAIL FROM:<x@y.test>"), "250 2.1.0");
        let from = ["x@y.test".to_string(), "Bob@localhost".to_string()];
        assert_eq!(
            h.session.forged_member_from(&from, &mut Table),
            Some("Bob@localhost")
        );
        // A relay client is one of us.
        let mut h = Harness::with(Security {
            relay_client: true,
            ..Default::default()
        });
        h.send("EHLO c");
        assert_eq!(h.code("MAIL FROM:<alice@localhost>"), "250 2.1.0");
        assert_eq!(h.session.forged_member_from(&from, &mut Table), None);
    }

    #[test]
    fn declared_size_checked_against_each_quota() {
        let mut h = Harness::new();
        h.send("EHLO c");
        h.send("MAIL FROM:<x@y.test> SIZE=900");
        assert_eq!(h.code("RCPT TO:<bob@localhost>"), "552 5.2.2");
        assert_eq!(h.code("RCPT TO:<alice@localhost>"), "250 2.1.5");
        h.send("RSET");
        h.send("MAIL FROM:<x@y.test> SIZE=400");
        assert_eq!(h.code("RCPT TO:<bob@localhost>"), "250 2.1.5");
    }

    #[test]
    fn size_declared_too_big() {
        let mut h = Harness::new();
        h.send("EHLO c");
        assert_eq!(h.code("MAIL FROM:<x@y.test> SIZE=1001"), "552 5.3.4");
        assert_eq!(h.code("MAIL FROM:<x@y.test> SIZE=1000"), "250 2.1.0");
    }

    #[test]
    fn data_failures_map_to_codes() {
        for (outcome, code) in [
            (DataOutcome::TooBig, "552 5.3.4"),
            (DataOutcome::NoSpace, "452 4.3.1"),
            (DataOutcome::Failed, "451 4.3.0"),
        ] {
            let mut h = Harness::new();
            h.send("EHLO c");
            h.send("MAIL FROM:<x@y.test>");
            h.send("RCPT TO:<bob@localhost>");
            h.send("DATA");
            h.out.clear();
            h.session.data_done(outcome, &mut h.out);
            assert_eq!(&h.out[..9], code);
            assert_eq!(h.code("RCPT TO:<bob@localhost>"), "503 5.5.1");
        }
    }

    #[test]
    fn simple_commands() {
        let mut h = Harness::new();
        assert_eq!(h.code("NOOP"), "250 2.0.0");
        assert_eq!(h.code("RSET"), "250 2.0.0");
        assert_eq!(h.code("VRFY alice"), "252 2.5.0");
        assert_eq!(h.code("EXPN staff"), "502 5.5.1");
        assert!(h.send("HELP").0.starts_with("214-2.0.0"));
        assert_eq!(h.code("FOO"), "500 5.5.1");
        assert_eq!(h.code("MAIL FROM:<a@b> FOO=1"), "555 5.5.4");
        let (reply, step) = h.send("QUIT");
        assert!(reply.starts_with("221 2.0.0"));
        assert_eq!(step, Step::Close);
    }

    #[test]
    fn too_long_line_and_error_limit() {
        let mut h = Harness::new();
        h.out.clear();
        let step = h.session.handle(LineEvent::TooLong, &mut Table, &mut h.out);
        assert_eq!(&h.out[..9], "500 5.5.2");
        assert_eq!(step, Step::Continue);
        for _ in 0..8 {
            assert_eq!(h.send("BAD").1, Step::Continue);
        }
        let (reply, step) = h.send("BAD");
        assert!(reply.starts_with("421 4.7.0"));
        assert_eq!(step, Step::Close);
    }

    fn b64(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn alice() -> Address {
        Address::new("alice", "localhost").unwrap()
    }

    #[test]
    fn starttls_resets_the_session() {
        let mut h = Harness::new();
        let (reply, _) = h.send("EHLO c");
        assert!(reply.contains("250-STARTTLS\r\n"), "{reply}");
        assert!(!reply.contains("AUTH"), "no AUTH before TLS: {reply}");
        assert_eq!(h.code("AUTH PLAIN"), "538 5.7.1");
        assert_eq!(h.code("STARTTLS now"), "501 5.5.4");
        let (reply, step) = h.send("STARTTLS");
        assert_eq!(reply, "220 2.0.0 Ready to start TLS\r\n");
        assert_eq!(step, Step::StartTls);
        h.session.tls_started();
        assert!(h.session.tls());
        // The EHLO from before TLS is forgotten.
        assert_eq!(h.code("MAIL FROM:<x@y.test>"), "503 5.5.1");
        let (reply, _) = h.send("EHLO c");
        assert!(!reply.contains("STARTTLS"));
        assert!(reply.contains("250-AUTH PLAIN LOGIN\r\n"), "{reply}");
        assert_eq!(h.code("STARTTLS"), "503 5.5.1");
    }

    #[test]
    fn starttls_refused_where_not_offered_or_mid_transaction() {
        let mut h = Harness::with(Security::default());
        h.send("EHLO c");
        assert_eq!(h.code("STARTTLS"), "502 5.5.1");
        let mut h = Harness::new();
        h.send("EHLO c");
        h.send("MAIL FROM:<x@y.test>");
        assert_eq!(h.code("STARTTLS"), "503 5.5.1");
    }

    fn tls_submission() -> Harness {
        let mut h = Harness::with(Security {
            tls: true,
            submission: true,
            ..Default::default()
        });
        h.send("EHLO c");
        h
    }

    #[test]
    fn auth_plain_with_and_without_initial_response() {
        let mut h = tls_submission();
        let (_, step) = h.send(&format!("AUTH PLAIN {}", b64("\0alice\0pw")));
        let Step::Authenticate(c) = step else {
            panic!("{step:?}")
        };
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "pw"));
        h.out.clear();
        h.session.auth_done(Login::Failed, &mut h.out);
        assert_eq!(&h.out[..9], "535 5.7.8");
        assert_eq!(h.send("AUTH PLAIN").0, "334 \r\n");
        let (_, step) = h.send(&b64("\0alice\0pw"));
        assert!(matches!(step, Step::Authenticate(_)));
        h.out.clear();
        h.session.auth_done(Login::Ok(alice()), &mut h.out);
        assert_eq!(h.out.as_str(), "235 2.7.0 Authentication successful\r\n");
        assert_eq!(h.session.user(), Some(&alice()));
        assert_eq!(h.code("AUTH PLAIN"), "503 5.5.1");
    }

    #[test]
    fn auth_login_and_cancel() {
        let mut h = tls_submission();
        assert_eq!(h.send("AUTH LOGIN").0, "334 VXNlcm5hbWU6\r\n");
        assert_eq!(h.send(&b64("alice")).0, "334 UGFzc3dvcmQ6\r\n");
        let (_, step) = h.send(&b64("secret"));
        let Step::Authenticate(c) = step else {
            panic!("{step:?}")
        };
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice", "secret"));
        h.out.clear();
        h.session.auth_done(Login::Failed, &mut h.out);
        h.send("AUTH LOGIN");
        assert_eq!(h.code("*"), "501 5.0.0");
        assert_eq!(h.code("AUTH PLAIN !!"), "501 5.5.2");
        assert_eq!(h.code("AUTH CRAM-MD5"), "504 5.5.4");
        // Back to commands after a failed exchange.
        assert_eq!(h.code("NOOP"), "250 2.0.0");
    }

    #[test]
    fn submission_needs_login_and_own_sender() {
        let mut h = tls_submission();
        assert_eq!(h.code("MAIL FROM:<alice@localhost>"), "530 5.7.0");
        h.send("AUTH PLAIN x");
        h.send(&format!("AUTH PLAIN {}", b64("\0alice\0pw")));
        h.out.clear();
        h.session.auth_done(Login::Ok(alice()), &mut h.out);
        assert_eq!(h.code("MAIL FROM:<bob@localhost>"), "553 5.7.1");
        assert_eq!(h.code("MAIL FROM:<>"), "553 5.7.1");
        assert_eq!(h.code("MAIL FROM:<Alice@LOCALHOST>"), "250 2.1.0");
        assert_eq!(h.session.from_header_owner(), Some(&alice()));
        assert_eq!(h.code("RCPT TO:<bob@localhost>"), "250 2.1.5");
        // May relay: the copy goes through the queue.
        assert_eq!(h.code("RCPT TO:<friend@elsewhere.test>"), "250 2.1.5");
        assert!(matches!(
            &h.session.recipients()[1].destinations[..],
            [Destination::Remote {
                forwarded: false,
                ..
            }]
        ));
    }

    #[test]
    fn relay_only_for_listed_clients() {
        let mut h = Harness::with(Security {
            relay_client: true,
            ..Default::default()
        });
        h.send("EHLO c");
        h.send("MAIL FROM:<x@y.test>");
        assert_eq!(h.code("RCPT TO:<friend@elsewhere.test>"), "250 2.1.5");
        let mut h = Harness::new();
        h.send("EHLO c");
        h.send("MAIL FROM:<x@y.test>");
        assert_eq!(h.code("RCPT TO:<friend@elsewhere.test>"), "550 5.7.1");
        assert_eq!(h.session.from_header_owner(), None);
    }

    #[test]
    fn plaintext_login_when_allowed() {
        let mut h = Harness::with(Security {
            starttls: true,
            plaintext_login: true,
            ..Default::default()
        });
        let (reply, _) = h.send("EHLO c");
        assert!(reply.contains("AUTH PLAIN LOGIN"));
        assert!(matches!(
            h.send(&format!("AUTH PLAIN {}", b64("\0a\0b"))).1,
            Step::Authenticate(_)
        ));
    }

    #[test]
    fn helo_sanity_for_strangers() {
        let mut h = Harness::with(Security {
            check_helo: true,
            ..Default::default()
        });
        assert_eq!(h.code("EHLO 192.0.2.7"), "501 5.5.2");
        assert_eq!(h.code("HELO 2001:db8::1"), "501 5.5.2");
        assert_eq!(h.code("EHLO MX.test."), "550 5.7.1");
        assert_eq!(h.code("EHLO [192.0.2.7]"), "250-mx.te");
        let mut h = Harness::new();
        assert_eq!(h.code("EHLO 192.0.2.7"), "250-mx.te");
    }

    /// Defers everything once, like a greylist seeing new triplets.
    struct Grey;

    impl Directory for Grey {
        fn lookup(&mut self, rcpt: &RcptTo) -> RcptVerdict {
            Table.lookup(rcpt)
        }

        fn greylist(&mut self, _: Option<&Address>, _: &Address) -> Option<u64> {
            Some(300)
        }
    }

    #[test]
    fn greylisting_defers_strangers_only() {
        let mut h = Harness::new();
        h.send("EHLO c");
        h.send("MAIL FROM:<x@y.test>");
        h.out.clear();
        let line = LineEvent::Line(b"RCPT TO:<alice@localhost>");
        h.session.handle(line, &mut Grey, &mut h.out);
        assert!(h.out.starts_with("451 4.7.1 Greylisted"), "{}", h.out);
        let mut h = tls_submission();
        h.send(&format!("AUTH PLAIN {}", b64("\0alice\0pw")));
        h.session.auth_done(Login::Ok(alice()), &mut h.out);
        h.send("MAIL FROM:<alice@localhost>");
        h.out.clear();
        let line = LineEvent::Line(b"RCPT TO:<bob@localhost>");
        h.session.handle(line, &mut Grey, &mut h.out);
        assert!(
            h.out.starts_with("250"),
            "members are not greylisted: {}",
            h.out
        );
    }
}
