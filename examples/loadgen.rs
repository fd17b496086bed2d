//! Load generator for `scripts/bench`: many SMTP senders or POP3 readers
//! on plain threads, printing one figure per run. Not a test.
//!
//! ```text
//! loadgen smtp ADDR SESSIONS MESSAGES SIZE RCPT[,RCPT...] [reuse] [from=ADDR] [message=FILE]
//!     (from: the MAIL FROM, default load@remote.test; message: sends that
//!     file, CRLF lines, every time instead of a generated SIZE-byte body)
//! loadgen pop3 ADDR CLIENTS ROUNDS USER_PREFIX PASSWORD   (client i logs in as USER_PREFIXi)
//! loadgen tls ADDR CERT NAME COUNT       (implicit-TLS POP3: handshakes/s, one after another)
//! loadgen tls-hold ADDR CERT NAME COUNT  (opens COUNT TLS sessions, prints "ready", holds them until stdin closes)
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

struct Conn {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap() == 0 {
                panic!("connection closed");
            }
            let last = line.len() < 4 || line.as_bytes()[3] != b'-';
            all.push_str(&line);
            if last {
                return all;
            }
        }
    }

    fn expect(&mut self, command: &[u8], code: &str) {
        self.stream.write_all(command).unwrap();
        let reply = self.reply();
        assert!(
            reply.starts_with(code),
            "{}: {reply}",
            String::from_utf8_lossy(command).trim()
        );
    }
}

/// How an SMTP load sends: the envelope sender and the message.
struct SmtpOptions {
    reuse: bool,
    from: String,
    message: Option<String>,
}

impl SmtpOptions {
    fn parse(rest: &[&str]) -> SmtpOptions {
        let mut options = SmtpOptions {
            reuse: false,
            from: "load@remote.test".into(),
            message: None,
        };
        for arg in rest {
            match arg.split_once('=') {
                None if *arg == "reuse" => options.reuse = true,
                Some(("from", from)) => options.from = from.into(),
                Some(("message", path)) => options.message = Some(path.into()),
                _ => panic!("unknown smtp option {arg}"),
            }
        }
        options
    }
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
    let reuse = options.reuse;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..sessions)
        .map(|_| {
            let (addr, rcpt, body, next, mail_from) = (
                addr.to_string(),
                rcpt.to_string(),
                body.clone(),
                next.clone(),
                mail_from.clone(),
            );
            std::thread::spawn(move || {
                let mut conn: Option<Conn> = None;
                while next.fetch_add(1, Ordering::Relaxed) < messages {
                    let c = conn.get_or_insert_with(|| {
                        let mut c = Conn::open(&addr);
                        c.reply();
                        c.expect(b"EHLO load.test\r\n", "250");
                        c
                    });
                    c.expect(mail_from.as_bytes(), "250");
                    for one in rcpt.split(',') {
                        c.expect(format!("RCPT TO:<{one}>\r\n").as_bytes(), "250");
                    }
                    c.expect(b"DATA\r\n", "354");
                    c.expect(&body, "250");
                    if !reuse {
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

fn pop3(addr: &str, clients: usize, rounds: usize, user: &str, password: &str) {
    let retrieved = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (addr, user, password, retrieved) = (
                addr.to_string(),
                format!("{user}{i}"),
                password.to_string(),
                retrieved.clone(),
            );
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    let mut c = Conn::open(&addr);
                    c.reader.read_line(&mut String::new()).unwrap();
                    c.stream
                        .write_all(format!("USER {user}\r\nPASS {password}\r\n").as_bytes())
                        .unwrap();
                    let mut reply = String::new();
                    c.reader.read_line(&mut reply).unwrap();
                    reply.clear();
                    c.reader.read_line(&mut reply).unwrap();
                    assert!(reply.starts_with("+OK"), "{reply}");
                    c.stream.write_all(b"STAT\r\n").unwrap();
                    let mut stat = String::new();
                    c.reader.read_line(&mut stat).unwrap();
                    let count: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
                    // LIST, then every RETR, pipelined; the replies are
                    // counted by their terminators in bulk reads, so the
                    // client costs little next to the server.
                    let mut batch = String::from("LIST\r\n");
                    for i in 1..=count {
                        batch.push_str(&format!("RETR {i}\r\n"));
                    }
                    c.stream.write_all(batch.as_bytes()).unwrap();
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
                    retrieved.fetch_add(count, Ordering::Relaxed);
                    c.stream.write_all(b"QUIT\r\n").unwrap();
                    let mut rest = Vec::new();
                    let _ = c.reader.read_to_end(&mut rest);
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

/// One implicit-TLS POP3 connection, handshake done and greeting read.
fn tls_session(addr: &str, config: &Arc<rustls::ClientConfig>, name: &str) -> TlsStream {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_nodelay(true).unwrap();
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), server_name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut greeting = [0u8; 256];
    let n = tls.read(&mut greeting).expect("TLS greeting");
    assert!(greeting[..n].starts_with(b"+OK"), "greeting");
    tls
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

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

fn tls_handshakes(addr: &str, cert: &str, name: &str, count: usize) {
    let config = tls_config(cert);
    let start = Instant::now();
    for _ in 0..count {
        let mut tls = tls_session(addr, &config, name);
        tls.write_all(b"QUIT\r\n").unwrap();
    }
    println!("{:.0}", count as f64 / start.elapsed().as_secs_f64());
}

fn tls_hold(addr: &str, cert: &str, name: &str, count: usize) {
    let config = tls_config(cert);
    let sessions: Vec<TlsStream> = (0..count)
        .map(|_| tls_session(addr, &config, name))
        .collect();
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
        ["pop3", addr, clients, rounds, user, password] => pop3(
            addr,
            clients.parse().unwrap(),
            rounds.parse().unwrap(),
            user,
            password,
        ),
        ["tls", addr, cert, name, count] => {
            tls_handshakes(addr, cert, name, count.parse().unwrap())
        }
        ["tls-hold", addr, cert, name, count] => tls_hold(addr, cert, name, count.parse().unwrap()),
        _ => {
            eprintln!("usage: see the top of examples/loadgen.rs");
            std::process::exit(2);
        }
    }
}
