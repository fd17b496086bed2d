//! Routing on the real server: an aliases file with a club list that
//! nests another alias, repeats a member, loops and reaches outside; the
//! alias and forward commands; and mail forwarded outside leaving with a
//! rewritten (SRS) sender, so its bounce comes back here and goes on to
//! the real sender. A second instance, B (b.test), is the outside world.

mod common;
use common::*;
use std::path::Path;
use std::time::Duration;

fn cli(data: &Path, config: &Path, args: &[&str]) -> (bool, String) {
    let mut all = args.to_vec();
    all.extend_from_slice(&[
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    let out = postbox(&all, "");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// B: b.test with carol, open to A for relaying through its port 25.
fn outside() -> (tempfile::TempDir, Server) {
    let (dir, data, config) = prepare("b.test", &["carol"], "");
    let server = start(&data, &config, "mx.b.test", &[]);
    (dir, server)
}

#[test]
fn a_club_list_with_nesting_duplicates_loops_and_an_outside_member() {
    let (_b_dir, b) = outside();
    let (_dir, data, config) = prepare(
        "club.test",
        &["alice", "bob", "dave"],
        &format!(
            "smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 1\n",
            b.smtp.port()
        ),
    );
    std::fs::write(
        data.join("aliases"),
        "# the club\nmembers: alice, board,\n  bob, carol@b.test\n# alice is on the board too\nboard: dave, alice\nloop1: loop2\nloop2: loop1\npostmaster: alice\n",
    )
    .unwrap();
    let a = start(&data, &config, "mail.club.test", &[]);
    let reply = send_mail(
        a.smtp,
        "guest@b.test",
        &["members@club.test"],
        "Subject: meeting\r\n\r\nTuesday.\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    for user in ["alice@club.test", "bob@club.test", "dave@club.test"] {
        assert_eq!(mailbox_files(&data, user).len(), 1, "{user}: {}", a.log());
    }
    let outside = wait_for_mail(&b.data, "carol@b.test", 1, Duration::from_secs(20), &|| {
        a.log()
    });
    // Forwarded outside with the sender rewritten to come back here.
    let return_path = outside[0].lines().next().unwrap().to_string();
    assert!(
        return_path.starts_with("Return-Path: <SRS0="),
        "{return_path}"
    );
    assert!(
        return_path.ends_with("=b.test=guest@club.test>"),
        "{return_path}"
    );
    // The rewritten address leads back out for reports only: anyone
    // else would be relayed through it.
    let srs = &return_path["Return-Path: <".len()..return_path.len() - 1];
    let mut c = a.smtp();
    c.reply();
    c.ask("EHLO b.test");
    c.ask("MAIL FROM:<spammer@b.test>");
    let reply = c.ask(&format!("RCPT TO:<{srs}>"));
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    c.ask("RSET");
    c.ask("MAIL FROM:<>");
    assert!(c.ask(&format!("RCPT TO:<{srs}>")).starts_with("250"));

    let mut c = a.smtp();
    c.reply();
    c.ask("EHLO b.test");
    c.ask("MAIL FROM:<guest@b.test>");
    let reply = c.ask("RCPT TO:<loop1@club.test>");
    assert!(reply.starts_with("554 5.4.6"), "{reply}");
    assert!(c.ask("RCPT TO:<nobody@club.test>").starts_with("550 5.1.1"));
    assert!(c.ask("RCPT TO:<postmaster>").starts_with("250"));
    // MAILER-DAEMON with no alias goes where the postmaster's mail goes.
    assert!(c
        .ask("RCPT TO:<MAILER-DAEMON@club.test>")
        .starts_with("250"));
}

#[test]
fn alias_and_forward_commands_apply_to_the_running_server() {
    let (_b_dir, b) = outside();
    let (_dir, data, config) = prepare(
        "club.test",
        &["alice", "bob"],
        &format!(
            "smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 1\n",
            b.smtp.port()
        ),
    );
    let a = start(&data, &config, "mail.club.test", &[]);
    let (ok, said) = cli(&data, &config, &["alias", "add", "team", "alice,", "bob"]);
    assert!(ok, "{said}");
    assert_eq!(
        cli(&data, &config, &["alias", "list"]).1,
        "team: alice, bob\n"
    );
    assert!(send_mail(
        a.smtp,
        "x@b.test",
        &["team@club.test"],
        "Subject: one\r\n\r\n1\r\n"
    )
    .starts_with("250"));
    assert_eq!(mailbox_files(&data, "bob@club.test").len(), 1);
    let (ok, said) = cli(&data, &config, &["alias", "del", "team"]);
    assert!(ok, "{said}");
    let mut c = a.smtp();
    c.reply();
    c.ask("EHLO b.test");
    c.ask("MAIL FROM:<x@b.test>");
    assert!(c.ask("RCPT TO:<team@club.test>").starts_with("550 5.1.1"));
    let (ok, said) = cli(&data, &config, &["alias", "del", "team"]);
    assert!(!ok && said.contains("no alias team"), "{said}");
    let (ok, said) = cli(&data, &config, &["alias", "add", "bad:name", "alice"]);
    assert!(!ok && said.contains("invalid alias name"), "{said}");

    // bob forwards to carol outside and keeps a copy; then stops keeping one.
    let (ok, said) = cli(
        &data,
        &config,
        &["user", "forward", "bob", "carol@b.test", "--keep"],
    );
    assert!(ok, "{said}");
    assert!(send_mail(
        a.smtp,
        "x@b.test",
        &["bob@club.test"],
        "Subject: two\r\n\r\n2\r\n"
    )
    .starts_with("250"));
    assert_eq!(mailbox_files(&data, "bob@club.test").len(), 2);
    wait_for_mail(&b.data, "carol@b.test", 1, Duration::from_secs(20), &|| {
        a.log()
    });
    cli(&data, &config, &["user", "forward", "bob", "carol@b.test"]);
    assert!(send_mail(
        a.smtp,
        "x@b.test",
        &["bob@club.test"],
        "Subject: three\r\n\r\n3\r\n"
    )
    .starts_with("250"));
    wait_for_mail(&b.data, "carol@b.test", 2, Duration::from_secs(20), &|| {
        a.log()
    });
    assert_eq!(
        mailbox_files(&data, "bob@club.test").len(),
        2,
        "no copy kept"
    );
    let (ok, said) = cli(&data, &config, &["user", "forward", "bob", "off"]);
    assert!(ok, "{said}");
    let (ok, said) = cli(
        &data,
        &config,
        &["user", "forward", "nobody", "carol@b.test"],
    );
    assert!(!ok && said.contains("no user"), "{said}");
}

#[test]
fn a_bounce_to_forwarded_mail_reaches_the_real_sender() {
    // A long sender name makes the SRS local part longer than 64 octets,
    // as real return paths often are; the bounce must still come back.
    const SENDER: &str = "carol.writes.from.a.rather.long.address.at.the.outside.box";
    let (_b_dir, b_data, b_config) = prepare("b.test", &[SENDER], "");
    let b = start(&b_data, &b_config, "mx.b.test", &[]);
    let (_dir, data, config) = prepare(
        "club.test",
        &["alice"],
        &format!(
            "smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 1\n",
            b.smtp.port()
        ),
    );
    std::fs::write(data.join("aliases"), "gone: nobody@b.test\n").unwrap();
    let a = start(&data, &config, "mail.club.test", &[]);
    // The sender (outside) writes to an alias that forwards to a dead address.
    let sender = format!("{SENDER}@b.test");
    assert!(send_mail(
        a.smtp,
        &sender,
        &["gone@club.test"],
        "Subject: hello?\r\n\r\nx\r\n"
    )
    .starts_with("250"));
    let reports = wait_for_mail(&b.data, &sender, 1, Duration::from_secs(30), &|| {
        format!("A:\n{}\nB:\n{}", a.log(), b.log())
    });
    assert!(reports[0].contains("multipart/report"), "{}", reports[0]);
    assert!(reports[0].contains("nobody@b.test"), "{}", reports[0]);
    assert!(reports[0].starts_with("Return-Path: <>"), "{}", reports[0]);
}

#[test]
fn too_many_received_headers_is_a_loop() {
    let server = Server::with_users();
    let hops = "Received: from x by y; Tue, 24 Nov 2026 10:00:00 +0000\r\n".repeat(50);
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO b.test");
    c.ask("MAIL FROM:<x@b.test>");
    c.ask("RCPT TO:<alice@localhost>");
    c.ask("DATA");
    c.send(format!("{hops}Subject: loop\r\n\r\nx\r\n.\r\n").as_bytes());
    let reply = c.reply();
    assert!(reply.starts_with("554 5.4.6"), "{reply}");
    assert!(server.messages("alice").is_empty());
    let fewer = "Received: from x by y; Tue, 24 Nov 2026 10:00:00 +0000\r\n".repeat(49);
    assert!(send_mail(
        server.smtp,
        "x@b.test",
        &["alice@localhost"],
        &format!("{fewer}Subject: ok\r\n\r\nx\r\n")
    )
    .starts_with("250"));
}
