//! The SMTP session as a state machine (RFC 5321 §4.1.4 ordering), free of
//! sockets and files: the server feeds it command lines and the outcome of
//! message storage, and it writes replies and says what to do next.

use super::command::{self, Command, MailFrom, ParseError, RcptTo};
use super::reply::{push, push_lines, Replies};
use crate::address::{Address, AddressError};
use crate::line::LineEvent;
use core::fmt::Write;

/// Where a recipient would go, as decided by the server's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptVerdict {
    /// Deliver into this user's mailbox (`local@domain` of the account).
    Local(Address),
    /// A served domain, but no such user.
    UnknownUser,
    /// Not a domain we serve.
    RelayDenied,
}

/// The server side of recipient lookup; a trait so tests use a plain table.
pub trait Directory {
    fn lookup(&mut self, rcpt: &RcptTo) -> RcptVerdict;
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_errors: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep reading commands.
    Continue,
    /// 354 was sent: read the message body with a [`super::data::DataDecoder`].
    ReceiveData,
    /// Send the replies, then close the connection.
    Close,
}

/// How storing a message ended, reported back by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    Stored {
        id: String,
    },
    TooBig,
    /// Out of space: 452 4.3.1.
    NoSpace,
    /// Any other storage failure: 451 4.3.0.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before HELO/EHLO.
    Connected,
    /// Greeted, no transaction.
    Ready,
    /// MAIL accepted.
    Mail,
    /// At least one RCPT accepted.
    Rcpt,
    /// Inside DATA.
    Data,
}

/// One accepted recipient: the address the client gave and the mailbox it
/// resolved to.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub given: Address,
    pub mailbox: Address,
}

pub struct Session {
    hostname: heapless::String<255>,
    limits: Limits,
    phase: Phase,
    helo: heapless::String<{ crate::limits::MAX_HELO }>,
    esmtp: bool,
    from: Option<Address>,
    recipients: Vec<Recipient>,
    errors: u32,
}

const EHLO_KEYWORDS: [&str; 6] = [
    "PIPELINING",
    "8BITMIME",
    "SMTPUTF8",
    "ENHANCEDSTATUSCODES",
    "HELP",
    "SIZE",
];

impl Session {
    /// Starts a session and writes the greeting.
    pub fn new(hostname: &str, limits: Limits, out: &mut Replies) -> Self {
        let mut name = heapless::String::new();
        let _ = name.push_str(&hostname[..hostname.len().min(255)]);
        let _ = write!(out, "220 {name} ESMTP Postbox\r\n");
        Session {
            hostname: name,
            limits,
            phase: Phase::Connected,
            helo: heapless::String::new(),
            esmtp: false,
            from: None,
            recipients: Vec::new(),
            errors: 0,
        }
    }

    pub fn helo(&self) -> &str {
        &self.helo
    }

    pub fn esmtp(&self) -> bool {
        self.esmtp
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
        self.recipients.clear();
        if self.phase != Phase::Connected {
            self.phase = Phase::Ready;
        }
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

    /// Handles one command line (or an over-long one).
    pub fn handle(
        &mut self,
        event: LineEvent<'_>,
        dir: &mut impl Directory,
        out: &mut Replies,
    ) -> Step {
        let line = match event {
            LineEvent::Line(line) => line,
            LineEvent::TooLong => return self.error(out, 500, "5.5.2", "Line too long"),
        };
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

    fn command(
        &mut self,
        command: Command<'_>,
        dir: &mut impl Directory,
        out: &mut Replies,
    ) -> Step {
        match command {
            Command::Ehlo(name) | Command::Helo(name) => {
                let esmtp = matches!(command, Command::Ehlo(_));
                self.reset_transaction();
                self.phase = Phase::Ready;
                self.esmtp = esmtp;
                self.helo.clear();
                let _ = self
                    .helo
                    .push_str(&name[..name.len().min(self.helo.capacity())]);
                if esmtp {
                    let mut first: heapless::String<300> = heapless::String::new();
                    let _ = write!(first, "{} Hello {}", self.hostname, self.helo);
                    let mut size: heapless::String<32> = heapless::String::new();
                    let _ = write!(size, "SIZE {}", self.limits.max_message_size);
                    let mut lines: heapless::Vec<&str, 8> = heapless::Vec::new();
                    let _ = lines.push(&first);
                    for keyword in &EHLO_KEYWORDS[..EHLO_KEYWORDS.len() - 1] {
                        let _ = lines.push(keyword);
                    }
                    let _ = lines.push(&size);
                    push_lines(out, 250, &lines);
                } else {
                    let _ = write!(out, "250 {} Hello {}\r\n", self.hostname, self.helo);
                }
                Step::Continue
            }
            Command::Mail(mail) => self.mail(mail, out),
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
                        "2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY",
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
        }
    }

    fn mail(&mut self, mail: MailFrom, out: &mut Replies) -> Step {
        match self.phase {
            Phase::Connected => return self.error(out, 503, "5.5.1", "Send HELO/EHLO first"),
            Phase::Mail | Phase::Rcpt => {
                return self.error(out, 503, "5.5.1", "Nested MAIL command")
            }
            Phase::Ready | Phase::Data => {}
        }
        if mail
            .size
            .is_some_and(|size| size > self.limits.max_message_size)
        {
            push(
                out,
                552,
                Some("5.3.4"),
                "Message size exceeds fixed maximum message size",
            );
            return Step::Continue;
        }
        self.from = mail.from;
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
        match dir.lookup(&rcpt) {
            RcptVerdict::Local(mailbox) => {
                let given = match rcpt {
                    RcptTo::Mailbox(a) => a,
                    RcptTo::Postmaster => mailbox.clone(),
                };
                self.recipients.push(Recipient { given, mailbox });
                self.phase = Phase::Rcpt;
                push(out, 250, Some("2.1.5"), "Recipient OK");
                Step::Continue
            }
            RcptVerdict::UnknownUser => self.error(out, 550, "5.1.1", "No such user here"),
            RcptVerdict::RelayDenied => self.error(out, 550, "5.7.1", "Relaying denied"),
        }
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
            DataOutcome::NoSpace => push(out, 452, Some("4.3.1"), "Insufficient system storage"),
            DataOutcome::Failed => push(
                out,
                451,
                Some("4.3.0"),
                "Local error in processing, try again later",
            ),
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
                RcptTo::Mailbox(a) if a.domain() != "localhost" => RcptVerdict::RelayDenied,
                RcptTo::Mailbox(a) => match a.local().to_ascii_lowercase().as_str() {
                    "alice" | "postmaster" => RcptVerdict::Local(alice()),
                    "bob" => RcptVerdict::Local(Address::new("bob", "localhost").unwrap()),
                    _ => RcptVerdict::UnknownUser,
                },
            }
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
            let mut out = Replies::new();
            let session = Session::new("mx.test", limits(), &mut out);
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
}
