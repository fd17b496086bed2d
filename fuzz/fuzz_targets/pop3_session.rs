//! Command lines of any shape through the POP3 session state machine.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postbox::pop3::session::{Message, Replies, Security, Session, Step};
use postbox::wire::line::LineBuffer;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let security = Security {
        stls: flags & 1 != 0,
        tls: flags & 2 != 0,
        plaintext_login: flags & 4 != 0,
    };
    let mut out = Replies::new();
    let mut session = Session::new("mx.test", 50, security, &mut out);
    let mut lines = LineBuffer::new();
    let mut rest = input;
    while !rest.is_empty() {
        out.clear();
        let (used, event) = lines.push(rest);
        rest = &rest[used..];
        let Some(event) = event else { break };
        match session.handle(event, &mut out) {
            Step::Close | Step::Update => return,
            Step::StartTls => session.tls_started(),
            Step::Authenticate { .. } => {
                let messages = (1..=3)
                    .map(|i| {
                        let uid = format!("{i}.M1P1Q{i}.h,S=10");
                        Message::new(format!("new/{uid}").into(), 10, &uid)
                    })
                    .collect();
                session.login_succeeded(messages, &mut out);
            }
            Step::Listing(kind) => {
                for i in 0..session.message_count() {
                    out.clear();
                    session.listing_line(kind, i, &mut out);
                }
            }
            Step::SendMessage { index, .. } => assert!(index < session.message_count()),
            Step::Continue => {}
        }
    }
});
