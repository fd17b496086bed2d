//! The checks a security audit runs, kept as tests: an outside TLS
//! scanner on a TLS listener, every known SMTP smuggling variant, and the
//! classic open-relay address tricks, each list in one place.

mod common;
use common::*;
use std::collections::HashMap;
use std::process::Command;

/// testssl.sh (Debian's testssl.sh package; scripts/install-test-deps)
/// against the implicit-TLS submission listener: protocols, cipher
/// categories and the known vulnerabilities.
#[test]
fn tls_listener_passes_testssl() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("testssl.csv");
    let out = Command::new("testssl")
        .args(["--quiet", "--color", "0", "--warnings", "off"])
        // Loopback only: no DNS questions to wait for.
        .args(["--nodns", "none", "--protocols", "--std", "--vulnerable"])
        .arg("--csvfile")
        .arg(&csv)
        .arg(server.submissions.unwrap().to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run testssl (scripts/install-test-deps): {e}"));
    let report = String::from_utf8_lossy(&out.stdout);
    let text = std::fs::read_to_string(&csv)
        .unwrap_or_else(|e| panic!("testssl wrote no CSV ({e}):\n{report}"));
    // "id","fqdn/ip","port","severity","finding","cve","cwe"
    let findings: HashMap<String, (String, String)> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.trim_matches('"').split("\",\"").collect();
            Some((
                fields.first()?.to_string(),
                (fields.get(3)?.to_string(), fields.get(4)?.to_string()),
            ))
        })
        .collect();
    let finding = |id: &str| {
        findings
            .get(id)
            .map(|(_, f)| f.as_str())
            .unwrap_or_else(|| panic!("testssl reported no {id}:\n{report}"))
    };
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(finding(old).starts_with("not offered"), "{old}: {report}");
    }
    for current in ["TLS1_2", "TLS1_3"] {
        assert!(
            finding(current).starts_with("offered"),
            "{current}: {report}"
        );
    }
    // Every category but AEAD with forward secrecy is absent: no NULL,
    // anonymous, export, RC4/DES, 3DES/IDEA or CBC suites.
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert!(finding(weak).starts_with("not offered"), "{weak}: {report}");
    }
    assert!(finding("cipherlist_STRONG").starts_with("offered"));
    // The vulnerability checks ran, and nothing anywhere is worse than
    // informational (testssl's LOW, MEDIUM, HIGH, CRITICAL; WARN and
    // FATAL for a scan that went wrong).
    for check in [
        "heartbleed",
        "CCS",
        "ROBOT",
        "secure_client_renego",
        "LUCKY13",
    ] {
        finding(check);
    }
    let bad: Vec<_> = findings
        .iter()
        .filter(|(_, (severity, _))| !["OK", "INFO", "DEBUG"].contains(&severity.as_str()))
        .collect();
    assert!(bad.is_empty(), "{bad:?}\n{report}");
}

/// Every end-of-data look-alike from the 2023 SMTP smuggling research and
/// its follow-ups: only `<CRLF>.<CRLF>` ends a message.
const SMUGGLING_TRICKS: [&[u8]; 20] = [
    b"\n.\n",
    b"\n.\r\n",
    b"\n.\r",
    b"\r.\r",
    b"\r.\r\n",
    b"\r.\n",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
    b"\r\n.\x00\r\n",
    b"\r\n .\r\n",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
    b"\n\r.\r\n",
    b"\r\n.\n\r\n",
    b"\n..\n",
    b"\r\n..\n",
    b"\n\n.\n\n",
    b"\r\r.\r\r",
    b"\x0b\r\n.\x0c\r\n",
];

/// The injected transaction each trick is followed by.
fn injected(i: usize) -> String {
    format!(
        "MAIL FROM:<admin@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n\
         Subject: smuggled {i}\r\n\r\nevil\r\n.\r\n"
    )
}

/// Inbound: each trick and its injection stay inside the one message
/// stored, and the session stays in step.
#[test]
fn smuggling_variants_never_end_a_message() {
    let server = Server::with_users();
    let tricks = SMUGGLING_TRICKS;
    for (i, trick) in tricks.iter().enumerate() {
        let mut c = server.smtp();
        c.reply();
        c.ask("EHLO client.test");
        c.ask("MAIL FROM:<x@remote.test>");
        c.ask("RCPT TO:<alice@localhost>");
        assert!(c.ask("DATA").starts_with("354"));
        // Three writes, so a trick may also arrive split from its surroundings.
        c.send(format!("Subject: outer {i}\r\n\r\nhello").as_bytes());
        c.send(trick);
        c.send(injected(i).as_bytes());
        let reply = c.reply();
        assert!(reply.starts_with("250"), "trick {trick:?}: {reply}");
        // The rest was data, so the next reply answers our next command.
        assert_eq!(
            c.ask("NOOP"),
            "250 2.0.0 OK",
            "trick {trick:?} desynchronised the session"
        );
    }
    assert!(
        server.messages("bob").is_empty(),
        "a smuggled message got through"
    );
    let files = server.messages("alice");
    assert_eq!(files.len(), tricks.len());
    for (i, file) in files.iter().enumerate() {
        let bytes = std::fs::read(file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains(&format!("smuggled {i}")), "{text}");
        // Bare LFs reach the store as CRLF.
        for (at, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(bytes[at - 1], b'\r', "bare LF stored: {text:?}");
            }
        }
    }
}

/// Outbound: a member's message carrying every trick leaves for the
/// smarthost as one message, with CRLF line ends only, no NUL, and no
/// early end of data, so no server after us can be made to split it.
#[test]
fn smuggling_variants_leave_as_one_clean_message() {
    let (port, sent) = smtp_sink();
    let (_dir, data, config) = prepare(
        "a.test",
        &["alice"],
        &format!("smarthost = \"127.0.0.1:{port}\"\nsmarthost_tls = \"none\"\n"),
    );
    let server = start(&data, &config, "a.test", &[]);
    let mut c = member_login(
        server.submission.unwrap(),
        "laptop.a.test",
        "alice",
        "alice-pw",
    );
    assert!(c.ask("MAIL FROM:<alice@a.test>").starts_with("250"));
    assert!(c.ask("RCPT TO:<carol@b.test>").starts_with("250"));
    assert!(c.ask("DATA").starts_with("354"));
    c.send(b"From: alice@a.test\r\nTo: carol@b.test\r\nSubject: tricks\r\n\r\n");
    for (i, trick) in SMUGGLING_TRICKS.iter().enumerate() {
        c.send(format!("trick {i}").as_bytes());
        c.send(trick);
        c.send(injected(i).replace("\r\n.\r\n", "\r\n").as_bytes());
    }
    c.send(b"last\r\n.\r\n");
    let reply = c.reply();
    assert!(reply.starts_with("250"), "{reply}");
    let wire = sent
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("nothing reached the smarthost: {}", server.log()));
    let text = String::from_utf8_lossy(&wire);
    assert!(!wire.contains(&0), "NUL sent on: {text:?}");
    for (i, &b) in wire.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(wire.get(i + 1), Some(&b'\n'), "bare CR: {text:?}"),
            b'\n' => assert_eq!(wire[i - 1], b'\r', "bare LF: {text:?}"),
            _ => {}
        }
    }
    let body = &text[..text.len() - "\r\n.\r\n".len()];
    assert!(
        !body.contains("\r\n.\r\n"),
        "an early end of data: {text:?}"
    );
    for i in 0..SMUGGLING_TRICKS.len() {
        assert!(
            body.contains(&format!("smuggled {i}")),
            "trick {i} lost: {text:?}"
        );
    }
    assert!(body.ends_with("\r\nlast"), "{text:?}");
}

/// The classic open-relay address forms, from a stranger on port 25: each
/// is refused, and mail to a local user in the same transaction is
/// delivered to that user alone, so nothing is queued to leave.
#[test]
fn open_relay_tricks_are_refused_and_nothing_is_queued() {
    let server = Server::with_users();
    let tricks = [
        "<joe@evil.test>",
        "joe@evil.test",
        "<postmaster@evil.test>",
        // percent hack
        "<joe%evil.test@localhost>",
        "<alice%evil.test@localhost>",
        "<joe%evil.test%localhost@localhost>",
        "<joe@evil.test%localhost>",
        "<\"joe%evil.test\"@localhost>",
        // source routes
        "<@localhost:joe@evil.test>",
        "<@localhost,@relay.test:joe@evil.test>",
        "<@localhost:alice@localhost@evil.test>",
        // quoted and escaped local parts
        "<\"joe@evil.test\"@localhost>",
        "<\"alice@evil.test\"@localhost>",
        "<joe\\@evil.test@localhost>",
        // bang paths
        "<evil.test!joe@localhost>",
        "<localhost!evil.test!joe@localhost>",
        "<evil.test!joe>",
        // several at signs
        "<joe@evil.test@localhost>",
        "<alice@evil.test@localhost>",
        "<alice@localhost@evil.test>",
        // look-alike domains, case, trailing dots
        "<joe@localhost.evil.test>",
        "<joe@evil.test.localhost>",
        "<joe@EVIL.TEST>",
        "<joe@Evil.Test.>",
        "<joe@evil.test.>",
        "<joe@evil.test..>",
        "<joe@localhost..>",
        "<joe@.localhost>",
        // address literals, ours included
        "<joe@[192.0.2.1]>",
        "<joe@[127.0.0.1]>",
        "<alice@[127.0.0.1]>",
        "<joe@[IPv6:::1]>",
        "<joe@127.0.0.1>",
        // lists and extra words
        "<joe@evil.test,alice@localhost>",
        "<alice@localhost> <joe@evil.test>",
        "<alice@localhost>,<joe@evil.test>",
        // UTF-8: accented and Cyrillic look-alikes, a full-width dot, a
        // zero-width space
        "<joe@évil.test>",
        "<joe@lоcalhost>",
        "<joe@localhost\u{ff0e}evil.test>",
        "<alice@localhost\u{200b}>",
        "<alice@localhost\u{200b}.evil.test>",
    ];
    for (i, rcpt) in tricks.iter().enumerate() {
        // A session each: refusals count toward the error limit.
        let mut c = server.smtp();
        c.reply();
        c.ask("EHLO client.test");
        assert!(c.ask("MAIL FROM:<someone@evil.test>").starts_with("250"));
        let reply = c.ask(&format!("RCPT TO:{rcpt}"));
        assert!(reply.starts_with('5'), "{rcpt} got {reply}");
        assert!(c.ask("RCPT TO:<alice@localhost>").starts_with("250"));
        assert!(c.ask("DATA").starts_with("354"));
        let reply = c.ask(&format!("Subject: trick {i}\r\n\r\nhi\r\n."));
        assert!(reply.starts_with("250"), "{rcpt}: {reply}");
    }
    assert_eq!(server.messages("alice").len(), tricks.len());
    assert!(server.messages("bob").is_empty());
    let data = server.data.to_str().unwrap();
    let listed = postbox(&["queue", "list", "--data", data], "");
    assert!(listed.status.success());
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "queue is empty\n");
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO client.test");
    c.ask("MAIL FROM:<someone@evil.test>");
    // Domains match in any letter case: this is delivery, not relaying.
    assert!(c.ask("RCPT TO:<alice@LOCALHOST>").starts_with("250"));
}
