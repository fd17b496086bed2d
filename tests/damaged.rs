//! An unreadable message file affects only that message: RETR of it gets
//! -ERR, the session and every other message are fine. A damaged record
//! file never stops the server: what it can do without is set aside and
//! started afresh; the users and aliases files keep their last good copy
//! in service. A damaged queue envelope is set aside with its message.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[test]
fn unreadable_message_affects_only_itself() {
    let server = Server::with_users();
    for n in 1..=3 {
        let body = format!("Subject: m{n}\r\n\r\nbody {n}");
        assert!(
            send_mail(server.smtp, "x@remote.test", &["alice@localhost"], &body).starts_with("250")
        );
    }
    // Damage message 2: its name now leads to something that cannot be read.
    let files = server.messages("alice");
    std::fs::remove_file(&files[1]).unwrap();
    std::fs::create_dir(&files[1]).unwrap();
    let mut c = pop3_login(&server, "alice", "alice-pw");
    c.cmd("RETR 2");
    assert_eq!(c.line(), "-ERR [SYS/TEMP] Message unreadable");
    c.cmd("TOP 2 0");
    assert!(c.line().starts_with("-ERR"));
    for n in [1, 3] {
        c.cmd(&format!("RETR {n}"));
        assert!(c.line().starts_with("+OK"));
        let text = String::from_utf8(c.multiline()).unwrap();
        assert!(text.ends_with(&format!("body {n}\r\n")), "{text}");
    }
    c.cmd("QUIT");
    assert!(c.line().starts_with("+OK"));
    assert!(server.logged("cannot read", Duration::from_secs(10)));
}

/// Runs `postbox ARGS --data DATA` and returns stdout and stderr together.
fn cli(data: &Path, args: &[&str], stdin: &str) -> String {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--data", data.to_str().unwrap()]);
    let out = postbox(&all, stdin);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A data directory with alice and bob, an alias for alice, a quota and
/// a forward for bob, and one message delivered, so every record file
/// exists.
fn prepared() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    add_user(&data, "bob", "bob-pw");
    cli(&data, &["alias", "add", "club", "alice"], "");
    cli(&data, &["user", "quota", "bob", "10M"], "");
    cli(
        &data,
        &["user", "forward", "bob", "carol@elsewhere.test", "--keep"],
        "",
    );
    let mut server = Server::start_in(&data, &[]);
    let reply = send_mail(
        server.smtp,
        "friend@remote.test",
        &["alice@localhost"],
        "Subject: first\r\n\r\nhello\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(server.terminate().success());
    (dir, data)
}

/// With `file` damaged, the server starts, says so (when it reads the
/// file at start: `logged`), and mail to an existing user (directly and
/// through the alias) is still accepted and delivered.
fn mail_flows_with_damaged(
    file: &str,
    garbage: &[u8],
    logged: Option<&str>,
) -> (tempfile::TempDir, Server) {
    let (dir, data) = prepared();
    let path = data.join(file);
    assert!(path.exists(), "{file} was never written");
    std::fs::write(&path, garbage).unwrap();
    let server = Server::start_in(&data, &[]);
    if let Some(logged) = logged {
        assert!(
            server.logged(logged, Duration::from_secs(10)),
            "{}",
            server.log()
        );
    }
    for to in ["alice@localhost", "club@localhost"] {
        let reply = send_mail(
            server.smtp,
            "friend@remote.test",
            &[to],
            "Subject: still here\r\n\r\nhello\r\n",
        );
        assert!(reply.starts_with("250"), "{to}: {reply}");
    }
    assert_eq!(server.messages("alice").len(), 3);
    (dir, server)
}

/// Files set aside next to `file` as `file.damaged-UNIXTIME`.
fn set_aside(data: &Path, file: &str) -> Vec<PathBuf> {
    let path = data.join(file);
    let dir = path.parent().unwrap();
    let prefix = format!("{}.damaged-", path.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect()
}

#[test]
fn damaged_statistics_are_set_aside() {
    let (_dir, server) =
        mail_flows_with_damaged("stats", b"PBSS garbage garbage", Some("set aside"));
    assert_eq!(set_aside(&server.data, "stats").len(), 1);
}

#[test]
fn damaged_quotas_are_set_aside() {
    let (_dir, server) = mail_flows_with_damaged("quotas", b"garbage", Some("set aside"));
    assert_eq!(set_aside(&server.data, "quotas").len(), 1);
}

#[test]
fn damaged_forwards_are_set_aside() {
    let (_dir, server) = mail_flows_with_damaged("forwards", b"PBFW\x01\x00", Some("set aside"));
    assert_eq!(set_aside(&server.data, "forwards").len(), 1);
}

#[test]
fn a_damaged_srs_key_is_set_aside() {
    let (_dir, server) = mail_flows_with_damaged("srs-key", b"PBSK", Some("set aside"));
    assert_eq!(set_aside(&server.data, "srs-key").len(), 1);
}

#[test]
fn a_damaged_address_book_is_set_aside() {
    let book = "mail/localhost/alice/postbox-addressbook";
    // Read when the rule asks or, at the latest, when the book is saved.
    let (_dir, mut server) = mail_flows_with_damaged(book, b"PBAB torn", None);
    assert!(server.terminate().success());
    assert!(server.log().contains("set aside"), "{}", server.log());
    assert_eq!(set_aside(&server.data, book).len(), 1);
    assert!(server.data.join(book).exists(), "not started afresh");
}

#[test]
fn a_damaged_users_file_keeps_the_last_good_copy_in_service() {
    let (_dir, server) = mail_flows_with_damaged("users", b"PBUS torn", Some("last good copy"));
    assert!(server.log().contains("ERROR"), "{}", server.log());
    // Logins work from the last good copy too.
    let mut c = pop3_login(&server, "bob", "bob-pw");
    c.cmd("QUIT");
    let status = cli(&server.data, &["console"], "status\nquit\n");
    assert!(
        status.contains("users file is damaged") && status.contains("last good copy"),
        "{status}"
    );
    // The CLI says how to repair it rather than only that it failed.
    let listed = cli(&server.data, &["user", "list"], "");
    assert!(listed.contains("copy it over users to repair"), "{listed}");
}

#[test]
fn a_damaged_aliases_file_keeps_the_last_good_copy_in_service() {
    let (_dir, server) =
        mail_flows_with_damaged("aliases", b"club alice\n", Some("last good copy"));
    assert!(server.log().contains("ERROR"), "{}", server.log());
    let status = cli(&server.data, &["console"], "status\nquit\n");
    assert!(
        status.contains("aliases file is damaged") && status.contains("last good copy"),
        "{status}"
    );
}

#[test]
fn a_damaged_envelope_and_its_message_are_set_aside_together() {
    let (_dir, data) = prepared();
    let queue = data.join("queue");
    std::fs::create_dir_all(&queue).unwrap();
    let message = b"Subject: acknowledged\r\n\r\nthese bytes were acknowledged\r\n";
    std::fs::write(queue.join("q1.msg"), message).unwrap();
    std::fs::write(queue.join("q1.env"), b"PBQE torn").unwrap();
    let server = Server::start_in(&data, &[]);
    assert!(
        server.logged("queue/damaged", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let damaged = queue.join("damaged");
    assert_eq!(std::fs::read(damaged.join("q1.msg")).unwrap(), message);
    assert_eq!(std::fs::read(damaged.join("q1.env")).unwrap(), b"PBQE torn");
    assert!(!queue.join("q1.msg").exists());
    let list = cli(&data, &["queue", "list"], "");
    assert!(
        list.contains("damaged: 1 message set aside in queue/damaged/"),
        "{list}"
    );
    let status = cli(&data, &["console"], "status\nquit\n");
    assert!(
        status.contains("damaged: 1 message set aside in queue/damaged/"),
        "{status}"
    );
    // Mail keeps flowing.
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: s\r\n\r\nb\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
}

#[test]
fn with_no_good_copy_of_the_users_file_mail_is_deferred_not_refused() {
    let (_dir, data) = prepared();
    std::fs::write(data.join("users"), b"PBUS torn").unwrap();
    std::fs::write(data.join("users.last-good"), b"PBUS torn too").unwrap();
    let server = Server::start_in(&data, &[]);
    assert!(
        server.logged("no last good copy", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO client.test");
    c.ask("MAIL FROM:<friend@remote.test>");
    let reply = c.ask("RCPT TO:<alice@localhost>");
    assert!(reply.starts_with("451 4.3.0"), "{reply}");
}
