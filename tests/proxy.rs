//! Listeners behind a proxy: Debian's haproxy in front (send-proxy and
//! send-proxy-v2, health checks), clients on their own loopback addresses,
//! and connections that skip the proxy or its header.

mod common;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The clients, each on its own loopback address; the proxy (haproxy)
/// connects from 127.0.0.1, the only address in proxy_from.
const RELAY_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

const CONFIG: &str = "\
proxy_from = [\"127.0.0.1/32\"]
relay_from = [\"127.0.0.5/32\"]
[smtp]
proxy_protocol = true
[pop3]
proxy_protocol = true
[pop3s]
proxy_protocol = true
[web]
proxy_protocol = true
[limits]
login_failures = 1
";

/// haproxy in the foreground with a config of its own, stopped when dropped.
struct Haproxy {
    child: Child,
    dir: PathBuf,
    /// Each frontend's address, by the name of its backend.
    frontends: Vec<(String, SocketAddr)>,
}

/// A port nobody listens on now (the system's pick, given back).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Haproxy {
    /// One frontend per backend, each backend one server with its
    /// `server` options and health check lines.
    fn start(dir: &Path, backends: &[(&str, &str, SocketAddr, &str)]) -> Haproxy {
        let mut config = format!(
            "global\n    stats socket {}/stats.sock mode 600 level admin\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n",
            dir.display()
        );
        let mut frontends = Vec::new();
        for (name, check, server, options) in backends {
            let front = SocketAddr::from(([127, 0, 0, 1], free_port()));
            config.push_str(&format!(
                "frontend {name}\n    bind {front}\n    default_backend {name}\n\
                 backend {name}\n{check}    server postbox {server} {options} check inter 300ms rise 1 fall 1\n"
            ));
            frontends.push((name.to_string(), front));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        // Debian puts it in /usr/sbin, off a plain user's PATH.
        let sbin = Path::new("/usr/sbin/haproxy");
        let bin = if sbin.exists() {
            sbin
        } else {
            Path::new("haproxy")
        };
        let child = Command::new(bin)
            .args(["-db", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy (scripts/install-test-deps installs it)");
        let haproxy = Haproxy {
            child,
            dir: dir.to_path_buf(),
            frontends,
        };
        common::wait_until(
            "haproxy stats (haproxy starting)",
            Duration::from_secs(20),
            || haproxy.stats().is_some(),
        );
        haproxy
    }

    fn front(&self, name: &str) -> SocketAddr {
        self.frontends.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// `show stat` from the stats socket: a CSV line per proxy and server.
    fn stats(&self) -> Option<String> {
        let mut socket = UnixStream::connect(self.dir.join("stats.sock")).ok()?;
        socket.write_all(b"show stat\n").ok()?;
        let mut text = String::new();
        socket.read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// The server's `status` and `check_status` in `backend`.
    fn server_state(&self, backend: &str) -> (String, String) {
        let stats = self.stats().unwrap_or_default();
        let mut lines = stats.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or("")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|c| *c == name).unwrap();
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            if fields.first() == Some(&backend) && fields.get(1) == Some(&"postbox") {
                return (
                    fields[column("status")].to_string(),
                    fields[column("check_status")].to_string(),
                );
            }
        }
        (String::new(), String::new())
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Postbox (alice and bob, the listeners above behind a proxy) and haproxy
/// in front of SMTP and POP3 with each header version, and of POP3S.
fn setup() -> (tempfile::TempDir, Server, Haproxy) {
    let (dir, server) = Server::with_config(CONFIG);
    let smtpchk = "    option smtpchk EHLO proxy.test\n";
    let pop3chk = "    option tcp-check\n    tcp-check expect string +OK\n";
    let haproxy = Haproxy::start(
        dir.path(),
        &[
            ("smtp_v1", smtpchk, server.smtp, "send-proxy"),
            ("smtp_v2", smtpchk, server.smtp, "send-proxy-v2"),
            ("pop3_v1", pop3chk, server.pop3, "send-proxy"),
            ("pop3_v2", pop3chk, server.pop3, "send-proxy-v2"),
            ("pop3s_v2", "", server.pop3s.unwrap(), "send-proxy-v2"),
        ],
    );
    (dir, server, haproxy)
}

#[test]
fn through_haproxy_the_client_is_seen_in_received_and_relay() {
    let (_dir, server, haproxy) = setup();
    for (n, front) in ["smtp_v1", "smtp_v2"].into_iter().enumerate() {
        let front = haproxy.front(front);
        let mut c = Client::connect_from(front, RELAY_CLIENT);
        assert!(c.reply().starts_with("220"));
        assert!(c.ask("EHLO client.test").starts_with("250"));
        assert!(c.ask("MAIL FROM:<someone@client.test>").starts_with("250"));
        // A relay_from client may send elsewhere...
        let reply = c.ask("RCPT TO:<friend@elsewhere.test>");
        assert!(reply.starts_with("250"), "{front}: {reply}");
        assert!(c.ask("RSET").starts_with("250"));
        assert!(c.ask("MAIL FROM:<someone@client.test>").starts_with("250"));
        assert!(c.ask("RCPT TO:<alice@localhost>").starts_with("250"));
        assert!(c.ask("DATA").starts_with("354"));
        c.send(b"Subject: through the proxy\r\n\r\nHello.\r\n.\r\n");
        assert!(c.reply().starts_with("250"));
        c.ask("QUIT");
        let mail = wait_for_mail(
            &server.data,
            "alice",
            n + 1,
            Duration::from_secs(20),
            &|| server.log(),
        );
        assert!(
            mail[n].contains("Received: from client.test ([127.0.0.5])"),
            "{front}: {}",
            mail[n]
        );

        // ...a stranger behind the same proxy may not.
        let mut c = Client::connect_from(front, STRANGER);
        assert!(c.reply().starts_with("220"));
        assert!(c.ask("EHLO stranger.test").starts_with("250"));
        assert!(c
            .ask("MAIL FROM:<someone@stranger.test>")
            .starts_with("250"));
        let reply = c.ask("RCPT TO:<friend@elsewhere.test>");
        assert!(reply.starts_with('5'), "{front}: {reply}");
        c.ask("QUIT");
    }
    let log = server.log();
    assert!(log.contains("PROXY header: v1 client 127.0.0.5:"), "{log}");
    assert!(log.contains("PROXY header: v2 client 127.0.0.6:"), "{log}");
}

#[test]
fn through_haproxy_login_throttling_counts_each_client() {
    let (_dir, _server, haproxy) = setup();
    for (front, guesser, member) in [("pop3_v1", 7, 8), ("pop3_v2", 9, 10)] {
        let front = haproxy.front(front);
        let pop3 = |source: u8, password: &str| {
            let mut c = Client::connect_from(front, Ipv4Addr::new(127, 0, 0, source));
            assert!(c.line().starts_with("+OK"));
            c.cmd("USER alice");
            assert!(c.line().starts_with("+OK"));
            c.cmd(&format!("PASS {password}"));
            c.line()
        };
        // One failure (login_failures = 1) and that client is refused
        // even the right password...
        assert!(pop3(guesser, "wrong").starts_with("-ERR [AUTH]"));
        let refused = pop3(guesser, "alice-pw");
        assert!(refused.starts_with("-ERR [SYS/TEMP]"), "{refused}");
        // ...while another behind the same proxy logs in.
        let reply = pop3(member, "alice-pw");
        assert!(reply.starts_with("+OK"), "{reply}");
    }
}

#[test]
fn haproxy_health_checks_find_the_listeners_up() {
    let (_dir, server, haproxy) = setup();
    for backend in ["smtp_v1", "smtp_v2", "pop3_v1", "pop3_v2"] {
        let start = Instant::now();
        loop {
            let (status, check) = haproxy.server_state(backend);
            if status == "UP" && check == "L7OK" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{backend}: {status} {check}\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Checks over v2 say LOCAL: the proxy's own address is the client.
    assert!(
        server.logged("PROXY header: v2 LOCAL", Duration::from_secs(10)),
        "{}",
        server.log()
    );
}

#[test]
fn implicit_tls_begins_after_the_header() {
    let (_dir, server, haproxy) = setup();
    let tcp = connect_from(haproxy.front("pop3s_v2"), RELAY_CLIENT);
    let mut tls = tls_client(&server, tcp);
    let mut greeting = [0u8; 3];
    tls.read_exact(&mut greeting).unwrap();
    assert_eq!(&greeting, b"+OK");
    // The session, its TLS included, is the client's.
    let start = Instant::now();
    while !server
        .log()
        .lines()
        .any(|l| l.contains("pop3#") && l.contains(" 127.0.0.5:") && l.contains(" TLS "))
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no TLS line for 127.0.0.5:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the server closed the connection without a byte: an orderly
/// close, or a reset (it closed with the client's bytes unread).
fn closed_unanswered(c: &mut Client) -> bool {
    let mut byte = [0u8; 1];
    match c.reader.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// Sends what may meet a connection already closed.
fn try_send(c: &mut Client, bytes: &[u8]) {
    let _ = c.stream.write_all(bytes);
}

/// A TLS client over `tcp` trusting only the server's certificate.
fn tls_client(server: &Server, tcp: TcpStream) -> TlsStream {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(server.data.join("tls/cert.pem")).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("mx.test").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// The status line of the answer to `GET path`, asked over `stream`.
fn get(stream: &mut impl ReadWrite, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: mx.test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or("").to_string()
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn the_web_pages_see_the_client_the_header_names() {
    let (_dir, server) = Server::with_config(CONFIG);
    // The admin pages answer only admin_from (loopback among the default
    // networks), judged by the header's address; TLS follows the header.
    for (client, status) in [("127.0.0.5", "200"), ("203.0.113.9", "403")] {
        let mut tcp = TcpStream::connect(server.web.unwrap()).unwrap();
        let header = format!("PROXY TCP4 {client} 127.0.0.1 40000 443\r\n");
        tcp.write_all(header.as_bytes()).unwrap();
        let mut tls = tls_client(&server, tcp);
        let line = get(&mut tls, "/admin/login");
        assert!(line.contains(&format!(" {status} ")), "{client}: {line}");
    }
    // Plain HTTP is behind the proxy too.
    let mut tcp = TcpStream::connect(server.http.unwrap()).unwrap();
    tcp.write_all(b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\n")
        .unwrap();
    assert!(get(&mut tcp, "/").contains(" 301 "));
    let mut bare = Client::connect(server.http.unwrap());
    try_send(&mut bare, b"GET / HTTP/1.1\r\nHost: mx.test\r\n\r\n");
    assert!(closed_unanswered(&mut bare), "an answer without a header");
    let closed = format!("{} closed: invalid PROXY header", bare.local_addr());
    assert!(
        server.logged(&closed, Duration::from_secs(10)),
        "{}",
        server.log()
    );
}

/// A plain socket from `source` to `addr`.
fn connect_from(addr: SocketAddr, source: Ipv4Addr) -> TcpStream {
    let c = Client::connect_from(addr, source);
    c.stream
}

#[test]
fn connections_that_skip_the_proxy_or_its_header_are_closed_unanswered() {
    let (_dir, server) = Server::with_config(CONFIG);
    // From outside proxy_from, a header naming a trusted client is not
    // believed: closed before any greeting.
    let mut forger = Client::connect_from(server.smtp, STRANGER);
    try_send(&mut forger, b"PROXY TCP4 127.0.0.5 127.0.0.1 40000 25\r\n");
    assert!(
        closed_unanswered(&mut forger),
        "a greeting for a forged header"
    );
    let outside = format!("{} refused: not in proxy_from", forger.local_addr());
    assert!(
        server.logged(&outside, Duration::from_secs(10)),
        "{}",
        server.log()
    );

    // From the proxy's address without a header: closed too.
    let mut bare = Client::connect(server.smtp);
    try_send(&mut bare, b"EHLO client.test\r\n");
    assert!(closed_unanswered(&mut bare), "a greeting without a header");
    let invalid = format!("{} closed: invalid PROXY header", bare.local_addr());
    assert!(
        server.logged(&invalid, Duration::from_secs(10)),
        "{}",
        server.log()
    );

    // The same on POP3, whose clients wait for the greeting.
    let mut bare = Client::connect(server.pop3);
    try_send(&mut bare, b"USER alice\r\n");
    assert!(closed_unanswered(&mut bare), "a greeting without a header");

    // What follows a header in the same packet is the protocol's: a
    // pipelined QUIT is answered after the greeting.
    let mut c = Client::connect(server.smtp);
    c.send(b"PROXY TCP4 127.0.0.9 127.0.0.1 40000 25\r\nQUIT\r\n");
    assert!(c.reply().starts_with("220"));
    assert!(c.reply().starts_with("221"));
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[127, 0, 0, 9, 127, 0, 0, 1, 0x9c, 0x41, 0, 110]);
    v2.extend_from_slice(b"QUIT\r\n");
    let mut c = Client::connect(server.pop3);
    c.send(&v2);
    assert!(c.line().starts_with("+OK"));
    assert!(c.line().starts_with("+OK"));
    assert!(c.closed());
    assert!(
        server.logged("pop3#", Duration::from_secs(10))
            && server.logged(" 127.0.0.9:40001 closed: ", Duration::from_secs(10)),
        "{}",
        server.log()
    );
}

#[test]
fn a_proxy_that_sends_no_header_is_closed_after_the_command_timeout() {
    let config = CONFIG.replace(
        "[smtp]\nproxy_protocol = true\n",
        "[smtp]\nproxy_protocol = true\ncommand_timeout = 1\n",
    );
    let (_dir, server) = Server::with_config(&config);
    let mut silent = Client::connect(server.smtp);
    let start = Instant::now();
    assert!(
        closed_unanswered(&mut silent),
        "a greeting without a header"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    let closed = format!("{} closed: no PROXY header in time", silent.local_addr());
    assert!(
        server.logged(&closed, Duration::from_secs(10)),
        "{}",
        server.log()
    );
}
