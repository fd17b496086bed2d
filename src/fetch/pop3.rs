//! The POP3 client conversation (RFC 1939, STLS from RFC 2595): greeting,
//! STLS, USER and PASS, UIDL, RETR of each message chosen, DELE of those
//! stored here (when not kept), QUIT, which is when the server deletes.

use super::{next_step, said, Conversation, Line, Patience, Step};
use crate::wire::dot::DataDecoder;
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ImplicitTls,
    Greeting,
    Stls,
    Handshake,
    User,
    Pass,
    Uidl,
    /// The lines of the UIDL listing.
    Listing,
    Choosing,
    Retr,
    /// The message's lines, up to the final dot.
    Body,
    Storing,
    Dele,
    Quit,
    Done,
}

/// One thing to do on the server, in the order chosen.
enum Action {
    Fetch(u32, String),
    Delete(u32),
}

pub struct Pop3 {
    name: String,
    password: String,
    /// STLS before the login (`pop3://` without `tls = "none"`).
    stls: bool,
    state: State,
    line: Line,
    body: DataDecoder,
    /// The listing: message number and unique id.
    listed: Vec<(u32, String)>,
    actions: VecDeque<Action>,
    /// The message being fetched: its number and id.
    current: (u32, String),
    steps: VecDeque<Step>,
    patience: Patience,
}

impl Pop3 {
    /// `implicit_tls`: TLS from the first byte (`pop3s://`); `stls`: STLS
    /// required before the login.
    pub fn new(name: &str, password: &str, implicit_tls: bool, stls: bool) -> Pop3 {
        let mut pop3 = Pop3 {
            name: name.to_string(),
            password: password.to_string(),
            stls: stls && !implicit_tls,
            state: State::Greeting,
            line: Line::default(),
            body: DataDecoder::new(),
            listed: Vec::new(),
            actions: VecDeque::new(),
            current: (0, String::new()),
            steps: VecDeque::new(),
            patience: Patience::default(),
        };
        if implicit_tls {
            pop3.state = State::ImplicitTls;
            pop3.steps.push_back(Step::StartTls);
        }
        pop3
    }

    fn command(&mut self, next: State, line: &str) {
        self.steps
            .push_back(Step::Send(format!("{line}\r\n").into_bytes()));
        self.state = next;
    }

    fn finish(&mut self, outcome: Result<(), String>) {
        self.steps.clear();
        self.steps.push_back(Step::Done(outcome));
        self.state = State::Done;
    }

    /// The next action chosen, or QUIT when none is left.
    fn next_action(&mut self) {
        match self.actions.pop_front() {
            Some(Action::Fetch(number, id)) => {
                self.current = (number, id);
                self.command(State::Retr, &format!("RETR {number}"));
            }
            Some(Action::Delete(number)) => self.command(State::Dele, &format!("DELE {number}")),
            None => self.command(State::Quit, "QUIT"),
        }
    }

    /// A whole line in `self.line`, in the current state.
    fn answer(&mut self) {
        let line = std::mem::take(&mut self.line.bytes);
        let too_long = std::mem::take(&mut self.line.too_long);
        let ok = line.starts_with(b"+OK");
        let refused = |what: &str| format!("{what}: {}", said(&line));
        match self.state {
            State::Listing => self.listing_line(&line, too_long),
            _ if !ok && !line.starts_with(b"-ERR") => self.finish(Err(format!(
                "not a POP3 server, or out of step: {}",
                said(&line)
            ))),
            State::Greeting if !ok => self.finish(Err(refused("greeted with"))),
            State::Greeting if self.stls => self.command(State::Stls, "STLS"),
            State::Greeting => {
                let user = format!("USER {}", self.name);
                self.command(State::User, &user)
            }
            State::Stls if !ok => self.finish(Err(refused("STLS refused (TLS is required)"))),
            State::Stls => {
                self.state = State::Handshake;
                self.steps.push_back(Step::StartTls);
            }
            State::User | State::Pass if !ok => self.finish(Err(refused("login refused"))),
            State::User => {
                let pass = format!("PASS {}", self.password);
                self.command(State::Pass, &pass)
            }
            State::Pass => self.command(State::Uidl, "UIDL"),
            State::Uidl if !ok => self.finish(Err(refused("the server has no UIDL"))),
            State::Uidl => self.state = State::Listing,
            // Gone since the listing (another client): skipped this time.
            State::Retr if !ok => self.next_action(),
            State::Retr => {
                self.steps
                    .push_back(Step::MessageStart(self.current.1.clone()));
                self.body = DataDecoder::new();
                self.state = State::Body;
            }
            State::Dele if !ok => self.finish(Err(refused("DELE refused"))),
            State::Dele => self.next_action(),
            State::Quit if !ok => self.finish(Err(refused("QUIT (the deletions) refused"))),
            State::Quit => self.finish(Ok(())),
            _ => {}
        }
    }

    fn listing_line(&mut self, line: &[u8], too_long: bool) {
        if line == b"." {
            self.state = State::Choosing;
            let ids = self.listed.iter().map(|(_, id)| id.clone()).collect();
            self.steps.push_back(Step::Listed(ids));
            return;
        }
        let text = std::str::from_utf8(line).unwrap_or("");
        let mut words = text.split_ascii_whitespace();
        let number = words.next().and_then(|n| n.parse::<u32>().ok());
        let id = words.next().filter(|id| id.len() <= 70 && !too_long);
        match (number, id) {
            (Some(number), Some(id)) => self.listed.push((number, id.to_string())),
            _ => self.finish(Err(format!("a bad UIDL line: {}", said(line)))),
        }
    }

    /// Message bytes, dot-unstuffed into `body`; returns how many were used.
    fn body_bytes(&mut self, input: &[u8], body: &mut Vec<u8>) -> usize {
        let start = body.len();
        // A bare LF becomes CRLF: at most twice the input.
        body.resize(start + input.len() * 2 + 2, 0);
        let progress = self.body.feed(input, &mut body[start..]);
        body.truncate(start + progress.produced);
        if progress.finished {
            self.state = State::Storing;
            self.steps.push_back(Step::MessageEnd);
        }
        progress.consumed
    }
}

impl Conversation for Pop3 {
    fn poll(&mut self, now: Instant) -> Step {
        let done = self.state == State::Done;
        match next_step(&mut self.steps, &mut self.patience, now, done) {
            Some(step) => step,
            None => {
                self.failed("the server did not answer in time".into());
                self.poll(now)
            }
        }
    }

    fn receive(&mut self, input: &[u8], now: Instant, body: &mut Vec<u8>) -> usize {
        if !self.steps.is_empty() || self.state == State::Done {
            return 0;
        }
        self.patience.heard(now);
        if self.state == State::Body {
            return self.body_bytes(input, body);
        }
        let (used, whole) = self.line.push(input);
        if whole {
            self.patience.answered();
            self.answer();
        }
        used
    }

    fn tls_started(&mut self) {
        self.line.clear();
        match self.state {
            State::ImplicitTls => self.state = State::Greeting,
            State::Handshake => {
                let user = format!("USER {}", self.name);
                self.command(State::User, &user)
            }
            _ => {}
        }
    }

    fn choose(&mut self, fetch: Vec<String>, delete: Vec<String>) {
        if self.state != State::Choosing {
            return;
        }
        let number = |id: &str| self.listed.iter().find(|(_, i)| i == id).map(|(n, _)| *n);
        let fetched = fetch
            .iter()
            .filter_map(|id| number(id).map(|n| Action::Fetch(n, id.clone())));
        let deleted = delete
            .iter()
            .filter_map(|id| number(id).map(Action::Delete));
        self.actions = fetched.chain(deleted).collect();
        self.next_action();
    }

    fn stored(&mut self, delete: bool) {
        if self.state != State::Storing {
            return;
        }
        match delete {
            true => self.command(State::Dele, &format!("DELE {}", self.current.0)),
            false => self.next_action(),
        }
    }

    fn failed(&mut self, why: String) {
        if self.state != State::Done {
            self.finish(Err(why));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs a conversation against `server`'s bytes, fed one at a time;
    /// answers each listing with `choose`, each message with `stored(delete)`.
    /// Gives what the client sent, the messages, and how it ended.
    pub(crate) fn converse(
        client: &mut dyn Conversation,
        server: &[u8],
        choose: impl Fn(&[String]) -> (Vec<String>, Vec<String>),
        delete: bool,
    ) -> Conversed {
        let now = Instant::now();
        let (mut sent, mut messages) = (String::new(), Vec::new());
        let mut at = 0;
        let mut body = Vec::new();
        loop {
            match client.poll(now) {
                Step::Send(bytes) => sent.push_str(&String::from_utf8(bytes).unwrap()),
                Step::StartTls => client.tls_started(),
                Step::Receive(_) if at >= server.len() => client.failed("connection closed".into()),
                Step::Receive(_) => at += client.receive(&server[at..at + 1], now, &mut body),
                Step::Listed(ids) => {
                    let (fetch, delete) = choose(&ids);
                    client.choose(fetch, delete)
                }
                Step::MessageStart(id) => messages.push((id, Vec::new())),
                Step::MessageEnd => {
                    messages.last_mut().unwrap().1 = std::mem::take(&mut body);
                    client.stored(delete)
                }
                Step::Done(outcome) => return (sent, messages, outcome),
            }
        }
    }

    /// What the client sent, the messages, and how it ended.
    pub(crate) type Conversed = (String, Vec<(String, Vec<u8>)>, Result<(), String>);

    const LISTED: &str = "+OK hi\r\n+OK\r\n+OK in\r\n+OK\r\n1 aaa\r\n2 bbb\r\n.\r\n";

    #[test]
    fn fetches_the_chosen_messages_unstuffed_and_keeps_them() {
        let server =
            format!("{LISTED}+OK 9\r\nSubject: b\r\n\r\n..dot\r\nbare\nlf\r\n.\r\n+OK bye\r\n");
        let mut pop3 = Pop3::new("ann", "pw", true, false);
        let (sent, messages, outcome) = converse(
            &mut pop3,
            server.as_bytes(),
            |ids| {
                assert_eq!(ids, ["aaa", "bbb"]);
                (vec!["bbb".into()], vec![])
            },
            false,
        );
        assert_eq!(outcome, Ok(()));
        assert_eq!(sent, "USER ann\r\nPASS pw\r\nUIDL\r\nRETR 2\r\nQUIT\r\n");
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].0, "bbb");
        assert_eq!(messages[0].1, b"Subject: b\r\n\r\n.dot\r\nbare\r\nlf\r\n");
    }

    #[test]
    fn deletes_what_is_stored_and_what_was_here_then_quits() {
        let server = format!("{LISTED}+OK\r\nx\r\n.\r\n+OK gone\r\n+OK gone\r\n+OK bye\r\n");
        let mut pop3 = Pop3::new("ann", "pw", true, false);
        let (sent, messages, outcome) = converse(
            &mut pop3,
            server.as_bytes(),
            |_| (vec!["aaa".into()], vec!["bbb".into()]),
            true,
        );
        assert_eq!(outcome, Ok(()));
        assert_eq!(messages[0].1, b"x\r\n");
        assert_eq!(
            sent,
            "USER ann\r\nPASS pw\r\nUIDL\r\nRETR 1\r\nDELE 1\r\nDELE 2\r\nQUIT\r\n"
        );
    }

    #[test]
    fn stls_comes_before_the_login_and_is_required() {
        let server = "+OK hi\r\n+OK go\r\n+OK\r\n+OK\r\n+OK\r\n.\r\n+OK bye\r\n";
        let mut pop3 = Pop3::new("ann", "pw", false, true);
        let (sent, _, outcome) =
            converse(&mut pop3, server.as_bytes(), |_| (vec![], vec![]), false);
        assert_eq!(outcome, Ok(()));
        assert_eq!(sent, "STLS\r\nUSER ann\r\nPASS pw\r\nUIDL\r\nQUIT\r\n");
        let mut pop3 = Pop3::new("ann", "pw", false, true);
        let server = b"+OK hi\r\n-ERR no TLS here\r\n";
        let (sent, _, outcome) = converse(&mut pop3, server, |_| (vec![], vec![]), false);
        assert_eq!(sent, "STLS\r\n");
        assert_eq!(
            outcome,
            Err("STLS refused (TLS is required): -ERR no TLS here".into())
        );
    }

    #[test]
    fn a_wrong_password_ends_it_with_the_servers_words() {
        let server = b"+OK hi\r\n+OK\r\n-ERR [AUTH] Authentication failed.\r\n";
        let mut pop3 = Pop3::new("ann", "bad", true, false);
        let (_, _, outcome) = converse(&mut pop3, server, |_| (vec![], vec![]), false);
        assert_eq!(
            outcome,
            Err("login refused: -ERR [AUTH] Authentication failed.".into())
        );
    }

    #[test]
    fn a_silent_server_times_out_and_a_cut_transfer_fails() {
        let mut pop3 = Pop3::new("ann", "pw", true, false);
        let now = Instant::now();
        assert_eq!(pop3.poll(now), Step::StartTls);
        pop3.tls_started();
        let Step::Receive(deadline) = pop3.poll(now) else {
            panic!("waits for the greeting")
        };
        assert_eq!(
            pop3.poll(deadline),
            Step::Done(Err("the server did not answer in time".into()))
        );
        let server = format!("{LISTED}+OK\r\npartial");
        let mut pop3 = Pop3::new("ann", "pw", true, false);
        let (_, messages, outcome) = converse(
            &mut pop3,
            server.as_bytes(),
            |_| (vec!["aaa".into()], vec![]),
            true,
        );
        assert_eq!(outcome, Err("connection closed".into()));
        assert_eq!(messages.len(), 1, "started, never ended");
    }
}
