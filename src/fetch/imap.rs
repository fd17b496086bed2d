//! The IMAP client conversation (RFC 3501; UID EXPUNGE from RFC 4315):
//! greeting, the capabilities (asked for when the greeting has none), the
//! login (AUTHENTICATE PLAIN when offered, with the response on the
//! command line under SASL-IR, RFC 4959; else LOGIN, never when the
//! server says LOGINDISABLED), SELECT (the UIDVALIDITY and how many there are), the
//! UIDs, `UID FETCH uid (BODY.PEEK[])` for each message chosen, and for
//! those stored here when not kept `UID STORE +FLAGS.SILENT (\Deleted)`,
//! then `UID EXPUNGE` (or EXPUNGE without UIDPLUS), LOGOUT. A message's
//! id is `UIDVALIDITY.UID`, so a new UIDVALIDITY makes every id new.
//!
//! Responses are read line by line; a literal (`{n}`) inside one is the
//! message when it follows `BODY[]` in the answer to a fetch (streamed
//! out), and skipped anywhere else.

use super::{next_step, said, Conversation, Line, Patience, Step};
use std::collections::VecDeque;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ImplicitTls,
    Greeting,
    Capability,
    Login,
    Select,
    List,
    Choosing,
    Fetch,
    Storing,
    Delete,
    Expunge,
    Logout,
    Done,
}

enum Action {
    Fetch(String),
    Delete(String),
}

/// What the server said it can do, as far as logging in goes.
#[derive(Debug, Default)]
struct Capabilities {
    /// Any capability list was seen.
    known: bool,
    auth_plain: bool,
    sasl_ir: bool,
    login_disabled: bool,
    uidplus: bool,
}

impl Capabilities {
    /// Takes in a `CAPABILITY` list from anywhere in `line`.
    fn read(&mut self, line: &[u8]) {
        let Some(at) = line
            .windows(11)
            .position(|w| w.eq_ignore_ascii_case(b"CAPABILITY "))
        else {
            return;
        };
        let rest = &line[at + 11..];
        let end = rest.iter().position(|&b| b == b']').unwrap_or(rest.len());
        self.known = true;
        for word in rest[..end].split(|&b| b == b' ') {
            let has = |name: &[u8]| word.eq_ignore_ascii_case(name);
            self.auth_plain |= has(b"AUTH=PLAIN");
            self.sasl_ir |= has(b"SASL-IR");
            self.login_disabled |= has(b"LOGINDISABLED");
            self.uidplus |= has(b"UIDPLUS");
        }
    }
}

pub struct Imap {
    name: String,
    password: String,
    folder: String,
    state: State,
    tag: u32,
    line: Line,
    /// Bytes of a literal still to come, and whether they are the message.
    literal: u64,
    literal_is_message: bool,
    uidvalidity: Option<u64>,
    exists: u64,
    capabilities: Capabilities,
    /// The PLAIN response, held for the server's `+` when it has no SASL-IR.
    plain_response: Option<String>,
    listed: Vec<String>,
    actions: VecDeque<Action>,
    /// The UID being fetched, and whether its message came.
    current: (String, bool),
    deleted: Vec<String>,
    steps: VecDeque<Step>,
    patience: Patience,
}

/// `"text"` as IMAP quotes it; `None` for what a quoted string cannot hold.
fn quoted(text: &str) -> Option<String> {
    if !text.is_ascii() || text.contains(['\r', '\n', '\0']) {
        return None;
    }
    Some(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The size of the literal that ends `line` (`{12}` or `{12+}`).
fn literal_at_end(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The number after `word` in `line` (`UIDVALIDITY 7`, `UID 12`).
fn number_after(line: &[u8], word: &[u8]) -> Option<u64> {
    let at = line
        .windows(word.len() + 1)
        .position(|w| w[..word.len()].eq_ignore_ascii_case(word) && w[word.len()] == b' ')?;
    let rest = &line[at + word.len() + 1..];
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

impl Imap {
    pub fn new(name: &str, password: &str, folder: &str) -> Imap {
        Imap {
            name: name.to_string(),
            password: password.to_string(),
            folder: folder.to_string(),
            state: State::ImplicitTls,
            tag: 0,
            line: Line::default(),
            literal: 0,
            literal_is_message: false,
            uidvalidity: None,
            exists: 0,
            capabilities: Capabilities::default(),
            plain_response: None,
            listed: Vec::new(),
            actions: VecDeque::new(),
            current: (String::new(), false),
            deleted: Vec::new(),
            steps: VecDeque::from([Step::StartTls]),
            patience: Patience::default(),
        }
    }

    fn command(&mut self, next: State, text: &str) {
        self.tag += 1;
        let line = format!("a{} {text}\r\n", self.tag);
        self.steps.push_back(Step::Send(line.into_bytes()));
        self.state = next;
    }

    fn finish(&mut self, outcome: Result<(), String>) {
        self.steps.clear();
        self.steps.push_back(Step::Done(outcome));
        self.state = State::Done;
    }

    fn key(&self, uid: u64) -> String {
        format!("{}.{uid}", self.uidvalidity.unwrap_or(0))
    }

    fn login(&mut self) {
        if self.capabilities.auth_plain {
            let response = crate::auth::sasl::plain_response(&self.name, &self.password);
            if self.capabilities.sasl_ir {
                return self.command(State::Login, &format!("AUTHENTICATE PLAIN {response}"));
            }
            self.plain_response = Some(response);
            return self.command(State::Login, "AUTHENTICATE PLAIN");
        }
        if self.capabilities.login_disabled {
            return self.finish(Err(
                "the server allows no LOGIN (LOGINDISABLED) and offers no AUTHENTICATE PLAIN"
                    .into(),
            ));
        }
        match (quoted(&self.name), quoted(&self.password)) {
            (Some(name), Some(password)) => {
                self.command(State::Login, &format!("LOGIN {name} {password}"))
            }
            _ => self.finish(Err(
                "the login name or password has characters IMAP LOGIN cannot send".into(),
            )),
        }
    }

    fn next_action(&mut self) {
        match self.actions.pop_front() {
            Some(Action::Fetch(key)) => {
                let uid = key.rsplit('.').next().unwrap_or("0").to_string();
                self.current = (key, false);
                self.command(State::Fetch, &format!("UID FETCH {uid} (BODY.PEEK[])"));
            }
            Some(Action::Delete(key)) => self.delete(key),
            None if !self.deleted.is_empty() => {
                let uids = self.deleted.join(",");
                match self.capabilities.uidplus {
                    true => self.command(State::Expunge, &format!("UID EXPUNGE {uids}")),
                    false => self.command(State::Expunge, "EXPUNGE"),
                }
                self.deleted.clear();
            }
            None => self.command(State::Logout, "LOGOUT"),
        }
    }

    fn delete(&mut self, key: String) {
        let uid = key.rsplit('.').next().unwrap_or("0").to_string();
        self.command(
            State::Delete,
            &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
        );
        self.deleted.push(uid);
    }

    /// A line ended at a literal: how its bytes are taken.
    fn literal_starts(&mut self, size: u64) {
        let line = &self.line.bytes;
        let message = self.state == State::Fetch
            && line.starts_with(b"* ")
            && contains(line, b" FETCH ")
            && line.ends_with(format!("BODY[] {{{size}}}").as_bytes());
        self.literal = size;
        self.literal_is_message = message && !self.current.1;
        if self.literal_is_message {
            self.current.1 = true;
            self.steps
                .push_back(Step::MessageStart(self.current.0.clone()));
        }
        // The line goes on after the literal; what was said so far stays
        // (without the size, which is no part of the text).
        self.line.bytes.extend_from_slice(b" ");
    }

    /// A whole response line (literals taken out).
    fn answer(&mut self) {
        let line = std::mem::take(&mut self.line.bytes);
        self.line.too_long = false;
        self.capabilities.read(&line);
        if let Some(rest) = line.strip_prefix(b"* ") {
            return self.untagged(rest, &line);
        }
        if line.starts_with(b"+") && self.state == State::Login {
            if let Some(response) = self.plain_response.take() {
                let line = format!("{response}\r\n");
                return self.steps.push_back(Step::Send(line.into_bytes()));
            }
        }
        if line.starts_with(b"+") {
            return self.finish(Err(format!("an unexpected continuation: {}", said(&line))));
        }
        let tag = format!("a{} ", self.tag);
        let Some(rest) = line.strip_prefix(tag.as_bytes()) else {
            return self.finish(Err(format!(
                "not an IMAP server, or out of step: {}",
                said(&line)
            )));
        };
        let ok = rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"OK");
        self.tagged(ok, &line);
    }

    fn untagged(&mut self, rest: &[u8], line: &[u8]) {
        match self.state {
            State::Greeting if rest.starts_with(b"OK") && self.capabilities.known => self.login(),
            State::Greeting if rest.starts_with(b"OK") => {
                self.command(State::Capability, "CAPABILITY")
            }
            State::Greeting if rest.starts_with(b"PREAUTH") => {
                let folder = quoted(&self.folder).unwrap_or_default();
                self.command(State::Select, &format!("SELECT {folder}"))
            }
            State::Greeting => self.finish(Err(format!("greeted with {}", said(line)))),
            _ if rest.starts_with(b"BYE") && self.state != State::Logout => {
                self.finish(Err(format!("the server said {}", said(line))))
            }
            State::Select => {
                if let Some(validity) = number_after(rest, b"[UIDVALIDITY") {
                    self.uidvalidity = Some(validity);
                }
                if contains(rest, b" EXISTS") {
                    let n = std::str::from_utf8(rest)
                        .ok()
                        .and_then(|r| r.split(' ').next())
                        .and_then(|n| n.parse().ok());
                    self.exists = n.unwrap_or(0);
                }
            }
            State::List if contains(rest, b" FETCH ") => {
                if let Some(uid) = number_after(rest, b"(UID").or(number_after(rest, b" UID")) {
                    let key = self.key(uid);
                    if !self.listed.contains(&key) {
                        self.listed.push(key);
                    }
                }
            }
            _ => {}
        }
    }

    fn tagged(&mut self, ok: bool, line: &[u8]) {
        let refused = |what: String| Err(format!("{what}: {}", said(line)));
        match self.state {
            // Without the list, LOGIN as RFC 3501 lets every client.
            State::Capability => self.login(),
            State::Login if !ok => self.finish(refused("login refused".into())),
            State::Login => match quoted(&self.folder) {
                Some(folder) => self.command(State::Select, &format!("SELECT {folder}")),
                None => self.finish(Err(format!(
                    "the folder name {:?} is not plain ASCII",
                    self.folder
                ))),
            },
            State::Select if !ok => {
                let folder = self.folder.clone();
                self.finish(refused(format!("cannot open folder {folder}")))
            }
            State::Select if self.uidvalidity.is_none() => {
                self.finish(Err("the server gave no UIDVALIDITY".into()))
            }
            State::Select if self.exists == 0 => self.listed_all(),
            State::Select => self.command(State::List, "UID FETCH 1:* (UID)"),
            State::List if !ok => self.finish(refused("listing the messages failed".into())),
            State::List => self.listed_all(),
            State::Fetch if !ok => self.finish(refused("fetching a message failed".into())),
            // Gone since the listing (another client): skipped this time.
            State::Fetch if !self.current.1 => self.next_action(),
            State::Fetch => {
                self.state = State::Storing;
                self.steps.push_back(Step::MessageEnd);
            }
            State::Delete if !ok => self.finish(refused("marking a message deleted failed".into())),
            State::Delete => self.next_action(),
            State::Expunge if !ok => self.finish(refused("EXPUNGE failed".into())),
            State::Expunge => self.next_action(),
            State::Logout => self.finish(Ok(())),
            _ => self.finish(Err(format!("out of step: {}", said(line)))),
        }
    }

    fn listed_all(&mut self) {
        self.state = State::Choosing;
        self.steps
            .push_back(Step::Listed(std::mem::take(&mut self.listed)));
    }
}

impl Conversation for Imap {
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
        if self.literal > 0 {
            let n = (input.len() as u64).min(self.literal) as usize;
            if self.literal_is_message {
                body.extend_from_slice(&input[..n]);
            }
            self.literal -= n as u64;
            return n;
        }
        let (used, whole) = self.line.push(input);
        if !whole {
            return used;
        }
        match literal_at_end(&self.line.bytes) {
            Some(size) if !self.line.too_long => self.literal_starts(size),
            _ => {
                self.patience.answered();
                self.answer();
            }
        }
        used
    }

    fn tls_started(&mut self) {
        self.line.clear();
        if self.state == State::ImplicitTls {
            self.state = State::Greeting;
        }
    }

    fn choose(&mut self, fetch: Vec<String>, delete: Vec<String>) {
        if self.state != State::Choosing {
            return;
        }
        let fetched = fetch.into_iter().map(Action::Fetch);
        self.actions = fetched
            .chain(delete.into_iter().map(Action::Delete))
            .collect();
        self.next_action();
    }

    fn stored(&mut self, delete: bool) {
        if self.state != State::Storing {
            return;
        }
        match delete {
            true => {
                let key = self.current.0.clone();
                self.delete(key)
            }
            false => self.next_action(),
        }
    }

    fn failed(&mut self, why: String) {
        match self.state {
            State::Done => {}
            // Only the goodbye was left.
            State::Logout => self.finish(Ok(())),
            _ => self.finish(Err(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::pop3::tests::converse;

    const LISTED: &str = "* OK [CAPABILITY IMAP4rev1 UIDPLUS] ready\r\n\
        a1 OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in\r\n\
        * FLAGS (\\Seen)\r\n* 2 EXISTS\r\n* OK [UIDVALIDITY 77] UIDs valid\r\n\
        a2 OK [READ-WRITE] Select completed\r\n\
        * 1 FETCH (UID 5)\r\n* 2 FETCH (UID 9)\r\na3 OK Fetch completed\r\n";

    #[test]
    fn fetches_literals_and_deletes_with_uid_expunge() {
        let server = format!(
            "{LISTED}* 2 FETCH (UID 9 BODY[] {{15}}\r\nS: x\r\n\r\n.body\r\n)\r\n\
             a4 OK done\r\na5 OK stored\r\na6 OK stored\r\na7 OK expunged\r\n\
             * BYE bye\r\na8 OK out\r\n"
        );
        let mut imap = Imap::new("ann", "p\"w", "Club \\ List");
        let (sent, messages, outcome) = converse(
            &mut imap,
            server.as_bytes(),
            |ids| {
                assert_eq!(ids, ["77.5", "77.9"]);
                (vec!["77.9".into()], vec!["77.5".into()])
            },
            true,
        );
        assert_eq!(outcome, Ok(()));
        assert_eq!(
            messages,
            [("77.9".to_string(), b"S: x\r\n\r\n.body\r\n".to_vec())]
        );
        assert_eq!(
            sent,
            "a1 LOGIN \"ann\" \"p\\\"w\"\r\na2 SELECT \"Club \\\\ List\"\r\n\
             a3 UID FETCH 1:* (UID)\r\na4 UID FETCH 9 (BODY.PEEK[])\r\n\
             a5 UID STORE 9 +FLAGS.SILENT (\\Deleted)\r\n\
             a6 UID STORE 5 +FLAGS.SILENT (\\Deleted)\r\na7 UID EXPUNGE 9,5\r\na8 LOGOUT\r\n"
        );
    }

    #[test]
    fn kept_mail_is_only_read_and_an_empty_folder_is_not_listed() {
        let server = "* OK [CAPABILITY IMAP4rev1] hi\r\na1 OK in\r\n* 0 EXISTS\r\n* OK [UIDVALIDITY 3] x\r\n\
                      a2 OK sel\r\n* BYE\r\na3 OK out\r\n";
        let mut imap = Imap::new("ann", "pw", "INBOX");
        let (sent, messages, outcome) =
            converse(&mut imap, server.as_bytes(), |_| (vec![], vec![]), false);
        assert_eq!(outcome, Ok(()));
        assert!(messages.is_empty());
        assert_eq!(
            sent,
            "a1 LOGIN \"ann\" \"pw\"\r\na2 SELECT \"INBOX\"\r\na3 LOGOUT\r\n"
        );
    }

    #[test]
    fn other_literals_are_skipped_and_flags_updates_ignored() {
        let server = format!(
            "{LISTED}* 2 FETCH (FLAGS (\\Seen))\r\n* 2 FETCH (UID 9 BODY[] {{3}}\r\nabc FLAGS {{2}}\r\nxy)\r\n\
             a4 OK done\r\na5 OK out\r\n"
        );
        let mut imap = Imap::new("ann", "pw", "INBOX");
        let (_, messages, outcome) = converse(
            &mut imap,
            server.as_bytes(),
            |_| (vec!["77.9".into()], vec![]),
            false,
        );
        assert_eq!(outcome, Ok(()));
        assert_eq!(messages, [("77.9".to_string(), b"abc".to_vec())]);
    }

    #[test]
    fn a_wrong_password_and_a_missing_folder_say_so() {
        let server = b"* OK [CAPABILITY IMAP4rev1] hi\r\na1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n";
        let mut imap = Imap::new("ann", "bad", "INBOX");
        let (_, _, outcome) = converse(&mut imap, server, |_| (vec![], vec![]), false);
        assert_eq!(
            outcome,
            Err("login refused: a1 NO [AUTHENTICATIONFAILED] Authentication failed.".into())
        );
        let server =
            b"* OK [CAPABILITY IMAP4rev1] hi\r\na1 OK in\r\na2 NO Mailbox doesn't exist: Nope\r\n";
        let mut imap = Imap::new("ann", "pw", "Nope");
        let (_, _, outcome) = converse(&mut imap, server, |_| (vec![], vec![]), false);
        assert_eq!(
            outcome,
            Err("cannot open folder Nope: a2 NO Mailbox doesn't exist: Nope".into())
        );
    }

    /// The login each server's capabilities call for, and the first
    /// lines sent.
    fn login_with(greeting: &str, password: &str) -> (String, Result<(), String>) {
        let server = format!("{greeting}a2 NO [AUTHENTICATIONFAILED] no\r\n");
        let mut imap = Imap::new("ann", password, "INBOX");
        let (sent, _, outcome) =
            converse(&mut imap, server.as_bytes(), |_| (vec![], vec![]), false);
        (sent, outcome)
    }

    #[test]
    fn authenticate_plain_when_offered_and_never_login_when_disabled() {
        // "\0ann\0pässwort" in base64: PLAIN carries what LOGIN cannot.
        let plain = "AGFubgBww6Rzc3dvcnQ=";
        let greeting = "* OK hi\r\n* CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN\r\na1 OK caps\r\n";
        let (sent, outcome) = login_with(greeting, "pässwort");
        assert_eq!(
            sent,
            format!("a1 CAPABILITY\r\na2 AUTHENTICATE PLAIN {plain}\r\n")
        );
        assert_eq!(
            outcome,
            Err("login refused: a2 NO [AUTHENTICATIONFAILED] no".into())
        );
        // Without SASL-IR the response waits for the server's "+".
        let greeting = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n+ \r\n";
        let (sent, _) = login_with(greeting, "pässwort");
        assert_eq!(sent, format!("a1 AUTHENTICATE PLAIN\r\n{plain}\r\n"));
        let greeting = "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] hi\r\n";
        let (sent, outcome) = login_with(greeting, "pw");
        assert_eq!(sent, "");
        let why = "the server allows no LOGIN (LOGINDISABLED) and offers no AUTHENTICATE PLAIN";
        assert_eq!(outcome, Err(why.into()));
        // No list at all, and CAPABILITY refused: LOGIN, which every server has.
        let (sent, _) = login_with("* OK hi\r\na1 BAD no\r\n", "pw");
        assert_eq!(sent, "a1 CAPABILITY\r\na2 LOGIN \"ann\" \"pw\"\r\n");
    }

    #[test]
    fn literal_sizes_are_read_from_the_line_end() {
        assert_eq!(literal_at_end(b"* 1 FETCH (BODY[] {42}"), Some(42));
        assert_eq!(literal_at_end(b"a {7+}"), Some(7));
        assert_eq!(literal_at_end(b"* OK {x}"), None);
        assert_eq!(literal_at_end(b"* OK"), None);
    }
}
