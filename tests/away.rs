//! Away messages against the real server: a stranger's mail earns one
//! reply (null sender, Auto-Submitted, threaded) that reaches them through
//! the queue; the same sender within 7 days, automatic and list mail, an
//! ended message and a damaged setting earn none.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LIMIT: Duration = Duration::from_secs(20);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn mailbox(data: &Path, local: &str) -> PathBuf {
    data.join("mail").join("club.test").join(local)
}

fn mail(from: &str, to: &str, extra: &str, id: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: Someone <{to}>\r\nSubject: lunch\r\nMessage-ID: <{id}>\r\n{extra}\r\nHello.\r\n"
    )
}

fn wait_log(server: &Server, needle: &str) {
    assert!(
        server.logged(needle, LIMIT),
        "no {needle:?} in the log:\n{}",
        server.log()
    );
}

#[test]
fn a_stranger_gets_one_reply_and_automatic_mail_none() {
    // B: b.test with carol, where the replies arrive.
    let (_b_dir, b_data, b_config) = prepare("b.test", &["carol"], "");
    let b = start(&b_data, &b_config, "mx.b.test", &[]);
    let (_dir, data, config) = prepare(
        "club.test",
        &["alice"],
        &format!(
            "smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 1\n",
            b.smtp.port()
        ),
    );
    postbox::away::set(
        &mailbox(&data, "alice"),
        "",
        "Away until Monday.\nAlice\n",
        Some(now() + 86_400),
        now(),
    )
    .unwrap();
    let a = start(&data, &config, "mail.club.test", &[]);

    let first = mail("carol@b.test", "alice@club.test", "", "m1@b.test");
    let reply = send_mail(a.smtp, "carol@b.test", &["alice@club.test"], &first);
    assert!(reply.starts_with("250"), "{reply}");
    wait_log(&a, "away reply from alice@club.test to <carol@b.test>");
    let replies = wait_for_mail(&b_data, "carol@b.test", 1, LIMIT, &|| a.log());
    let text = &replies[0];
    assert!(text.starts_with("Return-Path: <>\r\n"), "{text}");
    for field in [
        "\r\nFrom: <alice@club.test>\r\n",
        "\r\nTo: <carol@b.test>\r\n",
        "\r\nSubject: Auto: lunch\r\n",
        "\r\nIn-Reply-To: <m1@b.test>\r\n",
        "\r\nReferences: <m1@b.test>\r\n",
        "\r\nAuto-Submitted: auto-replied\r\n",
        "\r\nDKIM-Signature: ",
    ] {
        assert!(text.contains(field), "no {field:?} in:\n{text}");
    }
    assert!(
        text.ends_with("\r\n\r\nAway until Monday.\r\nAlice\r\n"),
        "{text}"
    );

    // The same sender again: delivered, not answered.
    let second = mail("carol@b.test", "alice@club.test", "", "m2@b.test");
    send_mail(a.smtp, "carol@b.test", &["alice@club.test"], &second);
    wait_log(
        &a,
        "no away reply from alice@club.test to <carol@b.test>: answered within 7 days",
    );
    for (sender, extra, why) in [
        (
            "robot@b.test",
            "Auto-Submitted: auto-generated\r\n",
            "Auto-Submitted",
        ),
        ("list@b.test", "Precedence: list\r\n", "Precedence"),
        ("news@b.test", "List-Id: <news.b.test>\r\n", "list mail"),
    ] {
        let message = mail(sender, "alice@club.test", extra, "m3@b.test");
        send_mail(a.smtp, sender, &["alice@club.test"], &message);
        wait_log(
            &a,
            &format!("no away reply from alice@club.test to <{sender}>: {why}"),
        );
    }
    assert_eq!(mailbox_files(&data, "alice@club.test").len(), 5);
    assert_eq!(
        a.log().matches(": away reply from").count(),
        1,
        "{}",
        a.log()
    );
    assert_eq!(mailbox_files(&b_data, "carol@b.test").len(), 1);
}

#[test]
fn no_reply_after_the_end_date_nor_from_a_damaged_setting_nor_unaddressed() {
    let (_dir, data, config) = prepare("club.test", &["alice", "bob", "dave"], "");
    // Ended yesterday.
    postbox::away::set(
        &mailbox(&data, "alice"),
        "Away",
        "Gone.\n",
        Some(now() - 86_400),
        now() - 10 * 86_400,
    )
    .unwrap();
    std::fs::write(mailbox(&data, "bob").join("postbox-away"), b"PBAW torn").unwrap();
    postbox::away::set(&mailbox(&data, "dave"), "Away", "Gone.\n", None, now()).unwrap();
    let a = start(&data, &config, "mail.club.test", &[]);

    let message = mail("carol@b.test", "alice@club.test", "", "m1@b.test");
    send_mail(a.smtp, "carol@b.test", &["alice@club.test"], &message);
    wait_log(
        &a,
        "no away reply from alice@club.test to <carol@b.test>: away message ended",
    );

    let message = mail("carol@b.test", "bob@club.test", "", "m2@b.test");
    send_mail(a.smtp, "carol@b.test", &["bob@club.test"], &message);
    wait_log(&a, "postbox-away is damaged");
    let names: Vec<String> = std::fs::read_dir(mailbox(&data, "bob"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("postbox-away.damaged-")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n == "postbox-away"), "{names:?}");

    // dave only gets it through a list: To: names someone else.
    let message = mail("carol@b.test", "club@club.test", "", "m3@b.test");
    send_mail(a.smtp, "carol@b.test", &["dave@club.test"], &message);
    wait_log(
        &a,
        "no away reply from dave@club.test to <carol@b.test>: not addressed in To: or Cc:",
    );
    assert_eq!(mailbox_files(&data, "bob@club.test").len(), 1);
    assert!(!a.log().contains(": away reply from"), "{}", a.log());
}

#[test]
fn the_admin_verb_sets_shows_and_turns_off() {
    let (_dir, data, config) = prepare("club.test", &["alice"], "");
    let (config, data) = (config.to_str().unwrap(), data.to_str().unwrap());
    let away = |args: &[&str], stdin: &str| {
        let mut all = vec!["user", "away"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", config, "--data", data]);
        let out = postbox(&all, stdin);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), text, err)
    };
    assert_eq!(away(&["alice"], "").1, "no away message\n");
    let (code, text, err) = away(
        &["alice@club.test", "2999-01-02", "Away", "till", "spring"],
        "Back in spring.\r\n.\r\nnot this\n",
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(text, "alice@club.test is away until 2999-01-02\n");
    assert_eq!(
        away(&["alice"], "").1,
        "on until 2999-01-02\nsubject: Away till spring\n\nBack in spring.\n"
    );
    let (code, _, err) = away(&["alice", "2000-01-01", "Away"], "x\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("not in the future"), "{err}");
    let (code, _, err) = away(&["alice", "-", "Away", "--text", ""], "");
    assert_eq!(code, Some(1));
    assert!(err.contains("needs a text"), "{err}");
    let (code, text, _) = away(&["alice", "-", "--text", "Gone."], "");
    assert_eq!(code, Some(0));
    assert_eq!(text, "alice@club.test is away\n");
    assert!(away(&["alice"], "")
        .1
        .starts_with("on\nsubject: Auto: (the original's subject)\n\nGone."));
    assert_eq!(
        away(&["alice", "off"], "").1,
        "alice@club.test has no away message on now\n"
    );
    assert!(away(&["alice"], "").1.starts_with("off\n"));
    assert_eq!(away(&["nobody", "off"], "").0, Some(1));
}

#[test]
fn a_member_writing_to_a_member_gets_the_reply_in_their_mailbox() {
    let (_dir, data, config) = prepare("club.test", &["alice", "bob"], "");
    postbox::away::set(&mailbox(&data, "alice"), "Away", "Gone.\n", None, now()).unwrap();
    let a = start(&data, &config, "mail.club.test", &[]);
    let mut c = member_login(a.submission.unwrap(), "laptop", "bob@club.test", "bob-pw");
    assert!(c.ask("MAIL FROM:<bob@club.test>").starts_with("250"));
    assert!(c.ask("RCPT TO:<alice@club.test>").starts_with("250"));
    assert!(c.ask("DATA").starts_with("354"));
    c.send(b"From: <bob@club.test>\r\nCc: alice@club.test\r\nSubject: hi\r\n\r\nHi.\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    c.ask("QUIT");
    wait_log(&a, ": away reply from alice@club.test to <bob@club.test>");
    let replies = wait_for_mail(&data, "bob@club.test", 1, LIMIT, &|| a.log());
    assert!(
        replies[0].contains("\r\nSubject: Away\r\n"),
        "{}",
        replies[0]
    );
    assert!(replies[0].contains("\r\nAuto-Submitted: auto-replied\r\n"));
    assert!(replies[0].ends_with("\r\n\r\nGone.\r\n"));
}
