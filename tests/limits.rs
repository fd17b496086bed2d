//! Resource limits against abusive clients: slow-drip (slowloris) command
//! lines and message bodies are cut off, not just idle ones.

mod common;
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

/// Sends `bytes` one at a time, `gap` apart, until the server hangs up;
/// returns how long that took (or None if it never did).
fn drip(c: &mut Client, bytes: &[u8], gap: Duration) -> Option<Duration> {
    let start = Instant::now();
    for b in bytes.iter().cycle().take(200) {
        if c.stream.write_all(&[*b]).is_err() {
            return Some(start.elapsed());
        }
        std::thread::sleep(gap);
        if start.elapsed() > Duration::from_secs(15) {
            return None;
        }
    }
    None
}

#[test]
fn smtp_command_drip_is_cut_off() {
    let (_dir, server) = Server::with_config("[smtp]\ncommand_timeout = 1\n");
    let mut c = server.smtp();
    c.reply();
    // Each byte comes well within the per-read timeout, but the line never ends.
    let took = drip(&mut c, b"NOOPNOOPNOOP", Duration::from_millis(300));
    assert!(took.is_some(), "a drip-fed command line held the session");
    assert!(c.reply().starts_with("421 4.4.2"));
}

#[test]
fn smtp_data_drip_is_cut_off_and_nothing_stored() {
    let (_dir, server) = Server::with_config("[smtp]\ndata_timeout = 1\n");
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO slow.test");
    c.ask("MAIL FROM:<x@remote.test>");
    c.ask("RCPT TO:<alice@localhost>");
    assert!(c.ask("DATA").starts_with("354"));
    let took = drip(&mut c, b"slow body ", Duration::from_millis(300));
    assert!(took.is_some(), "a drip-fed message held the session");
    assert!(c.reply().starts_with("421"));
    server.wait_session_closed(c.local_addr());
    assert!(server.messages("alice").is_empty());
    // Others are still served.
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: ok\r\n\r\nok",
    );
    assert!(reply.starts_with("250"));
}

#[test]
fn pop3_command_drip_is_cut_off() {
    let (_dir, server) = Server::with_config("[pop3]\ntimeout = 1\n");
    let mut c = server.pop3();
    c.line();
    let took = drip(&mut c, b"CAPACAPA", Duration::from_millis(300));
    assert!(took.is_some(), "a drip-fed POP3 command held the session");
}

#[test]
fn sessions_per_address_and_connection_rate() {
    let (_dir, server) = Server::with_config("[limits]\nsessions_per_address = 2\n");
    let mut held: Vec<Client> = (0..2).map(|_| server.smtp()).collect();
    for c in &mut held {
        assert!(c.reply().starts_with("220"));
    }
    let mut third = server.smtp();
    assert!(
        third.reply().starts_with("421 4.7.0"),
        "third session admitted"
    );
    let why = "refused: too many sessions from this address";
    assert!(
        server.logged(why, Duration::from_secs(5)),
        "{}",
        server.log()
    );
    let mut pop = server.pop3();
    assert!(
        pop.line().starts_with("-ERR [SYS/TEMP]"),
        "limit is over all listeners"
    );
    // Its slot is given back as its session ends.
    let gone = held.pop().unwrap();
    let client = gone.local_addr();
    drop(gone);
    server.wait_session_closed(client);
    assert!(
        server.smtp().reply().starts_with("220"),
        "a freed slot is reusable"
    );

    let (_dir, server) = Server::with_config("[limits]\nconnections_per_minute = 3\n");
    for _ in 0..3 {
        assert!(server.smtp().reply().starts_with("220"));
    }
    assert!(server.smtp().reply().starts_with("421 4.7.0"));
    let why = "refused: too many connections per minute from this address";
    assert!(
        server.logged(why, Duration::from_secs(5)),
        "{}",
        server.log()
    );
}

#[test]
fn repeated_login_failures_are_refused_for_a_while() {
    let (_dir, server) = Server::with_config("[limits]\nlogin_failures = 2\n");
    let mut c = server.pop3();
    c.line();
    for _ in 0..2 {
        c.cmd("USER alice");
        c.line();
        c.cmd("PASS wrong");
        assert!(c.line().starts_with("-ERR [AUTH]"));
    }
    // Now even the right password is not checked.
    c.cmd("USER alice");
    c.line();
    c.cmd("PASS alice-pw");
    assert!(c.line().starts_with("-ERR [SYS/TEMP]"));
    let mut s = server.smtp();
    s.reply();
    s.ask("EHLO x");
    use base64::Engine;
    let plain = base64::engine::general_purpose::STANDARD.encode("\0alice\0alice-pw");
    assert!(s
        .ask(&format!("AUTH PLAIN {plain}"))
        .starts_with("454 4.7.0"));
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn memory_per_idle_session_is_small_and_fixed() {
    let (_dir, server) =
        Server::with_config("[smtp]\nmax_sessions = 600\n[limits]\nsessions_per_address = 600\n");
    // Warm up: the first sessions allocate the executor's own structures.
    let mut warm: Vec<Client> = (0..20).map(|_| server.smtp()).collect();
    for c in &mut warm {
        assert!(c.reply().starts_with("220"));
    }
    // The cost of the second 250 alone: what the first ones set up once
    // (a thread of the blocking pool and its malloc arena, the executor's
    // table growing) is not counted against each session.
    let open = |n: usize| -> Vec<Client> {
        let mut idle: Vec<Client> = (0..n).map(|_| server.smtp()).collect();
        for c in &mut idle {
            assert!(c.reply().starts_with("220"));
        }
        idle
    };
    let first = open(250);
    let before = rss_kib(server.child.id());
    let second = open(250);
    let after = rss_kib(server.child.id());
    let per_session = (after.saturating_sub(before)) / 250;
    assert!(
        per_session <= 16,
        "{per_session} KiB per idle session ({before} -> {after} KiB)"
    );
    drop((warm, first, second));
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

/// The blocking pool (file I/O, fsync, password hashing) would grow to
/// hundreds of threads under bursts, each keeping its stack and a malloc
/// arena: it stays at 8 threads, beside the executor's and the reactor's.
#[test]
fn fifty_sessions_delivering_at_once_grow_no_more_than_eight_pool_threads() {
    let (_dir, server) =
        Server::with_config("[smtp]\nmax_sessions = 100\n[limits]\nsessions_per_address = 100\n");
    let pid = server.child.id();
    let body = format!(
        "Subject: load\r\n\r\n{}",
        format!("{}\r\n", "x".repeat(78)).repeat(50)
    );
    let done = std::sync::atomic::AtomicBool::new(false);
    let most = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(thread_count(pid));
                std::thread::yield_now();
            }
            most.max(thread_count(pid))
        });
        let senders: Vec<_> = (0..50)
            .map(|_| {
                scope.spawn(|| {
                    for _ in 0..10 {
                        let reply =
                            send_mail(server.smtp, "x@remote.test", &["alice@localhost"], &body);
                        assert!(reply.starts_with("250"), "{reply}");
                    }
                })
            })
            .collect();
        let sent: Vec<_> = senders.into_iter().map(|s| s.join()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(sent.iter().all(Result::is_ok), "a sender failed");
        watcher.join().unwrap()
    });
    assert_eq!(server.messages("alice").len(), 500);
    assert!(most <= 8 + 2, "{most} threads");
}

#[test]
fn helo_names_no_mail_server_uses_are_refused_on_port_25() {
    let server = Server::with_users();
    let mut c = server.smtp();
    c.reply();
    assert!(c.ask("EHLO 127.0.0.1").starts_with("501 5.5.2"));
    assert!(c.ask("EHLO mx.test").starts_with("550 5.7.1"));
    assert!(c.ask("EHLO [127.0.0.1]").starts_with("250"));
    // Members' programs on the submission port are not held to it.
    let mut c = Client::connect(server.submission.unwrap());
    c.reply();
    assert!(c.ask("EHLO 127.0.0.1").starts_with("250"));
}

#[test]
fn early_talkers_are_refused_when_greeting_is_delayed() {
    let (_dir, server) = Server::with_config("[smtp]\ngreet_delay = 1\n");
    // Talks at once, as spam engines do.
    let mut c = server.smtp();
    c.send(b"EHLO spam.test\r\nMAIL FROM:<x@spam.test>\r\n");
    assert!(c.reply().starts_with("554 5.5.1"));
    assert!(c.closed());
    // Waits for the greeting, as real servers do.
    let mut c = server.smtp();
    let start = Instant::now();
    assert!(c.reply().starts_with("220"));
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(c.ask("EHLO patient.test").starts_with("250"));
}

#[test]
fn strangers_filling_port_25_leave_submission_free() {
    let (_dir, server) = Server::with_config("[smtp]\nmax_sessions = 3\n");
    let mut idle: Vec<Client> = (0..3).map(|_| server.smtp()).collect();
    for c in &mut idle {
        assert!(c.reply().starts_with("220"));
    }
    let mut c = Client::connect(server.submission.unwrap());
    assert!(c.reply().starts_with("220"), "submission refused");
    c.ask("EHLO laptop.test");
    use base64::Engine;
    let plain = base64::engine::general_purpose::STANDARD.encode("\0alice\0alice-pw");
    assert!(c.ask(&format!("AUTH PLAIN {plain}")).starts_with("235"));
    // POP3 and the TLS listeners have budgets of their own too.
    assert!(pop3_login(&server, "bob", "bob-pw")
        .ask("QUIT")
        .starts_with("+OK"));
}

#[test]
fn the_longest_idle_stranger_makes_room_and_members_stay() {
    let (_dir, server) = Server::with_config("[submission]\nmax_sessions = 3\n");
    let addr = server.submission.unwrap();
    let greeted = || {
        let mut c = Client::connect(addr);
        assert!(c.reply().starts_with("220"));
        c
    };
    let mut member = greeted();
    member.ask("EHLO laptop.test");
    use base64::Engine;
    let plain = base64::engine::general_purpose::STANDARD.encode("\0alice\0alice-pw");
    assert!(member
        .ask(&format!("AUTH PLAIN {plain}"))
        .starts_with("235"));
    let mut oldest = greeted();
    let mut younger = greeted();
    assert!(younger.ask("EHLO stranger.test").starts_with("250"));
    // Full: the newcomer is served, the stranger idle longest is told and closed.
    let mut newcomer = greeted();
    assert!(oldest.reply().starts_with("421"));
    assert!(oldest.closed());
    assert!(server.logged("closed while idle, to make room", Duration::from_secs(5)));
    assert!(member.ask("NOOP").starts_with("250"));
    assert!(younger.ask("NOOP").starts_with("250"));
    assert!(newcomer.ask("EHLO laptop.test").starts_with("250"));
    // When only members hold the listener, a newcomer is refused instead.
    for c in [&mut younger, &mut newcomer] {
        assert!(c.ask(&format!("AUTH PLAIN {plain}")).starts_with("235"));
    }
    let mut refused = Client::connect(addr);
    assert!(refused.reply().starts_with("421 4.3.2"));
    assert!(member.ask("NOOP").starts_with("250"));
}

#[test]
fn silent_tls_clients_are_closed_after_the_handshake_timeout() {
    let (_dir, server) = Server::with_config("[limits]\ntls_handshake_timeout = 1\n");
    // Connected to the implicit-TLS ports, never saying hello.
    let mut silent: Vec<Client> = [server.submissions, server.pop3s]
        .iter()
        .map(|addr| Client::connect(addr.unwrap()))
        .collect();
    // And after STARTTLS, saying nothing more.
    let mut c = Client::connect(server.submission.unwrap());
    c.reply();
    c.ask("EHLO laptop.test");
    assert!(c.ask("STARTTLS").starts_with("220"));
    silent.push(c);
    for c in &mut silent {
        // The server hangs up by itself, well before the client's read timeout.
        assert!(c.closed());
    }
    assert!(server.logged("TLS handshake timed out", Duration::from_secs(5)));
}
