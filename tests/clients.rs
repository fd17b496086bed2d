//! The happy path of incoming mail with real clients against the real
//! binary: curl, Python's smtplib and swaks deliver on the SMTP port; curl
//! and poplib read the mail back over POP3.
//!
//! Every address is a 127.0.0.1 literal and every client is given its own
//! EHLO name, so no test needs DNS. The clients come from
//! scripts/install-test-deps; a missing one fails the test, never skips it.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

/// A command for an external client, failing loudly when it is missing.
fn tool(name: &str) -> Command {
    match Command::new(name).arg("--version").output() {
        Ok(_) => Command::new(name),
        Err(e) => panic!("{name} is needed by this test but cannot run ({e}); install it with scripts/install-test-deps"),
    }
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a client that must succeed; returns its stdout.
fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `curl smtp://127.0.0.1:PORT/client.test` (the path is curl's EHLO name).
fn curl_send(server: &Server, from: &str, to: &[&str], file: &Path) -> Command {
    let mut cmd = tool("curl");
    cmd.args(["-sS", "--max-time", "30"])
        .arg(format!("smtp://{}/client.test", server.smtp))
        .args(["--mail-from", from]);
    for rcpt in to {
        cmd.args(["--mail-rcpt", rcpt]);
    }
    cmd.arg("--upload-file").arg(file);
    cmd
}

/// `curl pop3://127.0.0.1:PORT/PATH -u USER:PASS`: a listing for an empty
/// path, else one message.
fn curl_pop3(server: &Server, path: &str, user: &str, password: &str) -> String {
    run(tool("curl")
        .args(["-sS", "--max-time", "30"])
        .arg(format!("pop3://{}/{path}", server.pop3))
        .args(["-u", &format!("{user}:{password}")]))
}

/// Runs a Python script with the server's SMTP and POP3 ports as argv[1..3].
fn python(server: &Server, script: &str) -> String {
    run(tool("python3").args([
        "-c",
        script,
        &server.smtp.port().to_string(),
        &server.pop3.port().to_string(),
    ]))
}

fn swaks(server: &Server, extra: &[&str]) -> Output {
    output(
        tool("swaks")
            .args(["--server", &server.smtp.to_string()])
            // Our own EHLO name and sender: swaks would otherwise derive
            // them from the host name.
            .args(["--helo", "client.test", "--from", "x@remote.test"])
            .args(["--timeout", "30"])
            .args(extra),
    )
}

#[test]
fn curl_sends_and_reads_back_over_pop3() {
    let server = Server::with_users();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msg.txt");
    // A leading dot checks dot-stuffing both ways.
    let content = "Subject: curl\r\n\r\nsent with curl\r\n.leading dot\r\n";
    std::fs::write(&file, content).unwrap();
    run(&mut curl_send(
        &server,
        "friend@remote.test",
        &["alice@localhost"],
        &file,
    ));
    let message = curl_pop3(&server, "1", "alice", "alice-pw");
    assert!(
        message.starts_with("Return-Path: <friend@remote.test>\r\nReceived: from client.test"),
        "{message}"
    );
    assert!(message.ends_with(content), "{message}");
    // The listing is "NUMBER SIZE" per message, and the size is exact.
    let list = curl_pop3(&server, "", "alice", "alice-pw");
    assert_eq!(list, format!("1 {}\r\n", message.len()), "{list:?}");
    assert!(
        server.messages("bob").is_empty(),
        "only alice was a recipient"
    );
}

#[test]
fn curl_sends_to_several_recipients() {
    let server = Server::with_users();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("msg.txt");
    std::fs::write(&file, "Subject: to both\r\n\r\nfor alice and bob\r\n").unwrap();
    run(&mut curl_send(
        &server,
        "friend@remote.test",
        &["alice@localhost", "bob@localhost"],
        &file,
    ));
    let to_alice = curl_pop3(&server, "1", "alice", "alice-pw");
    let to_bob = curl_pop3(&server, "1", "bob", "bob-pw");
    assert!(to_alice.ends_with("for alice and bob\r\n"), "{to_alice}");
    assert_eq!(to_alice, to_bob, "both get the same copy");
    for (user, password) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        let list = curl_pop3(&server, "", user, password);
        assert_eq!(list.lines().count(), 1, "{user}: {list}");
    }

    // curl gives up on the whole message when one RCPT is refused...
    let out = output(&mut curl_send(
        &server,
        "friend@remote.test",
        &["alice@localhost", "nobody@localhost"],
        &file,
    ));
    assert!(!out.status.success(), "a refused recipient fails curl");
    assert_eq!(server.messages("alice").len(), 1, "nothing sent");
    // ...unless told to go on with the recipients that were accepted.
    let mut cmd = curl_send(
        &server,
        "friend@remote.test",
        &["nobody@localhost", "alice@localhost"],
        &file,
    );
    run(cmd.arg("--mail-rcpt-allowfails"));
    assert_eq!(server.messages("alice").len(), 2);
    assert_eq!(server.messages("bob").len(), 1);
}

#[test]
fn python_send_message_carries_utf8_intact_with_smtputf8() {
    let server = Server::with_users();
    // An international sender makes send_message use SMTPUTF8 and
    // BODY=8BITMIME and send headers and body as raw UTF-8.
    let script = r#"
import io, poplib, smtplib, sys
from email.generator import BytesGenerator
from email.message import EmailMessage
smtp_port, pop_port = int(sys.argv[1]), int(sys.argv[2])
msg = EmailMessage()
msg["From"] = "Jörg <jörg@remote.test>"
msg["To"] = "Alice <alice@localhost>, bob@localhost"
msg["Subject"] = "Grüße aus Köln ✉"
msg.set_content("Grüße aus Köln ✉\n.\n..zwei Punkte\nÄrger über Ölpreise\n")
with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.test", timeout=20) as s:
    s.ehlo()
    assert s.has_extn("smtputf8") and s.has_extn("8bitmime"), s.esmtp_features
    assert s.send_message(msg) == {}
# The exact bytes smtplib put on the wire, before dot-stuffing.
buf = io.BytesIO()
BytesGenerator(buf, policy=msg.policy.clone(utf8=True)).flatten(msg, linesep="\r\n")
sent = buf.getvalue()
assert "Grüße aus Köln ✉".encode() in sent  # really 8-bit, not encoded words
for user in ("alice", "bob"):
    p = poplib.POP3("127.0.0.1", pop_port, timeout=20)
    p.user(user)
    p.pass_(user + "-pw")
    resp, lines, octets = p.retr(1)
    got = b"\r\n".join(lines) + b"\r\n"
    assert got.startswith("Return-Path: <jörg@remote.test>\r\n".encode()), got
    assert got.endswith(sent), (got, sent)
    assert octets == len(got)
    p.quit()
print("ok")
"#;
    assert_eq!(python(&server, script).trim(), "ok");
}

#[test]
fn python_sendmail_and_poplib_session() {
    let server = Server::with_users();
    // sendmail with BODY=8BITMIME (no SMTPUTF8: plain ASCII addresses);
    // the second message is large and 8-bit throughout. Then every POP3
    // command poplib has: USER, PASS, STAT, LIST, UIDL, RETR, DELE, RSET, QUIT.
    let script = r#"
import poplib, smtplib, sys
smtp_port, pop_port = int(sys.argv[1]), int(sys.argv[2])
small = "Subject: eins\r\n\r\nÜber 8 Bit: Smørrebrød, 東京\r\n".encode()
big = b"Subject: zwei\r\n\r\n" + b"".join(
    ("Zeile %05d: äöü ß € ✉ %s\r\n" % (i, "x" * (i % 70))).encode() for i in range(5000))
s = smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.test", timeout=20)
s.ehlo()
assert s.has_extn("8bitmime")
refused = s.sendmail("x@remote.test", ["alice@localhost", "nobody@localhost"],
                     small, mail_options=["BODY=8BITMIME"])
assert list(refused) == ["nobody@localhost"] and refused["nobody@localhost"][0] == 550, refused
assert s.sendmail("x@remote.test", ["alice@localhost"], big, mail_options=["BODY=8BITMIME"]) == {}
s.quit()

def login():
    p = poplib.POP3("127.0.0.1", pop_port, timeout=20)
    assert p.getwelcome().startswith(b"+OK")
    assert p.user("alice").startswith(b"+OK")
    assert p.pass_("alice-pw").startswith(b"+OK")
    return p

p = login()
count, total = p.stat()
assert count == 2, count
resp, listing, _ = p.list()
sizes = {int(n): int(size) for n, size in (l.split() for l in listing)}
assert sorted(sizes) == [1, 2] and sum(sizes.values()) == total, (listing, total)
assert p.list(2).split()[2] == str(sizes[2]).encode()
resp, uids, _ = p.uidl()
uids = dict(l.split() for l in uids)
assert len(set(uids.values())) == 2, uids
assert p.uidl(2).split()[2] == uids[b"2"]
for n, sent in ((1, small), (2, big)):
    resp, lines, octets = p.retr(n)
    got = b"\r\n".join(lines) + b"\r\n"
    assert got.endswith(sent), n
    assert octets == sizes[n] == len(got), (n, octets, sizes[n], len(got))
# RSET undoes a DELE; deletions happen only at QUIT.
p.dele(1)
p.rset()
p.quit()
p = login()
assert p.stat()[0] == 2
p.dele(1)
assert p.quit().startswith(b"+OK")
p = login()
assert p.stat() == (1, sizes[2]), p.stat()
resp, uids_after, _ = p.uidl()
assert uids_after == [b"1 " + uids[b"2"]], uids_after  # UIDs survive renumbering
p.quit()
print("ok")
"#;
    assert_eq!(python(&server, script).trim(), "ok");
    assert_eq!(server.messages("alice").len(), 1);
}

#[test]
fn swaks_delivers_and_hears_550_for_unknown_users() {
    let server = Server::with_users();
    let out = swaks(&server, &["--to", "alice@localhost"]);
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{transcript}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(transcript.contains("250 2.0.0"), "{transcript}");
    assert_eq!(server.messages("alice").len(), 1);
    let message = curl_pop3(&server, "1", "alice", "alice-pw");
    assert!(message.contains("X-Mailer: swaks"), "{message}");

    let out = swaks(&server, &["--to", "nobody@localhost"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "unknown user accepted:\n{said}");
    assert!(said.contains("550"), "{said}");
    assert_eq!(server.messages("alice").len(), 1);
}

#[test]
fn swaks_pipelines_to_several_recipients() {
    let server = Server::with_users();
    let out = swaks(
        &server,
        &[
            "--pipeline",
            "--to",
            "alice@localhost,bob@localhost",
            "--body",
            "pipelined",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(server.messages("alice").len(), 1);
    assert_eq!(server.messages("bob").len(), 1);
    let message = curl_pop3(&server, "1", "bob", "bob-pw");
    // swaks adds blank lines after the body.
    assert!(message.contains("\r\n\r\npipelined\r\n"), "{message}");
}
