//! The happy path of incoming mail with real clients: curl and Python's
//! smtplib deliver on the SMTP port, curl and poplib read it back.

mod common;
use common::*;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn curl_delivers_and_reads_back() {
    let server = Server::with_users();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msg.txt");
    std::fs::write(
        &file,
        "Subject: curl\r\n\r\nsent with curl\r\n.leading dot\r\n",
    )
    .unwrap();
    run(Command::new("curl").args([
        "-sS",
        &format!("smtp://{}", server.smtp),
        "--mail-from",
        "friend@remote.test",
        "--mail-rcpt",
        "alice@localhost",
        "--mail-rcpt",
        "bob@localhost",
        "--upload-file",
        file.to_str().unwrap(),
    ]));
    let list = run(Command::new("curl").args([
        "-sS",
        &format!("pop3://{}/", server.pop3),
        "-u",
        "bob:bob-pw",
    ]));
    assert_eq!(list.lines().count(), 1, "{list}");
    let message = run(Command::new("curl").args([
        "-sS",
        &format!("pop3://{}/1", server.pop3),
        "-u",
        "alice:alice-pw",
    ]));
    assert!(
        message.starts_with("Return-Path: <friend@remote.test>"),
        "{message}"
    );
    assert!(
        message.ends_with("sent with curl\r\n.leading dot\r\n"),
        "{message}"
    );
}

#[test]
fn python_smtplib_and_poplib_carry_utf8_intact() {
    let server = Server::with_users();
    let script = r#"
import smtplib, poplib, sys
smtp_port, pop_port = int(sys.argv[1]), int(sys.argv[2])
body = "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln ✉\r\n"
s = smtplib.SMTP("127.0.0.1", smtp_port, timeout=20)
s.ehlo("py.test")
assert s.has_extn("smtputf8") and s.has_extn("8bitmime")
refused = s.sendmail("jörg@remote.test", ["alice@localhost", "nobody@localhost"],
    body.encode("utf-8"), mail_options=["SMTPUTF8", "BODY=8BITMIME"])
assert list(refused) == ["nobody@localhost"], refused
s.quit()
p = poplib.POP3("127.0.0.1", pop_port, timeout=20)
p.user("alice"); p.pass_("alice-pw")
count, size = p.stat()
assert count == 1
uid = p.uidl(1).split()[2]
lines = p.retr(1)[1]
text = b"\r\n".join(lines).decode("utf-8")
assert "Grüße aus Köln ✉" in text, text
assert "Return-Path: <jörg@remote.test>" in text, text
p.dele(1)
p.quit()
p = poplib.POP3("127.0.0.1", pop_port, timeout=20)
p.user("alice"); p.pass_("alice-pw")
assert p.stat()[0] == 0
p.quit()
print("ok")
"#;
    let out = run(Command::new("python3").args([
        "-c",
        script,
        &server.smtp.port().to_string(),
        &server.pop3.port().to_string(),
    ]));
    assert_eq!(out.trim(), "ok");
    assert!(server.messages("alice").is_empty());
}

#[test]
fn swaks_delivers_and_hears_550_for_unknown_users() {
    let server = Server::with_users();
    let server_addr = server.smtp.to_string();
    let out = Command::new("swaks")
        .args([
            "--server",
            &server_addr,
            "--from",
            "x@remote.test",
            "--to",
            "alice@localhost",
        ])
        .output()
        .expect("swaks (installed by scripts/install-test-deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new("swaks")
        .args([
            "--server",
            &server_addr,
            "--from",
            "x@remote.test",
            "--to",
            "nobody@localhost",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("550 5.1.1"));
    assert_eq!(server.messages("alice").len(), 1);
}
