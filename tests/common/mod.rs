//! Shared by the integration tests: the real `postbox` binary on ephemeral
//! 127.0.0.1 ports with a temp data dir, and small line-oriented clients.
#![allow(dead_code)]

pub mod dns_responder;
pub mod web;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_postbox");

/// Runs `postbox ARGS` to completion with `stdin` fed in.
pub fn postbox(args: &[&str], stdin: &str) -> Output {
    output_with_stdin(Command::new(BIN).args(args), stdin.as_bytes())
}

/// Runs `command` to completion with `stdin` fed in; its output. The
/// input is written from a thread of its own, so a command that answers
/// as it reads cannot fill its output pipe and stall both sides.
pub fn output_with_stdin(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    output
}

/// Runs a Python script (a path from the repository root) with `input` on
/// stdin; its stdout, after it succeeded.
pub fn python_script(script: &str, args: &[&str], input: &[u8]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script);
    let out = output_with_stdin(Command::new("python3").arg(path).args(args), input);
    assert!(
        out.status.success(),
        "{script} (python3 and its packages: scripts/install-test-deps): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Adds a user with `--password-stdin`, panicking on failure.
pub fn add_user(data: &Path, name: &str, password: &str) {
    let out = postbox(
        &[
            "user",
            "add",
            name,
            "--password-stdin",
            "--data",
            data.to_str().unwrap(),
        ],
        &format!("{password}\n"),
    );
    assert!(
        out.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `postbox serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub data: PathBuf,
    pub smtp: SocketAddr,
    pub pop3: SocketAddr,
    /// `None` where the listener was turned off.
    pub submission: Option<SocketAddr>,
    pub submissions: Option<SocketAddr>,
    pub pop3s: Option<SocketAddr>,
    /// The HTTPS and plain HTTP listeners of the web pages.
    pub web: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub log: Arc<Mutex<String>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A fresh data dir with no users.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut server = Server::start_in(&data, &[]);
        server._dir = Some(dir);
        server
    }

    /// A fresh data dir with `alice` (password `alice-pw`) and `bob`
    /// (`bob-pw`) at localhost.
    pub fn with_users() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        add_user(&data, "alice", "alice-pw");
        add_user(&data, "bob", "bob-pw");
        let mut server = Server::start_in(&data, &[]);
        server._dir = Some(dir);
        server
    }

    /// alice and bob as in `with_users`, with `toml` as the config file.
    /// The TempDir holds the data and the config; keep it alive.
    pub fn with_config(toml: &str) -> (tempfile::TempDir, Server) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        add_user(&data, "alice", "alice-pw");
        add_user(&data, "bob", "bob-pw");
        let config = dir.path().join("postbox.toml");
        std::fs::write(&config, toml).unwrap();
        let server = Server::start_in(&data, &["--config", config.to_str().unwrap()]);
        (dir, server)
    }

    /// Starts on `data` (kept after the server stops) with extra flags.
    /// Every listener gets an ephemeral port; passwords may be sent
    /// without TLS over loopback unless `extra` asks otherwise.
    pub fn start_in(data: &Path, extra: &[&str]) -> Server {
        Server::start_with(data, &["--allow-plaintext-on-loopback"], extra)
    }

    /// Like `start_in`, but passwords need TLS even on loopback.
    pub fn start_tls_only(data: &Path, extra: &[&str]) -> Server {
        Server::start_with(data, &[], extra)
    }

    fn start_with(data: &Path, base: &[&str], extra: &[&str]) -> Server {
        Server::start_with_env(data, base, extra, &[])
    }

    /// Like `start_in`, with extra environment variables (`POSTBOX_FAULTS`).
    pub fn start_in_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_with_env(data, &["--allow-plaintext-on-loopback"], extra, env)
    }

    fn start_with_env(data: &Path, base: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Server {
        // Strangers' mail is checked (SPF, DKIM, DMARC) by default: unless
        // the test names a resolver, questions go to one that knows no
        // name, never to the system's.
        let quiet = quiet_dns().to_string();
        let dns = if names_resolver(extra) {
            vec![]
        } else {
            vec!["--dns-resolver", quiet.as_str()]
        };
        let mut child = Command::new(BIN)
            .envs(env.iter().copied())
            .args(["serve", "--data", data.to_str().unwrap()])
            .args([
                "--smtp",
                "127.0.0.1:0",
                "--pop3",
                "127.0.0.1:0",
                "--submission",
                "127.0.0.1:0",
                "--submissions",
                "127.0.0.1:0",
                "--pop3s",
                "127.0.0.1:0",
                "--web",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--hostname",
                "mx.test",
            ])
            .args(base)
            .args(&dns)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postbox serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let (Some(addrs), Some(_)) = (parse_listen_line(&line), tx.as_ref()) {
                    tx.take().unwrap().send(addrs).unwrap();
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let listeners = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addrs) => addrs,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {}", log.lock().unwrap());
            }
        };
        let find = |name: &str| {
            listeners
                .iter()
                .find(|(service, _)| service == name)
                .map(|(_, addr)| *addr)
        };
        Server {
            child,
            data: data.to_path_buf(),
            smtp: find("smtp").expect("smtp listener"),
            pop3: find("pop3").expect("pop3 listener"),
            submission: find("submission"),
            submissions: find("submissions"),
            pop3s: find("pop3s"),
            web: find("web"),
            http: find("http"),
            log,
            _dir: None,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether the log says `needle` within `limit`: the log is read from
    /// the server's stderr by a thread, so a line may trail the reply it
    /// belongs to.
    pub fn logged(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits until the log says the session of the client at `client` (its
    /// own address) has closed: by then the server is done with all that
    /// session did or left behind (a spool file, a mailbox lock, its
    /// slot). A check that something did not happen goes after this.
    pub fn wait_session_closed(&self, client: SocketAddr) {
        let needle = format!(" {client} closed: ");
        assert!(
            self.logged(&needle, Duration::from_secs(20)),
            "no {needle:?} in the log:\n{}",
            self.log()
        );
    }

    pub fn smtp(&self) -> Client {
        Client::connect(self.smtp)
    }

    pub fn pop3(&self) -> Client {
        Client::connect(self.pop3)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(&self.child, "TERM");
        wait_timeout(&mut self.child, Duration::from_secs(40)).expect("server did not stop")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Paths of every message file in a user's mailbox (new/ and cur/).
    pub fn messages(&self, user: &str) -> Vec<PathBuf> {
        mailbox_files(&self.data, user)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Message files of `user` (`local` at localhost, or `local@domain`), in
/// arrival order: the order POP3 numbers them.
/// A DNS responder for this test process that knows no name (NXDOMAIN
/// for every question).
pub fn quiet_dns() -> SocketAddr {
    static QUIET: std::sync::OnceLock<SocketAddr> = std::sync::OnceLock::new();
    *QUIET.get_or_init(|| dns_responder::start().0)
}

/// Whether the flags, or the config file they name, say where DNS
/// questions go.
fn names_resolver(args: &[&str]) -> bool {
    args.contains(&"--dns-resolver")
        || args.windows(2).any(|pair| {
            pair[0] == "--config"
                && std::fs::read_to_string(pair[1]).is_ok_and(|toml| toml.contains("dns_resolver"))
        })
}

pub fn mailbox_files(data: &Path, user: &str) -> Vec<PathBuf> {
    let (local, domain) = user.split_once('@').unwrap_or((user, "localhost"));
    let dir = data.join("mail").join(domain).join(local);
    match postbox::store::maildir::scan_mailbox(&postbox::store::disk::Fs, &dir) {
        Ok(messages) => messages.iter().map(|m| dir.join(&*m.name)).collect(),
        Err(_) => Vec::new(),
    }
}

/// The `serving ... on smtp ADDR pop3 ADDR ...` line: (service, address) pairs.
fn parse_listen_line(line: &str) -> Option<Vec<(String, SocketAddr)>> {
    let rest = line.split(" serving ").nth(1)?.split(" on ").nth(1)?;
    let rest = rest.split(", data in").next()?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let pairs: Option<Vec<_>> = words
        .chunks(2)
        .map(|pair| Some((pair.first()?.to_string(), pair.get(1)?.parse().ok()?)))
        .collect();
    pairs.filter(|p| !p.is_empty())
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until `done` holds, checking every 20 ms; panics naming `what`
/// when it has not within `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "no {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A line-oriented protocol client over a plain socket.
pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).unwrap())
    }

    /// Connects from `source` (another loopback address, 127.0.0.2 say),
    /// so the server sees a client that is not itself: the socket is
    /// bound before it connects, which std's TcpStream cannot do.
    pub fn connect_from(addr: SocketAddr, source: std::net::Ipv4Addr) -> Client {
        use std::os::fd::FromRawFd;
        let SocketAddr::V4(addr) = addr else {
            panic!("{addr} is not IPv4");
        };
        let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // Owned at once, so an early panic closes it.
        let stream = unsafe { TcpStream::from_raw_fd(fd) };
        let local = sockaddr(source, 0);
        let rc = unsafe { libc::bind(fd, &local as *const _ as *const libc::sockaddr, size) };
        assert_eq!(rc, 0, "bind {source}: {}", std::io::Error::last_os_error());
        let remote = sockaddr(*addr.ip(), addr.port());
        let rc = unsafe { libc::connect(fd, &remote as *const _ as *const libc::sockaddr, size) };
        assert_eq!(rc, 0, "connect {addr}: {}", std::io::Error::last_os_error());
        Client::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    /// This end's address, which names the session in the server's log.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends one command line (CRLF added).
    pub fn cmd(&mut self, line: &str) {
        self.send(format!("{line}\r\n").as_bytes());
    }

    /// One reply line without CRLF; empty at end of stream.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches(['\r', '\n']).to_string()
    }

    /// A whole SMTP reply (all continuation lines), joined with '\n'.
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            let last = line.len() < 4 || line.as_bytes()[3] != b'-';
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Sends a command and returns the SMTP reply.
    pub fn ask(&mut self, line: &str) -> String {
        self.cmd(line);
        self.reply()
    }

    /// A POP3 multi-line body after its +OK line, unstuffed, up to the dot.
    pub fn multiline(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(
                !line.is_empty(),
                "connection closed inside a multi-line reply"
            );
            if line == b".\r\n" {
                return body;
            }
            let content = if line.starts_with(b".") {
                &line[1..]
            } else {
                &line[..]
            };
            body.extend_from_slice(content);
        }
    }

    /// True once the server has closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}

/// One SMTP transaction on a fresh connection; returns the final reply.
pub fn send_mail(addr: SocketAddr, from: &str, to: &[&str], body: &str) -> String {
    let mut c = Client::connect(addr);
    assert!(c.reply().starts_with("220"));
    assert!(c.ask("EHLO client.test").starts_with("250"));
    assert!(c.ask(&format!("MAIL FROM:<{from}>")).starts_with("250"));
    for rcpt in to {
        let reply = c.ask(&format!("RCPT TO:<{rcpt}>"));
        assert!(reply.starts_with("250"), "RCPT {rcpt}: {reply}");
    }
    assert!(c.ask("DATA").starts_with("354"));
    c.send(body.as_bytes());
    c.send(b"\r\n.\r\n");
    let reply = c.reply();
    c.ask("QUIT");
    reply
}

/// POP3 login as `user` with USER/PASS; panics unless it succeeds.
pub fn pop3_login(server: &Server, user: &str, password: &str) -> Client {
    let mut c = server.pop3();
    assert!(c.line().starts_with("+OK"));
    c.cmd(&format!("USER {user}"));
    assert!(c.line().starts_with("+OK"));
    c.cmd(&format!("PASS {password}"));
    let reply = c.line();
    assert!(reply.starts_with("+OK"), "login as {user}: {reply}");
    c
}

/// A data dir with a config serving `domain` and the given users
/// (password: the user's local part + "-pw").
pub fn prepare(domain: &str, users: &[&str], toml: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("postbox.toml");
    std::fs::write(&config, format!("domains = [\"{domain}\"]\n{toml}")).unwrap();
    for user in users {
        let out = postbox(
            &[
                "user",
                "add",
                user,
                "--password-stdin",
                "--config",
                config.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
            ],
            &format!("{user}-pw\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (dir, data, config)
}

pub fn start(data: &Path, config: &Path, hostname: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--config", config.to_str().unwrap(), "--hostname", hostname];
    args.extend_from_slice(extra);
    Server::start_in(data, &args)
}

/// A session on a submission port (`addr`), greeted, EHLO `helo` said
/// and logged in as `user` with AUTH PLAIN; panics unless it succeeds.
pub fn member_login(addr: SocketAddr, helo: &str, user: &str, password: &str) -> Client {
    let mut c = Client::connect(addr);
    c.reply();
    c.ask(&format!("EHLO {helo}"));
    let plain = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("\0{user}\0{password}"),
    );
    let reply = c.ask(&format!("AUTH PLAIN {plain}"));
    assert!(reply.starts_with("235"), "login as {user}: {reply}");
    c
}

/// alice@a.test (password alice-pw) sends through `a`'s submission
/// port; returns the reply to the final dot.
pub fn submit(a: &Server, from_header: &str, to: &[&str], subject: &str) -> String {
    let mut c = member_login(a.submission.unwrap(), "laptop.a.test", "alice", "alice-pw");
    assert!(c.ask("MAIL FROM:<alice@a.test>").starts_with("250"));
    for rcpt in to {
        let reply = c.ask(&format!("RCPT TO:<{rcpt}>"));
        assert!(reply.starts_with("250"), "RCPT {rcpt}: {reply}");
    }
    assert!(c.ask("DATA").starts_with("354"));
    c.send(format!("From: {from_header}\r\nTo: {}\r\nSubject: {subject}\r\n\r\nHello from A.\r\n..line starting with a dot\r\n.\r\n", to.join(", ")).as_bytes());
    let reply = c.reply();
    c.ask("QUIT");
    reply
}

/// Waits for `n` messages in `user`'s mailbox; returns their texts.
pub fn wait_for_mail(
    data: &Path,
    user: &str,
    n: usize,
    limit: Duration,
    log: &dyn Fn() -> String,
) -> Vec<String> {
    let start = Instant::now();
    loop {
        let files = mailbox_files(data, user);
        if files.len() >= n {
            return files
                .iter()
                .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
                .collect();
        }
        assert!(
            start.elapsed() < limit,
            "{user} has {} of {n} messages after {limit:?}; log:\n{}",
            files.len(),
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal SMTP server on 127.0.0.1 that takes one message and returns
/// the bytes of its DATA exactly as they came, up to and with the final dot.
pub fn smtp_sink() -> (u16, std::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        out.write_all(b"220 sink.test\r\n").unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                return;
            }
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => out.write_all(b"250-sink.test\r\n250 8BITMIME\r\n").unwrap(),
                "DATA" => {
                    out.write_all(b"354 go on\r\n").unwrap();
                    let mut data = Vec::new();
                    let mut byte = [0u8; 1];
                    while !data.ends_with(b"\r\n.\r\n") {
                        if reader.read(&mut byte).unwrap() == 0 {
                            return;
                        }
                        data.push(byte[0]);
                    }
                    out.write_all(b"250 taken\r\n").unwrap();
                    tx.send(data).unwrap();
                }
                "QUIT" => {
                    let _ = out.write_all(b"221 bye\r\n");
                    return;
                }
                _ => out.write_all(b"250 ok\r\n").unwrap(),
            }
        }
    });
    (port, rx)
}
