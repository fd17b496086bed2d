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
    assert!(text.contains("received: 2 messages"), "{text}");
    assert!(
        text.contains("live figures from the running server"),
        "{text}"
    );
}

#[test]
fn a_running_server_shows_live_figures_and_no_1970() {
    let server = Server::with_users();
    let data = server.data.to_str().unwrap();
    // Before anything was counted or saved.
    for shown in [
        stats(&server.data),
        String::from_utf8(postbox(&["console", "--data", data], "stats\n").stdout).unwrap(),
    ] {
        assert!(!shown.contains("1970"), "{shown}");
        assert!(shown.contains("received: 0 messages"), "{shown}");
    }
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: s\r\n\r\nhi",
    );
    assert!(reply.starts_with("250"));
    // At once, not after the next save a minute later.
    for shown in [
        stats(&server.data),
        String::from_utf8(postbox(&["console", "--data", data], "stats\n").stdout).unwrap(),
    ] {
        assert!(shown.contains("received: 1 messages"), "{shown}");
        assert!(shown.contains("delivered to mailboxes: 1"), "{shown}");
        assert!(
            shown.contains("live figures from the running server"),
            "{shown}"
        );
        assert!(!shown.contains("1970"), "{shown}");
    }
    // Without a server, never saved: no date for the save either.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let shown = stats(&dir.path().join("data"));
    assert!(shown.contains("(not saved yet)"), "{shown}");
    assert!(!shown.contains("1970"), "{shown}");
}

#[test]
fn listings_are_not_counted_as_refusals() {
    // LIST lines numbered 400 to 599 look like SMTP refusals; only what
    // the server decided counts.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    let mailbox = data.join("mail/localhost/alice");
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(mailbox.join(sub)).unwrap();
    }
    for i in 0..450 {
        let name = format!("{}.M0P1Q{i}.elsewhere.test", 1_700_000_000 + i);
        std::fs::write(mailbox.join("new").join(name), "Subject: s\r\n\r\nhi\r\n").unwrap();
    }
    let mut server = Server::start_in(&data, &[]);
    let mut c = pop3_login(&server, "alice", "alice-pw");
    c.cmd("LIST");
    assert!(c.line().starts_with("+OK 450 messages"));
    let listing = String::from_utf8(c.multiline()).unwrap();
    assert!(listing.contains("\r\n450 "), "{listing}");
    c.cmd("UIDL");
    assert!(c.line().starts_with("+OK"));
    c.multiline();
    c.cmd("LIST 999");
    assert!(c.line().starts_with("-ERR"));
    c.cmd("QUIT");
    assert!(c.line().starts_with("+OK"));
    assert_eq!(server.terminate().code(), Some(0));

    let shown = stats(&data);
    let rejected = shown.split("rejected:").nth(1).unwrap();
    assert_eq!(rejected.trim(), "-ERR: 1", "{shown}");
}
