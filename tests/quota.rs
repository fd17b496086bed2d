//! Mailbox quotas: a default from the config, a per-user override set on a
//! running server, 552 5.2.2 (or 452 4.2.2) when full, a warning message
//! when nearly full, and room again after POP3 deletions.

mod common;
use common::*;

fn rcpt(server: &Server, to: &str) -> String {
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO client.test");
    c.ask("MAIL FROM:<x@remote.test>");
    c.ask(&format!("RCPT TO:<{to}>"))
}

fn fill(server: &Server, to: &str, bytes: usize) {
    let body = format!("Subject: filler\r\n\r\n{}", "z".repeat(bytes));
    let reply = send_mail(server.smtp, "x@remote.test", &[to], &body);
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
    fill(&server, "alice@localhost", 2_000); // still under 20 KiB at RCPT time
    assert!(rcpt(&server, "alice@localhost").starts_with("552 5.2.2"));
    assert!(
        rcpt(&server, "bob@localhost").starts_with("250"),
        "bob is not full"
    );
    // Fetching and deleting makes room at once.
    let mut c = pop3_login(&server, "alice", "alice-pw");
    for n in 1..=3 {
        c.cmd(&format!("DELE {n}"));
        assert!(c.line().starts_with("+OK"));
    }
    c.cmd("QUIT");
    assert!(c.line().starts_with("+OK"));
    assert!(rcpt(&server, "alice@localhost").starts_with("250"));
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
