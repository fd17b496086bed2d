//! The admin pages against the real binary, over HTTPS with curl and a
//! cookie jar: the admin signs in with the console's password, and what
//! the pages change is what the command line sees (and the other way
//! round); a form without its token, or posted from a member's session,
//! changes nothing. (Signing in from outside `[web] admin_from` is
//! tested with the sign-in, in web_members.rs.)

mod common;

use common::web::{Browser, Page};
use common::{output_with_stdin, postbox, prepare, start, submit, Server};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const ADMIN_PASSWORD: &str = "admin-secret-1";

impl Browser {
    /// Posts a form of the page at `from`, with its token, as a browser
    /// would; follows the redirect (POST-redirect-GET) when there is one.
    fn submit(&self, from: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let posted = self.post(action, &all);
        match posted.status {
            303 => {
                let to = posted.field("Location").unwrap().to_string();
                assert!(to.starts_with('/'), "{to}");
                self.get(&to)
            }
            _ => posted,
        }
    }

    /// Signs in as the admin; the admin pages then answer.
    fn admin_login(&self, password: &str) -> Page {
        let form = self.get("/admin/login");
        assert_eq!(form.status, 200, "{}", form.body);
        let done = self.post(
            "/admin/login",
            &[("csrf", &form.csrf()), ("password", password)],
        );
        if done.status == 303 {
            return self.get(done.field("Location").unwrap());
        }
        done
    }
}

/// Sets the console's admin password on `data`, as the board's console
/// does on first use.
fn set_admin_password(data: &Path) {
    let out = postbox(&["system", "admin-hash"], &format!("{ADMIN_PASSWORD}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(data.join("admin-password"), &out.stdout).unwrap();
}

/// A server with alice (the first user, so admin) and bob at localhost,
/// and the admin password set.
fn server_with_admin() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::add_user(&data, "alice", "alice-pw");
    common::add_user(&data, "bob", "bob-pw");
    set_admin_password(&data);
    let server = Server::start_in(&data, &[]);
    (dir, server)
}

/// `postbox WORDS... --data DATA`: its output, or why it failed.
fn cli(data: &Path, words: &[&str], stdin: &str) -> String {
    let mut all = words.to_vec();
    all.extend(["--data", data.to_str().unwrap()]);
    let out = postbox(&all, stdin);
    assert!(
        out.status.success(),
        "postbox {words:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `user` can log in over POP3 with `password`.
fn pop3_accepts(server: &Server, user: &str, password: &str) -> bool {
    let mut c = server.pop3();
    c.line();
    c.ask(&format!("USER {user}"));
    c.ask(&format!("PASS {password}")).starts_with("+OK")
}

#[test]
fn the_admin_adds_changes_and_deletes_users_as_the_command_line_does() {
    let (_dir, server) = server_with_admin();
    let data = &server.data;
    let admin = Browser::new(&server);
    let wrong = admin.admin_login("not-the-password");
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert_eq!(admin.get("/admin/users").status, 303, "not signed in");
    let home = admin.admin_login(ADMIN_PASSWORD);
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(home.body.contains("<table id=\"status\">"), "{}", home.body);

    let users = admin.get("/admin/users");
    assert!(
        users.body.contains("alice@localhost (admin)"),
        "{}",
        users.body
    );
    assert!(users.body.contains("<form class=\"card\" id=\"user-add\""));

    // Added on the page: the command line lists carol, and she logs in.
    let added = admin.submit(
        "/admin/users",
        "/admin/users/add",
        &[("address", "carol"), ("password", "carol-pw")],
    );
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(added.body.contains("Added carol"), "{}", added.body);
    assert!(cli(data, &["user", "list"], "").contains("carol@localhost\n"));
    assert!(pop3_accepts(&server, "carol", "carol-pw"));
    assert_eq!(
        Browser::new(&server)
            .sign_in("carol@localhost", "carol-pw")
            .status,
        303
    );
    assert!(server.logged(
        "web admin from 127.0.0.1: user add carol",
        Duration::from_secs(5)
    ));
    // A verb's refusal is shown, and changes nothing.
    let again = admin.submit(
        "/admin/users",
        "/admin/users/add",
        &[("address", "carol"), ("password", "x-pw")],
    );
    assert_eq!(again.status, 400);
    assert!(again.body.contains("already exists"), "{}", again.body);
    assert!(pop3_accepts(&server, "carol", "carol-pw"));

    let passwd = admin.submit(
        "/admin/users",
        "/admin/users/passwd",
        &[("address", "carol@localhost"), ("password", "carol-new")],
    );
    assert!(passwd
        .body
        .contains("Changed the password of carol@localhost"));
    assert!(pop3_accepts(&server, "carol", "carol-new"));

    // Quota and forwarding set on the page are what the files hold; set
    // on the command line, the page shows them.
    admin.submit(
        "/admin/users",
        "/admin/users/quota",
        &[("address", "carol@localhost"), ("size", "10M")],
    );
    cli(data, &["user", "quota", "bob", "unlimited"], "");
    let forward = admin.submit(
        "/admin/users",
        "/admin/users/forward",
        &[
            ("address", "carol@localhost"),
            ("to", "carol@elsewhere.test, c2@elsewhere.test"),
            ("keep", "yes"),
        ],
    );
    assert!(forward
        .body
        .contains("Changed the forwarding of carol@localhost"));
    cli(data, &["user", "forward", "bob", "bob@far.test"], "");
    let users = admin.get("/admin/users");
    assert!(
        users.body.contains(
            "<td>10 MiB</td><td>carol@elsewhere.test, c2@elsewhere.test (and keeps a copy)</td>"
        ),
        "{}",
        users.body
    );
    assert!(users
        .body
        .contains("<td>unlimited</td><td>bob@far.test</td>"));
    let forwards = postbox::route::forward::load(data).unwrap();
    assert!(forwards["carol@localhost"].keep);
    admin.submit(
        "/admin/users",
        "/admin/users/forward",
        &[("address", "bob@localhost"), ("to", "off")],
    );
    let forwards = postbox::route::forward::load(data).unwrap();
    assert!(!forwards.contains_key("bob@localhost"), "{forwards:?}");
    // A field left empty runs nothing.
    let empty = admin.submit(
        "/admin/users",
        "/admin/users/quota",
        &[("address", "bob@localhost"), ("size", "")],
    );
    assert_eq!(empty.status, 400);
    assert!(empty.body.contains("Fill in every field"), "{}", empty.body);
    assert_eq!(
        postbox::store::quota::load(data).unwrap()["carol@localhost"],
        10 << 20
    );

    // Deleting asks for the address again; without it nothing goes.
    let confirm = admin.get("/admin/users/delete?address=carol@localhost");
    assert!(
        confirm.body.contains("id=\"user-delete\""),
        "{}",
        confirm.body
    );
    let refused = admin.submit(
        "/admin/users/delete?address=carol@localhost",
        "/admin/users/delete",
        &[
            ("address", "carol@localhost"),
            ("confirm", "carol@localhos"),
        ],
    );
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("nothing was deleted"));
    assert!(cli(data, &["user", "list"], "").contains("carol@localhost"));
    let deleted = admin.submit(
        "/admin/users/delete?address=carol@localhost",
        "/admin/users/delete",
        &[
            ("address", "carol@localhost"),
            ("confirm", "carol@localhost"),
        ],
    );
    assert!(deleted
        .body
        .contains("Deleted carol@localhost and their mail"));
    assert!(!cli(data, &["user", "list"], "").contains("carol"));
    assert!(!pop3_accepts(&server, "carol", "carol-new"));
    assert_eq!(
        Browser::new(&server)
            .sign_in("carol@localhost", "carol-new")
            .status,
        403
    );
    assert!(server.logged(
        "web admin from 127.0.0.1: user del carol@localhost",
        Duration::from_secs(5)
    ));
}

#[test]
fn aliases_on_the_page_and_on_the_command_line_are_the_same() {
    let (_dir, server) = server_with_admin();
    let data = &server.data;
    let admin = Browser::new(&server);
    admin.admin_login(ADMIN_PASSWORD);
    let added = admin.submit(
        "/admin/aliases",
        "/admin/aliases/add",
        &[("name", "club"), ("targets", "alice, bob")],
    );
    assert!(added.body.contains("Saved club."), "{}", added.body);
    let list = cli(data, &["alias", "list"], "");
    assert!(list.contains("club: alice, bob"), "{list}");
    cli(data, &["alias", "add", "board", "alice"], "");
    let page = admin.get("/admin/aliases");
    assert!(
        page.body.contains("<td>board</td><td>alice</td>"),
        "{}",
        page.body
    );
    let removed = admin.submit(
        "/admin/aliases",
        "/admin/aliases/delete",
        &[("name", "club")],
    );
    assert!(removed.body.contains("Removed club."));
    assert!(!cli(data, &["alias", "list"], "").contains("club"));
    let missing = admin.submit(
        "/admin/aliases",
        "/admin/aliases/delete",
        &[("name", "club")],
    );
    assert_eq!(missing.status, 400);
    assert!(missing.body.contains("no alias club"));
}

#[test]
fn a_form_without_its_token_changes_nothing() {
    let (_dir, server) = server_with_admin();
    let data = &server.data;
    let admin = Browser::new(&server);
    admin.admin_login(ADMIN_PASSWORD);
    let fields = [("address", "mallory"), ("password", "mallory-pw")];
    assert_eq!(admin.post("/admin/users/add", &fields).status, 403);
    let mut forged = vec![("csrf", "0123456789abcdef0123456789abcdef")];
    forged.extend_from_slice(&fields);
    assert_eq!(admin.post("/admin/users/add", &forged).status, 403);
    // Another session's token is no better.
    let other = Browser::new(&server);
    other.admin_login(ADMIN_PASSWORD);
    let theirs = other.get("/admin/users").csrf();
    let mut borrowed = vec![("csrf", theirs.as_str())];
    borrowed.extend_from_slice(&fields);
    assert_eq!(admin.post("/admin/users/add", &borrowed).status, 403);
    let delete = [("address", "bob@localhost"), ("confirm", "bob@localhost")];
    assert_eq!(admin.post("/admin/users/delete", &delete).status, 403);
    // A member's session, with its own token, opens no admin page.
    let member = Browser::new(&server);
    let form = member.get("/login");
    let signed_in = member.post(
        "/login",
        &[
            ("csrf", &form.csrf()),
            ("address", "bob@localhost"),
            ("password", "bob-pw"),
        ],
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let token = member.get("/account").csrf();
    let mut as_member = vec![("csrf", token.as_str())];
    as_member.extend_from_slice(&fields);
    assert_eq!(member.post("/admin/users/add", &as_member).status, 403);
    assert_eq!(member.get("/admin/users").status, 303);
    // The responses came after the refusals were decided: nothing to wait for.
    let users = cli(data, &["user", "list"], "");
    assert!(
        !users.contains("mallory") && users.contains("bob@localhost"),
        "{users}"
    );
    assert!(!server.log().contains("user add mallory"));
}

#[test]
fn queue_list_flush_and_delete_on_the_page() {
    // No server answers for b.test, and an hour between tries: only a
    // flush makes the queue try again.
    let (_a_dir, data, config) = prepare(
        "a.test",
        &["alice"],
        "smarthost = \"127.0.3.9:9\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 3600\n",
    );
    set_admin_password(&data);
    let server = start(&data, &config, "mx.test", &[]);
    assert!(submit(&server, "alice@a.test", &["carol@b.test"], "one").starts_with("250"));
    assert!(submit(&server, "alice@a.test", &["dave@b.test"], "two").starts_with("250"));
    common::wait_until("two deferred deliveries", Duration::from_secs(20), || {
        server.log().matches("deferred").count() >= 2
    });
    let admin = Browser::new(&server);
    admin.admin_login(ADMIN_PASSWORD);
    let page = admin.get("/admin/queue");
    assert!(page.body.contains("2 messages waiting"), "{}", page.body);
    let cli_list = cli(&data, &["queue", "list"], "");
    let first_id = cli_list.split_whitespace().next().unwrap().to_string();
    assert!(page
        .body
        .contains(&format!("id=\"queue-delete-{first_id}\"")));

    let flushed = admin.submit("/admin/queue", "/admin/queue/flush", &[]);
    assert!(
        flushed.body.contains("trying every waiting message now"),
        "{}",
        flushed.body
    );
    assert!(server.logged(
        "web admin from 127.0.0.1: queue flush",
        Duration::from_secs(5)
    ));
    let deleted = admin.submit("/admin/queue", "/admin/queue/delete", &[("id", &first_id)]);
    assert!(
        deleted
            .body
            .contains(&format!("Deleted {first_id} from the queue")),
        "{}",
        deleted.body
    );
    assert!(deleted.body.contains("1 message waiting"));
    let cli_list = cli(&data, &["queue", "list"], "");
    assert!(
        cli_list.contains("1 messages") && !cli_list.contains(&first_id),
        "{cli_list}"
    );
    let again = admin.submit("/admin/queue", "/admin/queue/delete", &[("id", &first_id)]);
    assert_eq!(again.status, 400);
    assert!(again.body.contains("no message"), "{}", again.body);
}

#[test]
fn statistics_chart_certificate_dns_and_log() {
    let (_dir, server) = server_with_admin();
    let admin = Browser::new(&server);
    admin.admin_login(ADMIN_PASSWORD);
    let reply = common::send_mail(server.smtp, "friend@example.org", &["bob@localhost"], "hi");
    assert!(reply.starts_with("250"), "{reply}");

    let stats = admin.get("/admin/stats");
    assert!(stats
        .body
        .contains("<img id=\"chart\" src=\"/admin/chart.svg\""));
    assert!(
        stats.body.contains("received: 1 messages"),
        "{}",
        stats.body
    );
    // The page may show the chart: only our own origin is allowed.
    assert_eq!(
        stats.field("Content-Security-Policy"),
        Some("default-src 'self'")
    );

    let chart = admin.get("/admin/chart.svg");
    assert_eq!(chart.status, 200);
    assert_eq!(chart.field("Content-Type"), Some("image/svg+xml"));
    let script = "import sys, xml.dom.minidom as m\n\
        d = m.parseString(sys.stdin.buffer.read())\n\
        bars = [e for e in d.getElementsByTagName('rect') if e.getAttribute('class') == 'bar']\n\
        print(d.documentElement.tagName, len(bars))\n\
        print(bars[-1].getElementsByTagName('title')[0].firstChild.data)\n";
    let out = output_with_stdin(
        Command::new("python3").args(["-c", script]),
        chart.body.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = String::from_utf8_lossy(&out.stdout);
    let mut lines = parsed.lines();
    assert_eq!(lines.next(), Some("svg 30"));
    assert!(lines.next().unwrap().contains(": 1 received"), "{parsed}");

    let tls = admin.get("/admin/tls");
    let shown = cli(&server.data, &["tls", "show"], "");
    let fingerprint = shown
        .lines()
        .find_map(|l| l.split_once("SHA-256: ").map(|(_, f)| f.trim().to_string()))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(tls.body.contains(&fingerprint), "{}\n{shown}", tls.body);
    assert!(tls.body.contains("id=\"acme\""));

    let dns = admin.get("/admin/dns");
    let records = cli(&server.data, &["dns", "records"], "");
    let dkim = records
        .lines()
        .find(|l| l.contains("._domainkey."))
        .unwrap();
    let selector = dkim.split_whitespace().next().unwrap();
    assert!(dns.body.contains(selector), "{selector}\n{}", dns.body);
    // The check asks the test's resolver (which knows no name): each
    // record is reported missing.
    let checked = admin.submit("/admin/dns", "/admin/dns/check", &[]);
    assert_eq!(checked.status, 200);
    assert!(
        checked.body.contains("id=\"dns-check-result\""),
        "{}",
        checked.body
    );

    // Without a log ring the page says where the log goes.
    assert!(admin.get("/admin/log").body.contains("--log-ring"));
}

#[test]
fn the_log_page_shows_the_rings_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::add_user(&data, "alice", "alice-pw");
    set_admin_password(&data);
    let ring = dir.path().join("ring.log");
    let server = Server::start_in(&data, &["--log-ring", ring.to_str().unwrap()]);
    let admin = Browser::new(&server);
    admin.admin_login(ADMIN_PASSWORD);
    let log = admin.get("/admin/log");
    assert!(log.body.contains("<pre id=\"log\">"), "{}", log.body);
    assert!(log.body.contains("signed in"), "{}", log.body);
}
