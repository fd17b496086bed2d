//! The IMAP client conversation that fetches from an upstream mailbox,
//! against a server that answers with likely responses or any bytes, cut
//! in pieces of any size, with time passing: it never panics, says only
//! whole CRLF-ended commands, gives message bytes only between a
//! message's start and its end, and always ends.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::fetch::imap::Imap;
use postbox::fetch::{Conversation, Step};
use std::time::{Duration, Instant};

/// What a server says most often, so the fuzzer gets deep into a session.
const LIKELY: [&[u8]; 14] = [
    b"* OK [CAPABILITY IMAP4rev1 UIDPLUS] ready\r\n",
    b"a1 OK logged in\r\n",
    b"* 2 EXISTS\r\n",
    b"* OK [UIDVALIDITY 7] ok\r\n",
    b"a2 OK selected\r\n",
    b"* 1 FETCH (UID 5)\r\n",
    b"a3 OK listed\r\n",
    b"* 1 FETCH (UID 5 BODY[] {5}\r\n",
    b"ab\r\nc)\r\n",
    b"a4 OK fetched\r\n",
    b"a5 OK\r\n",
    b"a6 NO [AUTHENTICATIONFAILED] no\r\n",
    b"* BYE\r\n",
    b"* 1 FETCH (FLAGS {3}\r\nxyz)\r\n",
];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let mut imap = Imap::new("ann", "pw", "INBOX");
    let delete = flags & 1 != 0;
    let chunk = usize::from(flags >> 4) * 5 + 1;
    let mut said = Vec::new();
    let mut raw = input.iter().peekable();
    while let Some(&b) = raw.next() {
        match LIKELY.get(usize::from(b) % 16) {
            Some(reply) if b < 0xf0 => said.extend_from_slice(reply),
            _ if b == 0xff => said.push(0),
            _ => said.extend(raw.next()),
        }
    }
    let mut rest = &said[..];
    let mut now = Instant::now();
    let (mut body, mut open) = (Vec::new(), false);
    for _ in 0..100_000 {
        match imap.poll(now) {
            Step::Send(bytes) => {
                assert!(bytes.ends_with(b"\r\n"));
                assert!(!bytes[..bytes.len() - 2].contains(&b'\n'));
            }
            Step::StartTls => imap.tls_started(),
            Step::Listed(ids) => {
                let half = ids.len() / 2;
                imap.choose(ids[..half].to_vec(), ids[half..].to_vec())
            }
            Step::MessageStart(_) => {
                assert!(!open);
                open = true;
            }
            Step::MessageEnd => {
                assert!(open);
                (open, body) = (false, Vec::new());
                imap.stored(delete);
            }
            Step::Receive(deadline) => {
                assert!(deadline > now);
                match rest.split_first() {
                    // A zero byte stands for a silence until the deadline.
                    Some((0, tail)) => {
                        rest = tail;
                        now = deadline;
                    }
                    Some(_) => {
                        let n = chunk.min(rest.len());
                        let before = body.len();
                        let used = imap.receive(&rest[..n], now, &mut body);
                        assert!(used <= n);
                        assert!(open || body.len() == before, "bytes outside a message");
                        rest = &rest[used..];
                        now += Duration::from_millis(1);
                    }
                    None => imap.failed("connection closed".into()),
                }
            }
            Step::Done(_) => return,
        }
    }
    panic!("the conversation never ended");
});
