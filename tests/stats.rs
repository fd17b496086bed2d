//! Traffic counters: counted in RAM, saved at shutdown (and at most once a
//! minute), shown by `postbox stats` and the console, kept across restarts.

mod common;
use common::*;

fn stats(data: &std::path::Path) -> String {
    let out = postbox(&["stats", "--data", data.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn counters_are_kept_and_shown() {
    let mut server = Server::with_users();
    let data = server.data.clone();
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost", "bob@localhost"],
        "Subject: s\r\n\r\nhi",
    );
    assert!(reply.starts_with("250"));
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO client.test");
    c.ask("MAIL FROM:<x@remote.test>");
    assert!(c.ask("RCPT TO:<nobody@localhost>").starts_with("550 5.1.1"));
    c.ask("QUIT");
    let mut p = server.pop3();
    p.line();
    p.cmd("USER alice");
    p.line();
    p.cmd("PASS wrong");
    assert!(p.line().starts_with("-ERR [AUTH]"));
    drop(pop3_login(&server, "bob", "bob-pw"));
    assert_eq!(server.terminate().code(), Some(0));

    let shown = stats(&data);
    for expected in [
        "received: 1 messages",
        "delivered to mailboxes: 2",
        "logins: 1 ok, 1 failed",
        "smtp 2;",
        "pop3 2;",
        "550 5.1.1: 1",
        "-ERR [AUTH]: 1",
    ] {
        assert!(shown.contains(expected), "{expected:?} missing:\n{shown}");
    }
    // Counting goes on after a restart, from the saved figures.
    let server = Server::start_in(&data, &[]);
    send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: t\r\n\r\nhi",
    );
    let console = postbox(
        &["console", "--data", data.to_str().unwrap()],
        "stats\nquit\n",
    );
    let text = String::from_utf8(console.stdout).unwrap();
    assert!(
        text.contains("received: 1 messages"),
        "not saved yet, a minute at most: {text}"
    );
    assert!(text.contains("server running"), "{text}");
}
