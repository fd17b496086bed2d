//! Command lines of any shape through the line buffer and the SMTP session
//! state machine, whatever state it is in.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::smtp::command::RcptTo;
use postbox::wire::reply::Replies;
use postbox::smtp::session::{
    DataOutcome, Directory, Limits, Login, RcptVerdict, Security, Session, Step,
};
use postbox::wire::address::Address;
use postbox::wire::line::LineBuffer;

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

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
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
    let limits = Limits {
        max_message_size: 1000,
        max_recipients: 3,
        max_errors: 50,
    };
    let mut out = Replies::new();
    let mut session = Session::new("mx.test", limits, security, &mut out);
    let mut lines = LineBuffer::new();
    let mut rest = input;
    while !rest.is_empty() {
        out.clear();
        let (used, event) = lines.push(rest);
        rest = &rest[used..];
        let Some(event) = event else { break };
        match session.handle(event, &mut Table, &mut out) {
            Step::Close => return,
            Step::StartTls => session.tls_started(),
            Step::Authenticate(c) => {
                let login = if c.password.as_str() == "pw" {
                    Login::Ok(Address::new("alice", "localhost").unwrap())
                } else {
                    Login::Failed
                };
                if session.auth_done(login, &mut out) == Step::Close {
                    return;
                }
            }
            Step::ReceiveData => {
                session.data_done(DataOutcome::Stored { id: "x".into() }, &mut out)
            }
            Step::Continue => {}
        }
        // Every reply is whole lines.
        assert!(out.is_empty() || out.ends_with("\r\n"));
    }
});
