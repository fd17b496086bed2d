//! Mailbox quotas: a default from the config, a per-user override set on a
//! running server, 552 5.2.2 (or 452 4.2.2) when full or when a message
//! (by its declared or its real size) does not fit, a delivery report
//! when it does not fit for some recipients only, a warning message when
//! nearly full, and room again after POP3 deletions.

mod common;
use common::*;

use std::time::Duration;

fn rcpt(server: &Server, to: &str) -> String {
    rcpt_sized(server, to, "")
}

/// The reply to RCPT after MAIL with `parameters` (such as ` SIZE=...`).
fn rcpt_sized(server: &Server, to: &str, parameters: &str) -> String {
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO client.test");
    c.ask(&format!("MAIL FROM:<x@remote.test>{parameters}"));
    c.ask(&format!("RCPT TO:<{to}>"))
}

/// A message body of about `bytes` octets, in lines of 100.
fn filler(bytes: usize) -> String {
    let line = "z".repeat(98) + "\r\n";
    format!("Subject: filler\r\n\r\n{}", line.repeat(bytes / 100))
}

fn fill(server: &Server, to: &str, bytes: usize) {
    let reply = send_mail(server.smtp, "x@remote.test", &[to], &filler(bytes));
    assert!(reply.starts_with("250"), "{reply}");
}

#[test]
fn default_quota_refuses_when_full_and_recovers() {
    let (_dir, server) = Server::with_config("[quota]\ndefault = \"20K\"\n");
    fill(&server, "alice@localhost", 19_000);
    // The warning (mailbox past 90 %) arrived with the message.
    let files = server.messages("alice");
    assert_eq!(files.len(), 2, "no warning message");
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(texts
        .iter()
        .any(|t| t.contains("Subject: Your mailbox is nearly full")));
    // Under 20 KiB at RCPT time, but not with this message in.
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        &filler(2_000),
    );
    assert!(reply.starts_with("552 5.2.2"), "{reply}");
    assert_eq!(server.messages("alice").len(), 2);
    assert!(rcpt_sized(&server, "alice@localhost", " SIZE=2000").starts_with("552 5.2.2"));
    assert!(
        rcpt_sized(&server, "bob@localhost", " SIZE=2000").starts_with("250"),
        "bob is not full"
    );
    // Fetching and deleting makes room at once.
    let mut c = pop3_login(&server, "alice", "alice-pw");
    for n in 1..=2 {
        c.cmd(&format!("DELE {n}"));
        assert!(c.line().starts_with("+OK"));
    }
    c.cmd("QUIT");
    assert!(c.line().starts_with("+OK"));
    assert!(rcpt_sized(&server, "alice@localhost", " SIZE=2000").starts_with("250"));
}

#[test]
fn per_user_override_on_a_running_server_and_temporary_mode() {
    let (_dir, server) = Server::with_config("[quota]\ntemporary = true\n");
    fill(&server, "bob@localhost", 5_000);
    assert!(
        rcpt(&server, "bob@localhost").starts_with("250"),
        "unlimited by default"
    );
    let data = server.data.to_str().unwrap();
    let out = postbox(&["user", "quota", "bob", "4K", "--data", data], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(rcpt(&server, "bob@localhost").starts_with("452 4.2.2"));
    assert!(rcpt(&server, "alice@localhost").starts_with("250"));
    let out = postbox(&["user", "quota", "bob", "default", "--data", data], "");
    assert!(out.status.success());
    assert!(rcpt(&server, "bob@localhost").starts_with("250"));
    // Bad input gets a clear error.
    let out = postbox(&["user", "quota", "bob", "lots", "--data", data], "");
    assert_eq!(out.status.code(), Some(1));
    let out = postbox(&["user", "quota", "nobody", "1M", "--data", data], "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn declared_and_real_sizes_must_fit_each_mailbox() {
    let (_dir, server) = Server::with_config("");
    let data = server.data.to_str().unwrap();
    let out = postbox(&["user", "quota", "bob", "0.5M", "--data", data], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fill(&server, "bob@localhost", 5_000);
    // Announced too big for bob: refused at once.
    let reply = rcpt_sized(&server, "bob@localhost", " SIZE=3006022");
    assert!(reply.starts_with("552 5.2.2"), "{reply}");
    assert!(rcpt_sized(&server, "alice@localhost", " SIZE=3006022").starts_with("250"));
    // Not announced, found at the end of the data.
    let big = filler(600_000);
    let reply = send_mail(server.smtp, "x@remote.test", &["bob@localhost"], &big);
    assert!(reply.starts_with("552 5.2.2"), "{reply}");
    assert_eq!(server.messages("bob").len(), 1);
    // With others to serve: they get it, the sender gets a report for bob.
    let mut c = member_login(
        server.submission.unwrap(),
        "laptop.test",
        "alice",
        "alice-pw",
    );
    assert!(c.ask("MAIL FROM:<alice@localhost>").starts_with("250"));
    assert!(c.ask("RCPT TO:<bob@localhost>").starts_with("250"));
    assert!(c.ask("RCPT TO:<alice@localhost>").starts_with("250"));
    assert!(c.ask("DATA").starts_with("354"));
    c.send(big.as_bytes());
    c.send(b"\r\n.\r\n");
    let reply = c.reply();
    assert!(reply.starts_with("250"), "{reply}");
    let texts = wait_for_mail(&server.data, "alice", 2, Duration::from_secs(20), &|| {
        server.log()
    });
    let report = texts
        .iter()
        .find(|t| t.contains("message/delivery-status"))
        .expect("a delivery report");
    assert!(
        report.contains("Final-Recipient: rfc822; bob@localhost"),
        "{report}"
    );
    assert!(report.contains("Status: 5.2.2"), "{report}");
    assert_eq!(server.messages("bob").len(), 1);
}
