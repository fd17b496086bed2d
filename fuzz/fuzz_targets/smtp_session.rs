//! Bytes of any shape through the whole SMTP conversation core, as the
//! server runs it: command lines, DATA (decoded, its header section
//! rewritten and scanned, held to the limits), STARTTLS, AUTH, in pieces
//! of any size, with time passing now and then.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::smtp::command::RcptTo;
use postbox::smtp::conversation::{Action, Conversation, Settings, Timeouts};
use postbox::smtp::data::Refused;
use postbox::smtp::session::{DataOutcome, Directory, Limits, Login, RcptVerdict, Security};
use postbox::wire::address::Address;
use std::time::{Duration, Instant};

struct Table;

impl Directory for Table {
    fn lookup(&mut self, rcpt: &RcptTo) -> RcptVerdict {
        match rcpt {
            RcptTo::Postmaster => RcptVerdict::Local(Address::new("alice", "localhost").unwrap()),
            RcptTo::Mailbox(a) if a.domain() != "localhost" => RcptVerdict::Remote,
            RcptTo::Mailbox(a) if a.local() == "alice" => RcptVerdict::Local(a.clone()),
            RcptTo::Mailbox(_) => RcptVerdict::UnknownUser,
        }
    }
}

/// Carries out what the core asks until it wants input; `false` once closed.
fn run(c: &mut Conversation, now: Instant, stored: &mut u64) -> bool {
    loop {
        match c.poll(now, &mut Table) {
            Action::Send => {
                // Every reply is whole lines.
                let out = c.replies();
                assert!(out.is_empty() || out.ends_with("\r\n"));
                c.sent();
            }
            Action::Read => return true,
            Action::CheckBlocklist => c.blocklisted(None, now),
            Action::StartTls { .. } => c.tls_started(),
            Action::Authenticate(credentials) => {
                let login = if credentials.password.as_str() == "pw" {
                    Login::Ok(Address::new("alice", "localhost").unwrap())
                } else {
                    Login::Failed
                };
                c.auth_done(login);
            }
            Action::DataStart => c.data_opened(None, now),
            Action::Store(bytes) => {
                // Stored bytes are CRLF lines: no bare LF.
                assert!(!bytes.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
                *stored += bytes.len() as u64;
                c.recycle(bytes);
            }
            Action::Discard => *stored = 0,
            Action::DataEnd(facts) => {
                let outcome = match facts.refused {
                    Some(Refused::TooBig) => DataOutcome::TooBig,
                    Some(Refused::LineTooLong) => DataOutcome::LineTooLong,
                    None => {
                        assert!(*stored <= 1000 && *stored == facts.size);
                        DataOutcome::Stored { id: "x".into() }
                    }
                };
                *stored = 0;
                c.data_done(outcome, now);
            }
            Action::Close(_) => return false,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let Some((&piece, input)) = input.split_first() else {
        return;
    };
    let security = Security {
        starttls: flags & 1 != 0,
        tls: flags & 2 != 0,
        plaintext_login: flags & 4 != 0,
        submission: flags & 8 != 0,
        relay_client: flags & 16 != 0,
        check_helo: flags & 32 != 0,
    };
    let settings = Settings {
        limits: Limits {
            max_message_size: 1000,
            max_recipients: 3,
            max_errors: 50,
        },
        security,
        timeouts: Timeouts {
            command: Duration::from_secs(300),
            data: Duration::from_secs(300),
            greet_delay: Duration::ZERO,
        },
        check_blocklists: flags & 64 != 0,
        scan_recipients: flags & 128 != 0,
    };
    let mut now = Instant::now();
    let mut c = Conversation::new("mx.test", settings, now);
    let mut stored = 0;
    // Pieces of 1..=16 bytes: byte by byte when `piece` says so.
    let size = usize::from(piece % 16) + 1;
    for part in input.chunks(size) {
        if !run(&mut c, now, &mut stored) {
            return;
        }
        c.input()[..part.len()].copy_from_slice(part);
        c.received(part.len(), now);
        now += Duration::from_secs(1);
    }
    run(&mut c, now, &mut stored);
});
