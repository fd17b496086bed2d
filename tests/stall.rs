//! One thread serves every session, so a slow card must only ever hold
//! up the session that waits for it: file I/O runs on the blocking pool.
//! `POSTBOX_FAULTS` makes one kind of storage operation slow (it logs
//! "storage delay: KIND held" as it starts waiting); another session must
//! be served while that operation is still held. Where one task reads
//! several files in turn, a greeting while only the first read is held
//! shows that none of them ran on the executor thread.

mod common;
use common::*;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

fn slow_server(data: &Path, delay: &str) -> Server {
    add_user(data, "alice", "alice-pw");
    Server::start_in_env(data, &[], &[("POSTBOX_FAULTS", delay)])
}

/// Whether the server has answered `client` (without waiting for it).
fn answered(client: &Client) -> bool {
    client.stream.set_nonblocking(true).unwrap();
    let peeked = client.stream.peek(&mut [0u8; 1]);
    client.stream.set_nonblocking(false).unwrap();
    match peeked {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_slow_spool_write_holds_up_no_other_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = slow_server(&data, "delay_write_ms=3000,rate=0");
    let mut sender = server.smtp();
    assert!(sender.reply().starts_with("220"));
    assert!(sender.ask("EHLO client.test").starts_with("250"));
    assert!(sender.ask("MAIL FROM:<x@remote.test>").starts_with("250"));
    assert!(sender.ask("RCPT TO:<alice@localhost>").starts_with("250"));
    assert!(sender.ask("DATA").starts_with("354"));
    sender.send(b"Subject: slow\r\n\r\nheld on the way to flash\r\n.\r\n");
    assert!(server.logged("storage delay: write held", Duration::from_secs(20)));

    let mut reader = server.pop3();
    assert!(reader.line().starts_with("+OK"));
    // The delay comes before any byte reaches the spool file: an empty
    // spool file means the write was still held when the greeting came.
    let spooled: Vec<_> = std::fs::read_dir(data.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert_eq!(spooled, [0], "greeting only after the write");
    assert!(!answered(&sender));

    assert!(sender.reply().starts_with("250"));
    assert_eq!(server.messages("alice").len(), 1);
}

#[test]
fn a_slow_message_read_holds_up_no_other_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = slow_server(&data, "delay_read_ms=3000,rate=0");
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: r\r\n\r\nslow to read",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let mut fetcher = pop3_login(&server, "alice", "alice-pw");
    fetcher.cmd("RETR 1");
    assert!(server.logged("storage delay: read held", Duration::from_secs(20)));

    let mut other = server.smtp();
    assert!(other.reply().starts_with("220"));
    assert!(!answered(&fetcher), "greeting only after the read");

    assert!(fetcher.line().starts_with("+OK"));
    let body = String::from_utf8(fetcher.multiline()).unwrap();
    assert!(body.contains("slow to read"), "{body}");
}

#[test]
fn quota_checks_wait_for_no_mailbox_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    let new = data.join("mail/localhost/alice/new");
    std::fs::create_dir_all(&new).unwrap();
    std::fs::write(new.join("1.M1P1Q1.h,S=5,W=5"), b"x\r\n\r\n").unwrap();
    let config = dir.path().join("postbox.toml");
    std::fs::write(&config, "[quota]\ndefault = \"1M\"\n").unwrap();
    // Reading a mailbox now would take longer than the client waits: its
    // usage must have been counted before the listeners opened.
    let server = Server::start_in_env(
        &data,
        &["--config", config.to_str().unwrap()],
        &[("POSTBOX_FAULTS", "delay_read_ms=600000,rate=0")],
    );
    let mut c = server.smtp();
    assert!(c.reply().starts_with("220"));
    assert!(c.ask("EHLO client.test").starts_with("250"));
    assert!(c.ask("MAIL FROM:<x@remote.test>").starts_with("250"));
    assert!(c.ask("RCPT TO:<alice@localhost>").starts_with("250"));
}

/// Sends `RCPT TO:<rcpt>` on a fresh session, right after `change`
/// (made once the session is in its transaction), without waiting for
/// the answer.
fn rcpt_pending(server: &Server, change: impl FnOnce(), rcpt: &str) -> Client {
    let mut c = server.smtp();
    assert!(c.reply().starts_with("220"));
    assert!(c.ask("EHLO client.test").starts_with("250"));
    assert!(c.ask("MAIL FROM:<x@remote.test>").starts_with("250"));
    change();
    c.cmd(&format!("RCPT TO:<{rcpt}>"));
    c
}

/// Whether another session is greeted while `held` still waits.
fn greeted_while_held(server: &Server, held: &Client) -> bool {
    assert!(server.logged("storage delay: read held", Duration::from_secs(20)));
    let mut other = server.smtp();
    assert!(other.reply().starts_with("220"));
    !answered(held)
}

#[test]
fn a_user_added_while_serving_is_read_and_counted_off_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("postbox.toml");
    std::fs::write(&config, "[quota]\ndefault = \"1M\"\n").unwrap();
    add_user(&data, "alice", "alice-pw");
    let server = Server::start_in_env(
        &data,
        &["--config", config.to_str().unwrap()],
        &[("POSTBOX_FAULTS", "delay_read_ms=3000,rate=0")],
    );
    // A new users file to read, and a mailbox never counted.
    let add_bob = || add_user(&data, "bob", "bob-pw");
    let mut sender = rcpt_pending(&server, add_bob, "bob@localhost");
    assert!(
        greeted_while_held(&server, &sender),
        "greeting only after the read"
    );
    let reply = sender.reply();
    assert!(reply.starts_with("250"), "{reply}");
}

#[test]
fn a_changed_aliases_file_is_read_off_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = slow_server(&data, "delay_read_ms=3000,rate=0");
    let add_team = || std::fs::write(data.join("aliases"), "team: alice\n").unwrap();
    let mut sender = rcpt_pending(&server, add_team, "team@localhost");
    assert!(
        greeted_while_held(&server, &sender),
        "greeting only after the read"
    );
    let reply = sender.reply();
    assert!(reply.starts_with("250"), "{reply}");
}

#[test]
fn a_login_after_a_users_change_reads_it_off_the_executor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = slow_server(&data, "delay_read_ms=3000,rate=0");
    add_user(&data, "bob", "bob-pw");
    let mut fetcher = server.pop3();
    assert!(fetcher.line().starts_with("+OK"));
    assert!(fetcher.ask("USER bob").starts_with("+OK"));
    fetcher.cmd("PASS bob-pw");
    // The password check runs on the blocking pool too, so the greeting
    // can come before the login's answer either way: the reload is
    // logged as it is taken into service, on the executor.
    assert!(server.logged("storage delay: read held", Duration::from_secs(20)));
    let mut other = server.smtp();
    assert!(other.reply().starts_with("220"));
    assert!(
        !server.log().contains("users file reloaded"),
        "greeting only after the read"
    );
    let reply = fetcher.line();
    assert!(reply.starts_with("+OK"), "{reply}");
}

/// How many held reads the log shows after its first `from` bytes.
fn reads_held_since(server: &Server, from: usize) -> usize {
    server.log()[from..]
        .matches("storage delay: read held")
        .count()
}

/// Waits until a read is held after the log's first `from` bytes.
fn wait_read_held_since(server: &Server, from: usize) {
    let start = std::time::Instant::now();
    while reads_held_since(server, from) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no read held:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_slow_address_book_read_holds_up_no_other_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    add_user(&data, "bob", "bob-pw");
    // Without the arrival checks (their copy of the message is read too),
    // the books are all that is read at the end of DATA.
    let config = dir.path().join("postbox.toml");
    std::fs::write(
        &config,
        "[inbound]\nspf = \"off\"\ndkim = \"off\"\ndmarc = \"off\"\n",
    )
    .unwrap();
    let server = Server::start_in_env(
        &data,
        &["--config", config.to_str().unwrap()],
        &[("POSTBOX_FAULTS", "delay_read_ms=3000,rate=0")],
    );
    // A stranger's mail: both members' books are read before the
    // recipient rule asks them, one read after the other.
    let mut sender = server.smtp();
    assert!(sender.reply().starts_with("220"));
    assert!(sender.ask("EHLO client.test").starts_with("250"));
    assert!(sender.ask("MAIL FROM:<x@remote.test>").starts_with("250"));
    assert!(sender.ask("RCPT TO:<alice@localhost>").starts_with("250"));
    assert!(sender.ask("RCPT TO:<bob@localhost>").starts_with("250"));
    assert!(sender.ask("DATA").starts_with("354"));
    let from = server.log().len();
    sender.send(b"Subject: books\r\n\r\nfrom someone new\r\n.\r\n");
    wait_read_held_since(&server, from);

    let mut other = server.smtp();
    assert!(other.reply().starts_with("220"));
    assert_eq!(
        reads_held_since(&server, from),
        1,
        "greeting only after both books were read:\n{}",
        server.log()
    );
    assert!(!answered(&sender));

    let reply = sender.reply();
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(server.messages("alice").len(), 1);
    assert_eq!(server.messages("bob").len(), 1);
}

#[test]
fn a_slow_queue_rescan_holds_up_no_other_session() {
    use postbox::queue::store::{message_path, queue_dir, save, Envelope};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = slow_server(&data, "delay_read_ms=3000,rate=0");
    // An entry the server has not seen yet (as one an admin puts back):
    // the rescan lists the queue, then reads its envelope.
    std::fs::create_dir_all(queue_dir(&data)).unwrap();
    std::fs::write(
        message_path(&data, "put-back"),
        b"Subject: back\r\n\r\nx\r\n",
    )
    .unwrap();
    let envelope = Envelope::new(
        "put-back".into(),
        String::new(),
        vec!["carol@remote.test".into()],
        postbox::queue::unix_now(),
    );
    save(&postbox::store::disk::Fs, &data, &envelope).unwrap();

    let from = server.log().len();
    let flushed = postbox(&["queue", "flush", "--data", data.to_str().unwrap()], "");
    assert!(flushed.status.success(), "queue flush: {flushed:?}");
    wait_read_held_since(&server, from);

    let mut other = server.smtp();
    assert!(other.reply().starts_with("220"));
    assert_eq!(
        reads_held_since(&server, from),
        1,
        "greeting only after the whole rescan:\n{}",
        server.log()
    );
    // The rescan finished: the entry found is tried.
    assert!(
        server.logged("queue put-back", Duration::from_secs(30)),
        "{}",
        server.log()
    );
}

/// The blocking pool is bounded (`BLOCKING_MAX_THREADS`, 8 unless set), so
/// no thread of it may wait on a client: a client that stops reading
/// part-way through a large message (its file read ahead until the pipe
/// to the socket is full) must not keep a delivery from its fsync.
#[test]
fn readers_that_stop_reading_hold_no_pool_thread() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let readers = ["r0", "r1", "r2"];
    add_user(&data, "alice", "alice-pw");
    // More than loopback sockets buffer on both ends together.
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    while big.len() < 16 << 20 {
        big.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwx\r\n",
        );
    }
    for name in readers {
        add_user(&data, name, &format!("{name}-pw"));
        let new = data.join("mail/localhost").join(name).join("new");
        std::fs::create_dir_all(&new).unwrap();
        let file = format!("1700000000.M1P1Q1.test,S={}", big.len());
        std::fs::write(new.join(file), &big).unwrap();
    }
    let server = Server::start_in_env(&data, &[], &[("BLOCKING_MAX_THREADS", "2")]);
    let mut stalled = Vec::new();
    for name in readers {
        let mut reader = pop3_login(&server, name, &format!("{name}-pw"));
        reader.cmd("RETR 1");
        assert!(reader.line().starts_with("+OK"));
        stalled.push(reader);
    }
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: s\r\n\r\ndelivered while readers stall",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(server.messages("alice").len(), 1);
}
