//! The outbound SMTP client session against any server bytes, cut in
//! pieces of any size, with time passing: it never panics, says only
//! whole CRLF-ended commands, and when it ends well it has given every
//! recipient's fate once, in order.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::outbound::session::{Plan, Session, Step, TlsMode};
use postbox::outbound::Failure;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let tls = [TlsMode::Off, TlsMode::Opportunistic, TlsMode::Required, TlsMode::Implicit]
        [usize::from(flags & 3)];
    let login = (flags & 4 != 0).then_some(("user", "secret"));
    let recipients: Vec<String> = (0..=(flags >> 4) % 4).map(|i| format!("r{i}@far.test")).collect();
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
    let mut rest = input;
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
