//! An unreadable message file affects only that message: RETR of it gets
//! -ERR, the session and every other message are fine.

mod common;
use common::*;
use std::time::Duration;

#[test]
fn unreadable_message_affects_only_itself() {
    let server = Server::with_users();
    for n in 1..=3 {
        let body = format!("Subject: m{n}\r\n\r\nbody {n}");
        assert!(
            send_mail(server.smtp, "x@remote.test", &["alice@localhost"], &body).starts_with("250")
        );
    }
    // Damage message 2: its name now leads to something that cannot be read.
    let files = server.messages("alice");
    std::fs::remove_file(&files[1]).unwrap();
    std::fs::create_dir(&files[1]).unwrap();
    let mut c = pop3_login(&server, "alice", "alice-pw");
    c.cmd("RETR 2");
    assert_eq!(c.line(), "-ERR [SYS/TEMP] Message unreadable");
    c.cmd("TOP 2 0");
    assert!(c.line().starts_with("-ERR"));
    for n in [1, 3] {
        c.cmd(&format!("RETR {n}"));
        assert!(c.line().starts_with("+OK"));
        let text = String::from_utf8(c.multiline()).unwrap();
        assert!(text.ends_with(&format!("body {n}\r\n")), "{text}");
    }
    c.cmd("QUIT");
    assert!(c.line().starts_with("+OK"));
    assert!(server.logged("cannot read", Duration::from_secs(10)));
}
