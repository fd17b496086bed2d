//! The header section as stored: a client's Return-Path: removed, members'
//! mail completed (Date:, Message-ID:, From:), and members' header
//! sections that parsers could read two ways refused, so the From: check
//! cannot be slipped past. Stored messages are read back with Python's
//! `email` package, a mainstream parser.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// alice logs in on the submission port and sends `message` to bob;
/// returns the reply to the final dot.
fn submit_raw(server: &Server, message: &[u8]) -> String {
    let mut c = member_login(
        server.submission.unwrap(),
        "laptop.test",
        "alice",
        "alice-pw",
    );
    assert!(c.ask("MAIL FROM:<alice@localhost>").starts_with("250"));
    assert!(c.ask("RCPT TO:<bob@localhost>").starts_with("250"));
    assert!(c.ask("DATA").starts_with("354"));
    c.send(message);
    c.send(b"\r\n.\r\n");
    c.reply()
}

/// What Python's `email` (policy default) reads in a stored message:
/// one `name: value` line per field of interest, From: as addresses.
fn python_reads(path: &Path) -> Vec<String> {
    let script = r#"
import sys
from email import message_from_bytes, policy
m = message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)
for h in m.get_all('from', []):
    for a in h.addresses:
        print('from:', a.addr_spec)
for h in m.get_all('return-path', []):
    print('return-path:', h)
print('message-id:', m['message-id'])
print('date:', m['date'].datetime if m['date'] else None)
"#;
    let out = Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn return_path_is_ours_alone_and_members_mail_is_completed() {
    let server = Server::with_users();
    let reply = submit_raw(
        &server,
        b"Return-Path: <evil@elsewhere.test>\r\nSubject: bare\r\n\r\nhello",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let read = python_reads(&server.messages("bob")[0]);
    assert_eq!(read[0], "from: alice@localhost", "{read:?}");
    assert_eq!(read[1], "return-path: <alice@localhost>", "{read:?}");
    assert!(
        read[2].starts_with("message-id: <") && read[2].ends_with("@mx.test>"),
        "{read:?}"
    );
    assert!(read[3].starts_with("date: 20"), "{read:?}");
    assert_eq!(read.len(), 4, "{read:?}");
    // A stranger's Return-Path: goes too; nothing is added to their mail.
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Return-Path: <other@elsewhere.test>\r\nSubject: s\r\n\r\nhi",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let read = python_reads(&server.messages("alice")[0]);
    assert_eq!(
        read,
        [
            "return-path: <x@remote.test>",
            "message-id: None",
            "date: None"
        ]
    );
}

#[test]
fn from_check_cannot_be_slipped_past() {
    let server = Server::with_users();
    // Each is read as bob's by some parser; each was accepted from alice.
    for message in [
        &b"X-A: a\rFrom: bob@localhost\r\nFrom: alice@localhost\r\n\r\nbody"[..],
        b"Subject: s\r\nX-no-colon\r\nFrom: bob@localhost\r\n\r\nbody",
        b"From: <alice@localhost> <bob@localhost>\r\n\r\nbody",
        b"From: <alice@localhost>\r\n <bob@localhost>\r\n\r\nbody",
        b"From: bob@localhost<alice@localhost>\r\n\r\nbody",
        b"X-A: a\nFrom: bob@localhost\r\nFrom: alice@localhost\r\n\r\nbody",
        b"From : bob@localhost\r\nFrom: alice@localhost\r\n\r\nbody",
    ] {
        let reply = submit_raw(&server, message);
        assert!(
            reply.starts_with("550 5.6.0"),
            "{}: {reply}",
            String::from_utf8_lossy(message)
        );
    }
    assert!(server.messages("bob").is_empty());
    // What is accepted names alice alone, as Python reads it.
    for message in [
        &b"From: Alice <alice@localhost>\r\n\r\nbody"[..],
        b"From: \"Bob <bob@localhost>\" <alice@localhost> (not <bob@localhost>)\r\n\r\nbody",
        b"From: alice@localhost\r\nSubject: a\r\n  folded\r\n\r\nbare\rCR and\nLF in the body",
    ] {
        let reply = submit_raw(&server, message);
        assert!(reply.starts_with("250"), "{reply}");
    }
    for file in server.messages("bob") {
        let froms: Vec<String> = python_reads(&file)
            .into_iter()
            .filter(|l| l.starts_with("from:"))
            .collect();
        assert_eq!(froms, ["from: alice@localhost"]);
    }
    assert_eq!(server.messages("bob").len(), 3);
}
