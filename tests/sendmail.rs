//! `postbox sendmail`: a message read from stdin as sendmail reads it goes
//! through the maildrop into the running server, which delivers it as a
//! trusted client's (mailboxes here, the queue for the rest, DKIM-signed);
//! `-t` takes the recipients from the header and removes Bcc:, `-f` names
//! a member as sender, a lone dot ends the message unless `-i`.

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn sendmail(data: &Path, args: &[&str], message: &str) -> Output {
    let mut all = vec!["sendmail", "--data", data.to_str().unwrap()];
    all.extend_from_slice(args);
    postbox(&all, message)
}

fn sent_ok(out: &Output) {
    assert!(
        out.status.success(),
        "sendmail failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_message_reaches_a_local_mailbox() {
    let server = Server::with_users();
    let out = sendmail(
        &server.data,
        &["alice@localhost"],
        "Subject: from cron\n\nThe job ran.\n..dotted\n.\nnot part of it\n",
    );
    sent_ok(&out);
    let got = wait_for_mail(&server.data, "alice", 1, Duration::from_secs(20), &|| {
        server.log()
    });
    let text = &got[0];
    assert!(text.contains("Subject: from cron\r\n"), "{text}");
    assert!(
        text.contains("\r\n\r\nThe job ran.\r\n..dotted\r\n"),
        "{text}"
    );
    assert!(!text.contains("not part of it"), "{text}");
    // The box's own domain as sender, and the fields it lacked.
    let user = postbox::mailio::sendmail::login_name();
    assert!(
        text.starts_with(&format!("Return-Path: <{user}@localhost>\r\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("From: <{user}@localhost>\r\n")),
        "{text}"
    );
    assert!(
        text.contains("\r\nDate: ") && text.contains("\r\nMessage-ID: <"),
        "{text}"
    );
    // Taken from the maildrop once delivered.
    assert!(server.logged("maildrop", Duration::from_secs(5)));
    let left = std::fs::read_dir(server.data.join("maildrop/new"))
        .unwrap()
        .count();
    assert_eq!(left, 0);
}

#[test]
fn dash_i_keeps_lone_dots() {
    let server = Server::with_users();
    let out = sendmail(
        &server.data,
        &["-oi", "bob"],
        "Subject: dots\n\nabove\n.\nbelow",
    );
    sent_ok(&out);
    let got = wait_for_mail(&server.data, "bob", 1, Duration::from_secs(20), &|| {
        server.log()
    });
    assert!(
        got[0].ends_with("\r\n\r\nabove\r\n.\r\nbelow\r\n"),
        "{}",
        got[0]
    );
}

#[test]
fn dash_t_takes_the_recipients_and_removes_bcc() {
    let server = Server::with_users();
    let out = sendmail(
        &server.data,
        &["-t", "-F", "The Box"],
        "To: alice@localhost\nBcc: bob@localhost\nSubject: to both\n\nHello.\n",
    );
    sent_ok(&out);
    for user in ["alice", "bob"] {
        let got = wait_for_mail(&server.data, user, 1, Duration::from_secs(20), &|| {
            server.log()
        });
        let text = &got[0];
        assert!(!text.contains("Bcc:"), "{text}");
        assert!(text.contains("To: alice@localhost\r\n"), "{text}");
        assert!(text.contains("From: \"The Box\" <"), "{text}");
    }
}

#[test]
fn dash_f_names_a_member_and_only_a_member() {
    let server = Server::with_users();
    let out = sendmail(
        &server.data,
        &["-f", "bob@localhost", "alice"],
        "From: bob@localhost\nSubject: from bob\n\nHi.\n",
    );
    sent_ok(&out);
    let got = wait_for_mail(&server.data, "alice", 1, Duration::from_secs(20), &|| {
        server.log()
    });
    assert!(
        got[0].starts_with("Return-Path: <bob@localhost>\r\n"),
        "{}",
        got[0]
    );

    let out = sendmail(
        &server.data,
        &["-f", "someone@far.test", "alice"],
        "Subject: x\n\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-f someone@far.test: not a member's address"),
        "{err}"
    );
    let out = sendmail(&server.data, &["alice@localhost", "-bs"], "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_remote_recipient_is_queued_and_leaves_signed() {
    let (port, data) = smtp_sink();
    let (_dir, server) = Server::with_config(&format!(
        "smarthost = \"127.0.0.1:{port}\"\nsmarthost_tls = \"none\"\n"
    ));
    let out = sendmail(
        &server.data,
        &["-f", "alice@localhost", "carol@far.test"],
        "From: alice@localhost\nTo: carol@far.test\nSubject: away\n\nFrom the box.\n",
    );
    sent_ok(&out);
    let wire = data
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("nothing reached the sink: {}", server.log()));
    let text = String::from_utf8_lossy(&wire);
    assert!(text.contains("DKIM-Signature:"), "{text}");
    assert!(text.contains("Subject: away\r\n"), "{text}");
    assert!(server.log().contains("queued"), "{}", server.log());
}

#[test]
fn without_a_server_the_message_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    // Linked as sendmail, the way programs call it.
    let link = dir.path().join("sendmail");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let out = output_with_stdin(
        Command::new(&link).args(["--data", data.to_str().unwrap(), "-i", "alice"]),
        b"Subject: while down\n\nWaiting.\n",
    );
    sent_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no server is running"), "{err}");
    assert!(mailbox_files(&data, "alice").is_empty());
    // What a sendmail killed while writing left: swept once old.
    let tmp = data.join("maildrop/tmp");
    std::fs::write(tmp.join("old"), "postbox-maildrop 1\n").unwrap();
    std::fs::write(tmp.join("young"), "postbox-maildrop 1\n").unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(48 * 3600);
    std::fs::File::options()
        .write(true)
        .open(tmp.join("old"))
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let server = Server::start_in(&data, &[]);
    let got = wait_for_mail(&data, "alice", 1, Duration::from_secs(20), &|| server.log());
    assert!(got[0].contains("Subject: while down\r\n"));
    // The sweep runs before the pickup that delivered it.
    assert!(!tmp.join("old").exists());
    assert!(tmp.join("young").exists());
}

/// Debian's s-nail (or bsd-mailx as `mail`), when installed, sending
/// through postbox as its sendmail.
#[test]
fn s_nail_sends_through_it() {
    let Some(s_nail) = ["s-nail", "/usr/bin/s-nail"]
        .iter()
        .find(|p| Command::new(p).arg("-V").output().is_ok())
    else {
        eprintln!("s-nail not installed: skipped");
        return;
    };
    let server = Server::with_users();
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("sendmail");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {BIN} sendmail --data {} \"$@\"\n",
            server.data.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = output_with_stdin(
        Command::new(s_nail).args([
            "-:/",
            "-Sv15-compat",
            &format!("-Smta={}", wrapper.display()),
            "-s",
            "from s-nail",
            "alice@localhost",
        ]),
        b"Sent by s-nail.\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = wait_for_mail(&server.data, "alice", 1, Duration::from_secs(20), &|| {
        server.log()
    });
    assert!(got[0].contains("Subject: from s-nail\r\n"), "{}", got[0]);
    assert!(got[0].contains("Sent by s-nail."), "{}", got[0]);
}

#[test]
fn a_recipient_refused_for_good_is_reported_to_the_sender() {
    let server = Server::with_users();
    let out = sendmail(
        &server.data,
        &["-f", "bob@localhost", "alice", "nosuch@localhost"],
        "From: bob@localhost\nSubject: to two\n\nHello.\n",
    );
    sent_ok(&out);
    let got = wait_for_mail(&server.data, "alice", 1, Duration::from_secs(20), &|| {
        server.log()
    });
    assert!(got[0].contains("Subject: to two\r\n"));
    let report = wait_for_mail(&server.data, "bob", 1, Duration::from_secs(20), &|| {
        server.log()
    });
    let text = &report[0];
    assert!(
        text.contains("Subject: Undelivered Mail Returned to Sender"),
        "{text}"
    );
    assert!(
        text.contains("Final-Recipient: rfc822; nosuch@localhost"),
        "{text}"
    );
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(
        text.contains("Subject: to two"),
        "the original's header: {text}"
    );
    assert!(!text.contains("alice@localhost\r\nAction"), "{text}");
}

#[test]
fn a_line_over_998_octets_is_sent_quoted_printable() {
    let server = Server::with_users();
    let long: String = "Grüße = the quick brown fox; "
        .repeat(200)
        .chars()
        .take(5000)
        .collect();
    let text = format!("{long}\n.leading dot\ntrailing space \nshort line\n");
    let out = sendmail(
        &server.data,
        &["alice"],
        &format!("Subject: a long line\n\n{text}"),
    );
    sent_ok(&out);
    let got = wait_for_mail(&server.data, "alice", 1, Duration::from_secs(20), &|| {
        server.log()
    });
    let stored = &got[0];
    assert!(stored.contains("\r\nMIME-Version: 1.0\r\n"), "{stored}");
    assert!(
        stored.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
        "{stored}"
    );
    assert!(stored.lines().all(|l| l.len() <= 998), "a long line stored");
    let decoded = python_script("tests/mailio/body.py", &[], stored.as_bytes());
    assert_eq!(decoded, format!("quoted-printable\t{text}"));
}
