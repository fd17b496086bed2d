//! Mail that leaves: two Postbox instances on loopback. A (serving a.test)
//! queues mail for b.test and hands it to B, through B as a smarthost
//! (login over STARTTLS) or direct to B as b.test's MX (found through a
//! DNS responder of the test's own). Retries while B is down, reports
//! (RFC 3464) for refused and expired mail, the queue commands, and a
//! SIGKILL with a full queue.

mod common;
use common::*;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// B: the b.test mail server with carol and a relay account that may
/// send any From: (as a provider's smarthost lets its customers).
fn peer_b(extra: &[&str]) -> (tempfile::TempDir, Server) {
    let (dir, data, config) = prepare(
        "b.test",
        &["carol", "relay"],
        "[auth]\nfrom_must_match = false\n",
    );
    let server = start(&data, &config, "mx.b.test", extra);
    (dir, server)
}

/// A: a.test with alice, with `toml` for its queue.
fn sender_a(toml: &str) -> (tempfile::TempDir, Server) {
    let base = "[queue]\nretry_first = 1\nretry_max = 2\n";
    let (dir, data, config) = prepare("a.test", &["alice"], &format!("{toml}\n{base}"));
    let server = start(&data, &config, "a.test", &[]);
    (dir, server)
}

/// An address for a peer that is down until the test starts it: on a
/// loopback address no server of the tests binds, so no other test's
/// listener can take its port meanwhile.
fn free_peer() -> String {
    let addr = TcpListener::bind("127.0.3.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    addr.to_string()
}

fn queue_cmd(data: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data", data.to_str().unwrap()]);
    let out = postbox(&all, "");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Waits until `data`'s queue is empty: each message in it was delivered
/// or returned before its record went, so none has an attempt to come.
fn wait_queue_empty(data: &Path, limit: Duration, server: &Server) {
    let start = Instant::now();
    loop {
        let (_, list) = queue_cmd(data, &["list"]);
        if list == "queue is empty\n" {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "after {limit:?} the queue holds:\n{list}\nlog:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A DNS responder for the tests: MX of b.test is mx.b.test, which is
/// 127.0.0.1; nothing.test has no such name; everything else is answered
/// empty. Returns its address.
fn dns_responder() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let q = &buf[..n];
            let mut labels = Vec::new();
            let mut pos = 12;
            while pos < n && q[pos] != 0 {
                let len = q[pos] as usize;
                labels
                    .push(String::from_utf8_lossy(&q[pos + 1..pos + 1 + len]).to_ascii_lowercase());
                pos += 1 + len;
            }
            let name = labels.join(".");
            let kind = u16::from_be_bytes([q[pos + 1], q[pos + 2]]);
            let mut reply = q[..pos + 5].to_vec();
            reply[2] = 0x81;
            reply[3] = 0x80;
            let mut answers = 0u16;
            match (name.as_str(), kind) {
                ("b.test", 15) => {
                    // MX 10 mx.b.test
                    reply.extend_from_slice(&[
                        0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 6, 0, 10, 2, b'm', b'x', 0xc0, 12,
                    ]);
                    answers = 1;
                }
                ("mx.b.test", 1) => {
                    reply.extend_from_slice(&[
                        0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1,
                    ]);
                    answers = 1;
                }
                (n, _) if n.ends_with("nothing.test") => reply[3] = 0x83,
                _ => {}
            }
            reply[6..8].copy_from_slice(&answers.to_be_bytes());
            let _ = socket.send_to(&reply, from);
        }
    });
    addr
}

#[test]
fn through_a_smarthost_with_login_over_starttls() {
    let (b_dir, b) = peer_b(&[]);
    let cert = b_dir.path().join("data/tls/cert.pem");
    let (_a_dir, a) = sender_a(&format!(
        "smarthost = \"localhost:{}\"\nsmarthost_user = \"relay@b.test\"\nsmarthost_password = \"relay-pw\"\nsmarthost_ca = \"{}\"\n",
        b.submission.unwrap().port(),
        cert.display()
    ));
    let reply = submit(&a, "alice@a.test", &["carol@b.test"], "via smarthost");
    assert!(reply.starts_with("250"), "{reply}");
    let got = wait_for_mail(&b.data, "carol@b.test", 1, Duration::from_secs(20), &|| {
        a.log()
    });
    assert!(got[0].contains("Subject: via smarthost"), "{}", got[0]);
    assert_eq!(got[0].matches("Return-Path:").count(), 1, "{}", got[0]);
    assert!(
        got[0].contains("\r\n.line starting with a dot\r\n"),
        "dot-stuffing undone: {}",
        got[0]
    );
    assert!(
        b.logged("TLS", Duration::from_secs(10)),
        "B saw no TLS:\n{}",
        b.log()
    );
    assert!(
        b.logged("relay@b.test", Duration::from_secs(10)),
        "no login on B:\n{}",
        b.log()
    );
    assert!(
        a.logged("delivered to <carol@b.test>", Duration::from_secs(10)),
        "{}",
        a.log()
    );
    assert_eq!(queue_cmd(&a.data, &["list"]).1, "queue is empty\n");
}

#[test]
fn a_smarthost_with_an_unknown_certificate_is_not_trusted() {
    let (_b_dir, b) = peer_b(&[]);
    let (_a_dir, a) = sender_a(&format!(
        "smarthost = \"localhost:{}\"\nsmarthost_user = \"relay@b.test\"\nsmarthost_password = \"relay-pw\"\n",
        b.submission.unwrap().port(),
    ));
    assert!(submit(&a, "alice@a.test", &["carol@b.test"], "untrusted").starts_with("250"));
    assert!(a.logged("deferred", Duration::from_secs(20)), "{}", a.log());
    assert!(
        a.logged("TLS handshake", Duration::from_secs(10)),
        "{}",
        a.log()
    );
    assert!(mailbox_files(&b.data, "carol@b.test").is_empty());
    let (_, list) = queue_cmd(&a.data, &["list"]);
    assert!(
        list.contains("carol@b.test") && list.contains("1 messages"),
        "{list}"
    );
}

#[test]
fn direct_to_the_mx_with_opportunistic_tls() {
    let (_b_dir, b) = peer_b(&[]);
    let resolver = dns_responder();
    let (_a_dir, data, config) = prepare(
        "a.test",
        &["alice"],
        &format!(
            "dns_resolver = \"{resolver}\"\n[queue]\nsmtp_port = {}\nretry_first = 1\n",
            b.smtp.port()
        ),
    );
    let a = start(&data, &config, "a.test", &[]);
    let reply = submit(
        &a,
        "alice@a.test",
        &["carol@b.test", "nobody@nothing.test"],
        "direct",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let got = wait_for_mail(&b.data, "carol@b.test", 1, Duration::from_secs(20), &|| {
        a.log()
    });
    assert!(got[0].contains("Subject: direct"));
    // B's Received: line names A's greeting and the TLS it used.
    assert!(got[0].contains("from a.test"), "{}", got[0]);
    assert!(b.logged("TLS", Duration::from_secs(10)), "{}", b.log());
    // The domain that does not exist bounces at once.
    let reports = wait_for_mail(&a.data, "alice@a.test", 1, Duration::from_secs(20), &|| {
        a.log()
    });
    assert!(reports[0].contains("nobody@nothing.test"), "{}", reports[0]);
    assert!(reports[0].contains("does not exist"), "{}", reports[0]);
}

/// Checks a delivery report with Python's `email` package: a
/// multipart/report with a delivery-status part naming `recipient` with
/// `status`, and the original headers.
fn check_report(report: &str, recipient: &str, status: &str, action: &str, subject: &str) {
    let script = r#"
import email, sys
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.default)
assert msg.get_content_type() == "multipart/report", msg.get_content_type()
assert msg.get_param("report-type") == "delivery-status"
assert msg["From"].addresses[0].username == "MAILER-DAEMON", msg["From"]
parts = list(msg.iter_parts())
kinds = [p.get_content_type() for p in parts]
assert kinds[:3] == ["text/plain", "message/delivery-status", "text/rfc822-headers"], kinds
status = parts[1]
fields = {}
for block in status.get_payload():
    for k, v in block.items():
        fields.setdefault(k.lower(), []).append(str(v))
recipient, code, action, subject = sys.argv[1:5]
assert any(recipient in v for v in fields["final-recipient"]), fields
assert any(v.startswith(code) for v in fields["status"]), fields
assert action in fields["action"], fields
assert subject in parts[2].get_content(), parts[2].get_content()
print("ok")
"#;
    let out = output_with_stdin(
        Command::new("python3").args(["-c", script, recipient, status, action, subject]),
        report.as_bytes(),
    );
    assert!(
        out.status.success(),
        "report does not parse as expected: {}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_permanent_refusal_is_reported_to_the_sender_at_once() {
    let (_b_dir, b) = peer_b(&[]);
    let (_a_dir, a) = sender_a(&format!(
        "smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\nrelay_from = [\"127.0.0.1/32\"]\n",
        b.smtp.port()
    ));
    let reply = submit(
        &a,
        "alice@a.test",
        &["nobody@b.test", "carol@b.test"],
        "partly refused",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let reports = wait_for_mail(&a.data, "alice@a.test", 1, Duration::from_secs(20), &|| {
        a.log()
    });
    check_report(
        &reports[0],
        "nobody@b.test",
        "5.1.1",
        "failed",
        "Subject: partly refused",
    );
    assert!(
        !reports[0].contains("Final-Recipient: rfc822; carol@b.test"),
        "{}",
        reports[0]
    );
    assert_eq!(
        wait_for_mail(&b.data, "carol@b.test", 1, Duration::from_secs(5), &|| a
            .log())
        .len(),
        1
    );

    // A report is never reported on: a bounce from the null sender that
    // fails is dropped with a log line.
    let mut c = a.smtp();
    c.reply();
    c.ask("EHLO relay.a.test");
    assert!(c.ask("MAIL FROM:<>").starts_with("250"));
    assert!(c.ask("RCPT TO:<nobody@b.test>").starts_with("250"));
    c.ask("DATA");
    c.send(b"Subject: a bounce\r\n\r\nx\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(
        a.logged("no report for a message from <>", Duration::from_secs(20)),
        "{}",
        a.log()
    );
    assert_eq!(mailbox_files(&a.data, "alice@a.test").len(), 1);
}

#[test]
fn retried_while_the_peer_is_down_then_delivered() {
    let peer = free_peer();
    let (_a_dir, a) = sender_a(&format!(
        "smarthost = \"{peer}\"\nsmarthost_tls = \"none\"\n"
    ));
    assert!(submit(&a, "alice@a.test", &["carol@b.test"], "patience").starts_with("250"));
    let start = Instant::now();
    while a.log().matches("deferred").count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, list) = queue_cmd(&a.data, &["list"]);
    assert!(
        ok && list.contains("carol@b.test") && list.contains("last error: connect"),
        "{list}"
    );
    let (_b_dir, b) = peer_b(&["--smtp", &peer]);
    let got = wait_for_mail(&b.data, "carol@b.test", 1, Duration::from_secs(20), &|| {
        a.log()
    });
    assert!(got[0].contains("Subject: patience"));
    wait_queue_empty(&a.data, Duration::from_secs(10), &a);
}

#[test]
fn a_delay_notice_then_the_message_returned_when_it_expires() {
    let peer = free_peer();
    let (_a_dir, a) = sender_a(&format!(
        "smarthost = \"{peer}\"\nsmarthost_tls = \"none\"\nqueue_warn = \"1s\"\nqueue_return = 4\n"
    ));
    assert!(submit(&a, "alice@a.test", &["carol@b.test"], "never arrives").starts_with("250"));
    let reports = wait_for_mail(&a.data, "alice@a.test", 2, Duration::from_secs(30), &|| {
        a.log()
    });
    let delayed = reports
        .iter()
        .find(|r| r.contains("Action: delayed"))
        .expect("a delay notice");
    check_report(
        delayed,
        "carol@b.test",
        "4.",
        "delayed",
        "Subject: never arrives",
    );
    let failed = reports
        .iter()
        .find(|r| r.contains("Action: failed"))
        .expect("a failure report");
    check_report(
        failed,
        "carol@b.test",
        "4.4.7",
        "failed",
        "Subject: never arrives",
    );
    assert_eq!(queue_cmd(&a.data, &["list"]).1, "queue is empty\n");
}

#[test]
fn queue_commands_list_flush_and_delete() {
    let peer = free_peer();
    // An hour between tries: only a flush makes it try again.
    let (_a_dir, data, config) = prepare(
        "a.test",
        &["alice"],
        &format!("smarthost = \"{peer}\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 3600\n"),
    );
    let a = start(&data, &config, "a.test", &[]);
    assert!(submit(&a, "alice@a.test", &["carol@b.test"], "one").starts_with("250"));
    assert!(submit(&a, "alice@a.test", &["carol@b.test"], "two").starts_with("250"));
    let start_wait = Instant::now();
    while a.log().matches("deferred").count() < 2 {
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, list) = queue_cmd(&data, &["list"]);
    assert!(
        list.contains("2 messages") && list.contains("next in"),
        "{list}"
    );
    let first_id = list
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let (ok, said) = queue_cmd(&data, &["delete", &first_id]);
    assert!(ok, "{said}");
    assert!(queue_cmd(&data, &["list"]).1.contains("1 messages"));
    let (ok, said) = queue_cmd(&data, &["delete", &first_id]);
    assert!(!ok && said.contains("no message"), "{said}");

    let (_b_dir, b) = peer_b(&["--smtp", &peer]);
    let (ok, said) = queue_cmd(&data, &["flush"]);
    assert!(ok, "{said}");
    let got = wait_for_mail(&b.data, "carol@b.test", 1, Duration::from_secs(20), &|| {
        a.log()
    });
    assert!(
        got[0].contains("Subject: two"),
        "the deleted one went out: {}",
        got[0]
    );
    // The flush has done its work once the queue is empty; only then can
    // "one" no longer show up.
    wait_queue_empty(&data, Duration::from_secs(20), &a);
    assert_eq!(mailbox_files(&b.data, "carol@b.test").len(), 1);

    drop(a);
    let (ok, said) = queue_cmd(&data, &["flush"]);
    assert!(!ok && said.contains("no server is running"), "{said}");
    let (ok, said) = queue_cmd(&data, &["bogus"]);
    assert!(!ok && said.contains("unknown queue subcommand"), "{said}");
}

#[test]
fn a_full_queue_survives_sigkill() {
    let peer = free_peer();
    let (a_dir, data, config) = prepare(
        "a.test",
        &["alice"],
        &format!("smarthost = \"{peer}\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 1\nretry_max = 1\n"),
    );
    let mut a = start(&data, &config, "a.test", &[]);
    const N: usize = 20;
    for i in 0..N {
        assert!(submit(
            &a,
            "alice@a.test",
            &["carol@b.test"],
            &format!("number {i}")
        )
        .starts_with("250"));
    }
    a.kill();
    let (_b_dir, mut b) = peer_b(&["--smtp", &peer]);
    let mut a = start(&data, &config, "a.test", &[]);
    wait_for_mail(&b.data, "carol@b.test", N, Duration::from_secs(30), &|| {
        a.log()
    });
    // No copy can come after both have stopped: count then.
    wait_queue_empty(&data, Duration::from_secs(30), &a);
    assert!(a.terminate().success(), "{}", a.log());
    assert!(b.terminate().success(), "{}", b.log());
    let got: Vec<String> = mailbox_files(&b.data, "carol@b.test")
        .iter()
        .map(|m| String::from_utf8_lossy(&std::fs::read(m).unwrap()).into_owned())
        .collect();
    assert_eq!(got.len(), N);
    for i in 0..N {
        let subject = format!("Subject: number {i}\r\n");
        assert_eq!(
            got.iter().filter(|m| m.contains(&subject)).count(),
            1,
            "{subject}"
        );
    }
    drop(a_dir);
}

/// One message for carol@b.test from a relay_from client; errors (the
/// server was killed) end it quietly. Returns the reply to the final dot.
fn relay_once(addr: SocketAddr, subject: &str) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut reply = || -> std::io::Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(all);
            }
        }
    };
    reply()?;
    for line in [
        "EHLO lan.test",
        "MAIL FROM:<printer@lan.test>",
        "RCPT TO:<carol@b.test>",
        "DATA",
    ] {
        writer.write_all(format!("{line}\r\n").as_bytes())?;
        reply()?;
    }
    writer.write_all(
        format!("Subject: {subject}\r\n\r\nbody of {subject}\r\nend\r\n.\r\n").as_bytes(),
    )?;
    reply()
}

#[test]
fn sigkill_at_random_moments_loses_no_queued_mail() {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const ROUNDS: usize = 6;
    let (_b_dir, mut b) = peer_b(&[]);
    let (_a_dir, data, config) = prepare(
        "a.test",
        &["alice"],
        &format!(
            "relay_from = [\"127.0.0.1/32\"]\nsmarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 1\nretry_max = 1\n",
            b.smtp.port()
        ),
    );
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut seed: u64 = 0x5eed_0e0e_2026;
    let mut next = 0usize;
    for round in 0..ROUNDS {
        let a = start(&data, &config, "a.test", &[]);
        let before = accepted.lock().unwrap().len();
        let stop = Arc::new(AtomicBool::new(false));
        let sender = {
            let (stop, accepted, addr) = (stop.clone(), accepted.clone(), a.smtp);
            let first = next;
            std::thread::spawn(move || {
                let mut n = first;
                while !stop.load(Ordering::SeqCst) {
                    let subject = format!("crash {n}");
                    n += 1;
                    match relay_once(addr, &subject) {
                        Ok(reply) if reply.starts_with("250") => {
                            accepted.lock().unwrap().push(subject)
                        }
                        _ => break,
                    }
                }
                n
            })
        };
        // Every round takes a message before its kill, so every kill
        // lands on a server at work.
        let start_wait = Instant::now();
        while accepted.lock().unwrap().len() == before {
            assert!(
                start_wait.elapsed() < Duration::from_secs(20),
                "round {round}: no message accepted:\n{}",
                a.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 400));
        let mut a = a;
        a.kill();
        stop.store(true, Ordering::SeqCst);
        next = sender.join().unwrap_or(next + 1000) + 1;
        // Every queue record still parses.
        let (ok, list) = queue_cmd(&data, &["list"]);
        assert!(ok, "round {round}: {list}");
    }
    let mut a = start(&data, &config, "a.test", &[]);
    wait_queue_empty(&data, Duration::from_secs(60), &a);
    // No copy can come after both have stopped: count then.
    assert!(a.terminate().success(), "{}", a.log());
    assert!(b.terminate().success(), "{}", b.log());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in mailbox_files(&b.data, "carol@b.test") {
        let text = String::from_utf8(std::fs::read(&m).unwrap()).unwrap();
        let subject = text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .expect("a whole message")
            .to_string();
        assert!(
            text.ends_with(&format!("body of {subject}\r\nend\r\n")),
            "partial: {text}"
        );
        *seen.entry(subject).or_insert(0) += 1;
    }
    let accepted = accepted.lock().unwrap();
    for subject in accepted.iter() {
        assert!(
            seen.contains_key(subject),
            "{subject} answered 250 but never delivered"
        );
    }
    // A copy may go twice only if A died between B's 250 and forgetting it.
    let twice: usize = seen.values().map(|n| n - 1).sum();
    assert!(twice <= ROUNDS * 8, "{twice} duplicates");
}

#[test]
fn what_leaves_has_only_crlf_line_ends_and_no_nul() {
    let (port, data) = smtp_sink();
    let (_a_dir, a) = sender_a(&format!(
        "smarthost = \"127.0.0.1:{port}\"\nsmarthost_tls = \"none\"\n"
    ));
    let mut c = member_login(a.submission.unwrap(), "laptop.a.test", "alice", "alice-pw");
    assert!(c.ask("MAIL FROM:<alice@a.test>").starts_with("250"));
    assert!(c.ask("RCPT TO:<carol@b.test>").starts_with("250"));
    assert!(c.ask("DATA").starts_with("354"));
    c.send(b"From: alice@a.test\r\nTo: carol@b.test\r\nSubject: odd ends\r\n\r\n");
    c.send(b"one\r.\rtwo\r.\r\nthree\r\n\x00.\r\nfour\n.\nfive\r\n");
    // (Lines over 998 octets are refused on the way in, so none is queued.)
    c.send(b"last\r\n.\r\n");
    let reply = c.reply();
    assert!(reply.starts_with("250"), "{reply}");
    let wire = data
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("nothing reached the sink: {}", a.log()));
    let text = String::from_utf8_lossy(&wire);
    assert!(!wire.contains(&0), "NUL sent on: {text:?}");
    for (i, &b) in wire.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(wire.get(i + 1), Some(&b'\n'), "bare CR: {text:?}"),
            b'\n' => assert_eq!(wire[i - 1], b'\r', "bare LF: {text:?}"),
            _ => {}
        }
    }
    let body = &text[..text.len() - 3];
    assert!(
        !body.contains("\r\n.\r\n"),
        "an early end of data: {text:?}"
    );
    assert!(
        body.lines().all(|l| l.len() <= 998),
        "a line over 998 octets"
    );
    for word in ["one", "two", "three", "four", "five", "last"] {
        assert!(
            body.contains(&format!("{word}\r\n")),
            "{word} lost: {text:?}"
        );
    }
}

#[test]
fn a_flush_during_an_attempt_is_not_lost() {
    // A smarthost that takes the connection and says nothing: the attempt
    // lasts until the test lets it fail.
    let smarthost = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = smarthost.local_addr().unwrap().port();
    let (_a_dir, data, config) = prepare(
        "a.test",
        &["alice"],
        &format!("smarthost = \"127.0.0.1:{port}\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 3600\n"),
    );
    let a = start(&data, &config, "a.test", &[]);
    assert!(submit(&a, "alice@a.test", &["carol@b.test"], "flushed").starts_with("250"));
    let (first, _) = smarthost.accept().unwrap();
    assert!(queue_cmd(&data, &["flush"]).0);
    assert!(a.logged("queue flush requested", Duration::from_secs(10)));
    drop(first);
    assert!(a.logged("deferred", Duration::from_secs(20)), "{}", a.log());
    // The flush asked for a try now, not in an hour.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(smarthost.accept().is_ok());
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)),
        Ok(true),
        "no second attempt: {}",
        a.log()
    );
}
