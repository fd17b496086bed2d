//! `postbox import` and `postbox export`: mbox files written by Python's
//! `mailbox` module (mboxo, and mboxrd) and a Dovecot-style Maildir go
//! into a mailbox while the server runs, come out over POP3 byte for byte
//! (line ends CRLF), are never imported twice, not even after a kill -9
//! part-way; the export reads back in Python's `mailbox.mbox`.

mod common;
use common::*;

use base64::Engine;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn unbase64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// LF line ends made CRLF, as the store keeps messages.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(*b);
    }
    out
}

/// Writes an mbox with Python's `mailbox`; the messages as written in.
fn python_mbox(kind: &str, n: usize, path: &Path) -> Vec<Vec<u8>> {
    let out = python_script(
        "tests/mailio/mbox.py",
        &["make", kind, &n.to_string(), path.to_str().unwrap()],
        b"",
    );
    let list: Vec<String> = serde_json::from_str(&out).unwrap();
    list.iter().map(|m| unbase64(m)).collect()
}

fn import(data: &Path, extra: &[&str], user: &str, path: &Path) -> std::process::Output {
    let mut args = vec!["import", user, path.to_str().unwrap()];
    args.extend_from_slice(&["--data", data.to_str().unwrap()]);
    args.extend_from_slice(extra);
    postbox(&args, "")
}

fn imported_ok(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Every message of `user`'s mailbox over POP3, in order.
fn retrieve_all(server: &Server, user: &str, password: &str) -> Vec<Vec<u8>> {
    let mut c = pop3_login(server, user, password);
    c.cmd("STAT");
    let stat = c.line();
    let count: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut messages = Vec::new();
    for i in 1..=count {
        c.cmd(&format!("RETR {i}"));
        assert!(c.line().starts_with("+OK"));
        messages.push(c.multiline());
    }
    c.cmd("QUIT");
    messages
}

#[test]
fn mbox_files_go_in_byte_for_byte_and_only_once() {
    let server = Server::with_users();
    let dir = tempfile::tempdir().unwrap();
    let rd = dir.path().join("takeout.mbox");
    let o = dir.path().join("thunderbird.mbox");
    let rd_messages = python_mbox("mboxrd", 12, &rd);
    let o_messages = python_mbox("mboxo", 9, &o);

    let text = imported_ok(&import(&server.data, &[], "alice", &rd));
    assert!(text.contains("imported 12 messages"), "{text}");
    let text = imported_ok(&import(&server.data, &[], "alice@localhost", &o));
    assert!(text.contains("imported 9 messages"), "{text}");

    let expected: Vec<Vec<u8>> = rd_messages
        .iter()
        .chain(&o_messages)
        .map(|m| crlf(m))
        .collect();
    let got = retrieve_all(&server, "alice", "alice-pw");
    assert_eq!(got.len(), expected.len());
    for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(expected),
            "message {}",
            i + 1
        );
    }

    // Again: nothing added.
    for path in [&rd, &o] {
        let text = imported_ok(&import(&server.data, &[], "alice", path));
        assert!(text.contains("imported 0 messages"), "{text}");
    }
    assert_eq!(server.messages("alice").len(), 21);
}

#[test]
fn a_dovecot_maildir_goes_in_with_its_flags() {
    let server = Server::with_users();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(source.join(sub)).unwrap();
    }
    let files = [
        (
            "cur/1600000000.M1P10.old,S=40,W=42:2,S",
            "Subject: seen\n\nread before\n",
        ),
        (
            "cur/1600000001.M2P10.old,S=40,W=42:2,RSa",
            "Subject: answered\n\nreplied to\n",
        ),
        (
            "new/1600000002.M3P10.old,S=40,W=42",
            "Subject: unread\r\n\r\nnot yet\r\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(source.join(name), text).unwrap();
    }
    let text = imported_ok(&import(&server.data, &[], "bob", &source));
    assert!(text.contains("imported 3 messages"), "{text}");
    let mailbox = server.data.join("mail/localhost/bob");
    let names = |sub: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(mailbox.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let cur = names("cur");
    assert_eq!(cur.len(), 2, "{cur:?}");
    assert!(cur.iter().any(|n| n.ends_with(":2,S")), "{cur:?}");
    // Dovecot's keyword letters mean nothing here.
    assert!(cur.iter().any(|n| n.ends_with(":2,RS")), "{cur:?}");
    assert_eq!(names("new").len(), 1);

    let got = retrieve_all(&server, "bob", "bob-pw");
    let expected: Vec<Vec<u8>> = files.iter().map(|(_, t)| crlf(t.as_bytes())).collect();
    assert_eq!(got, expected);
    let text = imported_ok(&import(&server.data, &[], "bob", &source));
    assert!(
        text.contains("imported 0 messages, ") || text.contains("imported 0 messages ("),
        "{text}"
    );
    assert!(text.contains("3 already there"), "{text}");
}

#[test]
fn export_reads_back_in_python() {
    let server = Server::with_users();
    let dir = tempfile::tempdir().unwrap();
    let rd = dir.path().join("in.mbox");
    let originals = python_mbox("mboxrd", 7, &rd);
    imported_ok(&import(&server.data, &[], "alice", &rd));
    // And one delivered over SMTP, with our Return-Path and Received.
    let reply = send_mail(
        server.smtp,
        "friend@far.test",
        &["alice@localhost"],
        "Subject: by smtp\r\n\r\nFrom here on\r\n>From there\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");

    let out_path = dir.path().join("out.mbox");
    let data = server.data.to_str().unwrap();
    let out = postbox(
        &[
            "export",
            "alice",
            out_path.to_str().unwrap(),
            "--data",
            data,
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("exported 8 messages"));
    let to_stdout = postbox(&["export", "alice", "--data", data], "");
    assert!(to_stdout.status.success());
    assert_eq!(to_stdout.stdout, std::fs::read(&out_path).unwrap());

    let read = python_script(
        "tests/mailio/mbox.py",
        &["read", out_path.to_str().unwrap()],
        b"",
    );
    let read: Vec<serde_json::Value> = serde_json::from_str(&read).unwrap();
    assert_eq!(read.len(), 8);
    let stored: Vec<Vec<u8>> = server
        .messages("alice")
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    for (i, message) in read.iter().enumerate() {
        let raw = unbase64(message["raw"].as_str().unwrap());
        assert_eq!(crlf(&raw), stored[i], "message {}", i + 1);
    }
    for (i, original) in originals.iter().enumerate() {
        assert_eq!(&unbase64(read[i]["raw"].as_str().unwrap()), original);
        let from = read[i]["from"].as_str().unwrap();
        assert!(
            from.starts_with(&format!("sender{}@far.test ", i + 1)),
            "{from}"
        );
    }
    let from = read[7]["from"].as_str().unwrap();
    assert!(from.starts_with("friend@far.test "), "{from}");
}

#[test]
fn a_message_over_quota_is_skipped_and_said_so() {
    let (dir, server) = Server::with_config("[quota]\ndefault = \"20K\"\n");
    let mbox = dir.path().join("big.mbox");
    let small = "Subject: small\n\nhello\n";
    let big = format!("Subject: big\n\n{}", ("y".repeat(98) + "\n").repeat(300));
    std::fs::write(
        &mbox,
        format!("From a@x Mon Jan  1 00:00:00 2024\n{small}\nFrom b@x Mon Jan  1 00:00:00 2024\n{big}\nFrom c@x Mon Jan  1 00:00:00 2024\nSubject: also small\n\nbye\n"),
    )
    .unwrap();
    let config = dir.path().join("postbox.toml");
    let out = import(
        &server.data,
        &["--config", config.to_str().unwrap()],
        "alice",
        &mbox,
    );
    let text = imported_ok(&out);
    assert!(text.contains("imported 2 messages"), "{text}");
    assert!(
        text.contains("skipped message 2 (From b@x Mon Jan  1 00:00:00 2024): over quota"),
        "{text}"
    );
    assert_eq!(server.messages("alice").len(), 2);
}

#[test]
fn errors_name_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "Subject: not an mbox\n\n").unwrap();
    let cases = [
        ("carol", text.clone(), "no such user carol@localhost"),
        ("alice", dir.path().join("missing.mbox"), "cannot read "),
        ("alice", text.clone(), "is not an mbox or a Maildir folder"),
        (
            "alice",
            dir.path().to_path_buf(),
            "is not an mbox or a Maildir folder",
        ),
    ];
    for (user, path, expected) in cases {
        let out = import(&data, &[], user, &path);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(expected), "{user} {}: {err}", path.display());
    }
    let out = postbox(&["export", "carol", "--data", data.to_str().unwrap()], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user carol@localhost"));
}

/// An mbox of `n` messages of about 2 KiB, each with its number in the
/// subject.
fn numbered_mbox(path: &Path, n: usize) {
    let mut text = String::new();
    let line = "z".repeat(70) + "\n";
    for i in 0..n {
        text.push_str(&format!(
            "From x@far.test Mon Jan  1 00:00:00 2024\nSubject: number {i}\n\n>From the body\n{}\n",
            line.repeat(28)
        ));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_kill_mid_import_then_a_second_run_stores_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    let mbox = dir.path().join("large.mbox");
    let total = 2000;
    numbered_mbox(&mbox, total);
    let mut child = Command::new(BIN)
        .args([
            "import",
            "alice",
            mbox.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once some messages are in, while it still runs.
    let start = Instant::now();
    loop {
        let stored = mailbox_files(&data, "alice").len();
        if stored >= 50 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "finished early");
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = mailbox_files(&data, "alice").len();
    assert!(before < total, "the import finished before the kill");

    let text = imported_ok(&import(&data, &[], "alice", &mbox));
    assert!(
        text.contains(&format!("{} already there", before)),
        "{text}"
    );
    let files = mailbox_files(&data, "alice");
    assert_eq!(files.len(), total);
    let mut seen = vec![0; total];
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let number: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: number "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        seen[number] += 1;
    }
    assert!(seen.iter().all(|n| *n == 1), "{seen:?}");
}

#[test]
fn a_running_server_counts_imported_mail_against_the_quota() {
    let (dir, server) = Server::with_config("[quota]\ndefault = \"20K\"\n");
    // The server knows alice's mailbox as empty.
    let rcpt = |size: usize| {
        let mut c = server.smtp();
        c.reply();
        c.ask("EHLO client.test");
        c.ask(&format!("MAIL FROM:<x@remote.test> SIZE={size}"));
        c.ask("RCPT TO:<alice@localhost>")
    };
    assert!(rcpt(8_000).starts_with("250"));
    let mbox = dir.path().join("in.mbox");
    let body = ("w".repeat(98) + "\n").repeat(50);
    let messages: String = (0..3)
        .map(|i| format!("From a@x Mon Jan  1 00:00:00 2024\nSubject: {i}\n\n{body}\n"))
        .collect();
    std::fs::write(&mbox, messages).unwrap();
    let config = dir.path().join("postbox.toml");
    let text = imported_ok(&import(
        &server.data,
        &["--config", config.to_str().unwrap()],
        "alice",
        &mbox,
    ));
    assert!(text.contains("imported 3 messages"), "{text}");
    // About 15 KiB in: 8,000 more no longer fit, once the server counted.
    let start = Instant::now();
    loop {
        let reply = rcpt(8_000);
        if reply.starts_with("552") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{reply}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
