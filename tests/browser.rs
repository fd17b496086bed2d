//! The web pages in a real browser: Debian's Chromium, driven through
//! chromium-driver by Selenium (tests/browser/driver.py), against the real
//! server. Nothing downloads a browser; the browser resolves only the
//! test's own names.
//!
//! With `POSTBOX_SCREENSHOTS=DIR` the tests also save the pages they see
//! there (scripts/screenshots makes the README's pictures that way).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// One browser kept open across steps (its cookies too).
struct Browser {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    base: String,
}

impl Browser {
    /// A browser that finds `mx.test` at the server's HTTPS listener.
    fn open(server: &Server) -> Browser {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/driver.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--map", "mx.test=127.0.0.1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (scripts/install-test-deps installs it)");
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        let port = server.web.expect("the web listener is on").port();
        let mut browser = Browser {
            child,
            input,
            output,
            base: format!("https://mx.test:{port}"),
        };
        let ready = browser.answer();
        assert_eq!(
            ready.as_deref(),
            Ok("ready"),
            "chromium and chromium-driver (scripts/install-test-deps installs them)"
        );
        browser
    }

    /// `ok LENGTH` or `error LENGTH`, then that many bytes.
    fn answer(&mut self) -> Result<String, String> {
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        let (kind, length) = line
            .trim_end()
            .split_once(' ')
            .unwrap_or_else(|| panic!("the browser driver stopped: {line:?}"));
        let mut value = vec![0; length.parse().unwrap()];
        self.output.read_exact(&mut value).unwrap();
        let value = String::from_utf8(value).unwrap();
        match kind {
            "ok" => Ok(value),
            _ => Err(value),
        }
    }

    /// Runs one command; its answer, panicking on an error.
    fn run(&mut self, command: &str) -> String {
        writeln!(self.input, "{command}").unwrap();
        self.input.flush().unwrap();
        match self.answer() {
            Ok(value) => value,
            Err(e) => panic!("browser: {command}: {e}"),
        }
    }

    fn get(&mut self, path: &str) -> String {
        let url = format!("{}{path}", self.base);
        self.run(&json::object(&[("get", &url)]))
    }

    fn fill(&mut self, css: &str, value: &str) {
        self.run(&json::object(&[("fill", css), ("value", value)]));
    }

    fn click(&mut self, css: &str) -> String {
        self.run(&json::object(&[("click", css)]))
    }

    fn text(&mut self) -> String {
        self.run("{\"text\": null}")
    }

    fn remove(&mut self, css: &str) {
        self.run(&json::object(&[("remove", css)]));
    }

    /// Saves the page to `POSTBOX_SCREENSHOTS/NAME.png` when that is set.
    fn screenshot(&mut self, name: &str) {
        if let Some(dir) = std::env::var_os("POSTBOX_SCREENSHOTS") {
            let path = PathBuf::from(dir).join(format!("{name}.png"));
            self.run(&json::object(&[("screenshot", path.to_str().unwrap())]));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // End of input: the driver quits the browser and exits.
        let _ = writeln!(self.input);
        let _ = self.child.wait();
    }
}

/// Commands for the driver: flat JSON objects of strings.
mod json {
    fn quote(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    pub fn object(fields: &[(&str, &str)]) -> String {
        let inner: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}: {}", quote(k), quote(v)))
            .collect();
        format!("{{{}}}", inner.join(", "))
    }
}

#[test]
fn the_home_page_in_chromium() {
    let server = Server::start();
    let mut browser = Browser::open(&server);
    browser.get("/");
    assert!(browser.text().contains("Postbox at mx.test"));
}

const LIMIT: std::time::Duration = std::time::Duration::from_secs(20);
const ADMIN_PASSWORD: &str = "console-admin-pw";

/// Club club.test on A (alice, bob; the admin password set as the
/// console sets it), sending through B (b.test with carol), where
/// strangers' replies arrive.
struct Club {
    a: Server,
    a_data: PathBuf,
    b_data: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    _b: Server,
}

fn club() -> Club {
    let (b_dir, b_data, b_config) = prepare("b.test", &["carol"], "");
    let b = start(&b_data, &b_config, "mx.b.test", &[]);
    let hash = postbox(&["system", "admin-hash"], &format!("{ADMIN_PASSWORD}\n"));
    assert!(hash.status.success(), "{hash:?}");
    let hash = String::from_utf8(hash.stdout).unwrap();
    let (a_dir, a_data, a_config) = prepare(
        "club.test",
        &["alice", "bob"],
        &format!(
            "admin_password_hash = \"{}\"\nsmarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 1\n",
            hash.trim(),
            b.smtp.port()
        ),
    );
    let a = start(&a_data, &a_config, "mx.test", &[]);
    Club {
        a,
        a_data,
        b_data,
        _dirs: (a_dir, b_dir),
        _b: b,
    }
}

fn pop3_answer(server: &Server, user: &str, password: &str) -> String {
    let mut c = server.pop3();
    assert!(c.line().starts_with("+OK"));
    c.cmd(&format!("USER {user}"));
    assert!(c.line().starts_with("+OK"));
    c.cmd(&format!("PASS {password}"));
    c.line()
}

fn sign_in(browser: &mut Browser, address: &str, password: &str) {
    browser.get("/login");
    browser.fill("#address", address);
    browser.fill("#password", password);
    browser.click("#sign-in");
}

#[test]
fn a_member_changes_the_password_and_pop3_takes_only_the_new_one() {
    let club = club();
    let mut browser = Browser::open(&club.a);
    sign_in(&mut browser, "alice@club.test", "alice-pw");
    let page = browser.text();
    assert!(page.contains("Signed in as alice@club.test"), "{page}");
    browser.screenshot("member");
    browser.fill("#old", "alice-pw");
    browser.fill("#new", "a-new-secret-9");
    browser.fill("#again", "a-new-secret-9");
    browser.click("#change-password");
    let page = browser.text();
    assert!(page.contains("changed"), "{page}");
    let old = pop3_answer(&club.a, "alice@club.test", "alice-pw");
    assert!(old.starts_with("-ERR"), "{old}");
    let new = pop3_answer(&club.a, "alice@club.test", "a-new-secret-9");
    assert!(new.starts_with("+OK"), "{new}");
}

#[test]
fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let club = club();
    let mut browser = Browser::open(&club.a);
    sign_in(&mut browser, "bob@club.test", "bob-pw");
    browser.fill("#old", "bob-pw");
    browser.fill("#new", "forged-secret-9");
    browser.fill("#again", "forged-secret-9");
    browser.remove("#password-form input[name=csrf]");
    browser.click("#change-password");
    let page = browser.text();
    assert!(page.contains("nothing was changed"), "{page}");
    let still = pop3_answer(&club.a, "bob@club.test", "bob-pw");
    assert!(still.starts_with("+OK"), "{still}");
}

#[test]
fn an_away_message_set_on_the_page_answers_a_stranger_once() {
    let club = club();
    let mut browser = Browser::open(&club.a);
    sign_in(&mut browser, "alice@club.test", "alice-pw");
    browser.fill("#subject", "Away this week");
    browser.fill("#text", "Back on Monday.");
    browser.click("#away-set");
    let page = browser.text();
    assert!(page.contains("Back on Monday."), "{page}");
    for id in ["m1@b.test", "m2@b.test"] {
        let message = format!(
            "From: <carol@b.test>\r\nTo: <alice@club.test>\r\nSubject: lunch\r\nMessage-ID: <{id}>\r\n\r\nHello.\r\n"
        );
        let reply = send_mail(club.a.smtp, "carol@b.test", &["alice@club.test"], &message);
        assert!(reply.starts_with("250"), "{reply}");
    }
    assert!(
        club.a.logged(
            "no away reply from alice@club.test to <carol@b.test>: answered within 7 days",
            LIMIT
        ),
        "{}",
        club.a.log()
    );
    let replies = wait_for_mail(&club.b_data, "carol@b.test", 1, LIMIT, &|| club.a.log());
    assert!(
        replies[0].contains("\r\nSubject: Away this week\r\n"),
        "{}",
        replies[0]
    );
    assert!(replies[0].contains("Back on Monday."), "{}", replies[0]);
    // The second message was judged (logged above): no reply can follow.
    assert_eq!(mailbox_files(&club.b_data, "carol@b.test").len(), 1);
    assert_eq!(mailbox_files(&club.a_data, "alice@club.test").len(), 2);
}

#[test]
fn a_member_adds_and_deletes_an_address_book_entry() {
    let club = club();
    let mut browser = Browser::open(&club.a);
    sign_in(&mut browser, "bob@club.test", "bob-pw");
    browser.fill("#book-address", "carol@b.test");
    browser.fill("#book-name", "Carol Jones");
    browser.click("#book-add");
    let page = browser.text();
    assert!(
        page.contains("The address is in your address book."),
        "{page}"
    );
    assert!(page.contains("Carol Jones carol@b.test"), "{page}");
    browser.click("#book-del-0 button");
    let page = browser.text();
    assert!(page.contains("No entries yet."), "{page}");
}

#[test]
fn the_admin_adds_a_user_who_can_then_sign_in() {
    let club = club();
    // Some traffic for the statistics page's chart.
    for n in 0..3 {
        let message = format!("From: <carol@b.test>\r\nSubject: {n}\r\n\r\nHello.\r\n");
        send_mail(club.a.smtp, "carol@b.test", &["bob@club.test"], &message);
    }
    let mut browser = Browser::open(&club.a);
    browser.get("/admin/login");
    browser.fill("#password", ADMIN_PASSWORD);
    browser.click("#sign-in");
    let status = browser.text();
    assert!(status.contains("Status"), "{status}");
    browser.screenshot("admin-status");
    browser.get("/admin/users");
    browser.fill("#user-add-address", "dora@club.test");
    browser.fill("#user-add-password", "dora-secret-9");
    browser.click("#user-add-submit");
    let page = browser.text();
    assert!(page.contains("dora@club.test"), "{page}");
    browser.screenshot("admin-users");
    browser.get("/admin/stats");
    browser.screenshot("admin-stats");
    assert!(
        club.a.logged("user add dora@club.test", LIMIT),
        "{}",
        club.a.log()
    );
    let pop3 = pop3_answer(&club.a, "dora@club.test", "dora-secret-9");
    assert!(pop3.starts_with("+OK"), "{pop3}");
    // The new member's own page, in a browser of their own.
    let mut theirs = Browser::open(&club.a);
    sign_in(&mut theirs, "dora@club.test", "dora-secret-9");
    let page = theirs.text();
    assert!(page.contains("Signed in as dora@club.test"), "{page}");
}
