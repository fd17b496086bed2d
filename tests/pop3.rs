//! POP3 against the real server over raw sockets: login, listings that
//! match what RETR sends, deletion only in UPDATE, stable UIDLs, one
//! session per mailbox, and streaming of large messages.

mod common;
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn deliver(server: &Server, to: &str, body: &str) {
    let reply = send_mail(server.smtp, "x@remote.test", &[to], body);
    assert!(reply.starts_with("250"), "{reply}");
}

/// Three messages for alice, one with dot-led lines.
fn server_with_mail() -> Server {
    let server = Server::with_users();
    deliver(&server, "alice@localhost", "Subject: one\r\n\r\nfirst");
    deliver(
        &server,
        "alice@localhost",
        "Subject: two\r\n\r\n..dot\r\nl1\r\nl2\r\nl3",
    );
    deliver(&server, "alice@localhost", "Subject: three\r\n\r\nthird");
    server
}

fn listing(c: &mut Client, command: &str) -> Vec<(u32, String)> {
    c.cmd(command);
    assert!(c.line().starts_with("+OK"));
    String::from_utf8(c.multiline())
        .unwrap()
        .lines()
        .map(|l| {
            let (n, v) = l.split_once(' ').unwrap();
            (n.parse().unwrap(), v.to_string())
        })
        .collect()
}

#[test]
fn capa_and_logins() {
    let server = Server::with_users();
    let mut c = server.pop3();
    assert!(c.line().starts_with("+OK"));
    c.cmd("STAT");
    assert!(c.line().starts_with("-ERR"), "STAT before login");
    c.cmd("CAPA");
    assert!(c.line().starts_with("+OK"));
    let capa = String::from_utf8(c.multiline()).unwrap();
    for cap in [
        "TOP",
        "UIDL",
        "USER",
        "SASL PLAIN",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "IMPLEMENTATION",
    ] {
        assert!(capa.contains(cap), "{cap} missing: {capa}");
    }
    // Wrong password and unknown user: same answer, after a pause.
    for user in ["alice", "nobody"] {
        c.cmd(&format!("USER {user}"));
        c.line();
        let start = Instant::now();
        c.cmd("PASS wrong");
        assert_eq!(c.line(), "-ERR [AUTH] Authentication failed");
        assert!(start.elapsed() >= Duration::from_millis(500));
    }
    // AUTH PLAIN with an initial response, and with a continuation.
    c.cmd("AUTH PLAIN !!notbase64");
    assert!(c.line().starts_with("-ERR"));
    c.cmd("AUTH PLAIN");
    assert_eq!(c.line(), "+ ");
    c.cmd("AGFsaWNlAGFsaWNlLXB3"); // \0alice\0alice-pw
    assert!(c.line().starts_with("+OK"));
    c.cmd("QUIT");
    assert!(c.line().starts_with("+OK"));
    let mut c = server.pop3();
    c.line();
    c.cmd("AUTH PLAIN AGJvYgBib2ItcHc="); // \0bob\0bob-pw
    assert!(c.line().starts_with("+OK"));
}

#[test]
fn listings_match_what_retr_sends() {
    let server = server_with_mail();
    let mut c = pop3_login(&server, "alice", "alice-pw");
    c.cmd("STAT");
    let stat = c.line();
    let sizes = listing(&mut c, "LIST");
    assert_eq!(sizes.len(), 3);
    let total: u64 = sizes.iter().map(|(_, s)| s.parse::<u64>().unwrap()).sum();
    assert_eq!(stat, format!("+OK 3 {total}"));
    for (n, size) in &sizes {
        c.cmd(&format!("RETR {n}"));
        assert!(c.line().starts_with("+OK"));
        let body = c.multiline();
        assert_eq!(body.len().to_string(), *size, "message {n}");
        c.cmd(&format!("LIST {n}"));
        assert_eq!(c.line(), format!("+OK {n} {size}"));
    }
    c.cmd("RETR 2");
    c.line();
    let two = String::from_utf8(c.multiline()).unwrap();
    assert!(two.ends_with("\r\n\r\n.dot\r\nl1\r\nl2\r\nl3\r\n"), "{two}");
    c.cmd("TOP 2 0");
    c.line();
    let head = String::from_utf8(c.multiline()).unwrap();
    assert!(head.ends_with("Subject: two\r\n\r\n"), "{head}");
    c.cmd("TOP 2 2");
    c.line();
    let top = String::from_utf8(c.multiline()).unwrap();
    assert!(top.ends_with("Subject: two\r\n\r\n.dot\r\nl1\r\n"), "{top}");
    for bad in [
        "RETR 0", "RETR 9", "RETR abc", "LIST 99", "TOP 1", "UIDL 4", "FROB",
    ] {
        c.cmd(bad);
        assert!(c.line().starts_with("-ERR"), "{bad}");
    }
    c.cmd("NOOP");
    assert!(c.line().starts_with("+OK"));
}

#[test]
fn deletion_happens_only_after_quit() {
    let server = server_with_mail();
    let mut c = pop3_login(&server, "alice", "alice-pw");
    c.cmd("DELE 1");
    assert!(c.line().starts_with("+OK"));
    c.cmd("DELE 1");
    assert!(c.line().starts_with("-ERR"), "deleted twice");
    c.cmd("RETR 1");
    assert!(c.line().starts_with("-ERR"));
    c.cmd("STAT");
    assert!(c.line().starts_with("+OK 2 "));
    let uids = listing(&mut c, "UIDL");
    assert_eq!(uids.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [2, 3]);
    // Dropped without QUIT: nothing is deleted.
    let client = c.local_addr();
    drop(c);
    server.wait_session_closed(client);
    assert_eq!(server.messages("alice").len(), 3);
    let mut c = pop3_login(&server, "alice", "alice-pw");
    c.cmd("DELE 2");
    c.line();
    c.cmd("RSET");
    assert!(c.line().starts_with("+OK 3 messages"));
    c.cmd("DELE 3");
    c.line();
    c.cmd("QUIT");
    assert!(c.line().starts_with("+OK"));
    assert_eq!(server.messages("alice").len(), 2);
}

#[test]
fn uidls_survive_sessions_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    let mut server = Server::start_in(&data, &[]);
    deliver(&server, "alice@localhost", "Subject: a\r\n\r\na");
    deliver(&server, "alice@localhost", "Subject: b\r\n\r\nb");
    let mut c = pop3_login(&server, "alice", "alice-pw");
    let before = listing(&mut c, "UIDL");
    c.cmd("RETR 1"); // reading may move a message to cur/: its UIDL stays
    c.line();
    c.multiline();
    c.cmd("QUIT");
    c.line();
    server.kill();
    let server = Server::start_in(&data, &[]);
    let mut c = pop3_login(&server, "alice", "alice-pw");
    assert_eq!(listing(&mut c, "UIDL"), before);
    c.cmd("UIDL 2");
    assert_eq!(c.line(), format!("+OK 2 {}", before[1].1));
}

/// RFC 1939 §7: a unique-id is 1 to 70 characters in 0x21..=0x7E.
fn assert_valid_uid(uid: &str) {
    assert!(
        (1..=70).contains(&uid.len()) && uid.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "not a valid unique-id ({} chars): {uid:?}",
        uid.len()
    );
}

#[test]
fn uidls_fit_rfc_1939_with_a_long_hostname() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    let host = format!("{}.example.test", "relay-".repeat(10));
    assert!(host.len() > 60);
    let mut server = Server::start_in(&data, &["--hostname", &host]);
    deliver(&server, "alice@localhost", "Subject: a\r\n\r\na");
    deliver(&server, "alice@localhost", "Subject: b\r\n\r\nb");
    let mut c = pop3_login(&server, "alice", "alice-pw");
    let uids = listing(&mut c, "UIDL");
    assert_eq!(uids.len(), 2);
    for (_, uid) in &uids {
        assert_valid_uid(uid);
    }
    assert_ne!(uids[0].1, uids[1].1);
    c.cmd("UIDL 1");
    assert_eq!(c.line(), format!("+OK 1 {}", uids[0].1));
    c.cmd("RETR 2"); // moving to cur/ keeps the id
    c.line();
    c.multiline();
    c.cmd("QUIT");
    c.line();
    server.kill();
    let server = Server::start_in(&data, &["--hostname", &host]);
    let mut c = pop3_login(&server, "alice", "alice-pw");
    assert_eq!(listing(&mut c, "UIDL"), uids);
}

#[test]
fn uidls_that_fit_are_the_file_names() {
    // Ids already handed out must not change, or clients fetch old mail again.
    let server = server_with_mail();
    let mut c = pop3_login(&server, "alice", "alice-pw");
    let uids = listing(&mut c, "UIDL");
    let names: Vec<String> = server
        .messages("alice")
        .iter()
        .map(|p| {
            let file = p.file_name().unwrap().to_str().unwrap();
            file.split(':').next().unwrap().to_string()
        })
        .collect();
    assert_eq!(uids.into_iter().map(|(_, u)| u).collect::<Vec<_>>(), names);
}

#[test]
fn one_session_per_mailbox() {
    let server = server_with_mail();
    let mut first = pop3_login(&server, "alice", "alice-pw");
    let mut second = server.pop3();
    second.line();
    second.cmd("USER alice");
    second.line();
    second.cmd("PASS alice-pw");
    assert!(second.line().starts_with("-ERR [IN-USE]"));
    // The log says it in words.
    let why = "alice@localhost: the mailbox is in use by another session";
    assert!(
        server.logged(why, Duration::from_secs(5)),
        "{}",
        server.log()
    );
    // Another mailbox is free.
    drop(pop3_login(&server, "bob", "bob-pw"));
    first.cmd("QUIT");
    first.line();
    let again = pop3_login(&server, "alice", "alice-pw");
    // A dropped connection frees the mailbox too, by the time its
    // session is over.
    let client = again.local_addr();
    drop(again);
    server.wait_session_closed(client);
    drop(pop3_login(&server, "alice", "alice-pw"));
}

#[test]
fn pipelined_commands_and_long_lines() {
    let server = server_with_mail();
    let mut c = pop3_login(&server, "alice", "alice-pw");
    c.send(b"STAT\r\nNOOP\r\nLIST 1\r\n");
    assert!(c.line().starts_with("+OK 3 "));
    assert!(c.line().starts_with("+OK"));
    assert!(c.line().starts_with("+OK 1 "));
    c.cmd(&"X".repeat(5000));
    assert!(c.line().starts_with("-ERR"));
    c.cmd("STAT");
    assert!(
        c.line().starts_with("+OK 3 "),
        "out of sync after a long line"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

#[test]
fn large_message_streams_without_growing_memory() {
    let server = Server::with_users();
    let line = "y".repeat(78) + "\r\n";
    let lines = 25 * 1024 * 1024 / line.len() - 100;
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO client.test");
    c.ask("MAIL FROM:<x@remote.test>");
    c.ask("RCPT TO:<alice@localhost>");
    c.ask("DATA");
    c.send(b"Subject: big\r\n\r\n");
    let chunk = line.repeat(1000);
    for _ in 0..lines / 1000 {
        c.stream.write_all(chunk.as_bytes()).unwrap();
    }
    c.send(b".\r\n");
    assert!(c.reply().starts_with("250"));
    let pid = server.child.id();
    let idle = rss_kib(pid);
    let mut p = pop3_login(&server, "alice", "alice-pw");
    p.cmd("RETR 1");
    assert!(p.line().starts_with("+OK"));
    // Read slowly at first so the server is mid-stream when sampled.
    let mut peak = 0;
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    use std::io::Read;
    loop {
        let n = p.reader.read(&mut buf).unwrap();
        assert!(n > 0);
        got += n;
        // The terminating dot may arrive in a read of its own.
        tail.extend_from_slice(&buf[n.saturating_sub(5)..n]);
        tail.drain(..tail.len().saturating_sub(5));
        if got < 4 * 1024 * 1024 {
            peak = peak.max(rss_kib(pid));
            std::thread::sleep(Duration::from_millis(2));
        }
        if tail == b"\r\n.\r\n" {
            break;
        }
    }
    assert!(got > 25 * 1000 * 1000, "only {got} bytes");
    let grown = peak.saturating_sub(idle);
    assert!(
        grown < 8 * 1024,
        "RSS grew by {grown} KiB while sending 25 MiB"
    );
}

#[test]
fn pop3_has_its_own_error_limit() {
    let (_dir, server) = Server::with_config("[smtp]\nmax_errors = 2\n[pop3]\nmax_errors = 4\n");
    let mut c = server.pop3();
    assert!(c.line().starts_with("+OK"));
    for _ in 0..3 {
        c.cmd("FROB");
        assert_eq!(c.line(), "-ERR Unknown command");
    }
    c.cmd("FROB");
    assert_eq!(c.line(), "-ERR Too many errors, closing connection");
    assert!(c.closed());
}

/// Sets a mailbox's new/ and cur/ times back, as if the last change were
/// a minute ago, so the server trusts (and writes) its index.
fn settle(server: &Server, user: &str) {
    let dir = server.data.join("mail/localhost").join(user);
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    for sub in ["new", "cur"] {
        std::fs::File::open(dir.join(sub))
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
}

/// Numbered lines of a listing.
type Lines = Vec<(u32, String)>;

/// LIST and UIDL of one session, ended with QUIT.
fn listings(server: &Server) -> (Lines, Lines) {
    let mut c = pop3_login(server, "alice", "alice-pw");
    let sizes = listing(&mut c, "LIST");
    let uids = listing(&mut c, "UIDL");
    c.cmd("QUIT");
    assert!(c.line().starts_with("+OK"));
    // The index is written as the session ends, after QUIT's answer.
    let client = c.local_addr();
    drop(c);
    server.wait_session_closed(client);
    (sizes, uids)
}

#[test]
fn listings_are_the_same_with_and_without_the_index() {
    let server = server_with_mail();
    let index = server.data.join("mail/localhost/alice/postbox-index");
    let check = |expected: usize| {
        // Without an index, then from the one that login wrote, then
        // from a damaged one.
        let _ = std::fs::remove_file(&index);
        settle(&server, "alice");
        let listed = listings(&server);
        assert_eq!(listed.0.len(), expected);
        assert!(index.exists(), "no index written");
        let written = std::fs::metadata(&index).unwrap().modified().unwrap();
        assert_eq!(listings(&server), listed);
        assert_eq!(
            std::fs::metadata(&index).unwrap().modified().unwrap(),
            written,
            "the index of an unchanged mailbox was written again"
        );
        let mut bytes = std::fs::read(&index).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&index, bytes).unwrap();
        assert_eq!(listings(&server), listed);
        listed
    };
    check(3);
    deliver(&server, "alice@localhost", "Subject: four\r\n\r\nfourth");
    let (_, uids) = check(4);
    let mut c = pop3_login(&server, "alice", "alice-pw");
    c.cmd("DELE 2");
    assert!(c.line().starts_with("+OK"));
    c.cmd("QUIT");
    assert!(c.line().starts_with("+OK"));
    // Straight after the deletion (the index is stale, not yet rewritten).
    let after = listings(&server).1;
    assert_eq!(after.len(), 3);
    assert!(!after.iter().any(|(_, uid)| *uid == uids[1].1));
    let (_, again) = check(3);
    assert_eq!(
        again.iter().map(|(_, u)| u).collect::<Vec<_>>(),
        after.iter().map(|(_, u)| u).collect::<Vec<_>>()
    );
}
