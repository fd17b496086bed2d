//! SMTP receiving against the real server over raw sockets: replies and
//! codes (smuggling: tests/audit.rs), limits, timeouts, and what lands in the store.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A session greeted with EHLO.
fn greeted(server: &Server) -> Client {
    let mut c = server.smtp();
    assert!(c.reply().starts_with("220 mx.test"));
    assert!(c.ask("EHLO client.test").starts_with("250"));
    c
}

fn spool_is_empty(data: &Path) -> bool {
    std::fs::read_dir(data.join("tmp"))
        .unwrap()
        .next()
        .is_none()
}

fn read(path: &Path) -> String {
    String::from_utf8(std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn ehlo_advertises_extensions_and_replies_carry_enhanced_codes() {
    let server = Server::with_users();
    let mut c = server.smtp();
    c.reply();
    let ehlo = c.ask("EHLO client.test");
    for keyword in [
        "250-mx.test Hello client.test",
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "SIZE 26214400",
    ] {
        assert!(ehlo.contains(keyword), "{keyword} missing: {ehlo}");
    }
    let has_enhanced = |reply: &str| {
        let code = reply.split(' ').nth(1).unwrap_or("");
        let parts: Vec<&str> = code.split('.').collect();
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u16>().is_ok())
    };
    for (command, code) in [
        ("NOOP", "250"),
        ("RSET", "250"),
        ("VRFY alice", "252"),
        ("EXPN staff", "502"),
        ("FROB", "500"),
        ("RCPT TO:<alice@localhost>", "503"),
        ("DATA", "503"),
        ("MAIL FROM:<x@remote.test> BODY=8BITMIME SMTPUTF8", "250"),
        ("RCPT TO:<nobody@localhost>", "550"),
        ("RCPT TO:<alice@elsewhere.test>", "550"),
        ("RCPT TO:<alice@localhost>", "250"),
        ("MAIL FROM:<x@remote.test>", "503"),
    ] {
        let reply = c.ask(command);
        assert!(reply.starts_with(code), "{command}: {reply}");
        assert!(
            has_enhanced(&reply),
            "{command}: no enhanced code in {reply}"
        );
    }
    let help = c.ask("HELP");
    assert!(help.starts_with("214"), "{help}");
    assert!(c.ask("QUIT").starts_with("221 2.0.0"));
    assert!(c.closed());
    // HELO works too, and MAIL before any greeting is out of order.
    let mut c = server.smtp();
    c.reply();
    assert!(c.ask("MAIL FROM:<x@remote.test>").starts_with("503 5.5.1"));
    assert!(c.ask("HELO client.test").starts_with("250 mx.test"));
}

#[test]
fn recipients_unknown_foreign_postmaster() {
    let server = Server::with_users();
    let mut c = greeted(&server);
    c.ask("MAIL FROM:<x@remote.test>");
    assert!(c.ask("RCPT TO:<carol@localhost>").starts_with("550 5.1.1"));
    assert!(c
        .ask("RCPT TO:<carol@example.org>")
        .starts_with("550 5.7.1"));
    assert!(c.ask("RCPT TO:<Postmaster>").starts_with("250"));
    assert!(c.ask("RCPT TO:<postmaster@localhost>").starts_with("250"));
    c.ask("DATA");
    c.send(b"Subject: to the postmaster\r\n\r\nhi\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    // The first user added is the postmaster; one copy although named twice.
    let files = server.messages("alice");
    assert_eq!(files.len(), 1);
    assert!(read(&files[0]).contains("to the postmaster"));
}

#[test]
fn several_recipients_share_one_stored_file() {
    let server = Server::with_users();
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost", "bob@localhost"],
        "Subject: both\r\n\r\n..dotted line\r\nlast",
    );
    assert!(reply.starts_with("250 2.0.0"));
    let (a, b) = (server.messages("alice"), server.messages("bob"));
    assert_eq!((a.len(), b.len()), (1, 1));
    let (ma, mb) = (
        std::fs::metadata(&a[0]).unwrap(),
        std::fs::metadata(&b[0]).unwrap(),
    );
    assert_eq!(ma.ino(), mb.ino(), "written twice instead of linked");
    let name = a[0].file_name().unwrap().to_str().unwrap();
    assert!(name.contains(&format!(",S={}", ma.len())), "{name}");
    let text = read(&a[0]);
    assert!(text
        .starts_with("Return-Path: <x@remote.test>\r\nReceived: from client.test ([127.0.0.1])"));
    // Dot-unstuffed; a shared file names no single recipient.
    assert!(text.ends_with("\r\n\r\n.dotted line\r\nlast\r\n"), "{text}");
    assert!(!text.contains("for <"), "{text}");
}

#[test]
fn size_limit_while_streaming_and_declared() {
    let (_dir, server) = Server::with_config("[smtp]\nmax_message_size = 10000\n");
    let mut c = greeted(&server);
    assert!(c.ask("EHLO client.test").contains("SIZE 10000"));
    assert!(c
        .ask("MAIL FROM:<x@remote.test> SIZE=20000")
        .starts_with("552 5.3.4"));
    c.ask("MAIL FROM:<x@remote.test>");
    c.ask("RCPT TO:<alice@localhost>");
    c.ask("DATA");
    let line = "x".repeat(98) + "\r\n";
    c.send(line.repeat(200).as_bytes());
    c.send(b".\r\n");
    assert!(c.reply().starts_with("552 5.3.4"));
    assert!(server.messages("alice").is_empty());
    assert!(spool_is_empty(&server.data));
    // The session goes on.
    c.ask("MAIL FROM:<x@remote.test>");
    c.ask("RCPT TO:<alice@localhost>");
    c.ask("DATA");
    c.send(b"Subject: small\r\n\r\nok\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    assert_eq!(server.messages("alice").len(), 1);
}

#[test]
fn overlong_command_line_keeps_the_session_in_sync() {
    let server = Server::with_users();
    let mut c = greeted(&server);
    let long = format!("MAIL FROM:<{}@remote.test>", "a".repeat(5000));
    assert!(c.ask(&long).starts_with("500 5.5.2"));
    assert_eq!(c.ask("NOOP"), "250 2.0.0 OK");
    assert!(c.ask("MAIL FROM:<x@remote.test>").starts_with("250"));
}

#[test]
fn pipelined_commands_get_replies_in_order() {
    let server = Server::with_users();
    let mut c = greeted(&server);
    c.send(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<nobody@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n");
    for code in ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"] {
        let reply = c.reply();
        assert!(reply.starts_with(code), "expected {code}, got {reply}");
    }
    c.send(b"Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("221"));
    assert_eq!(server.messages("bob").len(), 1);
}

#[test]
fn recipient_session_and_error_limits() {
    let (_dir, server) =
        Server::with_config("[smtp]\nmax_recipients = 3\nmax_sessions = 2\nmax_errors = 3\n");
    let mut c = greeted(&server);
    c.ask("MAIL FROM:<x@remote.test>");
    for _ in 0..3 {
        assert!(c.ask("RCPT TO:<alice@localhost>").starts_with("250"));
    }
    assert!(c.ask("RCPT TO:<bob@localhost>").starts_with("452 4.5.3"));
    c.ask("RSET");
    c.ask("BAD1");
    c.ask("BAD2");
    assert!(c.ask("BAD3").starts_with("421"));
    assert!(c.closed());
    // All sessions taken: the one idle longest makes room for a newcomer.
    let mut first = greeted(&server);
    let _second = greeted(&server);
    let mut third = server.smtp();
    assert!(third.reply().starts_with("220"));
    assert!(first.reply().starts_with("421"));
    assert!(first.closed());
}

#[test]
fn idle_and_stalled_clients_are_cut_off() {
    let (_dir, server) = Server::with_config("[smtp]\ncommand_timeout = 1\ndata_timeout = 1\n");
    let mut c = server.smtp();
    c.reply();
    let start = Instant::now();
    assert!(c.reply().starts_with("421 4.4.2"));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(c.closed());
    let mut c = greeted(&server);
    c.ask("MAIL FROM:<x@remote.test>");
    c.ask("RCPT TO:<alice@localhost>");
    c.ask("DATA");
    c.send(b"Subject: stalled\r\n\r\nhalf a mess");
    assert!(c.reply().starts_with("421 4.4.2"));
    // The half message leaves the spool as the session ends, after the 421.
    server.wait_session_closed(c.local_addr());
    assert!(server.messages("alice").is_empty());
    assert!(spool_is_empty(&server.data));
}

#[test]
fn dropped_connection_mid_data_stores_nothing() {
    let server = Server::with_users();
    let mut c = greeted(&server);
    c.ask("MAIL FROM:<x@remote.test>");
    c.ask("RCPT TO:<alice@localhost>");
    c.ask("DATA");
    c.send(&vec![b'x'; 100_000]);
    let client = c.local_addr();
    drop(c);
    server.wait_session_closed(client);
    assert!(server.messages("alice").is_empty());
    assert!(spool_is_empty(&server.data));
}

#[test]
fn user_added_while_running_receives_at_once() {
    let server = Server::with_users();
    let mut c = greeted(&server);
    c.ask("MAIL FROM:<x@remote.test>");
    assert!(c.ask("RCPT TO:<carol@localhost>").starts_with("550 5.1.1"));
    add_user(&server.data, "carol", "carol-pw");
    assert!(c.ask("RCPT TO:<carol@localhost>").starts_with("250"));
}

#[test]
fn a_mailbox_that_cannot_take_the_message_gets_it_through_the_queue() {
    let (_dir, server) = Server::with_config("[queue]\nretry_first = 1\n");
    // bob's new/ is a file: his copy cannot be stored, alice's can.
    let bob = server.data.join("mail/localhost/bob");
    std::fs::remove_dir_all(bob.join("new")).unwrap();
    std::fs::write(bob.join("new"), b"").unwrap();
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost", "bob@localhost"],
        "Subject: half\r\n\r\nhello\r\n",
    );
    // A 4xx would make the client send alice's copy again.
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(server.messages("alice").len(), 1);
    assert!(server.logged("queued", Duration::from_secs(10)));
    let data = server.data.to_str().unwrap();
    let listed = postbox(&["queue", "list", "--data", data], "");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("bob@localhost"), "{listed}");
    // Repaired, the queue's next attempt delivers it.
    std::fs::remove_file(bob.join("new")).unwrap();
    std::fs::create_dir(bob.join("new")).unwrap();
    let texts = wait_for_mail(&server.data, "bob", 1, Duration::from_secs(20), &|| {
        server.log()
    });
    assert!(texts[0].contains("Subject: half"), "{}", texts[0]);
    assert_eq!(server.messages("alice").len(), 1, "alice got it twice");
}

#[test]
fn a_line_over_998_octets_is_refused_and_not_stored() {
    let server = Server::with_users();
    for (line, code) in [
        ("x".repeat(998), "250"),
        ("x".repeat(999), "554 5.6.0"),
        (
            format!("X-Big: {}", "y".repeat(10 * 1024 * 1024)),
            "554 5.6.0",
        ),
    ] {
        let mut c = greeted(&server);
        c.ask("MAIL FROM:<x@remote.test>");
        c.ask("RCPT TO:<alice@localhost>");
        assert!(c.ask("DATA").starts_with("354"));
        c.send(format!("Subject: long\r\n{line}\r\n\r\nbody\r\n.\r\n").as_bytes());
        let reply = c.reply();
        assert!(reply.starts_with(code), "{} octets: {reply}", line.len());
        assert!(c.ask("NOOP").starts_with("250"));
    }
    assert_eq!(server.messages("alice").len(), 1);
    assert!(spool_is_empty(&server.data));
}

#[test]
fn strangers_may_not_send_as_members() {
    let server = Server::with_users();
    let mut c = greeted(&server);
    for sender in ["alice@localhost", "Bob@LOCALHOST", "postmaster@localhost"] {
        let reply = c.ask(&format!("MAIL FROM:<{sender}>"));
        assert!(reply.starts_with("550 5.7.1"), "{sender}: {reply}");
    }
    // A member's name in From: alone is not refused, but marked.
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["bob@localhost"],
        "From: Alice <alice@localhost>\r\nSubject: from alice\r\n\r\npay this\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let text = read(&server.messages("bob")[0]);
    assert!(text.starts_with("X-Spam: yes\r\n"), "{text}");
    // Members on the submission port are themselves.
    let mut c = member_login(
        server.submission.unwrap(),
        "laptop.test",
        "alice",
        "alice-pw",
    );
    assert!(c.ask("MAIL FROM:<alice@localhost>").starts_with("250"));
}
