//! TLS, login and submission with real clients (curl, Python, swaks,
//! openssl s_client) and a rustls client for the protocol details.

mod common;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn cert_path(server: &Server) -> PathBuf {
    server.data.join("tls/cert.pem")
}

/// A client that trusts only the server's own certificate, for `mx.test`.
fn tls_config(cert: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn wrap(tcp: TcpStream, cert: &Path) -> TlsStream {
    let name = ServerName::try_from("mx.test").unwrap();
    let conn = rustls::ClientConnection::new(tls_config(cert), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // Drive the handshake now so a failure shows here.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}

/// Line reading over TLS, one byte at a time: slow but exact, so nothing
/// after a reply is consumed.
fn tls_line(tls: &mut TlsStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        match tls.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&line)
        .trim_end_matches(['\r', '\n'])
        .to_string()
}

fn tls_reply(tls: &mut TlsStream) -> String {
    let mut lines = Vec::new();
    loop {
        let line = tls_line(tls);
        let last = line.len() < 4 || line.as_bytes()[3] != b'-';
        lines.push(line);
        if last {
            return lines.join("\n");
        }
    }
}

fn tls_ask(tls: &mut TlsStream, line: &str) -> String {
    tls.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    tls_reply(tls)
}

/// A plain SMTP session read up to the point of STARTTLS; returns the
/// raw socket for wrapping.
fn smtp_starttls(addr: SocketAddr, cert: &Path) -> TlsStream {
    let mut c = Client::connect(addr);
    assert!(c.reply().starts_with("220"));
    assert!(c.ask("EHLO client.test").contains("STARTTLS"));
    assert_eq!(c.ask("STARTTLS"), "220 2.0.0 Ready to start TLS");
    let mut tls = wrap(c.stream, cert);
    assert!(tls_ask(&mut tls, "EHLO client.test").starts_with("250-mx.test"));
    tls
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn tls_only_server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    add_user(&data, "bob", "bob-pw");
    let server = Server::start_tls_only(&data, &[]);
    (dir, server)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn curl(server: &Server, port: u16, args: &[&str]) -> (bool, String) {
    // --resolve pins mx.test to loopback: no DNS, and the name is checked
    // against the certificate.
    let resolve = format!("mx.test:{port}:127.0.0.1");
    run(Command::new("curl")
        .args(["-sS", "--max-time", "20", "--resolve", &resolve, "--cacert"])
        .arg(cert_path(server))
        .args(args))
}

fn message_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join(format!("msg-{}.txt", text.len()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn curl_submits_over_starttls_and_implicit_tls_and_reads_over_stls_and_pop3s() {
    let (dir, server) = tls_only_server();
    let body = "From: Alice <alice@localhost>\r\nTo: bob@localhost\r\nSubject: via 587\r\n\r\nhello bob\r\n";
    let file = message_file(dir.path(), body);
    let sub = server.submission.unwrap().port();
    let (ok, out) = curl(
        &server,
        sub,
        &[
            "--ssl-reqd",
            &format!("smtp://mx.test:{sub}"),
            "-u",
            "alice:alice-pw",
            "--mail-from",
            "alice@localhost",
            "--mail-rcpt",
            "bob@localhost",
            "--upload-file",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "curl submission: {out}");
    let subs = server.submissions.unwrap().port();
    let (ok, out) = curl(
        &server,
        subs,
        &[
            &format!("smtps://mx.test:{subs}"),
            "-u",
            "alice:alice-pw",
            "--mail-from",
            "alice@localhost",
            "--mail-rcpt",
            "bob@localhost",
            "--upload-file",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "curl smtps: {out}");
    let pop3 = server.pop3.port();
    let (ok, listing) = curl(
        &server,
        pop3,
        &[
            "--ssl-reqd",
            &format!("pop3://mx.test:{pop3}/"),
            "-u",
            "bob:bob-pw",
        ],
    );
    assert!(ok, "curl pop3 STLS: {listing}");
    assert_eq!(listing.lines().count(), 2, "{listing}");
    let pop3s = server.pop3s.unwrap().port();
    let (ok, text) = curl(
        &server,
        pop3s,
        &[&format!("pop3s://mx.test:{pop3s}/1"), "-u", "bob:bob-pw"],
    );
    assert!(ok, "curl pop3s: {text}");
    assert!(text.contains("with ESMTPSA"), "{text}");
    assert!(text.ends_with("hello bob\r\n"), "{text}");
    // Without TLS the login is refused, and curl says so.
    let (ok, _) = run(Command::new("curl").args([
        "-sS",
        &format!("pop3://127.0.0.1:{pop3}/1"),
        "-u",
        "bob:bob-pw",
    ]));
    assert!(!ok);
}

#[test]
fn python_smtplib_starttls_login_and_poplib_ssl() {
    let (_dir, server) = tls_only_server();
    let script = r#"
import smtplib, poplib, ssl, sys
cert, sub, pop3s, pop3 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.create_default_context(cafile=cert)
ctx.check_hostname = False  # connected by address; the chain is still verified
s = smtplib.SMTP("127.0.0.1", sub, timeout=20)
s.starttls(context=ctx)
s.login("alice", "alice-pw")
s.sendmail("alice@localhost", ["bob@localhost"],
    "From: alice@localhost\r\nSubject: py\r\n\r\nfrom python\r\n")
try:
    s.sendmail("bob@localhost", ["bob@localhost"], "Subject: x\r\n\r\nx\r\n")
    sys.exit("impersonation accepted")
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 553, e
s.quit()
p = poplib.POP3_SSL("127.0.0.1", pop3s, context=ctx, timeout=20)
p.user("bob"); p.pass_("bob-pw")
count, _ = p.stat()
assert count == 1, count
lines = p.retr(1)[1]
assert b"from python" in lines, lines
p.quit()
p = poplib.POP3("127.0.0.1", pop3, timeout=20)
p.stls(context=ctx)
p.user("bob"); p.pass_("bob-pw")
assert p.stat()[0] == 1
p.quit()
print("ok")
"#;
    let (ok, out) = run(Command::new("python3").args([
        "-c",
        script,
        cert_path(&server).to_str().unwrap(),
        &server.submission.unwrap().port().to_string(),
        &server.pop3s.unwrap().port().to_string(),
        &server.pop3.port().to_string(),
    ]));
    assert!(ok && out.trim_end().ends_with("ok"), "{out}");
}

#[test]
fn openssl_s_client_verifies_starttls_on_smtp_and_pop3() {
    let (_dir, server) = tls_only_server();
    for (proto, addr) in [
        ("smtp", server.smtp),
        ("smtp", server.submission.unwrap()),
        ("pop3", server.pop3),
    ] {
        let (ok, out) = run(Command::new("sh").arg("-c").arg(format!(
            "echo QUIT | openssl s_client -connect {addr} -starttls {proto} -CAfile {} -verify_hostname mx.test -verify_return_error -brief",
            cert_path(&server).display()
        )));
        assert!(ok, "{proto} {addr}: {out}");
        assert!(out.contains("Verification: OK"), "{out}");
    }
}

#[test]
fn swaks_authenticates_over_tls_and_is_refused_relaying() {
    let (_dir, server) = tls_only_server();
    let swaks = |args: &[&str]| run(Command::new("swaks").args(["--timeout", "20"]).args(args));
    // Alice submits to bob: server, TLS mode, mechanism, password.
    let submit = |server: String, tls: &str, mechanism: &str, password: &str| {
        swaks(&[
            "--server",
            &server,
            tls,
            "--auth",
            mechanism,
            "--auth-user",
            "alice",
            "--auth-password",
            password,
            "--from",
            "alice@localhost",
            "--to",
            "bob@localhost",
            "--header",
            "From: alice@localhost",
        ])
    };
    let sub = server.submission.unwrap().to_string();
    let subs = server.submissions.unwrap().to_string();
    let (ok, out) = submit(sub.clone(), "--tls", "PLAIN", "alice-pw");
    assert!(ok, "{out}");
    let (ok, out) = submit(subs, "--tls-on-connect", "LOGIN", "alice-pw");
    assert!(ok, "{out}");
    let (ok, out) = submit(sub, "--tls", "PLAIN", "wrong");
    assert!(!ok && out.contains("535 5.7.8"), "{out}");
    let smtp = server.smtp.to_string();
    let (ok, out) = swaks(&[
        "--server",
        &smtp,
        "--from",
        "spammer@evil.test",
        "--to",
        "victim@elsewhere.test",
    ]);
    assert!(!ok && out.contains("550 5.7.1"), "{out}");
    assert_eq!(server.messages("bob").len(), 2);
}

#[test]
fn no_login_before_tls() {
    let (_dir, server) = tls_only_server();
    for addr in [server.smtp, server.submission.unwrap()] {
        let mut c = Client::connect(addr);
        c.reply();
        let ehlo = c.ask("EHLO client.test");
        assert!(!ehlo.contains("AUTH"), "{ehlo}");
        assert!(ehlo.contains("STARTTLS"), "{ehlo}");
        let reply = c.ask(&format!("AUTH PLAIN {}", b64("\0alice\0alice-pw")));
        assert!(reply.starts_with("538 5.7.11"), "{reply}");
    }
    let mut c = server.pop3();
    c.line();
    c.cmd("CAPA");
    let capa = String::from_utf8(c.multiline()).unwrap();
    assert!(
        capa.contains("STLS\r\n") && !capa.contains("USER\r\n"),
        "{capa}"
    );
    assert!(!capa.contains("SASL"), "{capa}");
    for cmd in [
        "USER alice".to_string(),
        format!("AUTH PLAIN {}", b64("\0alice\0alice-pw")),
    ] {
        c.cmd(&cmd);
        assert!(c.line().starts_with("-ERR [AUTH]"));
    }
    // The submission port wants a login before anything is sent.
    let mut c = Client::connect(server.submission.unwrap());
    c.reply();
    c.ask("EHLO client.test");
    assert!(c
        .ask("MAIL FROM:<alice@localhost>")
        .starts_with("530 5.7.0"));
}

#[test]
fn commands_pipelined_with_starttls_are_discarded() {
    let (_dir, server) = tls_only_server();
    // SMTP: an attacker in the path appends a command to the client's
    // STARTTLS; it must not run inside the TLS session.
    let mut c = Client::connect(server.smtp);
    c.reply();
    c.ask("EHLO client.test");
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n");
    assert_eq!(c.reply(), "220 2.0.0 Ready to start TLS");
    let mut tls = wrap(c.stream, &cert_path(&server));
    let first = tls_ask(&mut tls, "EHLO client.test");
    assert!(
        first.starts_with("250-mx.test Hello client.test"),
        "{first}"
    );
    // The session was reset: no MAIL transaction is open.
    assert!(tls_ask(&mut tls, "RCPT TO:<bob@localhost>").starts_with("503"));
    // POP3 the same way, with USER injected behind STLS.
    let mut c = server.pop3();
    c.line();
    c.send(b"STLS\r\nUSER alice\r\n");
    assert_eq!(c.line(), "+OK Begin TLS negotiation");
    let mut tls = wrap(c.stream, &cert_path(&server));
    tls.write_all(b"PASS alice-pw\r\n").unwrap();
    let reply = tls_line(&mut tls);
    assert!(
        reply.starts_with("-ERR"),
        "injected USER took effect: {reply}"
    );
    assert!(
        server.logged("discarded", Duration::from_secs(10)),
        "{}",
        server.log()
    );
}

#[test]
fn submission_checks_sender_and_from_header() {
    let (_dir, server) = tls_only_server();
    let mut tls = smtp_starttls(server.submission.unwrap(), &cert_path(&server));
    let auth = format!("AUTH PLAIN {}", b64("\0alice\0alice-pw"));
    assert!(tls_ask(&mut tls, &auth).starts_with("235 2.7.0"));
    assert!(tls_ask(&mut tls, "MAIL FROM:<bob@localhost>").starts_with("553 5.7.1"));
    assert!(tls_ask(&mut tls, "MAIL FROM:<alice@localhost>").starts_with("250"));
    assert!(tls_ask(&mut tls, "RCPT TO:<bob@localhost>").starts_with("250"));
    // Anywhere else is allowed for a member (through the queue).
    assert!(tls_ask(&mut tls, "RCPT TO:<friend@elsewhere.test>").starts_with("250"));
    assert!(tls_ask(&mut tls, "DATA").starts_with("354"));
    let forged = "From: Bob <bob@localhost>\r\nSubject: forged\r\n\r\nhi\r\n.";
    let reply = tls_ask(&mut tls, forged);
    assert!(reply.starts_with("553 5.7.1"), "{reply}");
    assert!(server.messages("bob").is_empty(), "refused mail was stored");
    assert!(
        std::fs::read_dir(server.data.join("queue"))
            .unwrap()
            .next()
            .is_none(),
        "refused mail was queued"
    );
    tls_ask(&mut tls, "MAIL FROM:<ALICE@localhost>");
    tls_ask(&mut tls, "RCPT TO:<bob@localhost>");
    tls_ask(&mut tls, "DATA");
    let own = "From: \"Alice A.\" <alice@LOCALHOST>\r\nSubject: mine\r\n\r\nhi\r\n.";
    assert!(tls_ask(&mut tls, own).starts_with("250 2.0.0"));
    assert_eq!(server.messages("bob").len(), 1);
    // A From: that cannot be read is refused, and the log says so in words.
    tls_ask(&mut tls, "MAIL FROM:<alice@localhost>");
    tls_ask(&mut tls, "RCPT TO:<bob@localhost>");
    tls_ask(&mut tls, "DATA");
    let unreadable = "From: <<<@\r\nSubject: odd\r\n\r\nhi\r\n.";
    let reply = tls_ask(&mut tls, unreadable);
    assert!(!reply.starts_with("250"), "{reply}");
    let why = "refused: From: header cannot be read";
    assert!(
        server.logged(why, Duration::from_secs(5)),
        "{}",
        server.log()
    );
}

#[test]
fn failed_logins_wait_longer_each_time() {
    let (_dir, server) = tls_only_server();
    let mut tls = smtp_starttls(server.submission.unwrap(), &cert_path(&server));
    let mut waits = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let reply = tls_ask(&mut tls, &format!("AUTH PLAIN {}", b64("\0alice\0nope")));
        assert!(reply.starts_with("535 5.7.8"), "{reply}");
        waits.push(start.elapsed());
    }
    assert!(waits[0] >= Duration::from_millis(700), "{waits:?}");
    assert!(waits[2] >= Duration::from_millis(2800), "{waits:?}");
    // Unknown users get the same answer: nothing says which part was wrong.
    let reply = tls_ask(&mut tls, &format!("AUTH PLAIN {}", b64("\0nobody\0nope")));
    assert!(reply.starts_with("535 5.7.8 Authentication credentials invalid"));
}

#[test]
fn relay_from_networks_may_relay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("postbox.toml");
    // A smarthost nobody answers at: the message stays queued, and no
    // DNS question is asked.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        &config,
        format!(
            "relay_from = [\"127.0.0.1/32\"]\nsmarthost = \"{dead}\"\nsmarthost_tls = \"none\"\n"
        ),
    )
    .unwrap();
    let server = Server::start_in(&data, &["--config", config.to_str().unwrap()]);
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO client.test");
    c.ask("MAIL FROM:<printer@lan.test>");
    let reply = c.ask("RCPT TO:<friend@elsewhere.test>");
    assert!(reply.starts_with("250"), "{reply}");
    assert!(c.ask("DATA").starts_with("354"));
    assert!(c.ask("Subject: scan\r\n\r\npage 1\r\n.").starts_with("250"));
    let listed = postbox(&["queue", "list", "--data", data.to_str().unwrap()], "");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("from <printer@lan.test>  to friend@elsewhere.test"),
        "{listed}"
    );
}

fn presented_fingerprint(server: &Server) -> String {
    // No verification here: the point is to see what the server presents.
    let (ok, out) = run(Command::new("sh").arg("-c").arg(format!(
        "openssl s_client -connect {} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
        server.pop3s.unwrap()
    )));
    assert!(ok, "{out}");
    out.trim().rsplit('=').next().unwrap().to_string()
}

fn tls_show(data: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["tls", "show", "--data", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = postbox(&args, "");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn fingerprint_in(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("SHA-256:"))
        .expect("fingerprint line")
        .trim()
        .to_string()
}

#[test]
fn self_signed_certificate_is_shown_regenerated_and_reloaded() {
    let (_dir, server) = tls_only_server();
    let (ok, shown) = tls_show(&server.data, &[]);
    assert!(ok, "{shown}");
    assert!(shown.contains("subject:     CN=mx.test"), "{shown}");
    let fingerprint = fingerprint_in(&shown);
    assert!(
        server.logged(&fingerprint, Duration::from_secs(10)),
        "log lacks the fingerprint"
    );
    assert_eq!(presented_fingerprint(&server), fingerprint);
    let data = server.data.to_str().unwrap();
    let out = postbox(
        &["tls", "selfsigned", "--data", data, "--hostname", "mx.test"],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "replaced without --force");
    let out = postbox(
        &[
            "tls",
            "selfsigned",
            "--force",
            "--data",
            data,
            "--hostname",
            "mx.test",
        ],
        "",
    );
    assert!(out.status.success());
    let renewed = fingerprint_in(&String::from_utf8_lossy(&out.stdout));
    assert_ne!(renewed, fingerprint);
    // The running server presents the new one without a restart.
    assert_eq!(presented_fingerprint(&server), renewed);
    let mut c = Client::connect(server.smtp);
    c.reply();
    assert!(c.ask("EHLO x").contains("STARTTLS"));
    // The console's status shows what clients will see.
    let out = postbox(&["console", "--data", data], "status\nquit\n");
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains(&renewed), "{status}");
}

#[test]
fn configured_certificate_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("club.pem");
    let key = dir.path().join("club.key");
    let (ok, out) = run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=mail.club.test",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]));
    assert!(ok, "{out}");
    let config = dir.path().join("postbox.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert = {:?}\nkey = {:?}\n",
            cert.to_str().unwrap(),
            key.to_str().unwrap()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let config = config.to_str().unwrap();
    let server = Server::start_tls_only(&data, &["--config", config]);
    assert!(
        !data.join("tls/cert.pem").exists(),
        "made a self-signed one anyway"
    );
    let (ok, shown) = tls_show(&data, &["--config", config]);
    assert!(ok && shown.contains("CN=mail.club.test"), "{shown}");
    assert_eq!(presented_fingerprint(&server), fingerprint_in(&shown));
    let out = postbox(&["tls", "selfsigned", "--force", "--config", config], "");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_certificate_config_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postbox.toml");
    std::fs::write(
        &config,
        "[tls]\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.key\"\n",
    )
    .unwrap();
    let out = postbox(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data",
            dir.path().join("d").to_str().unwrap(),
            "--smtp",
            "127.0.0.1:0",
            "--pop3",
            "127.0.0.1:0",
            "--submission",
            "off",
            "--submissions",
            "off",
            "--pop3s",
            "off",
            "--web",
            "off",
            "--http",
            "off",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read certificate /nonexistent.pem"),
        "{err}"
    );
}

/// Reads to the end (a TLS alert may come first); true once the server closed.
fn hung_up(c: Client) -> bool {
    let mut rest = Vec::new();
    let mut reader = c.reader;
    match reader.read_to_end(&mut rest) {
        Ok(_) => !String::from_utf8_lossy(&rest).contains("250"),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn handshake_garbage_ends_only_that_connection() {
    let (_dir, server) = tls_only_server();
    // Implicit TLS port: plaintext SMTP instead of a ClientHello.
    let mut c = Client::connect(server.submissions.unwrap());
    c.send(b"EHLO not-tls\r\nMAIL FROM:<x@y>\r\n");
    assert!(hung_up(c), "garbage handshake left open");
    // After STARTTLS: random bytes instead of a handshake.
    let mut c = Client::connect(server.smtp);
    c.reply();
    c.ask("EHLO client.test");
    assert_eq!(c.ask("STARTTLS"), "220 2.0.0 Ready to start TLS");
    c.send(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x00, 0x13, 0x37, 0x42]);
    c.send(&[0u8; 4096]);
    assert!(hung_up(c));
    // POP3S with an immediate hang-up.
    drop(Client::connect(server.pop3s.unwrap()));
    // The server keeps serving everyone else, over TLS too.
    let mut tls = smtp_starttls(server.submission.unwrap(), &cert_path(&server));
    assert!(tls_ask(&mut tls, "NOOP").starts_with("250"));
    assert!(
        server.logged("TLS handshake failed", Duration::from_secs(10)),
        "{}",
        server.log()
    );
}

#[test]
fn tls_sessions_end_with_close_notify() {
    // Reading to the end with ragged EOFs reported: a TCP close without
    // close_notify raises SSLEOFError, a clean TLS close reads b"".
    let server = Server::with_users();
    let script = r#"
import socket, ssl, sys
cert = sys.argv[1]
smtps, pop3s, submission, pop3 = (int(p) for p in sys.argv[2:6])
ctx = ssl.create_default_context(cafile=cert)
ctx.check_hostname = False  # connected by address; the chain is still verified

def until(sock, end):
    got = b""
    while not got.endswith(end):
        chunk = sock.recv(1)
        if not chunk:
            sys.exit("closed early: %r" % got)
        got += chunk
    return got

def quit_cleanly(name, tls, expect):
    tls.sendall(b"QUIT\r\n")
    got = b""
    try:
        while True:
            chunk = tls.recv(4096)
            if not chunk:
                break
            got += chunk
    except ssl.SSLEOFError as e:
        sys.exit("%s: no close_notify after QUIT (%s); got %r" % (name, e, got))
    if expect not in got:
        sys.exit("%s: %r" % (name, got))
    print(name, "clean")

def implicit(port):
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    return ctx.wrap_socket(raw, suppress_ragged_eofs=False)

tls = implicit(smtps)
until(tls, b"\r\n")
quit_cleanly("smtps", tls, b"221 ")

tls = implicit(pop3s)
until(tls, b"\r\n")
quit_cleanly("pop3s", tls, b"+OK")

raw = socket.create_connection(("127.0.0.1", submission), timeout=20)
until(raw, b"\r\n")
raw.sendall(b"EHLO client.test\r\n")
while True:
    line = until(raw, b"\r\n")
    if line.startswith(b"250 "):
        break
raw.sendall(b"STARTTLS\r\n")
until(raw, b"\r\n")
quit_cleanly("starttls", ctx.wrap_socket(raw, suppress_ragged_eofs=False), b"221 ")

raw = socket.create_connection(("127.0.0.1", pop3), timeout=20)
until(raw, b"\r\n")
raw.sendall(b"STLS\r\n")
until(raw, b"\r\n")
quit_cleanly("stls", ctx.wrap_socket(raw, suppress_ragged_eofs=False), b"+OK")
print("ok")
"#;
    let (ok, out) = run(Command::new("python3").args([
        "-c",
        script,
        cert_path(&server).to_str().unwrap(),
        &server.submissions.unwrap().port().to_string(),
        &server.pop3s.unwrap().port().to_string(),
        &server.submission.unwrap().port().to_string(),
        &server.pop3.port().to_string(),
    ]));
    assert!(ok && out.trim_end().ends_with("ok"), "{out}");
}
