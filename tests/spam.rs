//! The recipient rule on the real server: a message to many people, none
//! known to the receiving member, is spam; what counts as known is learnt
//! from the mail members send and receive, and survives a restart; the
//! configured action (tag or reject) is applied per member.

mod common;
use common::*;
use std::time::Duration;

fn strangers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("person{i}@far.example")).collect()
}

/// A message with these To: and Cc: fields.
fn mass_mail(to: &[String], cc: &[String], subject: &str) -> String {
    let mut text = format!(
        "From: Offers <offers@far.example>\r\nTo: {}\r\n",
        to.join(",\r\n ")
    );
    if !cc.is_empty() {
        text.push_str(&format!("Cc: {}\r\n", cc.join(", ")));
    }
    text.push_str(&format!("Subject: {subject}\r\n\r\nBuy now.\r\n"));
    text
}

/// The newest message in `user`'s mailbox with `subject` in it.
fn stored_with(server: &Server, user: &str, subject: &str) -> String {
    let found: Vec<String> = server
        .messages(user)
        .iter()
        .map(|p| String::from_utf8(std::fs::read(p).unwrap()).unwrap())
        .filter(|m| m.contains(subject))
        .collect();
    assert_eq!(found.len(), 1, "{user} has {found:?}");
    found.into_iter().next().unwrap()
}

fn is_tagged(message: &str, subject: &str) -> bool {
    message.starts_with("X-Spam: yes\r\n")
        && message.contains(&format!("Subject: [SPAM] {subject}"))
}

/// alice logs in on the submission port and sends to `to`.
fn submit_as_alice(server: &Server, to: &str) {
    submit_as_alice_named(server, to, to);
}

/// alice sends to `to`, naming it in To: as `to_field`.
fn submit_as_alice_named(server: &Server, to: &str, to_field: &str) {
    let mut c = member_login(
        server.submission.unwrap(),
        "laptop.test",
        "alice",
        "alice-pw",
    );
    assert!(c.ask("MAIL FROM:<alice@localhost>").starts_with("250"));
    assert!(c.ask(&format!("RCPT TO:<{to}>")).starts_with("250"));
    assert!(c.ask("DATA").starts_with("354"));
    c.send(
        format!("From: alice@localhost\r\nTo: {to_field}\r\nSubject: hi\r\n\r\nhello\r\n.\r\n")
            .as_bytes(),
    );
    assert!(c.reply().starts_with("250"));
}

#[test]
fn mail_to_many_strangers_is_tagged_and_known_people_let_it_through() {
    let (dir, mut server) = Server::with_config("");
    let many = strangers(20);

    // Nobody known: tagged, with the reason in the log.
    let reply = send_mail(
        server.smtp,
        "offers@far.example",
        &["alice@localhost"],
        &mass_mail(&many[..10], &many[10..], "first"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let first = stored_with(&server, "alice", "first");
    assert!(is_tagged(&first, "first"), "{first}");
    assert!(
        server.logged(
            "is spam for alice@localhost: 20 To/Cc recipients, none known",
            Duration::from_secs(10)
        ),
        "{}",
        server.log()
    );
    // Fewer than 15 recipients: not judged.
    send_mail(
        server.smtp,
        "offers@far.example",
        &["alice@localhost"],
        &mass_mail(&many[..14], &[], "few"),
    );
    assert!(!stored_with(&server, "alice", "few").contains("X-Spam"));

    // alice writes to bob; a stranger writes to alice once.
    submit_as_alice(&server, "bob@localhost");
    send_mail(
        server.smtp,
        "news@club.example",
        &["alice@localhost"],
        "From: The Club <news@club.example>\r\nSubject: meeting\r\n\r\nTuesday.\r\n",
    );
    // Known addresses survive a restart (saved at shutdown).
    assert!(server.terminate().success());
    let data = dir.path().join("data");
    let config = dir.path().join("postbox.toml");
    server = Server::start_in(&data, &["--config", config.to_str().unwrap()]);

    let mut to = many.clone();
    to.push("bob@localhost".into());
    send_mail(
        server.smtp,
        "offers@far.example",
        &["alice@localhost"],
        &mass_mail(&to, &[], "sent-to"),
    );
    assert!(!stored_with(&server, "alice", "sent-to").contains("X-Spam"));
    let mut cc = many.clone();
    cc.insert(7, "NEWS@club.example".into());
    send_mail(
        server.smtp,
        "offers@far.example",
        &["alice@localhost"],
        &mass_mail(&many[..3], &cc, "received-from"),
    );
    assert!(!stored_with(&server, "alice", "received-from").contains("X-Spam"));

    // One message, two members: each is judged by their own book.
    let reply = send_mail(
        server.smtp,
        "offers@far.example",
        &["alice@localhost", "bob@localhost"],
        &mass_mail(&cc, &[], "split"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(!stored_with(&server, "alice", "split").contains("X-Spam"));
    assert!(is_tagged(&stored_with(&server, "bob", "split"), "split"));
}

#[test]
fn reject_action_refuses_when_spam_for_everyone() {
    let (_dir, server) = Server::with_config(
        "[spam]\naction = \"reject\"\nrecipient_limit = 5\nsubject_tag = \"***\"\n",
    );
    let many = strangers(5);
    let reply = send_mail(
        server.smtp,
        "offers@far.example",
        &["alice@localhost"],
        &mass_mail(&many, &[], "go away"),
    );
    assert!(reply.starts_with("554 5.7.1"), "{reply}");
    assert!(server.messages("alice").is_empty());
    assert!(
        server.logged("as spam", Duration::from_secs(10)),
        "{}",
        server.log()
    );

    // bob knows someone on the list, alice does not: bob gets it, and
    // alice, since refusing would bounce it for bob too, gets it tagged.
    send_mail(
        server.smtp,
        "person3@far.example",
        &["bob@localhost"],
        "Subject: hello bob\r\n\r\nhi\r\n",
    );
    let reply = send_mail(
        server.smtp,
        "offers@far.example",
        &["alice@localhost", "bob@localhost"],
        &mass_mail(&many, &[], "mixed"),
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(!stored_with(&server, "bob", "mixed").contains("X-Spam"));
    let alice = stored_with(&server, "alice", "mixed");
    assert!(
        alice.starts_with("X-Spam: yes\r\n") && alice.contains("Subject: *** mixed"),
        "{alice}"
    );
}

#[test]
fn members_sending_are_not_judged_and_the_rule_can_be_off() {
    let (_dir, server) = Server::with_config("[spam]\naction = \"reject\"\n");
    let many = strangers(30);
    let mut c = member_login(
        server.submission.unwrap(),
        "laptop.test",
        "alice",
        "alice-pw",
    );
    c.ask("MAIL FROM:<alice@localhost>");
    c.ask("RCPT TO:<bob@localhost>");
    c.ask("DATA");
    c.send(
        format!(
            "From: alice@localhost\r\nTo: {}\r\nSubject: club news\r\n\r\nhi\r\n.\r\n",
            many.join(", ")
        )
        .as_bytes(),
    );
    assert!(c.reply().starts_with("250"));
    assert!(!stored_with(&server, "bob", "club news").contains("X-Spam"));

    let (_dir, server) = Server::with_config("[spam]\nrecipient_limit = 0\n");
    send_mail(
        server.smtp,
        "offers@far.example",
        &["alice@localhost"],
        &mass_mail(&many, &[], "unjudged"),
    );
    assert!(!stored_with(&server, "alice", "unjudged").contains("X-Spam"));
}

#[test]
fn bad_spam_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postbox.toml");
    std::fs::write(&config, "[spam]\naction = \"drop\"\n").unwrap();
    let out = postbox(&["user", "list", "--config", config.to_str().unwrap()], "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("spam.action"), "{err}");
}

/// `postbox book ARGS --data DATA`: its stdout, after it succeeded.
fn book(data: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["book"];
    all.extend_from_slice(args);
    all.extend(["--data", data.to_str().unwrap()]);
    let out = postbox(&all, "");
    assert!(
        out.status.success(),
        "book {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn address_book_edits_count_in_the_running_server() {
    let (dir, server) = Server::with_config("");
    let data = dir.path().join("data");
    let many = strangers(20);
    let mail = |subject: &str| {
        let reply = send_mail(
            server.smtp,
            "offers@far.example",
            &["alice@localhost"],
            &mass_mail(&many, &[], subject),
        );
        assert!(reply.starts_with("250"), "{reply}");
        stored_with(&server, "alice", subject)
    };
    assert!(is_tagged(&mail("before"), "before"));
    let added = book(
        &data,
        &["alice", "add", "Person3@far.example", "Person Three"],
    );
    assert_eq!(
        added,
        "Person3@far.example is in alice@localhost's address book\n"
    );
    assert!(!mail("added").contains("X-Spam"), "the addition is unseen");
    book(&data, &["alice", "del", "person3@FAR.example"]);
    assert!(
        is_tagged(&mail("deleted"), "deleted"),
        "the deletion is unseen"
    );
    let gone = postbox(
        &[
            "book",
            "alice",
            "del",
            "person3@far.example",
            "--data",
            data.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(gone.status.code(), Some(1));
    let why = String::from_utf8_lossy(&gone.stderr);
    assert!(why.contains("not in the address book"), "{why}");
}

#[test]
fn learned_names_are_listed_and_export_as_vcards() {
    let (dir, mut server) = Server::with_config("");
    let data = dir.path().join("data");
    let reply = send_mail(
        server.smtp,
        "bob@far.example",
        &["alice@localhost"],
        "From: \"Smith, Bob\" <bob@far.example>\r\nSubject: hi\r\n\r\nHello.\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    submit_as_alice_named(
        &server,
        "dave@far.example",
        "=?UTF-8?Q?Dave_M=C3=BCller?= <dave@far.example>",
    );
    // Learning reaches flash at most once a minute, and at shutdown.
    assert!(server.terminate().success());
    book(
        &data,
        &[
            "alice",
            "add",
            "carol@far.example",
            "Carol; \"C\", Jr. \\ Müller-Lüdenscheidt, Ärztin für Öl & Äther äöü",
        ],
    );
    assert_eq!(
        book(&data, &["alice", "list"]),
        "bob@far.example  Smith, Bob\ncarol@far.example  Carol; \"C\", Jr. \\ Müller-Lüdenscheidt, Ärztin für Öl & Äther äöü\ndave@far.example  Dave Müller\n"
    );
    let path = dir.path().join("alice.vcf");
    book(&data, &["alice", "export", path.to_str().unwrap()]);
    let file = std::fs::read(&path).unwrap();
    assert_eq!(book(&data, &["alice", "export", "-"]).as_bytes(), file);
    let read = python_script("tests/book/vcards.py", &[], &file);
    assert_eq!(
        read,
        "4.0\tSmith, Bob\tbob@far.example\n4.0\tCarol; \"C\", Jr. \\ Müller-Lüdenscheidt, Ärztin für Öl & Äther äöü\tcarol@far.example\n4.0\tDave Müller\tdave@far.example\n"
    );
}
