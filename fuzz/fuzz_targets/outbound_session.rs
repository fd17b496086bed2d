//! The outbound SMTP client session against a server that answers with
//! likely replies or any bytes, cut in pieces of any size, with time
//! passing: it never panics, says only whole CRLF-ended commands, and when
//! it ends well it has given every recipient's fate once, in order.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::outbound::session::{Plan, Session, Step, TlsMode};
use postbox::outbound::Failure;
use std::time::{Duration, Instant};

/// What a server says most often, so the fuzzer gets deep into a session.
const LIKELY: [&[u8]; 12] = [
    b"220 mx.test ESMTP\r\n",
    b"250 ok\r\n",
    b"250-mx.test\r\n250-SIZE 1000\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n",
    b"250-mx.test\r\n250 AUTH LOGIN\r\n",
    b"354 go\r\n",
    b"235 2.7.0 ok\r\n",
    b"334 VXNlcm5hbWU6\r\n",
    b"451 4.3.0 later\r\n",
    b"550-5.1.1 no\r\n550 5.1.1 such user\r\n",
    b"221 bye\r\n",
    b"220 2.0.0 go ahead\r\n",
    b"502 what\r\n",
];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let tls = [
        TlsMode::Off,
        TlsMode::Opportunistic,
        TlsMode::Required,
        TlsMode::Implicit,
    ][usize::from(flags & 3)];
    let login = (flags & 4 != 0).then_some(("user", "secret"));
    let recipients: Vec<String> = (0..=(flags >> 4) % 4)
        .map(|i| format!("r{i}@far.test"))
        .collect();
    let plan = Plan {
        helo: "box.test",
        tls,
        login,
        sender: "a@box.test",
        recipients: &recipients,
        size: 100,
    };
    let chunk = usize::from(flags >> 6) * 7 + 1;
    let mut session = Session::new(&plan);
    let mut now = Instant::now();
    // A byte under 0xf0 picks a likely reply; the others start raw bytes.
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
    let mut given = 0;
    for _ in 0..10_000 {
        match session.poll(now) {
            Step::Send(bytes) => {
                assert!(bytes.ends_with(b"\r\n"));
                assert!(!bytes[..bytes.len() - 2].contains(&b'\n'));
            }
            Step::StartTls => session.tls_started(),
            Step::SendBody => session.body_sent(),
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
                        let used = session.receive(&rest[..n], now);
                        assert!(used > 0 && used <= n);
                        rest = &rest[used..];
                        now += Duration::from_millis(1);
                    }
                    None => session.failed(Failure::temporary("connection closed by the server")),
                }
            }
            Step::Recipient(index, _) => {
                assert_eq!(index, given);
                given += 1;
            }
            Step::Done(outcome) => {
                match outcome {
                    Ok(()) => assert_eq!(given, recipients.len()),
                    Err(_) => assert_eq!(given, 0),
                }
                return;
            }
        }
    }
    panic!("the session never ended");
});
