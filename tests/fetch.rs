//! Fetching members' mail from upstream mailboxes (`[[fetch]]`): a
//! second Postbox as the POP3 upstream (POP3S, and POP3 with STLS), and
//! Dovecot's IMAP server with a private configuration on loopback.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// An upstream Postbox with alice (`alice-pw`) holding `count` messages.
struct Upstream {
    _dir: tempfile::TempDir,
    server: Server,
    cert: PathBuf,
}

impl Upstream {
    fn start(count: usize) -> Upstream {
        Upstream::start_with(count, "")
    }

    /// [`Upstream::start`] with `config` as its postbox.toml.
    fn start_with(count: usize, config: &str) -> Upstream {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        add_user(&data, "alice", "alice-pw");
        let config_path = dir.path().join("postbox.toml");
        std::fs::write(&config_path, config).unwrap();
        let server = Server::start_tls_only(&data, &["--config", config_path.to_str().unwrap()]);
        let upstream = Upstream {
            cert: data.join("tls").join("cert.pem"),
            _dir: dir,
            server,
        };
        for n in 0..count {
            upstream.send(n);
        }
        upstream
    }

    fn send(&self, n: usize) {
        self.send_text(&format!("Subject: message {n}\r\n\r\nbody {n}\r\n"));
    }

    fn send_text(&self, text: &str) {
        let reply = send_mail(self.server.smtp, "f@x.test", &["alice@localhost"], text);
        assert!(reply.starts_with("250"), "{reply}");
    }

    fn held(&self) -> usize {
        self.server.messages("alice").len()
    }
}

/// The fetching Postbox: carol, with `entry` as her `[[fetch]]` table.
struct Fetching {
    dir: tempfile::TempDir,
    server: Option<Server>,
}

impl Fetching {
    fn start(entry: &str) -> Fetching {
        let mut fetching = Fetching::stopped(entry);
        fetching.restart();
        fetching
    }

    /// Carol and her config, with no server running.
    fn stopped(entry: &str) -> Fetching {
        let dir = tempfile::tempdir().unwrap();
        add_user(&dir.path().join("data"), "carol", "carol-pw");
        let config = format!("[[fetch]]\n{entry}\n");
        std::fs::write(dir.path().join("postbox.toml"), config).unwrap();
        Fetching { dir, server: None }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("postbox.toml")
    }

    fn restart(&mut self) {
        let config = self.config();
        let server = Server::start_in(&self.data(), &["--config", config.to_str().unwrap()]);
        self.server = Some(server);
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// Waits for the `nth` (from 1) run of the entry to end well.
    fn wait_runs(&self, nth: usize) {
        wait_until("a fetch run", WAIT, || {
            let log = self.server().log();
            assert!(!log.contains(" failed: "), "{log}");
            log.matches(": ok, ").count() >= nth
        });
    }

    fn fetch_now(&self) {
        let out = self.cli(&["fetch", "now", "carol"]);
        assert!(out.contains("fetches for carol now"), "{out}");
    }

    fn cli(&self, words: &[&str]) -> String {
        let (config, data) = (self.config(), self.data());
        let mut args = words.to_vec();
        args.extend(["--config", config.to_str().unwrap()]);
        args.extend(["--data", data.to_str().unwrap()]);
        let out = postbox(&args, "");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Carol's message with `subject` in it.
    fn message_with(&self, subject: &str) -> String {
        let texts = mailbox_files(&self.data(), "carol").into_iter();
        let mut found = texts
            .map(|f| std::fs::read_to_string(f).unwrap())
            .filter(|t| t.contains(subject));
        let text = found.next().unwrap_or_else(|| panic!("no {subject}"));
        assert!(found.next().is_none(), "{subject} stored twice");
        text
    }

    /// The subjects of carol's messages, each once; panics on a duplicate.
    fn subjects(&self) -> BTreeSet<String> {
        let mut subjects = BTreeSet::new();
        for file in mailbox_files(&self.data(), "carol") {
            let text = std::fs::read_to_string(&file).unwrap();
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_else(|| panic!("no subject in {text}"))
                .to_string();
            assert!(subjects.insert(subject.clone()), "{subject} stored twice");
        }
        subjects
    }
}

fn subjects(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|n| format!("message {n}")).collect()
}

fn pop3_entry(scheme: &str, port: u16, cert: &Path, keep: bool) -> String {
    format!(
        "user = \"carol\"\nurl = \"{scheme}://alice@localhost:{port}\"\npassword = \"alice-pw\"\nca = \"{}\"\nkeep = {keep}\nevery = \"1d\"",
        cert.display()
    )
}

#[test]
fn pop3s_kept_mail_is_fetched_once_across_runs_and_new_mail_follows() {
    let upstream = Upstream::start(3);
    let port = upstream.server.pop3s.unwrap().port();
    let fetching = Fetching::start(&pop3_entry("pop3s", port, &upstream.cert, true));
    fetching.wait_runs(1);
    assert_eq!(fetching.subjects(), subjects(0..3));
    let file = &mailbox_files(&fetching.data(), "carol")[0];
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.starts_with(
            "Received: from localhost by mx.test with POP3S (fetch for carol@localhost);\r\n\t"
        ),
        "{text}"
    );
    // As if killed between the deliveries and the record saying so: the
    // mailbox's file names still tell what came.
    std::fs::remove_dir_all(fetching.data().join("fetch")).unwrap();
    fetching.fetch_now();
    fetching.wait_runs(2);
    assert_eq!(fetching.subjects(), subjects(0..3));
    assert!(fetching.server().log().contains("ok, 0 fetched"));
    upstream.send(3);
    fetching.fetch_now();
    fetching.wait_runs(3);
    assert_eq!(fetching.subjects(), subjects(0..4));
    assert_eq!(upstream.held(), 4, "kept upstream");
    let list = fetching.cli(&["fetch", "list"]);
    let expected = format!("carol pop3s://alice@localhost:{port} last run: ");
    assert!(list.starts_with(&expected), "{list}");
    assert!(list.contains("result: ok, 1 fetched; fetched: "), "{list}");
}

#[test]
fn pop3_with_stls_deletes_upstream_only_what_is_stored_here() {
    let upstream = Upstream::start(3);
    let port = upstream.server.pop3.port();
    let fetching = Fetching::start(&pop3_entry("pop3", port, &upstream.cert, false));
    fetching.wait_runs(1);
    assert_eq!(fetching.subjects(), subjects(0..3));
    assert_eq!(upstream.held(), 0, "deleted upstream once stored");
    let log = fetching.server().log();
    assert!(log.contains("ok, 3 fetched, 3 deleted upstream"), "{log}");
}

#[test]
fn a_fetch_killed_midway_then_restarted_loses_nothing_and_doubles_nothing() {
    let upstream = Upstream::start(40);
    let port = upstream.server.pop3s.unwrap().port();
    let mut fetching = Fetching::start(&pop3_entry("pop3s", port, &upstream.cert, false));
    wait_until("a first message stored", WAIT, || {
        fetching.server().log().contains(": message ")
    });
    fetching.server.as_mut().unwrap().kill();
    if !fetching.server().log().contains(": ok, ") {
        assert_eq!(upstream.held(), 40, "nothing deleted before QUIT");
    }
    fetching.restart();
    fetching.wait_runs(1);
    assert_eq!(fetching.subjects(), subjects(0..40));
    assert_eq!(upstream.held(), 0);
}

#[test]
fn fetch_now_without_a_server_runs_the_entry_itself() {
    let upstream = Upstream::start(2);
    let port = upstream.server.pop3s.unwrap().port();
    let fetching = Fetching::stopped(&pop3_entry("pop3s", port, &upstream.cert, true));
    let out = fetching.cli(&["fetch", "now"]);
    let expected = format!("carol pop3s://alice@localhost:{port}: ok, 2 fetched");
    assert!(out.contains(&expected), "{out}");
    assert_eq!(fetching.subjects(), subjects(0..2));
    let out = fetching.cli(&["fetch", "now", "carol"]);
    assert!(out.contains(": ok, 0 fetched"), "{out}");
    let out = fetching.cli(&["fetch", "now", "dave"]);
    assert!(out.contains("no [[fetch]] entry for dave"), "{out}");
}

#[test]
fn a_wrong_password_is_logged_and_listed() {
    let upstream = Upstream::start(1);
    let port = upstream.server.pop3s.unwrap().port();
    let entry = pop3_entry("pop3s", port, &upstream.cert, true).replace("alice-pw", "wrong");
    let fetching = Fetching::start(&entry);
    assert!(
        fetching
            .server()
            .logged(" failed: login refused: -ERR", WAIT),
        "{}",
        fetching.server().log()
    );
    wait_until("the failure recorded", WAIT, || {
        fetching
            .cli(&["fetch", "list"])
            .contains("result: failed: login refused: -ERR")
    });
    assert!(fetching.subjects().is_empty());
}

#[test]
fn bad_fetch_keys_are_named_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postbox.toml");
    std::fs::write(
        &config,
        "[[fetch]]\nuser = \"carol\"\nurl = \"pop3s://carol:pw@pop.example\"\npassword = \"x\"\nevery = \"1s\"\n\
         [[fetch]]\nuser = \"carol\"\nurl = \"imaps://carol@imap.example/INBOX\"\n",
    )
    .unwrap();
    let out = postbox(&["check-config", config.to_str().unwrap()], "");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for expected in [
        "fetch[0].url: a password in the URL",
        "fetch[0].every: must be 10s to 1d",
        "fetch[1].password: missing",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    std::fs::write(&config, "[[fetch]]\nuser = \"carol\"\nul = \"x\"\n").unwrap();
    let out = postbox(&["check-config", config.to_str().unwrap()], "");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("unknown field `ul`"), "{text}");
}

/// Dovecot's IMAP server with a private configuration: IMAPS on a free
/// loopback port, one user `up` (`up-pw`) whose Maildir is in a temp dir.
/// As root its mail processes run as nobody; otherwise everything runs
/// as the test's own user.
struct Dovecot {
    dir: tempfile::TempDir,
    child: std::process::Child,
    port: u16,
    cert: PathBuf,
    /// The uid and gid owning the mail.
    owner: (u32, u32),
}

impl Dovecot {
    fn start() -> Dovecot {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        use std::os::unix::fs::PermissionsExt;
        // Dovecot's processes that are not root walk through it.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let tls = postbox(
            &[
                "tls",
                "selfsigned",
                "--force",
                "--hostname",
                "localhost",
                "--data",
            ]
            .into_iter()
            .chain([root.join("pb").to_str().unwrap()])
            .collect::<Vec<_>>(),
            "",
        );
        assert!(tls.status.success(), "{tls:?}");
        // SAFETY: getuid and getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let owner = if uid == 0 { (65534, 65534) } else { (uid, gid) };
        let mail = root.join("mail");
        for sub in ["", "up", "up/new", "up/cur", "up/tmp"] {
            std::fs::create_dir_all(mail.join(sub)).unwrap();
            std::os::unix::fs::chown(mail.join(sub), Some(owner.0), Some(owner.1)).unwrap();
        }
        std::fs::write(
            root.join("passwd"),
            format!(
                "up:{{PLAIN}}up-pw:{}:{}::{}::\n",
                owner.0,
                owner.1,
                mail.join("up").display()
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let unprivileged = match uid {
            0 => String::new(),
            _ => {
                let id = |flag: &str| {
                    let out = std::process::Command::new("id").arg(flag).output().unwrap();
                    String::from_utf8(out.stdout).unwrap().trim().to_string()
                };
                let (name, group) = (id("-un"), id("-gn"));
                format!(
                    "default_login_user = {name}\ndefault_internal_user = {name}\n\
                     default_internal_group = {group}\n"
                )
            }
        };
        let r = root.display();
        let config = format!(
            "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {r}/run\nstate_dir = {r}/state\n\
             log_path = {r}/dovecot.log\nssl = required\nssl_cert = <{r}/pb/tls/cert.pem\n\
             ssl_key = <{r}/pb/tls/key.pem\nauth_mechanisms = plain\n\
             mail_location = maildir:{r}/mail/%u\nfirst_valid_uid = 1\n{unprivileged}\
             passdb {{\n  driver = passwd-file\n  args = {r}/passwd\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = {r}/passwd\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = 0\n  }}\n\
               inet_listener imaps {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n"
        );
        std::fs::write(root.join("dovecot.conf"), config).unwrap();
        let child = std::process::Command::new("dovecot")
            .args(["-F", "-c"])
            .arg(root.join("dovecot.conf"))
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("dovecot (dovecot-imapd: scripts/install-test-deps)");
        wait_until("Dovecot's IMAPS listener", WAIT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Dovecot {
            cert: root.join("pb/tls/cert.pem"),
            dir,
            child,
            port,
            owner,
        }
    }

    /// Puts message `n` into up's INBOX, as a delivery would.
    fn deliver(&self, n: usize) {
        let new = self.dir.path().join("mail/up/new");
        let tmp = self
            .dir
            .path()
            .join("mail/up/tmp")
            .join(format!("{n}.test"));
        let text = format!("Subject: message {n}\r\n\r\nbody {n}\r\n");
        std::fs::write(&tmp, text).unwrap();
        std::os::unix::fs::chown(&tmp, Some(self.owner.0), Some(self.owner.1)).unwrap();
        std::fs::rename(&tmp, new.join(format!("{n}.test"))).unwrap();
    }

    /// Messages in up's INBOX, not marked deleted.
    fn held(&self) -> usize {
        let mail = self.dir.path().join("mail/up");
        ["new", "cur"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(mail.join(sub)).unwrap())
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_string_lossy();
                !name
                    .rsplit_once(":2,")
                    .is_some_and(|(_, flags)| flags.contains('T'))
            })
            .count()
    }

    fn entry(&self, keep: bool) -> String {
        format!(
            "user = \"carol\"\nurl = \"imaps://up@localhost:{}/INBOX\"\npassword = \"up-pw\"\nca = \"{}\"\nkeep = {keep}\nevery = \"1d\"",
            self.port,
            self.cert.display()
        )
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn imaps_kept_mail_is_fetched_once_across_runs_and_new_mail_follows() {
    let dovecot = Dovecot::start();
    for n in 0..3 {
        dovecot.deliver(n);
    }
    let fetching = Fetching::start(&dovecot.entry(true));
    fetching.wait_runs(1);
    assert_eq!(fetching.subjects(), subjects(0..3));
    let file = &mailbox_files(&fetching.data(), "carol")[0];
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.starts_with(
            "Received: from localhost by mx.test with IMAPS (fetch for carol@localhost);"
        ),
        "{text}"
    );
    fetching.fetch_now();
    fetching.wait_runs(2);
    dovecot.deliver(3);
    fetching.fetch_now();
    fetching.wait_runs(3);
    assert_eq!(fetching.subjects(), subjects(0..4));
    assert_eq!(dovecot.held(), 4, "kept upstream");
    let files = mailbox_files(&fetching.data(), "carol");
    let text = "Subject: message 3\r\n\r\nbody 3\r\n";
    assert!(files.iter().any(|f| after_our_trace(f) == text.as_bytes()));
    assert!(fetching.cli(&["fetch", "list"]).contains("fetched: 4"));
}

#[test]
fn imaps_deletes_upstream_only_what_is_stored_here() {
    let dovecot = Dovecot::start();
    for n in 0..3 {
        dovecot.deliver(n);
    }
    let fetching = Fetching::start(&dovecot.entry(false));
    fetching.wait_runs(1);
    assert_eq!(fetching.subjects(), subjects(0..3));
    assert_eq!(dovecot.held(), 0, "expunged once stored");
}

#[test]
fn an_imaps_fetch_killed_midway_then_restarted_loses_nothing_and_doubles_nothing() {
    let dovecot = Dovecot::start();
    for n in 0..40 {
        dovecot.deliver(n);
    }
    let mut fetching = Fetching::start(&dovecot.entry(true));
    wait_until("a first message stored", WAIT, || {
        fetching.server().log().contains(": message ")
    });
    fetching.server.as_mut().unwrap().kill();
    fetching.restart();
    fetching.wait_runs(1);
    assert_eq!(fetching.subjects(), subjects(0..40));
    assert_eq!(dovecot.held(), 40);
}

/// What follows our two-line `Received:` field in a stored message.
fn after_our_trace(file: &Path) -> Vec<u8> {
    let bytes = std::fs::read(file).unwrap();
    let text_end =
        |from: usize| bytes[from..].windows(2).position(|w| w == b"\r\n").unwrap() + from + 2;
    let first = text_end(0);
    assert!(bytes.starts_with(b"Received: from localhost by mx.test with "));
    assert!(bytes[first] == b'\t', "the date on a line of its own");
    bytes[text_end(first)..].to_vec()
}

#[test]
fn a_large_message_arrives_byte_for_byte() {
    let upstream = Upstream::start(0);
    // 3 MiB of lines, some starting with dots (stuffed on the wire).
    let mut body = String::from("Subject: message 0\r\n\r\n");
    for n in 0..40_000 {
        body.push_str(&format!(
            ".{n} a line of the large message, with some text in it\r\n"
        ));
    }
    let reply = send_mail(
        upstream.server.smtp,
        "f@x.test",
        &["alice@localhost"],
        &body,
    );
    assert!(reply.starts_with("250"), "{reply}");
    let port = upstream.server.pop3s.unwrap().port();
    let fetching = Fetching::start(&pop3_entry("pop3s", port, &upstream.cert, true));
    fetching.wait_runs(1);
    let ours = mailbox_files(&fetching.data(), "carol");
    let theirs = upstream.server.messages("alice");
    assert_eq!(ours.len(), 1);
    assert_eq!(
        after_our_trace(&ours[0]),
        std::fs::read(&theirs[0]).unwrap()
    );
}

/// A message to 20 people, none of them carol.
fn mass_mail(subject: &str) -> String {
    let many: Vec<String> = (0..20).map(|i| format!("person{i}@far.example")).collect();
    format!(
        "From: Offers <offers@far.example>\r\nTo: {}\r\nSubject: {subject}\r\n\r\nBuy now.\r\n",
        many.join(",\r\n ")
    )
}

#[test]
fn fetched_mail_meets_the_recipient_rule_and_teaches_the_address_book() {
    // The upstream judges nothing: what arrives here is as it was sent.
    let upstream = Upstream::start_with(0, "[spam]\nrecipient_limit = 0\n");
    upstream.send_text(&mass_mail("offer one"));
    upstream.send_text("From: Bob Smith <bob@far.example>\r\nSubject: hello\r\n\r\nHi.\r\n");
    let port = upstream.server.pop3s.unwrap().port();
    let fetching = Fetching::stopped(&pop3_entry("pop3s", port, &upstream.cert, true));
    let out = fetching.cli(&["fetch", "now"]);
    assert!(out.contains(": ok, 2 fetched"), "{out}");
    let offer = fetching.message_with("offer one");
    assert!(offer.starts_with("X-Spam: yes\r\n"), "{offer}");
    assert!(offer.contains("Subject: [SPAM] offer one\r\n"), "{offer}");
    let hello = fetching.message_with("hello");
    assert!(!hello.contains("X-Spam"), "{hello}");
    let book = fetching.cli(&["book", "carol", "list"]);
    assert!(book.contains("bob@far.example"), "{book}");
    // Someone carol knows among the many: not spam.
    let added = fetching.cli(&["book", "carol", "add", "person7@far.example"]);
    assert!(
        added.contains("is in carol@localhost's address book"),
        "{added}"
    );
    upstream.send_text(&mass_mail("offer two"));
    let out = fetching.cli(&["fetch", "now"]);
    assert!(out.contains(": ok, 1 fetched"), "{out}");
    let offer = fetching.message_with("offer two");
    assert!(!offer.contains("X-Spam"), "{offer}");
}
