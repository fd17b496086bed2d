//! SIGTERM and SIGINT: the server stops accepting connections, lets a
//! message in the middle of DATA finish (for up to `SHUTDOWN_GRACE`) or
//! answers it 421 and stores nothing, tells idle sessions 421 (POP3: -ERR,
//! with no UPDATE), and exits 0 with nothing half-written: an empty spool
//! and only whole messages in the mailboxes.

mod common;
use common::*;
use postbox::limits::SHUTDOWN_GRACE;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous bounds for a loaded 2-core machine; none of them is a speed claim.
const QUICK_EXIT: Duration = Duration::from_secs(15);
const SYNC: Duration = Duration::from_secs(30);

/// alice and bob on a fresh data dir, under a host name of this test's
/// own, so a greeting proves which server answered.
fn fresh(tag: &str) -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    add_user(&data, "bob", "bob-pw");
    let host = format!("{tag}-{}.test", std::process::id());
    let server = Server::start_in(&data, &["--hostname", &host]);
    (dir, server, host)
}

/// Sends `sig` and waits until the server has logged that it began
/// shutting down (the listeners are dropped in the same step).
fn signal_and_sync(server: &Server, sig: &str) -> Instant {
    let sent = Instant::now();
    signal(&server.child, sig);
    assert!(
        server.logged("no new connections", SYNC),
        "SIG{sig} not acknowledged in the log:\n{}",
        server.log()
    );
    sent
}

fn exit_within(server: &mut Server, limit: Duration) -> ExitStatus {
    wait_timeout(&mut server.child, limit).unwrap_or_else(|| {
        panic!(
            "server still running {limit:?} after the signal:\n{}",
            server.log()
        )
    })
}

/// A session that has sent MAIL, RCPT and DATA and got 354.
fn in_data(server: &Server, rcpt: &str) -> Client {
    let mut c = server.smtp();
    assert!(c.reply().starts_with("220"));
    assert!(c.ask("EHLO client.test").starts_with("250"));
    assert!(c.ask("MAIL FROM:<x@remote.test>").starts_with("250"));
    assert!(c
        .ask(&format!("RCPT TO:<{rcpt}@localhost>"))
        .starts_with("250"));
    assert!(c.ask("DATA").starts_with("354"));
    c
}

/// The contents of every message file of a user.
fn stored(data: &Path, user: &str) -> Vec<Vec<u8>> {
    mailbox_files(data, user)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Nothing half-written: an empty spool, empty mailbox tmp/ dirs, and
/// every file in new/ and cur/ as long as its name says.
fn store_problems(data: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let spool = names(&data.join("tmp"));
    if !spool.is_empty() {
        problems.push(format!("spool DATA/tmp not empty after exit: {spool:?}"));
    }
    for user in ["alice", "bob"] {
        let dir = data.join("mail/localhost").join(user);
        let tmp = names(&dir.join("tmp"));
        if !tmp.is_empty() {
            problems.push(format!("{user}/tmp not empty: {tmp:?}"));
        }
        for path in mailbox_files(data, user) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let size = name
                .split(':')
                .next()
                .and_then(|base| base.split_once(",S="))
                .and_then(|(_, s)| s.split(',').next())
                .and_then(|s| s.parse::<u64>().ok());
            let len = std::fs::metadata(&path).unwrap().len();
            if size != Some(len) {
                problems.push(format!("{user}: {name} holds {len} bytes"));
            }
        }
    }
    problems
}

fn assert_store_clean(data: &Path) {
    let problems = store_problems(data);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A message in DATA at shutdown ends one of two ways: 250 and stored
/// exactly once, whole; or 421 (or a closed connection) and not stored.
fn assert_all_or_nothing(reply: &str, copies: &[Vec<u8>], message: &[u8]) {
    if reply.starts_with("250") {
        assert_eq!(copies.len(), 1, "250, but {} copies stored", copies.len());
        let text = &copies[0];
        assert!(
            text.starts_with(b"Return-Path: <x@remote.test>\r\n") && text.ends_with(message),
            "250, but the stored message differs:\n{}",
            String::from_utf8_lossy(text)
        );
    } else if reply.starts_with("421") || reply.is_empty() {
        assert!(copies.is_empty(), "not accepted ({reply:?}) but stored");
    } else {
        panic!("a message in DATA at shutdown got {reply:?}");
    }
}

fn exits_zero_on(sig: &str) {
    let (dir, mut server, _) = fresh("idle");
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: before\r\n\r\nkept",
    );
    assert!(reply.starts_with("250"), "{reply}");
    signal(&server.child, sig);
    // Nothing to wait for: an idle server leaves at once.
    let status = exit_within(&mut server, QUICK_EXIT);
    assert_eq!(status.code(), Some(0), "exit status after SIG{sig}");
    // The log reader may still be taking in the last lines.
    assert!(
        server.logged("stopped", Duration::from_secs(5)),
        "{}",
        server.log()
    );
    let data = dir.path().join("data");
    assert!(
        !data.join("serve.status").exists(),
        "status file left behind"
    );
    assert_eq!(stored(&data, "alice").len(), 1);
    assert_store_clean(&data);
}

#[test]
fn idle_server_exits_zero_on_sigterm() {
    exits_zero_on("TERM");
}

#[test]
fn idle_server_exits_zero_on_sigint() {
    exits_zero_on("INT");
}

#[test]
fn message_in_data_at_sigterm_finishes_and_is_stored() {
    let (dir, mut server, _) = fresh("indata");
    let data = dir.path().join("data");
    let message = b"Subject: in flight\r\n\r\nfirst half\r\n.a dot line\r\nsecond half\r\n";
    let mut c = in_data(&server, "bob");
    c.send(b"Subject: in flight\r\n\r\nfirst half\r\n");
    std::thread::sleep(Duration::from_millis(100));
    signal_and_sync(&server, "TERM");
    // Well inside the grace: the rest of the message still goes in.
    std::thread::sleep(Duration::from_millis(200));
    c.send(b"..a dot line\r\nsecond half\r\n.\r\n");
    let reply = c.reply();
    assert_all_or_nothing(&reply, &stored(&data, "bob"), message);
    assert!(
        reply.starts_with("250"),
        "a message finished within the grace was not accepted: {reply:?}"
    );
    // Between commands now, so it is told like any idle session.
    let next = c.line();
    assert!(
        next.is_empty() || next.starts_with("421 4.3.2"),
        "after the 250: {next:?}"
    );
    assert!(c.closed(), "session left open after shutdown");
    let status = exit_within(&mut server, QUICK_EXIT);
    assert_eq!(status.code(), Some(0));
    assert_eq!(stored(&data, "bob").len(), 1);
    assert_store_clean(&data);
}

#[test]
fn large_message_streaming_through_sigterm_is_stored_whole() {
    let (dir, mut server, _) = fresh("stream");
    let data = dir.path().join("data");
    let mut message = b"Subject: big\r\n\r\n".to_vec();
    let mut n = 0u64;
    while message.len() < 3 << 20 {
        let line = if n.is_multiple_of(50) {
            format!(".{n}\r\n")
        } else {
            format!("line {n} of a large message in flight at SIGTERM\r\n")
        };
        message.extend_from_slice(line.as_bytes());
        n += 1;
    }
    let mut wire = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    let mut c = in_data(&server, "alice");
    let (head, rest) = wire.split_at(256 * 1024);
    c.send(head);
    // The signal lands while the body streams in.
    signal(&server.child, "TERM");
    for chunk in rest.chunks(32 * 1024) {
        c.send(chunk);
        std::thread::sleep(Duration::from_millis(2));
    }
    c.send(b".\r\n");
    let reply = c.reply();
    assert_all_or_nothing(&reply, &stored(&data, "alice"), &message);
    assert!(
        reply.starts_with("250"),
        "streamed message refused: {reply:?}"
    );
    let status = exit_within(&mut server, QUICK_EXIT);
    assert_eq!(status.code(), Some(0));
    assert_store_clean(&data);
}

/// How a blocked reader's wait for a reply ended.
#[derive(Debug)]
enum Heard {
    Line(String),
    Closed,
    Failed(io::ErrorKind),
}

/// Waits up to `limit` for one line; returns it and when it came.
fn hear(stream: &TcpStream, limit: Duration) -> (Heard, Instant) {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    let heard = match reader.read_line(&mut line) {
        Ok(0) => Heard::Closed,
        Ok(_) => Heard::Line(line.trim_end().to_string()),
        Err(e) => Heard::Failed(e.kind()),
    };
    (heard, Instant::now())
}

#[test]
fn message_unfinished_when_the_grace_ends_gets_421_and_is_not_stored() {
    let (dir, mut server, _) = fresh("grace");
    let data = dir.path().join("data");
    // Stalled before the signal: its read was already waiting.
    let mut stalled = in_data(&server, "alice");
    stalled.send(b"Subject: a\r\n\r\nhalf\r\n");
    // Sends once more after the signal, then stalls.
    let mut late = in_data(&server, "bob");
    late.send(b"Subject: b\r\n\r\npart one\r\n");
    // Keeps trickling through the whole grace, never finishing.
    let mut trickle = in_data(&server, "bob");
    trickle.send(b"Subject: c\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));

    let sent = signal_and_sync(&server, "TERM");
    late.send(b"part two\r\n");
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let (mut w, stop) = (trickle.stream.try_clone().unwrap(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) && w.write_all(b"drip\r\n").is_ok() {
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let limit = SHUTDOWN_GRACE + Duration::from_secs(25);
    let waiters: Vec<_> = [
        ("stalled", &stalled),
        ("late", &late),
        ("trickle", &trickle),
    ]
    .into_iter()
    .map(|(name, c)| {
        let s = c.stream.try_clone().unwrap();
        (name, std::thread::spawn(move || hear(&s, limit)))
    })
    .collect();
    let heard: Vec<_> = waiters
        .into_iter()
        .map(|(name, t)| (name, t.join().unwrap()))
        .collect();
    stop.store(true, Ordering::SeqCst);
    trickler.join().unwrap();
    let status = exit_within(&mut server, SHUTDOWN_GRACE + Duration::from_secs(30));

    let mut problems = Vec::new();
    for (name, (what, when)) in &heard {
        let after = when.duration_since(sent);
        let told = match what {
            Heard::Line(l) => l.starts_with("421"),
            // Our unread drips make the server's close a reset, which
            // can overtake its 421.
            Heard::Failed(io::ErrorKind::ConnectionReset) => *name == "trickle",
            _ => false,
        };
        if !told {
            problems.push(format!(
                "{name}: expected 421 when the grace ended, got {what:?} after {after:.1?}"
            ));
        } else if after + Duration::from_secs(2) < SHUTDOWN_GRACE {
            problems.push(format!(
                "{name}: cut after {after:.1?}, before the grace ended"
            ));
        }
    }
    if status.code() != Some(0) {
        problems.push(format!("exit status {status:?}"));
    }
    for user in ["alice", "bob"] {
        let n = stored(&data, user).len();
        if n != 0 {
            problems.push(format!("{n} unfinished messages stored for {user}"));
        }
    }
    problems.extend(store_problems(&data));
    assert!(
        problems.is_empty(),
        "shutdown grace broken:\n{}\nlog:\n{}",
        problems.join("\n"),
        server.log()
    );
}

#[test]
fn client_leaving_mid_data_after_sigterm_stores_nothing() {
    let (dir, mut server, _) = fresh("leave");
    let data = dir.path().join("data");
    let mut c = in_data(&server, "bob");
    c.send(b"Subject: gone\r\n\r\nhalf");
    signal_and_sync(&server, "TERM");
    drop(c);
    // Its only session gone, the server need not wait out the grace.
    let status = exit_within(&mut server, QUICK_EXIT);
    assert_eq!(status.code(), Some(0));
    assert!(stored(&data, "bob").is_empty());
    assert_store_clean(&data);
}

#[test]
fn idle_sessions_are_told_and_closed() {
    let (dir, mut server, _) = fresh("told");
    let data = dir.path().join("data");
    let mut greeted = server.smtp();
    assert!(greeted.reply().starts_with("220"));
    let mut helloed = server.smtp();
    helloed.reply();
    assert!(helloed.ask("EHLO client.test").starts_with("250"));
    // A transaction open but not in DATA: nothing to finish.
    let mut open = server.smtp();
    open.reply();
    open.ask("EHLO client.test");
    assert!(open.ask("MAIL FROM:<x@remote.test>").starts_with("250"));
    assert!(open.ask("RCPT TO:<bob@localhost>").starts_with("250"));
    // Half a command line.
    let mut partial = server.smtp();
    partial.reply();
    partial.send(b"NOO");
    let mut pop = server.pop3();
    assert!(pop.line().starts_with("+OK"));
    std::thread::sleep(Duration::from_millis(100));

    signal(&server.child, "TERM");
    for (name, c) in [
        ("greeted", &mut greeted),
        ("after EHLO", &mut helloed),
        ("in a transaction", &mut open),
        ("mid-line", &mut partial),
    ] {
        let reply = c.line();
        assert!(
            reply.starts_with("421 4.3.2"),
            "SMTP session {name}: {reply:?}"
        );
        assert!(c.closed(), "SMTP session {name} left open");
    }
    let reply = pop.line();
    assert!(reply.starts_with("-ERR"), "POP3 session: {reply:?}");
    assert!(pop.closed(), "POP3 session left open");
    let status = exit_within(&mut server, QUICK_EXIT);
    assert_eq!(status.code(), Some(0));
    assert!(stored(&data, "bob").is_empty());
    assert_store_clean(&data);
}

#[test]
fn pop3_deletions_pending_at_sigterm_are_not_applied() {
    let (dir, mut server, _) = fresh("dele");
    let data = dir.path().join("data");
    for (to, n) in [
        ("alice@localhost", 1),
        ("alice@localhost", 2),
        ("bob@localhost", 3),
    ] {
        let body = format!("Subject: {n}\r\n\r\nmessage {n}");
        assert!(send_mail(server.smtp, "x@remote.test", &[to], &body).starts_with("250"));
    }
    let before = stored(&data, "alice");
    // alice deletes both and is still in TRANSACTION at the signal.
    let mut alice = pop3_login(&server, "alice", "alice-pw");
    for n in [1, 2] {
        alice.cmd(&format!("DELE {n}"));
        assert!(alice.line().starts_with("+OK"));
    }
    // bob deletes and QUITs before it: that deletion is done.
    let mut bob = pop3_login(&server, "bob", "bob-pw");
    bob.cmd("DELE 1");
    assert!(bob.line().starts_with("+OK"));
    bob.cmd("QUIT");
    assert!(bob.line().starts_with("+OK"));

    signal(&server.child, "TERM");
    let reply = alice.line();
    assert!(
        reply.starts_with("-ERR"),
        "POP3 session at shutdown: {reply:?}"
    );
    assert!(alice.closed(), "POP3 session left open");
    let status = exit_within(&mut server, QUICK_EXIT);
    assert_eq!(status.code(), Some(0));
    let mut after = stored(&data, "alice");
    let mut before = before;
    after.sort();
    before.sort();
    assert!(after == before, "alice's messages changed without QUIT");
    assert!(stored(&data, "bob").is_empty(), "bob's QUIT did not delete");
    assert_store_clean(&data);
}

/// After shutdown began, a connection must fail, or be closed without
/// the server taking a command. A racing accept may still greet and then
/// say 421; a greeting from another host is a recycled port, not ours.
/// `Ok(true)` once the listener is gone: the connection failed, or the
/// port is another host's now.
fn refused(addr: SocketAddr, host: &str) -> Result<bool, String> {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return Ok(true);
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => {
                return Err(format!(
                    "accepted, then neither served nor closed ({e}); got {:?}",
                    String::from_utf8_lossy(&got)
                ))
            }
        }
    }
    let text = String::from_utf8_lossy(&got);
    let ours = text.contains(host);
    let told = text
        .lines()
        .last()
        .is_none_or(|l| l.starts_with("421") || l.starts_with("-ERR"));
    if ours && !told {
        return Err(format!("accepted and served: {text:?}"));
    }
    if ours {
        eprintln!("{addr}: accepted after the signal, then told {text:?}");
    }
    Ok(!ours && !got.is_empty())
}

#[test]
fn new_connections_are_refused_once_shutdown_begins() {
    let (dir, mut server, host) = fresh("refuse");
    let data = dir.path().join("data");
    // A message in flight keeps the server in its grace meanwhile.
    let mut busy = in_data(&server, "bob");
    busy.send(b"Subject: busy\r\n\r\n");
    signal_and_sync(&server, "TERM");
    // Each listener closes soon after the log says so; until it has, every
    // connection must still be turned away.
    let mut problems = Vec::new();
    let listeners = [
        ("smtp", Some(server.smtp)),
        ("pop3", Some(server.pop3)),
        ("submission", server.submission),
        ("submissions", server.submissions),
        ("pop3s", server.pop3s),
    ];
    for (name, addr) in listeners {
        let start = Instant::now();
        loop {
            match refused(addr.unwrap(), &host) {
                Ok(true) => break,
                Ok(false) if start.elapsed() > SYNC => {
                    problems.push(format!("{name}: still listening after {SYNC:?}"));
                    break;
                }
                Ok(false) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    problems.push(format!("{name}: {e}"));
                    break;
                }
            }
        }
    }
    busy.send(b"done\r\n.\r\n");
    let reply = busy.reply();
    let status = exit_within(&mut server, QUICK_EXIT);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(reply.starts_with("250"), "message in flight: {reply:?}");
    assert_eq!(status.code(), Some(0));
    assert_store_clean(&data);
}

#[test]
fn unfinished_tls_handshakes_do_not_hold_up_shutdown() {
    let (dir, mut server, _) = fresh("tlsidle");
    let data = dir.path().join("data");
    // Connected to the implicit-TLS ports, never saying a word.
    let quiet_smtps = TcpStream::connect(server.submissions.unwrap()).unwrap();
    let quiet_pop3s = TcpStream::connect(server.pop3s.unwrap()).unwrap();
    // Sessions of the server's before the signal, not connections
    // waiting to be accepted.
    for quiet in [&quiet_smtps, &quiet_pop3s] {
        let needle = format!(" {} connected to ", quiet.local_addr().unwrap());
        assert!(server.logged(&needle, SYNC), "{}", server.log());
    }
    // Asked for STARTTLS / STLS, then silent.
    let mut starttls = Client::connect(server.submission.unwrap());
    assert!(starttls.reply().starts_with("220"));
    starttls.ask("EHLO client.test");
    assert!(starttls.ask("STARTTLS").starts_with("220"));
    let mut stls = server.pop3();
    stls.line();
    stls.cmd("STLS");
    assert!(stls.line().starts_with("+OK"));

    let sent = signal_and_sync(&server, "TERM");
    // Idle in all but name: they cannot be told 421 in plain text, but
    // they must not keep the server up as if they were in DATA.
    let closed: Vec<_> = [
        ("submissions", &quiet_smtps),
        ("pop3s", &quiet_pop3s),
        ("submission after STARTTLS", &starttls.stream),
        ("pop3 after STLS", &stls.stream),
    ]
    .into_iter()
    .map(|(name, s)| {
        let s = s.try_clone().unwrap();
        (
            name,
            std::thread::spawn(move || hear(&s, QUICK_EXIT + QUICK_EXIT)),
        )
    })
    .collect();
    let status = wait_timeout(&mut server.child, QUICK_EXIT);
    let mut problems = Vec::new();
    for (name, t) in closed {
        let (heard, when) = t.join().unwrap();
        let after = when.duration_since(sent);
        if after > QUICK_EXIT
            || matches!(
                heard,
                Heard::Failed(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
            )
        {
            problems.push(format!("{name}: closed only after {after:.1?} ({heard:?})"));
        }
    }
    match status {
        Some(s) if s.code() == Some(0) => {}
        Some(s) => problems.push(format!("exit status {s:?}")),
        None => {
            let late = exit_within(&mut server, SHUTDOWN_GRACE + Duration::from_secs(30));
            problems.push(format!(
                "still running {QUICK_EXIT:?} after SIGTERM; exited after {:.1?} with {late:?}",
                sent.elapsed()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_store_clean(&data);
}

#[test]
fn a_live_pid_in_the_status_file_without_the_lock_is_not_a_server() {
    let (_dir, mut server, _) = fresh("stale");
    let running = postbox::server::running_status(&server.data).expect("running server seen");
    assert_eq!(running.pid, server.child.id());
    // Killed outright: the status file stays, the lock goes with the process.
    server.kill();
    // Its PID now belongs to another process, alive: this test's.
    let stale = postbox::server::ServerStatus {
        pid: std::process::id(),
        ..running
    };
    postbox::server::save_status(&server.data, &stale).unwrap();
    assert!(postbox::server::running_status(&server.data).is_none());
    let out = postbox(&["stats", "--data", server.data.to_str().unwrap()], "");
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains("server running"), "{said}");
}
