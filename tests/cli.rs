//! The command-line contract: help and version, exit codes (0 success,
//! 1 failure with one line on stderr, 2 usage error), user management
//! (also while `serve` runs), --config and --data, the console over
//! stdin/stdout, the default data directory and stopping on signals.
//!
//! Every command runs in its own temp directory as current dir, so nothing
//! lands in the repository even when a default path is used.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `postbox ARGS` in `dir` with `stdin` fed in.
fn pb(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start postbox");
    // The program may exit without reading stdin; that is not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(dir: &Path, args: &[&str], stdin: &str) -> String {
    let out = pb(dir, args, stdin);
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Checks the failure contract: exit 1 and exactly one line on stderr,
/// `postbox: REASON`. Returns what went wrong, if anything.
fn check_failure(args: &[&str], out: &Output) -> Result<String, String> {
    let err = text(&out.stderr);
    if out.status.code() != Some(1) {
        return Err(format!(
            "{args:?}: want exit 1, got {} (stdout {:?}, stderr {err:?})",
            out.status,
            text(&out.stdout)
        ));
    }
    if err.lines().count() != 1 || !err.ends_with('\n') || !err.starts_with("postbox: ") {
        return Err(format!(
            "{args:?}: want one line \"postbox: REASON\" on stderr, got {err:?}"
        ));
    }
    Ok(err)
}

/// A command that must fail with exit 1 and one line; returns the line.
fn fails(dir: &Path, args: &[&str], stdin: &str) -> String {
    check_failure(args, &pb(dir, args, stdin)).unwrap_or_else(|e| panic!("{e}"))
}

fn pop3_login_reply(server: &Server, user: &str, password: &str) -> String {
    let mut c = server.pop3();
    assert!(c.line().starts_with("+OK"));
    c.cmd(&format!("USER {user}"));
    c.line();
    c.cmd(&format!("PASS {password}"));
    c.line()
}

fn rcpt_reply(server: &Server, rcpt: &str) -> String {
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO client.test");
    c.ask("MAIL FROM:<x@remote.test>");
    c.ask(&format!("RCPT TO:<{rcpt}>"))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Output of a child, collected by a thread, that a test can wait on.
struct Collected {
    rx: Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Collected {
    fn start(mut source: impl Read + Send + 'static) -> Collected {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // A pty master reports EIO once the child is gone: also the end.
            while let Ok(n) = source.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Collected {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits until `needle` has appeared `times` times in all output so far.
    fn wait_for(&mut self, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while text(&self.seen).matches(needle).count() < times {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.seen.extend(chunk),
                Err(_) => panic!("no {needle:?} (x{times}) in:\n{}", text(&self.seen)),
            }
        }
        text(&self.seen)
    }

    /// Everything until the writer closes (or 20 s pass).
    fn rest(&mut self) -> String {
        while let Ok(chunk) = self.rx.recv_timeout(Duration::from_secs(20)) {
            self.seen.extend(chunk);
        }
        text(&self.seen)
    }
}

/// Runs `postbox ARGS` with a pseudo-terminal as stdin, stdout and
/// controlling terminal (where rpassword asks), typing each answer after
/// its prompt. Returns the exit status, what the terminal showed, stderr.
fn on_terminal(dir: &Path, args: &[&str], answers: &[&str]) -> (ExitStatus, String, String) {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes two new descriptors, which we then own.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("start postbox on a pty");
    // Our copies of the slave must go, or the master never sees the end.
    drop(cmd);
    let mut writer = std::fs::File::from(master.try_clone().unwrap());
    let mut terminal = Collected::start(std::fs::File::from(master));
    let mut stderr = Collected::start(child.stderr.take().unwrap());
    for (i, answer) in answers.iter().enumerate() {
        let prompt = if i % 2 == 0 { "Password: " } else { "Again: " };
        terminal.wait_for(prompt, i / 2 + 1);
        // The prompt comes before echo is turned off; a person types later.
        wait_for_no_echo(&writer);
        writer.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    let status = wait_timeout(&mut child, Duration::from_secs(20)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("{args:?} on a terminal did not finish")
    });
    (status, terminal.rest(), stderr.rest())
}

/// Waits until the terminal behind `master` no longer echoes input.
fn wait_for_no_echo(master: &std::fs::File) {
    use std::os::fd::AsRawFd;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // SAFETY: tcgetattr fills the zeroed termios for a valid descriptor.
        let mut term: libc::termios = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::tcgetattr(master.as_raw_fd(), &mut term) };
        assert_eq!(rc, 0, "tcgetattr: {}", std::io::Error::last_os_error());
        if term.c_lflag & libc::ECHO == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "echo never turned off");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A `postbox serve` started by the test itself, with its stderr lines.
struct Serve {
    child: Child,
    log: Collected,
}

impl Serve {
    fn start(dir: &Path, args: &[&str]) -> Serve {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postbox serve");
        let log = Collected::start(child.stderr.take().unwrap());
        Serve { child, log }
    }

    /// The `... serving DOMAINS on smtp ADDR pop3 ADDR ..., data in DIR` line.
    fn serving_line(&mut self) -> String {
        let log = self.log.wait_for(" serving ", 1);
        log.lines()
            .find(|l| l.contains(" serving "))
            .unwrap()
            .to_string()
    }

    /// Signals and waits at most a few seconds for the exit status.
    fn stop(&mut self, signal_name: &str) -> Option<ExitStatus> {
        signal(&self.child, signal_name);
        wait_timeout(&mut self.child, Duration::from_secs(5))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address a serving line gives for `service`.
fn listener(line: &str, service: &str) -> Option<SocketAddr> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == service)?;
    words.get(at + 1)?.trim_end_matches(',').parse().ok()
}

#[test]
fn help_and_version() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--version", "-V"] {
        let out = pb(dir.path(), &[flag], "");
        assert!(out.status.success(), "{flag}");
        assert_eq!(
            text(&out.stdout),
            format!("postbox {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert!(out.stderr.is_empty());
    }
    for flag in ["--help", "-h"] {
        let out = pb(dir.path(), &[flag], "");
        assert!(out.status.success(), "{flag}");
        let help = text(&out.stdout);
        assert!(help.contains("usage:"), "{help}");
        for verb in [
            "serve",
            "user add NAME",
            "user passwd NAME",
            "user del NAME",
            "user list",
            "console",
            "tls show",
            "--config FILE",
            "--data DIR",
        ] {
            assert!(help.contains(verb), "{verb:?} missing from --help:\n{help}");
        }
        assert!(out.stderr.is_empty());
    }
    // Each command's help names what that command takes.
    for (args, expected) in [
        (
            &["serve", "--help"][..],
            &["--smtp", "--pop3", "--data"][..],
        ),
        (&["user", "--help"], &["add", "passwd", "del", "list"]),
        (&["user", "add", "--help"], &["--password-stdin"]),
        (&["user", "passwd", "--help"], &["passwd"]),
        (&["user", "del", "--help"], &["del"]),
        (&["user", "list", "--help"], &["list"]),
        (&["console", "--help"], &["console"]),
        (&["tls", "--help"], &["show"]),
        (&["serve", "-h"], &["--smtp"]),
    ] {
        let out = pb(dir.path(), args, "");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let help = text(&out.stdout);
        assert!(help.starts_with("usage"), "{args:?}: {help}");
        for word in expected {
            assert!(help.contains(word), "{args:?}: no {word:?} in\n{help}");
        }
    }
    // Asking for help does nothing else: no data directory appears.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for args in [
        &[][..],
        &["frob"],
        &["--frob"],
        &["serve", "--frob"],
        &["serve", "extra"],
        &["serve", "--smtp", "not-an-address"],
        &["serve", "--log-level", "loud"],
        &["serve", "--submission", "nowhere"],
        &["user"],
        &["user", "frob", "a"],
        &["user", "add"],
        &["user", "passwd"],
        &["user", "del"],
        &["user", "add", "a", "b"],
        &["user", "passwd", "a", "b"],
        &["user", "del", "a", "b"],
        &["user", "list", "extra"],
        &["user", "add", "a", "--bogus"],
        &["user", "list", "--data"],
        &["user", "list", "--config"],
        &["console", "extra"],
        &["console", "--bogus"],
        &["tls"],
        &["tls", "frob"],
        &["tls", "show", "extra"],
    ] {
        let out = pb(dir.path(), args, "");
        let err = text(&out.stderr);
        if out.status.code() != Some(2) {
            wrong.push(format!(
                "{args:?}: want exit 2, got {} (stdout {:?})",
                out.status,
                text(&out.stdout)
            ));
        } else if !err.starts_with("postbox: ") || err.trim().len() <= "postbox:".len() {
            wrong.push(format!("{args:?}: no message on stderr: {err:?}"));
        } else if !out.stdout.is_empty() {
            wrong.push(format!("{args:?}: usage error printed to stdout"));
        }
    }
    assert!(wrong.is_empty(), "usage errors:\n{}", wrong.join("\n"));
    // A usage error acts on nothing.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn failures_exit_1_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    ok(
        dir.path(),
        &["user", "add", "alice", "--password-stdin", "--data", data],
        "alice-pw\n",
    );
    let mut wrong = Vec::new();
    let mut expect = |args: &[&str], stdin: &str, reason: &str| match check_failure(
        args,
        &pb(dir.path(), args, stdin),
    ) {
        Ok(err) if err.contains(reason) => {}
        Ok(err) => wrong.push(format!("{args:?}: want {reason:?} in {err:?}")),
        Err(e) => wrong.push(e),
    };
    let add = |name: &'static str| ["user", "add", name, "--password-stdin", "--data", data];
    expect(&add("alice"), "pw\n", "already exists");
    expect(&add("ALICE@LOCALHOST"), "pw\n", "already exists");
    expect(
        &["user", "del", "nobody", "--data", data],
        "",
        "no such user",
    );
    expect(
        &[
            "user",
            "passwd",
            "nobody",
            "--password-stdin",
            "--data",
            data,
        ],
        "pw\n",
        "no such user",
    );
    for bad in [
        "../x", "a/b", "/x", "a b", " a", "a\u{7}b", "a\nb", "a\tb", "a\u{7f}b", "",
    ] {
        expect(&add(bad), "pw\n", "invalid user name");
    }
    for bad in ["x@bad domain", "x@../etc", "x@a/b", "x@"] {
        expect(&add(bad), "pw\n", "invalid domain");
    }
    // A domain this box does not serve could never receive mail.
    expect(&add("x@notours.test"), "pw\n", "notours.test");
    expect(&add("carol"), "\n", "password");
    // Without a terminal and without --password-stdin there is no way to ask.
    expect(
        &["user", "add", "bob", "--data", data],
        "pw\n",
        "--password-stdin",
    );
    assert!(wrong.is_empty(), "failures:\n{}", wrong.join("\n"));
    // None of the failed commands changed anything.
    assert_eq!(
        ok(dir.path(), &["user", "list", "--data", data], ""),
        "alice@localhost (admin)\n"
    );
    let mailboxes: Vec<_> = std::fs::read_dir(dir.path().join("data/mail"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(mailboxes, ["localhost"]);
    assert!(!dir.path().join("x").exists());
}

#[test]
fn terminal_password_is_asked_twice() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["user", "add", "dave", "--data", "data"];
    let (status, shown, err) = on_terminal(dir.path(), &args, &["dave-pw", "dave-pw"]);
    assert!(status.success(), "{status}: {err}\n{shown}");
    assert!(shown.contains("added dave@localhost"), "{shown}");
    assert!(!shown.contains("dave-pw"), "password echoed: {shown}");

    let args = ["user", "add", "erin", "--data", "data"];
    let (status, shown, err) = on_terminal(dir.path(), &args, &["one", "two"]);
    let out = Output {
        status,
        stdout: shown.clone().into_bytes(),
        stderr: err.into_bytes(),
    };
    let err = check_failure(&args, &out).unwrap_or_else(|e| panic!("{e}\n{shown}"));
    assert!(err.contains("passwords do not match"), "{err}");
    assert_eq!(
        ok(dir.path(), &["user", "list", "--data", "data"], ""),
        "dave@localhost (admin)\n"
    );
}

#[test]
fn config_and_data_flags_choose_where_users_live() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postbox.toml");
    // A relative data_dir is taken from the current directory.
    std::fs::write(
        &config,
        "data_dir = \"from-config\"\ndomains = [\"club.test\", \"localhost\"]\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = ok(
        dir.path(),
        &[
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--config",
            config,
        ],
        "pw\n",
    );
    assert_eq!(
        out, "added carol@club.test\n",
        "first domain is the default"
    );
    assert!(dir.path().join("from-config/users").is_file());
    assert!(dir
        .path()
        .join("from-config/mail/club.test/carol/new")
        .is_dir());
    assert_eq!(
        ok(dir.path(), &["user", "list", "--config", config], ""),
        "carol@club.test (admin)\n"
    );

    // --data wins over the file's data_dir; the file's domains still apply.
    let args = [
        "user",
        "add",
        "dan",
        "--password-stdin",
        "--config",
        config,
        "--data",
        "other",
    ];
    assert_eq!(ok(dir.path(), &args, "pw\n"), "added dan@club.test\n");
    assert_eq!(
        ok(dir.path(), &["user", "list", "--data", "other"], ""),
        "dan@club.test (admin)\n"
    );
    ok(
        dir.path(),
        &["user", "del", "dan@club.test", "--data", "other"],
        "",
    );
    assert_eq!(ok(dir.path(), &["user", "list", "--data", "other"], ""), "");

    // Without either, user commands use ./postbox-data like serve.
    ok(
        dir.path(),
        &["user", "add", "eve", "--password-stdin"],
        "pw\n",
    );
    assert!(dir.path().join("postbox-data/users").is_file());
    assert_eq!(
        ok(dir.path(), &["user", "list"], ""),
        "eve@localhost (admin)\n"
    );
}

#[test]
fn bad_config_files_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let file = path.to_str().unwrap();
    for (content, reason) in [
        ("smtp_port = 25\n", "smtp_port"),
        ("[smtp]\nlisten_on = \"127.0.0.1:25\"\n", "listen_on"),
        ("[smtp\n", "bad.toml"),
        ("data_dir = \n", "bad.toml"),
        ("[smtp]\nlisten = 25\n", "listen"),
    ] {
        std::fs::write(&path, content).unwrap();
        for command in [
            &["user", "list", "--config", file][..],
            &["user", "add", "x", "--password-stdin", "--config", file],
            &["console", "--config", file],
            &["serve", "--config", file],
        ] {
            let err = fails(dir.path(), command, "pw\n");
            assert!(err.contains(reason), "{content:?} {command:?}: {err}");
        }
    }
    let err = fails(
        dir.path(),
        &["user", "list", "--config", "missing.toml"],
        "",
    );
    assert!(err.contains("missing.toml"), "{err}");
    // Nothing ran: no data directory anywhere.
    assert!(!dir.path().join("postbox-data").exists());
}

#[test]
fn user_commands_apply_to_a_running_server() {
    let server = Server::with_users();
    let here = server.data.parent().unwrap();
    let data = server.data.to_str().unwrap();
    let list = ok(here, &["user", "list", "--data", data], "");
    assert_eq!(list, "alice@localhost (admin)\nbob@localhost\n");

    // --password-stdin takes one line (CRLF or LF); the rest is not read.
    let out = ok(
        here,
        &["user", "add", "dave", "--password-stdin", "--data", data],
        "dave-pw\r\nsurplus\n",
    );
    assert_eq!(out, "added dave@localhost\n");
    let reply = pop3_login_reply(&server, "dave", "dave-pw");
    assert!(reply.starts_with("+OK"), "new user cannot log in: {reply}");
    assert!(rcpt_reply(&server, "dave@localhost").starts_with("250"));

    let out = ok(
        here,
        &["user", "passwd", "bob", "--password-stdin", "--data", data],
        "new-pw\n",
    );
    assert_eq!(out, "password changed for bob@localhost\n");
    let reply = pop3_login_reply(&server, "bob", "bob-pw");
    assert!(
        reply.starts_with("-ERR"),
        "old password still works: {reply}"
    );
    let reply = pop3_login_reply(&server, "bob", "new-pw");
    assert!(reply.starts_with("+OK"), "new password refused: {reply}");

    let out = ok(here, &["user", "del", "bob", "--data", data], "");
    assert_eq!(out, "deleted bob@localhost\n");
    let reply = rcpt_reply(&server, "bob@localhost");
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
    assert!(!server.data.join("mail/localhost/bob").exists());
    assert_eq!(
        ok(here, &["user", "list", "--data", data], ""),
        "alice@localhost (admin)\ndave@localhost\n"
    );
    // Everything above happened without a restart.
    let mut server = server;
    assert!(server.child.try_wait().unwrap().is_none(), "server died");
}

#[test]
fn passwords_are_never_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let secrets = [
        "Sup3r-Secret-Alice",
        "Sup3r-Secret-Bob",
        "Sup3r-Secret-Changed",
        "Sup3r-Secret-Console",
    ];
    for (name, secret) in [("alice", secrets[0]), ("bob", secrets[1])] {
        ok(
            dir.path(),
            &["user", "add", name, "--password-stdin", "--data", data],
            &format!("{secret}\n"),
        );
    }
    ok(
        dir.path(),
        &["user", "passwd", "bob", "--password-stdin", "--data", data],
        &format!("{}\n", secrets[2]),
    );
    let script = format!("user add carol\n{0}\n{0}\nquit\n", secrets[3]);
    let shown = ok(dir.path(), &["console", "--data", data], &script);
    assert!(shown.contains("added carol@localhost"), "{shown}");
    let users = std::fs::read(dir.path().join("data/users")).unwrap();
    assert_eq!(
        text(&users).matches("$argon2id$").count(),
        3,
        "one Argon2id hash per user"
    );
    for file in walk(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in secrets {
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{secret} in clear in {file:?}"
            );
        }
    }
}

#[test]
fn console_script_over_stdin() {
    let server = Server::with_users();
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: s\r\n\r\nhi",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let stored: u64 = server
        .messages("alice")
        .iter()
        .map(|m| m.metadata().unwrap().len())
        .sum();
    let here = server.data.parent().unwrap();
    let data = server.data.to_str().unwrap();
    // The password is asked twice, on the two lines after the command.
    let script = "help\nuser add carol\ncarol-pw\ncarol-pw\nuser list\nstatus\nfrob\n\
                  user del carol\nuser list\nquit\nuser list\n";
    let out = pb(here, &["console", "--data", data], script);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    for expected in [
        format!("Postbox {} console", env!("CARGO_PKG_VERSION")),
        "postbox> ".into(),
        "user add NAME".into(),
        "status".into(),
        "quit".into(),
        "Password: ".into(),
        "Again: ".into(),
        "added carol@localhost\r\n".into(),
        "alice@localhost (admin)\r\nbob@localhost\r\ncarol@localhost\r\n".into(),
        format!(
            "server: running (pid {}), up 0d 00h 00m ",
            server.child.id()
        ),
        format!("smtp {}", server.smtp),
        format!("pop3 {}", server.pop3),
        "domains: localhost\r\n".into(),
        "users: 3\r\n".into(),
        format!("stored: 1 messages, {stored} bytes\r\n"),
        "error: unknown command \"frob\"".into(),
        "deleted carol@localhost\r\n".into(),
    ] {
        assert!(shown.contains(&expected), "{expected:?} missing:\n{shown}");
    }
    assert!(shown.contains("listeners: "), "{shown}");
    // Two lists ran; the one after quit did not.
    assert_eq!(
        shown.matches("alice@localhost (admin)").count(),
        2,
        "{shown}"
    );
    assert!(!shown.contains("carol-pw"), "password echoed: {shown}");

    // Mismatched passwords add nobody; end of input ends the console with 0.
    let out = pb(
        here,
        &["console", "--data", data],
        "user add dave\na\nb\nuser list\n",
    );
    assert!(out.status.success(), "EOF ends the console cleanly");
    let shown = text(&out.stdout);
    assert!(shown.contains("error: passwords do not match"), "{shown}");
    assert!(!shown.contains("dave@"), "{shown}");
    // So does quit (and exit) as the very first command.
    for command in ["quit\n", "exit\n", ""] {
        let out = pb(here, &["console", "--data", data], command);
        assert!(out.status.success(), "{command:?}");
    }
}

#[test]
fn console_changes_apply_to_a_running_server() {
    let server = Server::with_users();
    let mut console = Command::new(BIN)
        .args(["console", "--data", server.data.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = console.stdin.take().unwrap();
    let mut shown = Collected::start(console.stdout.take().unwrap());
    shown.wait_for("postbox> ", 1);
    input.write_all(b"user add carol\n").unwrap();
    shown.wait_for("Password: ", 1);
    input.write_all(b"carol-pw\n").unwrap();
    shown.wait_for("Again: ", 1);
    input.write_all(b"carol-pw\n").unwrap();
    shown.wait_for("added carol@localhost", 1);
    let reply = pop3_login_reply(&server, "carol", "carol-pw");
    assert!(reply.starts_with("+OK"), "{reply}");
    assert!(rcpt_reply(&server, "carol@localhost").starts_with("250"));

    input
        .write_all(b"user passwd alice\nnew-pw\nnew-pw\n")
        .unwrap();
    shown.wait_for("password changed for alice@localhost", 1);
    assert!(pop3_login_reply(&server, "alice", "new-pw").starts_with("+OK"));

    input.write_all(b"user del carol\n").unwrap();
    shown.wait_for("deleted carol@localhost", 1);
    let reply = rcpt_reply(&server, "carol@localhost");
    assert!(reply.starts_with("550 5.1.1"), "{reply}");

    input.write_all(b"status\n").unwrap();
    let status = shown.wait_for("stored: ", 1);
    assert!(status.contains("server: running"), "{status}");
    assert!(status.contains("users: 2\r\n"), "{status}");
    drop(input);
    let exit = wait_timeout(&mut console, Duration::from_secs(10)).expect("console hangs at EOF");
    assert!(exit.success(), "{exit}");
}

#[test]
fn console_status_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let shown = ok(dir.path(), &["console", "--data", "data"], "status\n");
    for expected in [
        "server: not running\r\n",
        "users: 0\r\n",
        "stored: 0 messages, 0 bytes\r\n",
    ] {
        assert!(shown.contains(expected), "{expected:?} missing:\n{shown}");
    }
}

#[test]
fn serve_defaults_to_postbox_data_in_the_current_dir() {
    let dir = tempfile::tempdir().unwrap();
    // The default ports may be taken on a busy machine; only those move.
    let mut args = Vec::new();
    let mut defaults = Vec::new();
    for (flag, service, port) in [
        ("--smtp", "smtp", 2525),
        ("--pop3", "pop3", 2110),
        ("--submission", "submission", 2587),
        ("--submissions", "submissions", 2465),
        ("--pop3s", "pop3s", 2995),
        ("--web", "web", 2443),
        ("--http", "http", 2080),
    ] {
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            defaults.push((service, port));
        } else {
            args.extend([flag, "127.0.0.1:0"]);
        }
    }
    let mut serve = Serve::start(dir.path(), &args);
    let line = serve.serving_line();
    assert!(line.contains("data in postbox-data"), "{line}");
    assert!(line.contains("serving localhost on"), "{line}");
    for (service, port) in defaults {
        let want: SocketAddr = ([127, 0, 0, 1], port).into();
        assert_eq!(listener(&line, service), Some(want), "{line}");
    }
    assert!(dir.path().join("postbox-data").is_dir());
    assert!(dir.path().join("postbox-data/tls/cert.pem").is_file());
    // It really serves.
    let smtp = listener(&line, "smtp").expect("smtp in the serving line");
    let mut c = Client::connect(smtp);
    assert!(c.reply().starts_with("220 "));
    drop(c);
    assert_eq!(serve.stop("TERM").map(|s| s.code()), Some(Some(0)));
}

#[test]
fn sigterm_and_sigint_stop_an_idle_server_with_0() {
    let stop = |signal_name: &'static str| {
        std::thread::spawn(move || {
            let dir = tempfile::tempdir().unwrap();
            let mut serve = Serve::start(
                dir.path(),
                &[
                    "--data",
                    "data",
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
                ],
            );
            serve.serving_line();
            let started = Instant::now();
            let status = serve.stop(signal_name);
            (signal_name, status, started.elapsed(), serve.log.rest())
        })
    };
    // Both at once: independent servers, half the wall time.
    for handle in [stop("TERM"), stop("INT")] {
        let (name, status, took, log) = handle.join().unwrap();
        // Said as a person knows it.
        assert!(log.contains(&format!("received SIG{name}: ")), "{log}");
        let status = status.unwrap_or_else(|| panic!("SIG{name}: still running after 5 s"));
        assert_eq!(status.code(), Some(0), "SIG{name}: {status}");
        assert!(took < Duration::from_secs(5), "SIG{name}: {took:?}");
    }
}

#[test]
fn serve_refuses_a_second_server_on_the_same_data() {
    let server = Server::start();
    let here = server.data.parent().unwrap();
    let err = fails(
        here,
        &[
            "serve",
            "--data",
            server.data.to_str().unwrap(),
            "--smtp",
            "127.0.0.1:0",
            "--pop3",
            "127.0.0.1:0",
        ],
        "",
    );
    assert!(err.contains("already"), "{err}");
    // The first one goes on serving.
    assert!(server.smtp().reply().starts_with("220 "));
}

#[test]
fn data_directories_are_neither_tracked_nor_trackable() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| Command::new("git").args(args).current_dir(repo).output();
    // Built from a source tarball there is no repository to check.
    let Ok(tracked) = git(&["ls-files", "-z"]) else {
        return;
    };
    if !tracked.status.success() {
        return;
    }
    let tracked = text(&tracked.stdout);
    let data_files: Vec<&str> = tracked
        .split('\0')
        .filter(|p| p.ends_with(".pem") || p.ends_with("serve.lock") || p.ends_with("/users"))
        .collect();
    assert!(data_files.is_empty(), "tracked data files: {data_files:?}");
    // A data directory made by hand in the checkout stays out of commits.
    for path in ["d/tls/key.pem", "postbox-data/users", "data/tls/key.pem"] {
        let ignored = git(&["check-ignore", "-q", "--no-index", path]).unwrap();
        assert!(ignored.status.success(), "{path} is not ignored");
    }
}

#[test]
fn numbers_out_of_range_stop_serve_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postbox.toml");
    let file = config.to_str().unwrap();
    let ports = [
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
    ];
    for (content, reason) in [
        (
            "[smtp]\ncommand_timeout = 9223372036854775807\n",
            "smtp.command_timeout must be 1s to 1h",
        ),
        (
            "[greylist]\nenabled = true\nallow_days = 213503982334601\n",
            "greylist.allow_days must be 1 to 365 days",
        ),
    ] {
        std::fs::write(&config, content).unwrap();
        let mut args = vec!["--config", file, "--data", "data"];
        args.extend(ports);
        let mut serve = Serve::start(dir.path(), &args);
        let status = wait_timeout(&mut serve.child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("serve started with {content:?}"));
        let out = Output {
            status,
            stdout: Vec::new(),
            stderr: serve.log.rest().into_bytes(),
        };
        let err = check_failure(&["serve"], &out).unwrap_or_else(|e| panic!("{e}"));
        assert!(err.contains(reason), "{content:?}: {err}");
        // Every command reads the same config, and says the same.
        let err = fails(dir.path(), &["user", "list", "--config", file], "");
        assert!(err.contains(reason), "{content:?}: {err}");
    }
    assert!(!dir.path().join("data").exists());
}

#[test]
fn reading_a_missing_data_directory_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nonexistent");
    let data = missing.to_str().unwrap();
    for args in [
        &["user", "list", "--data", data][..],
        &["user", "del", "alice", "--data", data],
        &["user", "quota", "alice", "1M", "--data", data],
        &["user", "forward", "alice", "off", "--data", data],
        &["alias", "list", "--data", data],
        &["queue", "list", "--data", data],
        &["stats", "--data", data],
    ] {
        let err = fails(dir.path(), args, "");
        assert!(err.contains(data), "{args:?}: {err}");
        assert!(err.contains("no data directory"), "{args:?}: {err}");
    }
    // Nothing was made on the way.
    assert!(!missing.exists());
}

#[test]
fn stopping_a_forward_that_does_not_exist_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    ok(
        dir.path(),
        &["user", "add", "alice", "--password-stdin", "--data", data],
        "pw\n",
    );
    let off = ["user", "forward", "alice", "off", "--data", data];
    let err = fails(dir.path(), &off, "");
    assert!(err.contains("alice@localhost has no forward"), "{err}");
    let on = ["user", "forward", "alice", "a@example.org", "--data", data];
    ok(dir.path(), &on, "");
    assert_eq!(
        ok(dir.path(), &off, ""),
        "alice@localhost no longer forwards\n"
    );
    let err = fails(dir.path(), &off, "");
    assert!(err.contains("alice@localhost has no forward"), "{err}");
}

#[test]
fn user_add_takes_the_domains_the_running_server_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_in(&data, &["--domain", "club.test"]);
    let data = data.to_str().unwrap();
    let add = |name: &'static str| ["user", "add", name, "--password-stdin", "--data", data];
    assert_eq!(
        ok(dir.path(), &add("carol@club.test"), "pw\n"),
        "added carol@club.test\n"
    );
    assert!(rcpt_reply(&server, "carol@club.test").starts_with("250"));
    // A domain nobody serves is still refused, with the ways to serve it.
    let err = fails(dir.path(), &add("dan@other.test"), "pw\n");
    assert!(err.contains("other.test is not a served domain"), "{err}");
    assert!(err.contains("--domain other.test"), "{err}");
    // --domain works for the command itself too, server or not.
    drop(server);
    let mut args = add("dan@other.test").to_vec();
    args.extend(["--domain", "other.test"]);
    assert_eq!(ok(dir.path(), &args, "pw\n"), "added dan@other.test\n");
}

#[test]
fn check_config_prints_ok_or_each_problem_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/postbox.toml.example");
    assert_eq!(ok(here, &["check-config", example], ""), "ok\n");
    assert_eq!(ok(here, &["check-config", "--config", example], ""), "ok\n");
    // Old names and plain numbers in their old units still read.
    std::fs::write(
        here.join("old.toml"),
        "smarthost = \"mx.example:587\"\nqueue_warn = 3600\n[greylist]\nallow_days = 10\n",
    )
    .unwrap();
    assert_eq!(ok(here, &["check-config", "old.toml"], ""), "ok\n");
    std::fs::write(
        here.join("bad.toml"),
        "queue_return = \"40d\"\n[smtp]\nmax_errors = 0\n[greylist]\nretry_window = \"soon\"\n",
    )
    .unwrap();
    let out = pb(here, &["check-config", "bad.toml"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "queue_return must be 1s to 30d, not \"40d\"\n\
         smtp.max_errors must be 1 to 1000, not 0\n\
         greylist.retry_window: invalid duration \"soon\" (e.g. 90s, 10m, 4h, 5d)\n"
    );
    assert_eq!(text(&out.stderr), "");
    // A flag is checked as serve would take it.
    let out = pb(
        here,
        &["check-config", example, "--domain", "bad domain"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("invalid domain"), "{out:?}");
    let out = pb(here, &["check-config", "missing.toml"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).starts_with("cannot read config missing.toml"),
        "{out:?}"
    );
    for args in [
        &["check-config", "a.toml", "b.toml"][..],
        &["check-config", "a.toml", "--config", "b.toml"],
    ] {
        let out = pb(here, args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(ok(here, &["check-config", "--help"], "").starts_with("usage"));
}

#[test]
fn status_on_the_command_line_says_what_the_console_says() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    ok(
        here,
        &["user", "add", "alice", "--password-stdin", "--data", "data"],
        "pw-alice\n",
    );
    let cli = ok(here, &["status", "--data", "data"], "");
    let console = ok(here, &["console", "--data", "data"], "status\n");
    // The machine's uptime and its disk may change between the two.
    let facts = |text: &str| -> Vec<String> {
        text.replace("\r\n", "\n")
            .lines()
            .map(|l| l.trim_start_matches("postbox> "))
            .filter(|l| !l.starts_with("machine up") && !l.starts_with("disk: "))
            .map(str::to_string)
            .collect()
    };
    let (cli, console) = (facts(&cli), facts(&console));
    assert!(cli.contains(&"server: not running".to_string()), "{cli:?}");
    assert!(cli.contains(&"users: 1".to_string()), "{cli:?}");
    let shown: Vec<&String> = console.iter().filter(|l| cli.contains(l)).collect();
    assert_eq!(shown.len(), cli.len(), "console {console:?}\ncli {cli:?}");
    let out = pb(here, &["status", "extra", "--data", "data"], "");
    assert_eq!(out.status.code(), Some(2));
}
