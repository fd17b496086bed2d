//! The SMTP client conversation as a state machine over bytes and time:
//! greeting, EHLO (or HELO), STARTTLS, AUTH to a smarthost, MAIL, RCPT per
//! recipient, DATA, QUIT. It never touches a socket, a file or a clock:
//! the caller feeds it the server's bytes with the time they came
//! ([`Session::receive`]), asks what to do next ([`Session::poll`]), and
//! reports what it did (TLS started, body sent, the connection failed).

use super::Failure;
use crate::limits::{OUTBOUND_COMMAND_TIMEOUT, OUTBOUND_DATA_TIMEOUT};
use crate::wire::reply::{Reply, ReplyParser};
use base64::Engine;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How TLS is used on one connection (the certificates are the caller's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS must be offered and succeed.
    Required,
    /// TLS from the first byte.
    Implicit,
    /// STARTTLS when offered.
    Opportunistic,
    Off,
}

/// What one attempt is to say.
pub struct Plan<'a> {
    /// Our name in EHLO.
    pub helo: &'a str,
    pub tls: TlsMode,
    pub login: Option<(&'a str, &'a str)>,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub size: u64,
}

/// What the caller is to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes.
    Send(Vec<u8>),
    /// Start TLS as the client, dropping whatever was read before; then
    /// [`Session::tls_started`] or [`Session::failed`].
    StartTls,
    /// Send the message dot-stuffed with its final `.`; then
    /// [`Session::body_sent`] or [`Session::failed`].
    SendBody,
    /// Read from the server and [`Session::receive`] it; nothing need be
    /// read after this instant (poll again then: the wait has timed out).
    Receive(Instant),
    /// The final fate of recipient `index` (in the order given).
    Recipient(usize, Result<(), Failure>),
    /// The conversation is over. `Err`: the whole attempt failed (try
    /// another host, or later), and no recipient's fate was given.
    Done(Result<(), Failure>),
}

/// Where the conversation stands: the reply or report awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// TLS from the first byte, before the greeting.
    ImplicitTls,
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    /// The handshake after STARTTLS.
    Handshake,
    EhloAgain,
    AuthPlain,
    /// AUTH LOGIN: its first challenge, the second, then the verdict.
    AuthLogin(u8),
    Mail,
    Rcpt(usize),
    Data,
    Body,
    DataEnd,
    Quit,
    Done,
}

pub struct Session<'a> {
    plan: &'a Plan<'a>,
    state: State,
    replies: ReplyParser,
    /// The reply to the last EHLO (or HELO): the extensions on offer.
    ehlo: Option<Reply>,
    results: Vec<Result<(), Failure>>,
    steps: VecDeque<Step>,
    /// When the reply awaited is overdue; set when the wait begins, and
    /// again whenever bytes come (each read has its own time).
    deadline: Option<Instant>,
}

impl<'a> Session<'a> {
    pub fn new(plan: &'a Plan<'a>) -> Self {
        let mut session = Session {
            plan,
            state: State::Greeting,
            replies: ReplyParser::new(),
            ehlo: None,
            results: Vec::with_capacity(plan.recipients.len()),
            steps: VecDeque::new(),
            deadline: None,
        };
        if plan.tls == TlsMode::Implicit {
            session.state = State::ImplicitTls;
            session.steps.push_back(Step::StartTls);
        }
        session
    }

    /// What to do next, at `now`.
    pub fn poll(&mut self, now: Instant) -> Step {
        if let Some(step) = self.steps.pop_front() {
            return step;
        }
        match self.state {
            State::Done => return Step::Done(Ok(())),
            State::ImplicitTls | State::Handshake | State::Body => {
                unreachable!("a report was awaited, not a poll")
            }
            _ => {}
        }
        let deadline = *self.deadline.get_or_insert(now + self.patience());
        if now >= deadline {
            self.failed(Failure::temporary("reading reply: timed out"));
            return self.poll(now);
        }
        Step::Receive(deadline)
    }

    /// When the session must be polled even if nothing comes.
    pub fn poll_at(&self) -> Option<Instant> {
        self.deadline
    }

    /// Bytes from the server, come at `now`. Returns how many were used:
    /// input stops at the end of a reply, and the rest waits for the
    /// next [`Step::Receive`].
    pub fn receive(&mut self, input: &[u8], now: Instant) -> usize {
        if !self.steps.is_empty() || self.state == State::Done {
            return 0;
        }
        self.deadline = Some(now + self.patience());
        let (used, reply) = self.replies.push(input);
        match reply {
            None => {}
            Some(Err(e)) => self.failed(Failure::temporary(e.to_string())),
            Some(Ok(reply)) => {
                self.deadline = None;
                if let Err(failure) = self.answer(reply) {
                    self.finish(Err(failure));
                }
            }
        }
        used
    }

    /// The TLS handshake asked for succeeded.
    pub fn tls_started(&mut self) {
        // Nothing read before the handshake may be trusted after it.
        self.replies = ReplyParser::new();
        match self.state {
            State::ImplicitTls => self.state = State::Greeting,
            State::Handshake => self.command(State::EhloAgain, format!("EHLO {}", self.plan.helo)),
            _ => {}
        }
    }

    /// The message went out, final dot included.
    pub fn body_sent(&mut self) {
        if self.state == State::Body {
            self.state = State::DataEnd;
        }
    }

    /// The connection failed, or the server closed it: the attempt ends,
    /// unless all that was left was saying goodbye.
    pub fn failed(&mut self, failure: Failure) {
        match self.state {
            State::Done => {}
            State::Quit => self.finish(Ok(())),
            _ => self.finish(Err(failure)),
        }
    }

    /// How long a reply may take to come, from the last byte.
    fn patience(&self) -> Duration {
        match self.state {
            State::DataEnd => OUTBOUND_DATA_TIMEOUT,
            _ => OUTBOUND_COMMAND_TIMEOUT,
        }
    }

    fn command(&mut self, next: State, line: String) {
        let mut bytes = line.into_bytes();
        bytes.extend_from_slice(b"\r\n");
        self.steps.push_back(Step::Send(bytes));
        self.state = next;
    }

    fn finish(&mut self, result: Result<(), Failure>) {
        self.deadline = None;
        self.steps.push_back(Step::Done(result));
        self.state = State::Done;
    }

    fn quit(&mut self) {
        self.command(State::Quit, "QUIT".into());
    }

    /// Moves on after `reply`; `Err` ends the attempt.
    fn answer(&mut self, reply: Reply) -> Result<(), Failure> {
        let code = reply.code;
        match self.state {
            State::Greeting if code != 220 => {
                // Another host may do better, whatever the code.
                return Err(Failure::temporary(format!("greeting: {}", reply.text())));
            }
            State::Greeting => self.command(State::Ehlo, format!("EHLO {}", self.plan.helo)),
            State::Ehlo if code != 250 => {
                self.command(State::Helo, format!("HELO {}", self.plan.helo))
            }
            State::Helo if code != 250 => {
                return Err(Failure::temporary(format!("HELO: {}", reply.text())));
            }
            State::Ehlo | State::Helo => {
                self.ehlo = Some(reply);
                self.after_ehlo()?;
            }
            State::StartTls if code != 220 => {
                return Err(Failure::temporary(format!("STARTTLS: {}", reply.text())));
            }
            State::StartTls => {
                self.state = State::Handshake;
                self.steps.push_back(Step::StartTls);
            }
            State::EhloAgain if code != 250 => {
                let text = reply.text();
                return Err(Failure::temporary(format!("EHLO after STARTTLS: {text}")));
            }
            State::EhloAgain => {
                self.ehlo = Some(reply);
                self.log_in()?;
            }
            State::AuthPlain | State::AuthLogin(_) => self.login_answer(&reply)?,
            State::Mail | State::Rcpt(_) | State::Data => self.envelope_answer(&reply)?,
            State::DataEnd => self.data_end(&reply),
            State::Quit => self.finish(Ok(())),
            State::ImplicitTls | State::Handshake | State::Body | State::Done => {}
        }
        Ok(())
    }

    fn offers(&self, keyword: &str) -> bool {
        self.ehlo.as_ref().is_some_and(|r| r.has_keyword(keyword))
    }

    /// After the first EHLO: STARTTLS if it is to be, else on.
    fn after_ehlo(&mut self) -> Result<(), Failure> {
        let starttls = match self.plan.tls {
            TlsMode::Required if !self.offers("STARTTLS") => {
                return Err(Failure::temporary("STARTTLS required but not offered"));
            }
            TlsMode::Required => true,
            TlsMode::Opportunistic => self.offers("STARTTLS"),
            TlsMode::Implicit | TlsMode::Off => false,
        };
        if starttls {
            self.command(State::StartTls, "STARTTLS".into());
            return Ok(());
        }
        self.log_in()
    }

    /// AUTH PLAIN if offered, else LOGIN; without a login, the envelope.
    fn log_in(&mut self) -> Result<(), Failure> {
        let Some((user, password)) = self.plan.login else {
            self.mail();
            return Ok(());
        };
        let mechanisms = self
            .ehlo
            .as_ref()
            .map(Reply::auth_mechanisms)
            .unwrap_or_default();
        if mechanisms.iter().any(|m| m == "PLAIN") {
            let token = crate::auth::sasl::plain_response(user, password);
            self.command(State::AuthPlain, format!("AUTH PLAIN {token}"));
        } else if mechanisms.iter().any(|m| m == "LOGIN") {
            self.command(State::AuthLogin(0), "AUTH LOGIN".into());
        } else {
            return Err(Failure::temporary(
                "the smarthost offers no AUTH PLAIN or LOGIN",
            ));
        }
        Ok(())
    }

    fn login_answer(&mut self, reply: &Reply) -> Result<(), Failure> {
        let Some((user, password)) = self.plan.login else {
            return Ok(());
        };
        match self.state {
            State::AuthLogin(stage @ (0 | 1)) => {
                if reply.code != 334 {
                    let text = reply.text();
                    return Err(Failure::temporary(format!("AUTH LOGIN: {text}")));
                }
                let answer = if stage == 0 { user } else { password };
                self.command(State::AuthLogin(stage + 1), base64(answer.as_bytes()));
            }
            _ if reply.code != 235 => {
                // A wrong password is fixed in the config, then the queue retries.
                let text = reply.text();
                return Err(Failure::temporary(format!("login refused: {text}")));
            }
            _ => self.mail(),
        }
        Ok(())
    }

    fn mail(&mut self) {
        let size = if self.offers("SIZE") {
            format!(" SIZE={}", self.plan.size)
        } else {
            String::new()
        };
        let sender = self.plan.sender;
        self.command(State::Mail, format!("MAIL FROM:<{sender}>{size}"));
    }

    /// MAIL, each RCPT, then DATA.
    fn envelope_answer(&mut self, reply: &Reply) -> Result<(), Failure> {
        match self.state {
            State::Mail if reply.code != 250 => {
                return Err(Failure::from_reply("MAIL FROM", reply))
            }
            State::Mail => {}
            State::Rcpt(_) => self.results.push(if (250..=252).contains(&reply.code) {
                Ok(())
            } else {
                Err(Failure::from_reply("RCPT TO", reply))
            }),
            _ if reply.code != 354 => return Err(Failure::from_reply("DATA", reply)),
            _ => {
                self.state = State::Body;
                self.steps.push_back(Step::SendBody);
                return Ok(());
            }
        }
        let next = self.results.len();
        if let Some(rcpt) = self.plan.recipients.get(next) {
            self.command(State::Rcpt(next), format!("RCPT TO:<{rcpt}>"));
        } else if self.results.iter().all(Result::is_err) {
            self.give_results();
            self.quit();
        } else {
            self.command(State::Data, "DATA".into());
        }
        Ok(())
    }

    /// The answer to the final dot decides for every accepted recipient.
    fn data_end(&mut self, reply: &Reply) {
        if reply.code != 250 {
            let failure = Failure::from_reply("end of data", reply);
            for r in self.results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(failure.clone());
            }
        }
        self.give_results();
        self.quit();
    }

    fn give_results(&mut self) {
        let results = std::mem::take(&mut self.results);
        let steps = results
            .into_iter()
            .enumerate()
            .map(|(i, r)| Step::Recipient(i, r));
        self.steps.extend(steps);
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan<'a>(
        recipients: &'a [String],
        tls: TlsMode,
        login: Option<(&'a str, &'a str)>,
    ) -> Plan<'a> {
        Plan {
            helo: "box.test",
            tls,
            login,
            sender: "a@box.test",
            recipients,
            size: 1234,
        }
    }

    /// What the client says, and what the server answers.
    type Script<'a> = &'a [(&'a str, &'a str)];

    fn rcpts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i}@far.test")).collect()
    }

    /// What the client did, and how it ended.
    #[derive(Debug, PartialEq)]
    struct Run {
        said: Vec<String>,
        results: Vec<Result<(), Failure>>,
        outcome: Result<(), Failure>,
    }

    /// Runs a conversation against `script`: what the client is to say
    /// (`<tls>` and `<body>` for a handshake and the message) and what
    /// the server answers, fed to the client `chunk` bytes at a time. The
    /// greeting is the answer to the connection, said as `<connect>`.
    fn converse(plan: &Plan, script: Script, chunk: usize) -> Run {
        let now = Instant::now();
        let mut session = Session::new(plan);
        let mut script = script.iter();
        let mut pending: Vec<u8> = Vec::new();
        let mut said = Vec::new();
        let mut results = Vec::new();
        let mut expect = |what: String, pending: &mut Vec<u8>| {
            let (line, answer) = script.next().unwrap_or_else(|| panic!("{what} unscripted"));
            assert_eq!(what, *line);
            pending.extend_from_slice(answer.as_bytes());
            said.push(what);
        };
        expect("<connect>".into(), &mut pending);
        loop {
            match session.poll(now) {
                Step::Send(bytes) => {
                    let line = String::from_utf8(bytes).unwrap();
                    let line = line.strip_suffix("\r\n").expect("CRLF ends a command");
                    expect(line.to_string(), &mut pending);
                }
                Step::StartTls => {
                    pending.clear();
                    expect("<tls>".into(), &mut pending);
                    session.tls_started();
                }
                Step::SendBody => {
                    expect("<body>".into(), &mut pending);
                    session.body_sent();
                }
                Step::Receive(_) => {
                    if pending.is_empty() {
                        session.failed(Failure::temporary("connection closed by the server"));
                        continue;
                    }
                    let n = chunk.min(pending.len());
                    let used = session.receive(&pending[..n], now);
                    pending.drain(..used);
                }
                Step::Recipient(i, r) => {
                    assert_eq!(i, results.len());
                    results.push(r);
                }
                Step::Done(outcome) => {
                    return Run {
                        said,
                        results,
                        outcome,
                    };
                }
            }
        }
    }

    /// The same conversation with the server's bytes cut at every place.
    fn converse_split(plan: &Plan, script: Script) -> Run {
        let whole = converse(plan, script, usize::MAX);
        for chunk in 1..64 {
            assert_eq!(converse(plan, script, chunk), whole, "in pieces of {chunk}");
        }
        whole
    }

    fn temporary(text: &str) -> Result<(), Failure> {
        Err(Failure::temporary(text))
    }

    fn permanent(text: &str) -> Result<(), Failure> {
        Err(Failure {
            permanent: true,
            text: text.into(),
        })
    }

    #[test]
    fn through_a_smarthost_with_starttls_and_login_in_any_pieces() {
        let to = rcpts(3);
        let plan = plan(&to, TlsMode::Required, Some(("me", "secret")));
        let script = [
            ("<connect>", "220-smart.test ESMTP\r\n220 welcome\r\n"),
            (
                "EHLO box.test",
                "250-smart.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
            ),
            (
                "STARTTLS",
                "220 2.0.0 go ahead\r\n250 smuggled before the handshake\r\n",
            ),
            ("<tls>", ""),
            (
                "EHLO box.test",
                "250-smart.test\r\n250-SIZE 10000\r\n250 AUTH LOGIN PLAIN\r\n",
            ),
            ("AUTH PLAIN AG1lAHNlY3JldA==", "235 2.7.0 ok\r\n"),
            ("MAIL FROM:<a@box.test> SIZE=1234", "250 2.1.0 ok\r\n"),
            ("RCPT TO:<r0@far.test>", "250 2.1.5 ok\r\n"),
            ("RCPT TO:<r1@far.test>", "450 4.2.1 try later\r\n"),
            (
                "RCPT TO:<r2@far.test>",
                "550-5.1.1 no such\r\n550 5.1.1 user\r\n",
            ),
            ("DATA", "354 go\r\n"),
            ("<body>", "250 2.0.0 queued\r\n"),
            ("QUIT", "221 bye\r\n"),
        ];
        let run = converse_split(&plan, &script);
        assert_eq!(run.said.len(), script.len());
        assert_eq!(run.outcome, Ok(()));
        assert_eq!(
            run.results,
            [
                Ok(()),
                temporary("RCPT TO: 450 4.2.1 try later"),
                permanent("RCPT TO: 550-5.1.1 no such / 550 5.1.1 user"),
            ]
        );
    }

    #[test]
    fn helo_when_ehlo_is_refused_and_login_step_by_step() {
        let to = rcpts(1);
        let plan = plan(&to, TlsMode::Opportunistic, Some(("me", "pw")));
        let script = [
            ("<connect>", "220 old.test\r\n"),
            ("EHLO box.test", "502 what\r\n"),
            ("HELO box.test", "250-old.test\r\n250 AUTH LOGIN\r\n"),
            ("AUTH LOGIN", "334 VXNlcm5hbWU6\r\n"),
            ("bWU=", "334 UGFzc3dvcmQ6\r\n"),
            ("cHc=", "235 ok\r\n"),
            ("MAIL FROM:<a@box.test>", "250 ok\r\n"),
            ("RCPT TO:<r0@far.test>", "251 will forward\r\n"),
            ("DATA", "354 go\r\n"),
            ("<body>", "250 ok\r\n"),
            ("QUIT", "221 bye\r\n"),
        ];
        let run = converse_split(&plan, &script);
        assert_eq!((run.outcome, run.results), (Ok(()), vec![Ok(())]));
    }

    #[test]
    fn what_ends_an_attempt_before_the_message() {
        let to = rcpts(1);
        let cases: [(Plan, Script, &str); 6] = [
            (
                plan(&to, TlsMode::Off, None),
                &[("<connect>", "554 go away\r\n")],
                "greeting: 554 go away",
            ),
            (
                plan(&to, TlsMode::Required, None),
                &[
                    ("<connect>", "220 x\r\n"),
                    ("EHLO box.test", "250-x\r\n250 SIZE 9\r\n"),
                ],
                "STARTTLS required but not offered",
            ),
            (
                plan(&to, TlsMode::Off, Some(("me", "pw"))),
                &[("<connect>", "220 x\r\n"), ("EHLO box.test", "250 x\r\n")],
                "the smarthost offers no AUTH PLAIN or LOGIN",
            ),
            (
                plan(&to, TlsMode::Off, None),
                &[("<connect>", "220 x\r\n"), ("EHLO box.test", "hello\r\n")],
                "not an SMTP reply: \"hello\"",
            ),
            (
                plan(&to, TlsMode::Off, None),
                &[("<connect>", "220 x\r\n"), ("EHLO box.test", "250-x\r\n")],
                "connection closed by the server",
            ),
            (
                plan(&to, TlsMode::Off, None),
                &[
                    ("<connect>", "220 x\r\n"),
                    ("EHLO box.test", "250 x\r\n"),
                    ("MAIL FROM:<a@box.test>", "452 full\r\n"),
                ],
                "MAIL FROM: 452 full",
            ),
        ];
        for (plan, script, text) in cases {
            let run = converse_split(&plan, script);
            assert_eq!(run.outcome.unwrap_err().text, text);
            assert!(run.results.is_empty(), "{text}");
        }
    }

    #[test]
    fn every_recipient_refused_ends_before_data() {
        let to = rcpts(2);
        let plan = plan(&to, TlsMode::Off, None);
        let script = [
            ("<connect>", "220 x\r\n"),
            ("EHLO box.test", "250 x\r\n"),
            ("MAIL FROM:<a@box.test>", "250 ok\r\n"),
            ("RCPT TO:<r0@far.test>", "550 no\r\n"),
            ("RCPT TO:<r1@far.test>", "451 later\r\n"),
            // A server that hangs up at QUIT changes nothing.
            ("QUIT", ""),
        ];
        let run = converse_split(&plan, &script);
        assert_eq!(run.outcome, Ok(()));
        assert_eq!(
            run.results,
            [
                permanent("RCPT TO: 550 no"),
                temporary("RCPT TO: 451 later")
            ]
        );
    }

    #[test]
    fn a_refused_message_fails_every_accepted_recipient() {
        let to = rcpts(2);
        let plan = plan(&to, TlsMode::Off, None);
        let script = [
            ("<connect>", "220 x\r\n"),
            ("EHLO box.test", "250 x\r\n"),
            ("MAIL FROM:<a@box.test>", "250 ok\r\n"),
            ("RCPT TO:<r0@far.test>", "250 ok\r\n"),
            ("RCPT TO:<r1@far.test>", "550 no\r\n"),
            ("DATA", "354 go\r\n"),
            ("<body>", "554 5.7.1 spam\r\n"),
            ("QUIT", "221 bye\r\n"),
        ];
        let run = converse_split(&plan, &script);
        assert_eq!(
            run.results,
            [
                permanent("end of data: 554 5.7.1 spam"),
                permanent("RCPT TO: 550 no")
            ]
        );
        // No answer to the final dot: nothing is known, the attempt failed.
        let run = converse_split(
            &plan,
            &script[..7]
                .iter()
                .map(|&(c, a)| (c, if c == "<body>" { "" } else { a }))
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            run.outcome.unwrap_err().text,
            "connection closed by the server"
        );
        assert!(run.results.is_empty());
    }

    #[test]
    fn implicit_tls_starts_before_the_greeting() {
        let to = rcpts(1);
        let plan = plan(&to, TlsMode::Implicit, None);
        let mut session = Session::new(&plan);
        let now = Instant::now();
        assert_eq!(session.poll(now), Step::StartTls);
        session.tls_started();
        assert!(matches!(session.poll(now), Step::Receive(_)));
        session.receive(b"220 x\r\n", now);
        assert_eq!(session.poll(now), Step::Send(b"EHLO box.test\r\n".to_vec()));
    }

    #[test]
    fn a_silent_server_times_out_by_the_clock_given() {
        let to = rcpts(1);
        let plan = plan(&to, TlsMode::Off, None);
        let mut session = Session::new(&plan);
        let start = Instant::now();
        let Step::Receive(deadline) = session.poll(start) else {
            panic!("waits for the greeting")
        };
        assert_eq!(deadline, start + OUTBOUND_COMMAND_TIMEOUT);
        assert_eq!(session.poll_at(), Some(deadline));
        // Each byte that comes gives the reply time again.
        let later = deadline - Duration::from_secs(1);
        assert_eq!(session.poll(later), Step::Receive(deadline));
        session.receive(b"22", later);
        let deadline = later + OUTBOUND_COMMAND_TIMEOUT;
        assert_eq!(
            session.poll(deadline - Duration::from_secs(1)),
            Step::Receive(deadline)
        );
        assert_eq!(
            session.poll(deadline),
            Step::Done(temporary("reading reply: timed out"))
        );
        assert_eq!(session.poll_at(), None);
    }

    #[test]
    fn the_answer_to_the_message_may_take_longer() {
        let to = rcpts(1);
        let plan = plan(&to, TlsMode::Off, None);
        let mut session = Session::new(&plan);
        let now = Instant::now();
        for (answer, next) in [
            ("220 x\r\n", "EHLO box.test"),
            ("250 x\r\n", "MAIL FROM:<a@box.test>"),
            ("250 ok\r\n", "RCPT TO:<r0@far.test>"),
            ("250 ok\r\n", "DATA"),
        ] {
            assert!(matches!(session.poll(now), Step::Receive(_)));
            session.receive(answer.as_bytes(), now);
            assert_eq!(
                session.poll(now),
                Step::Send(format!("{next}\r\n").into_bytes())
            );
        }
        assert!(matches!(session.poll(now), Step::Receive(_)));
        session.receive(b"354 go\r\n", now);
        assert_eq!(session.poll(now), Step::SendBody);
        session.body_sent();
        let sent = now + Duration::from_secs(5);
        assert_eq!(
            session.poll(sent),
            Step::Receive(sent + OUTBOUND_DATA_TIMEOUT)
        );
        let overdue = sent + OUTBOUND_DATA_TIMEOUT;
        assert_eq!(
            session.poll(overdue),
            Step::Done(temporary("reading reply: timed out"))
        );
    }
}
