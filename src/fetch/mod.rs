//! Fetching members' mail from their mailboxes elsewhere (`[[fetch]]`):
//! POP3 (`pop3s://`, or `pop3://` with STLS) and IMAP (`imaps://`).
//!
//! * `pop3`, `imap`: the two client conversations, sans-IO: bytes and
//!   time in, [`Step`]s out, driven byte by byte by their tests.
//! * `client`: the async shell that connects, starts TLS, moves bytes
//!   with a deadline on every read, and streams each message to the spool
//!   in fixed chunks.
//! * `deliver`: a fetched message into the member's mailbox by the
//!   delivery's own durable path (spool, fsync, link into `new/`, fsync),
//!   named after where it came from so a second fetch is recognised.
//! * `state`: each entry's record (what was fetched, when, how it went).
//! * `schedule`: each entry every `every` on the server's executor, one
//!   run at a time, and at once when `postbox fetch now` asks.
//!
//! Nothing is deleted upstream before the message is durable here, and
//! nothing is recorded as fetched before then either.

pub mod client;
pub mod deliver;
pub mod imap;
pub mod pop3;
pub mod schedule;
pub mod state;

use std::time::Instant;

/// What the caller of a client conversation is to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes.
    Send(Vec<u8>),
    /// Start TLS as the client (dropping anything read before); then
    /// [`Conversation::tls_started`] or [`Conversation::failed`].
    StartTls,
    /// Read from the server and [`Conversation::receive`] it; nothing need
    /// be read after this instant (poll again then: the wait timed out).
    Receive(Instant),
    /// The messages on the server, by their unique ids; answer with
    /// [`Conversation::choose`].
    Listed(Vec<String>),
    /// A message begins; its bytes come out of `receive` until
    /// [`Step::MessageEnd`].
    MessageStart(String),
    /// The message is whole: store it durably, then
    /// [`Conversation::stored`] (or [`Conversation::failed`]).
    MessageEnd,
    /// The conversation is over: `Err` says why it failed.
    Done(Result<(), String>),
}

/// A client conversation with an upstream mailbox, POP3 or IMAP.
pub trait Conversation {
    /// What to do next, at `now`.
    fn poll(&mut self, now: Instant) -> Step;
    /// Bytes from the server, come at `now`; a message's bytes are added
    /// to `body`. Returns how many were used: the rest waits for the next
    /// [`Step::Receive`].
    fn receive(&mut self, input: &[u8], now: Instant, body: &mut Vec<u8>) -> usize;
    fn tls_started(&mut self);
    /// The messages to fetch, and those (already here) to delete.
    fn choose(&mut self, fetch: Vec<String>, delete: Vec<String>);
    /// The message just fetched is durable here; delete it upstream when
    /// `delete`.
    fn stored(&mut self, delete: bool);
    /// The connection failed, or the caller gave up (a full disk).
    fn failed(&mut self, why: String);
}

/// A deadline for each read from the upstream, set when a wait begins and
/// again whenever bytes come.
#[derive(Default)]
struct Patience {
    deadline: Option<Instant>,
}

impl Patience {
    /// The deadline, or `None` once it has passed.
    fn wait(&mut self, now: Instant) -> Option<Instant> {
        let deadline = *self
            .deadline
            .get_or_insert(now + crate::limits::FETCH_READ_TIMEOUT);
        (now < deadline).then_some(deadline)
    }

    fn heard(&mut self, now: Instant) {
        self.deadline = Some(now + crate::limits::FETCH_READ_TIMEOUT);
    }

    fn answered(&mut self) {
        self.deadline = None;
    }
}

/// What a poll gives: a step queued for the caller, the end once `done`,
/// else a read until the deadline; `None` once that has passed (the
/// conversation then fails).
fn next_step(
    steps: &mut std::collections::VecDeque<Step>,
    patience: &mut Patience,
    now: Instant,
    done: bool,
) -> Option<Step> {
    if let Some(step) = steps.pop_front() {
        return Some(step);
    }
    if done {
        return Some(Step::Done(Ok(())));
    }
    patience.wait(now).map(Step::Receive)
}

/// A line of text for a log or an error: what the server said, cut short.
fn said(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    text.trim().to_string()
}

/// A response line being gathered, capped at [`crate::limits::FETCH_LINE`]
/// (the rest of a longer line is dropped, and the line marked).
#[derive(Default)]
struct Line {
    bytes: Vec<u8>,
    too_long: bool,
}

impl Line {
    /// Takes bytes up to and including a line end; `(used, true)` when the
    /// line is whole (its CRLF taken off).
    fn push(&mut self, input: &[u8]) -> (usize, bool) {
        let (used, ended) = match input.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (input.len(), false),
        };
        let content = &input[..if ended { used - 1 } else { used }];
        let room = crate::limits::FETCH_LINE.saturating_sub(self.bytes.len());
        if content.len() > room {
            self.too_long = true;
        }
        self.bytes
            .extend_from_slice(&content[..content.len().min(room)]);
        if ended && self.bytes.last() == Some(&b'\r') {
            self.bytes.pop();
        }
        (used, ended)
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.too_long = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both conversations, against servers that say pieces of likely
    /// answers and any bytes, in pieces of any size: they never panic,
    /// give message bytes only inside a message, and always end. (The
    /// fuzz target `fetch_imap` does the same for IMAP, at length.)
    #[test]
    fn any_server_bytes_end_the_conversation_without_a_panic() {
        const LIKELY: [&[u8]; 12] = [
            b"+OK hi\r\n",
            b"1 aaa\r\n.\r\n",
            b"-ERR no\r\n",
            b"x\r\n..y\r\n.\r\n",
            b"* OK [UIDVALIDITY 7] x\r\n* 1 EXISTS\r\n",
            b"a1 OK\r\n",
            b"a2 OK\r\n",
            b"* 1 FETCH (UID 5)\r\na3 OK\r\n",
            b"* 1 FETCH (UID 5 BODY[] {4}\r\nab\r\n)\r\na4 OK\r\n",
            b"* BYE\r\n",
            b"{99999999999}\r\n",
            b"\r\n",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let mut said = Vec::new();
            for _ in 0..random() % 20 {
                match random() % 16 {
                    n if (n as usize) < LIKELY.len() => said.extend_from_slice(LIKELY[n as usize]),
                    _ => said.push(random() as u8),
                }
            }
            let mut client: Box<dyn Conversation> = match round % 3 {
                0 => Box::new(imap::Imap::new("a", "p", "INBOX")),
                1 => Box::new(pop3::Pop3::new("a", "p", true, false)),
                _ => Box::new(pop3::Pop3::new("a", "p", false, true)),
            };
            let chunk = (random() % 9 + 1) as usize;
            drive(&mut *client, &said, chunk, round % 2 == 0);
        }
    }

    fn drive(client: &mut dyn Conversation, said: &[u8], chunk: usize, delete: bool) {
        let (mut rest, mut now) = (said, Instant::now());
        let (mut body, mut open) = (Vec::new(), false);
        for _ in 0..100_000 {
            match client.poll(now) {
                Step::Send(bytes) => assert!(bytes.ends_with(b"\r\n")),
                Step::StartTls => client.tls_started(),
                Step::Listed(ids) => client.choose(ids.clone(), ids),
                Step::MessageStart(_) => {
                    assert!(!open);
                    open = true;
                }
                Step::MessageEnd => {
                    assert!(open);
                    (open, body) = (false, Vec::new());
                    client.stored(delete);
                }
                Step::Receive(deadline) if rest.is_empty() => {
                    assert!(deadline > now);
                    client.failed("closed".into());
                }
                Step::Receive(_) => {
                    let n = chunk.min(rest.len());
                    let before = body.len();
                    let used = client.receive(&rest[..n], now, &mut body);
                    assert!(used <= n && (open || body.len() == before));
                    rest = &rest[used..];
                    now += std::time::Duration::from_millis(1);
                }
                Step::Done(_) => return,
            }
        }
        panic!("never ended on {:?}", String::from_utf8_lossy(said));
    }
}
