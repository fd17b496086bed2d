//! Load generator for `scripts/bench`: many SMTP senders or POP3 readers
//! on plain threads, printing one figure per run. Not a test.
//!
//! ```text
//! loadgen smtp ADDR SESSIONS MESSAGES SIZE RCPT[,RCPT...] [reuse] [from=ADDR] [message=FILE]
//!        [tls=starttls|implicit cert=FILE name=NAME] [auth=USER:PASSWORD]
//!     (from: the MAIL FROM, default load@remote.test; message: sends that
//!     file, CRLF lines, every time instead of a generated SIZE-byte body;
//!     tls: STARTTLS after EHLO, or TLS from the start (port 465), trusting
//!     the certificate in FILE for NAME; auth: AUTH PLAIN on every connection)
//! loadgen pop3 ADDR CLIENTS ROUNDS USER_PREFIX PASSWORD [tls=stls|implicit cert=FILE name=NAME]
//!     (client i logs in as USER_PREFIXi; tls: STLS after the greeting, or
//!     TLS from the start (port 995))
//! loadgen tls ADDR CERT NAME COUNT       (implicit TLS, POP3 or SMTP: handshakes/s, one after another)
//! loadgen tls-hold ADDR CERT NAME COUNT  (opens COUNT TLS sessions, prints "ready", holds them until stdin closes)
//! loadgen hold ADDR COUNT                (the same with plain TCP sessions: each reads the greeting)
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// What a session's bytes travel over.
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// TLS for a load: the certificate to trust, the name it must carry, and
/// whether TLS starts at once (465, 995) or after STARTTLS / STLS.
#[derive(Clone)]
struct Tls {
    config: Arc<rustls::ClientConfig>,
    name: String,
    implicit: bool,
}

/// The `tls=`, `cert=` and `name=` options, gathered as they come.
#[derive(Default)]
struct TlsOptions {
    mode: Option<String>,
    cert: Option<String>,
    name: Option<String>,
}

impl TlsOptions {
    /// Takes `key=value` if it is one of the TLS options.
    fn take(&mut self, key: &str, value: &str) -> bool {
        let slot = match key {
            "tls" => &mut self.mode,
            "cert" => &mut self.cert,
            "name" => &mut self.name,
            _ => return false,
        };
        *slot = Some(value.to_string());
        true
    }

    /// `upgrade`: the word for TLS after the greeting (starttls, stls).
    fn build(self, upgrade: &str) -> Option<Tls> {
        let mode = self.mode?;
        assert!(
            mode == "implicit" || mode == upgrade,
            "tls={mode}: implicit or {upgrade}"
        );
        Some(Tls {
            config: tls_config(&self.cert.expect("tls needs cert=FILE")),
            name: self.name.expect("tls needs name=NAME"),
            implicit: mode == "implicit",
        })
    }
}

struct Conn {
    reader: BufReader<Transport>,
}

/// With `LOADGEN_SOURCES=N`, connections come from 127.0.1.1 to
/// 127.0.1.N in turn (many clients, for a proxy's `balance source`).
fn connect_spread(addr: &str) -> TcpStream {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let sources: u32 = match std::env::var("LOADGEN_SOURCES") {
        Ok(n) => n.parse().expect("LOADGEN_SOURCES: a number"),
        Err(_) => return TcpStream::connect(addr).expect("connect"),
    };
    let host = NEXT.fetch_add(1, Ordering::Relaxed) % sources.clamp(1, 254) + 1;
    let target: std::net::SocketAddrV4 = addr.parse().expect("an IPv4 ADDR:PORT");
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let source = sockaddr(std::net::Ipv4Addr::new(127, 0, 1, host as u8), 0);
    let target = sockaddr(*target.ip(), target.port());
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket, given whole to the TcpStream on success;
    // the addresses are valid sockaddr_in values of the length given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let bound = libc::bind(fd, (&source as *const libc::sockaddr_in).cast(), len);
        assert_eq!(
            bound,
            0,
            "bind 127.0.1.{host}: {}",
            std::io::Error::last_os_error()
        );
        let connected = libc::connect(fd, (&target as *const libc::sockaddr_in).cast(), len);
        assert_eq!(connected, 0, "connect: {}", std::io::Error::last_os_error());
        std::os::fd::FromRawFd::from_raw_fd(fd)
    }
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = connect_spread(addr);
        stream.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(Transport::Plain(stream)),
        }
    }

    /// TLS over this connection (nothing unread may be buffered); the
    /// handshake runs with the first read or write.
    fn start_tls(self, tls: &Tls) -> Conn {
        assert!(self.reader.buffer().is_empty(), "bytes before TLS");
        let Transport::Plain(tcp) = self.reader.into_inner() else {
            panic!("TLS twice");
        };
        let server_name = rustls::pki_types::ServerName::try_from(tls.name.clone()).unwrap();
        let conn = rustls::ClientConnection::new(tls.config.clone(), server_name).unwrap();
        let stream = Box::new(rustls::StreamOwned::new(conn, tcp));
        Conn {
            reader: BufReader::new(Transport::Tls(stream)),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        if self.reader.read_line(&mut line).unwrap() == 0 {
            panic!("connection closed");
        }
        line
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let line = self.line();
            let last = line.len() < 4 || line.as_bytes()[3] != b'-';
            all.push_str(&line);
            if last {
                return all;
            }
        }
    }

    fn expect(&mut self, command: &[u8], code: &str) {
        self.send(command);
        let reply = self.reply();
        assert!(
            reply.starts_with(code),
            "{}: {reply}",
            String::from_utf8_lossy(command).trim()
        );
    }
}

/// How an SMTP load sends: the envelope sender and the message, over TLS
/// and logged in or not.
struct SmtpOptions {
    reuse: bool,
    from: String,
    message: Option<String>,
    tls: Option<Tls>,
    auth: Option<String>,
}

impl SmtpOptions {
    fn parse(rest: &[&str]) -> SmtpOptions {
        let mut options = SmtpOptions {
            reuse: false,
            from: "load@remote.test".into(),
            message: None,
            tls: None,
            auth: None,
        };
        let mut tls = TlsOptions::default();
        for arg in rest {
            match arg.split_once('=') {
                None if *arg == "reuse" => options.reuse = true,
                Some(("from", from)) => options.from = from.into(),
                Some(("message", path)) => options.message = Some(path.into()),
                Some(("auth", login)) => options.auth = Some(auth_plain(login)),
                Some((key, value)) if tls.take(key, value) => {}
                _ => panic!("unknown smtp option {arg}"),
            }
        }
        options.tls = tls.build("starttls");
        options
    }
}

/// `AUTH PLAIN` with its initial response, for "USER:PASSWORD".
fn auth_plain(login: &str) -> String {
    use base64::Engine;
    let (user, password) = login.split_once(':').expect("auth=USER:PASSWORD");
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    format!("AUTH PLAIN {token}\r\n")
}

/// A session ready for MAIL FROM: greeted, over TLS and logged in if asked.
fn smtp_session(addr: &str, options: &SmtpOptions) -> Conn {
    let mut c = Conn::open(addr);
    if let Some(tls) = options.tls.as_ref().filter(|t| t.implicit) {
        c = c.start_tls(tls);
    }
    c.reply();
    c.expect(b"EHLO load.test\r\n", "250");
    if let Some(tls) = options.tls.as_ref().filter(|t| !t.implicit) {
        c.expect(b"STARTTLS\r\n", "220");
        c = c.start_tls(tls);
        c.expect(b"EHLO load.test\r\n", "250");
    }
    if let Some(auth) = &options.auth {
        c.expect(auth.as_bytes(), "235");
    }
    c
}

/// The DATA payload: the message dot-stuffed, then the terminator.
fn data_payload(message: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(message.len() + 8);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    if !data.ends_with(b"\r\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    data
}

fn smtp(
    addr: &str,
    sessions: usize,
    messages: usize,
    size: usize,
    rcpt: &str,
    options: SmtpOptions,
) {
    let body = match &options.message {
        Some(path) => data_payload(&std::fs::read(path).expect("message file")),
        None => {
            let mut body = String::from("Subject: load\r\n\r\n");
            while body.len() < size {
                body.push_str("The quick brown fox jumps over the lazy dog 0123456789.\r\n");
            }
            body.truncate(size);
            body.push_str("\r\n.\r\n");
            body.into_bytes()
        }
    };
    let body = Arc::new(body);
    let mail_from = Arc::new(format!("MAIL FROM:<{}>\r\n", options.from));
    let options = Arc::new(options);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..sessions)
        .map(|_| {
            let (addr, rcpt, body, next, mail_from, options) = (
                addr.to_string(),
                rcpt.to_string(),
                body.clone(),
                next.clone(),
                mail_from.clone(),
                options.clone(),
            );
            std::thread::spawn(move || {
                let mut conn: Option<Conn> = None;
                while next.fetch_add(1, Ordering::Relaxed) < messages {
                    let c = conn.get_or_insert_with(|| smtp_session(&addr, &options));
                    c.expect(mail_from.as_bytes(), "250");
                    for one in rcpt.split(',') {
                        c.expect(format!("RCPT TO:<{one}>\r\n").as_bytes(), "250");
                    }
                    c.expect(b"DATA\r\n", "354");
                    c.expect(&body, "250");
                    if !options.reuse {
                        let mut c = conn.take().unwrap();
                        c.expect(b"QUIT\r\n", "221");
                    }
                }
                if let Some(mut c) = conn {
                    c.expect(b"QUIT\r\n", "221");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:.0}", messages as f64 / secs);
}

/// `CRLF.CRLF` sequences in `chunk`, counting one that starts in `tail`
/// (the previous chunk's last four bytes).
fn count_terminators(tail: &[u8; 4], chunk: &[u8]) -> usize {
    const END: &[u8] = b"\r\n.\r\n";
    let mut joined = tail.to_vec();
    joined.extend_from_slice(&chunk[..chunk.len().min(4)]);
    let across = joined.windows(5).filter(|w| *w == END).count();
    across + chunk.windows(5).filter(|w| *w == END).count()
}

/// A POP3 session past the greeting, over TLS if asked.
fn pop3_session(addr: &str, tls: Option<&Tls>) -> Conn {
    let mut c = Conn::open(addr);
    if let Some(tls) = tls.filter(|t| t.implicit) {
        c = c.start_tls(tls);
    }
    let greeting = c.line();
    assert!(greeting.starts_with("+OK"), "{greeting}");
    if let Some(tls) = tls.filter(|t| !t.implicit) {
        c.send(b"STLS\r\n");
        let reply = c.line();
        assert!(reply.starts_with("+OK"), "STLS: {reply}");
        c = c.start_tls(tls);
    }
    c
}

/// One POP3 session: log in, LIST, RETR every message, QUIT; returns the
/// messages retrieved.
fn pop3_round(addr: &str, tls: Option<&Tls>, user: &str, password: &str) -> usize {
    let mut c = pop3_session(addr, tls);
    c.send(format!("USER {user}\r\nPASS {password}\r\n").as_bytes());
    c.line();
    let reply = c.line();
    assert!(reply.starts_with("+OK"), "{reply}");
    c.send(b"STAT\r\n");
    let stat = c.line();
    let count: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    // LIST, then every RETR, pipelined; the replies are counted by their
    // terminators in bulk reads, so the client costs little next to the
    // server.
    let mut batch = String::from("LIST\r\n");
    for i in 1..=count {
        batch.push_str(&format!("RETR {i}\r\n"));
    }
    c.send(batch.as_bytes());
    let mut ends = 0;
    let mut tail = [0u8; 4];
    let mut buf = vec![0u8; 256 * 1024];
    while ends < count + 1 {
        let n = c.reader.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed");
        ends += count_terminators(&tail, &buf[..n]);
        if n >= 4 {
            tail.copy_from_slice(&buf[n - 4..n]);
        } else {
            tail.rotate_left(n);
            tail[4 - n..].copy_from_slice(&buf[..n]);
        }
    }
    c.send(b"QUIT\r\n");
    let mut rest = Vec::new();
    let _ = c.reader.read_to_end(&mut rest);
    count
}

fn pop3(addr: &str, clients: usize, rounds: usize, user: &str, password: &str, rest: &[&str]) {
    let mut options = TlsOptions::default();
    for arg in rest {
        match arg.split_once('=') {
            Some((key, value)) if options.take(key, value) => {}
            _ => panic!("unknown pop3 option {arg}"),
        }
    }
    let tls = options.build("stls");
    let retrieved = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (addr, user, password, retrieved, tls) = (
                addr.to_string(),
                format!("{user}{i}"),
                password.to_string(),
                retrieved.clone(),
                tls.clone(),
            );
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    let count = pop3_round(&addr, tls.as_ref(), &user, &password);
                    retrieved.fetch_add(count, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:.0}", retrieved.load(Ordering::Relaxed) as f64 / secs);
}

/// One implicit-TLS connection, handshake done and the greeting (POP3's
/// "+OK" or SMTP's "220") read.
fn tls_session(addr: &str, tls: &Tls) -> Conn {
    let mut c = Conn::open(addr).start_tls(tls);
    let greeting = c.line();
    assert!(
        greeting.starts_with("+OK") || greeting.starts_with("220"),
        "greeting: {greeting}"
    );
    c
}

fn tls_config(cert: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls::pki_types::CertificateDer::pem_file_iter(cert).expect("certificate") {
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

fn implicit_tls(cert: &str, name: &str) -> Tls {
    Tls {
        config: tls_config(cert),
        name: name.to_string(),
        implicit: true,
    }
}

fn tls_handshakes(addr: &str, cert: &str, name: &str, count: usize) {
    let tls = implicit_tls(cert, name);
    let start = Instant::now();
    for _ in 0..count {
        let mut c = tls_session(addr, &tls);
        c.send(b"QUIT\r\n");
    }
    println!("{:.0}", count as f64 / start.elapsed().as_secs_f64());
}

/// Holds sessions open until stdin closes, once "ready" is printed.
fn hold(sessions: Vec<Conn>) {
    println!("ready");
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(sessions);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["smtp", addr, sessions, messages, size, rcpt, rest @ ..] => smtp(
            addr,
            sessions.parse().unwrap(),
            messages.parse().unwrap(),
            size.parse().unwrap(),
            rcpt,
            SmtpOptions::parse(rest),
        ),
        ["pop3", addr, clients, rounds, user, password, rest @ ..] => pop3(
            addr,
            clients.parse().unwrap(),
            rounds.parse().unwrap(),
            user,
            password,
            rest,
        ),
        ["tls", addr, cert, name, count] => {
            tls_handshakes(addr, cert, name, count.parse().unwrap())
        }
        ["tls-hold", addr, cert, name, count] => {
            let tls = implicit_tls(cert, name);
            let count: usize = count.parse().unwrap();
            hold((0..count).map(|_| tls_session(addr, &tls)).collect())
        }
        ["hold", addr, count] => hold(
            (0..count.parse().unwrap())
                .map(|_| {
                    let mut c = Conn::open(addr);
                    c.line();
                    c
                })
                .collect(),
        ),
        _ => {
            eprintln!("usage: see the top of examples/loadgen.rs");
            std::process::exit(2);
        }
    }
}
