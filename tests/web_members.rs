//! Members' and the admin's sign-in and the members' page against the
//! real binary, over real HTTPS (curl with a cookie jar, trusting the
//! server's own certificate): sessions and their cookies, failures counted
//! with mail logins, CSRF, and each setting changing what mail does.

mod common;

use common::web::{Browser, Page};
use common::*;
use std::time::Duration;

impl Browser {
    /// Posts a form of the account page with the session's token.
    fn change(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.get("/account").csrf();
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all)
    }
}

fn assert_strict_cookie(set_cookie: &str, name: &str) {
    assert!(set_cookie.starts_with(&format!("{name}=")), "{set_cookie}");
    for part in ["; Secure", "; HttpOnly", "; SameSite=Strict", "; Path=/"] {
        assert!(set_cookie.contains(part), "{part} not in {set_cookie}");
    }
}

/// POP3 USER/PASS as `user`: the reply to PASS.
fn pop3_pass(server: &Server, user: &str, password: &str) -> String {
    let mut c = server.pop3();
    assert!(c.line().starts_with("+OK"));
    c.cmd(&format!("USER {user}"));
    c.line();
    c.cmd(&format!("PASS {password}"));
    let reply = c.line();
    c.cmd("QUIT");
    reply
}

#[test]
fn members_sign_in_and_out_with_strict_cookies() {
    let server = Server::with_users();
    let browser = Browser::new(&server);
    // Not signed in: sent to sign in.
    let away = browser.get("/account");
    assert_eq!(away.status, 303);
    assert_eq!(away.field("Location"), Some("/login"));
    let form = browser.get("/login");
    assert_eq!(form.status, 200);
    assert!(
        form.body.contains("<form class=\"card\" id=\"login\""),
        "{}",
        form.body
    );
    assert!(form.body.contains("name=\"address\"") && form.body.contains("name=\"password\""));
    assert_strict_cookie(form.field("Set-Cookie").unwrap(), "__Host-postbox_login");
    assert_eq!(form.field("Cache-Control"), Some("no-store"));
    assert!(!form.body.contains("<script"));
    // A wrong password, and a user that does not exist: the same answer.
    let wrong = browser.sign_in("alice@localhost", "nope");
    let nobody = browser.sign_in("nobody@localhost", "nope");
    for page in [&wrong, &nobody] {
        assert_eq!(page.status, 403);
        assert!(
            page.body.contains("Wrong mail address or password."),
            "{}",
            page.body
        );
        assert!(page.field("Set-Cookie").is_none(), "{}", page.head);
    }
    let signed_in = browser.sign_in("alice@localhost", "alice-pw");
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.field("Location"), Some("/account"));
    assert_strict_cookie(
        signed_in.field("Set-Cookie").unwrap(),
        "__Host-postbox_session",
    );
    let account = browser.get("/account");
    assert_eq!(account.status, 200);
    assert!(account.body.contains("alice@localhost"), "{}", account.body);
    assert!(account.body.contains("id=\"password-form\""));
    // Every form carries the session's token.
    let forms = account.body.matches("<form ").count();
    assert_eq!(forms, 5, "{}", account.body);
    let token = format!("name=\"csrf\" value=\"{}\"", account.csrf());
    assert_eq!(account.body.matches(&token).count(), forms);
    assert_eq!(account.field("Cache-Control"), Some("no-store"));
    assert!(server.logged(
        "web alice@localhost from 127.0.0.1: signed in",
        Duration::from_secs(5)
    ));
    // The Apple profile is the signed-in member's.
    let profile = browser.get("/account/postbox.mobileconfig");
    assert_eq!(profile.status, 200);
    assert_eq!(
        profile.field("Content-Type"),
        Some("application/x-apple-aspen-config")
    );
    assert!(profile.body.contains("<string>alice@localhost</string>"));
    // The stylesheet is our own file, allowed by the policy.
    let style = browser.get("/style.css");
    assert_eq!(style.field("Content-Type"), Some("text/css; charset=utf-8"));
    assert_eq!(
        style.field("Content-Security-Policy"),
        Some("default-src 'self'")
    );
    // Another browser is not signed in.
    assert_eq!(Browser::new(&server).get("/account").status, 303);
    // Signing out ends the session and deletes the cookie.
    let out = browser.post("/logout", &[("csrf", &account.csrf())]);
    assert_eq!(out.status, 303);
    assert_eq!(out.field("Location"), Some("/login"));
    let deleted = out.field("Set-Cookie").unwrap();
    assert!(deleted.contains("Max-Age=0"), "{deleted}");
    assert_eq!(browser.get("/account").status, 303);
}

#[test]
fn a_sign_in_form_needs_its_own_token() {
    let server = Server::with_users();
    let browser = Browser::new(&server);
    // No login cookie yet: a form made elsewhere is refused.
    let forged = browser.post(
        "/login",
        &[
            ("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ("address", "alice@localhost"),
            ("password", "alice-pw"),
        ],
    );
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("expired"), "{}", forged.body);
    assert!(!forged
        .fields("Set-Cookie")
        .iter()
        .any(|c| c.contains("session")));
    // With the cookie, but another token.
    browser.get("/login");
    let other = browser.post(
        "/login",
        &[
            ("csrf", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"),
            ("address", "alice@localhost"),
            ("password", "alice-pw"),
        ],
    );
    assert_eq!(other.status, 403);
    assert_eq!(browser.get("/account").status, 303);
}

#[test]
fn plain_http_never_signs_in() {
    let server = Server::with_users();
    let http = server.http.unwrap();
    let body = "address=alice%40localhost&password=alice-pw";
    let mut c = Client::connect(http);
    c.send(
        format!(
            "POST /login HTTP/1.1\r\nHost: mx.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let mut response = String::new();
    std::io::Read::read_to_string(&mut c.reader, &mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 301 "), "{response}");
    let location = format!("https://mx.test:{}/login", server.web.unwrap().port());
    assert!(
        response.contains(&format!("\r\nLocation: {location}\r\n")),
        "{response}"
    );
    assert!(!response.contains("Set-Cookie"), "{response}");
    for path in ["/account", "/admin/login", "/login"] {
        let mut c = Client::connect(http);
        c.send(
            format!("GET {path} HTTP/1.1\r\nHost: mx.test\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(c.line().starts_with("HTTP/1.1 301 "), "{path}");
    }
}

#[test]
fn failed_logins_count_together_with_pop3() {
    let (_dir, server) = Server::with_config("[limits]\nlogin_failures = 2\n");
    // POP3 failures count on the web...
    assert!(pop3_pass(&server, "alice", "wrong").starts_with("-ERR"));
    let browser = Browser::new(&server);
    assert_eq!(browser.sign_in("alice@localhost", "wrong").status, 403);
    let refused = browser.sign_in("alice@localhost", "alice-pw");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("Too many failed sign-ins"));
    // ...and web failures on POP3 (another client address, counted anew).
    let elsewhere = Browser::from(&server, "127.0.0.2");
    assert_eq!(elsewhere.sign_in("bob@localhost", "wrong").status, 403);
    assert_eq!(elsewhere.sign_in("bob@localhost", "wrong").status, 403);
    let mut c = Client::connect_from(server.pop3, "127.0.0.2".parse().unwrap());
    assert!(c.line().starts_with("+OK"));
    c.cmd("USER bob");
    c.line();
    c.cmd("PASS bob-pw");
    let reply = c.line();
    assert!(reply.starts_with("-ERR"), "{reply}");
}

#[test]
fn a_new_password_replaces_the_old_one_for_mail_too() {
    let server = Server::with_users();
    // A mail program logged in lately: the old password is cached.
    assert!(pop3_pass(&server, "alice", "alice-pw").starts_with("+OK"));
    let browser = Browser::new(&server);
    assert_eq!(browser.sign_in("alice@localhost", "alice-pw").status, 303);
    let other = Browser::new(&server);
    assert_eq!(other.sign_in("alice@localhost", "alice-pw").status, 303);
    let differ = browser.change(
        "/account/password",
        &[("old", "alice-pw"), ("new", "n3w-pw"), ("again", "n3w-px")],
    );
    assert_eq!(differ.status, 400);
    assert!(differ.body.contains("The two new passwords differ"));
    let wrong_old = browser.change(
        "/account/password",
        &[("old", "guess"), ("new", "n3w-pw"), ("again", "n3w-pw")],
    );
    assert_eq!(wrong_old.status, 403);
    assert!(wrong_old.body.contains("The current password is wrong"));
    let empty = browser.change(
        "/account/password",
        &[("old", "alice-pw"), ("new", ""), ("again", "")],
    );
    assert_eq!(empty.status, 400);
    assert!(pop3_pass(&server, "alice", "alice-pw").starts_with("+OK"));
    let changed = browser.change(
        "/account/password",
        &[("old", "alice-pw"), ("new", "n3w-pw"), ("again", "n3w-pw")],
    );
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(changed.field("Location"), Some("/account?saved=password"));
    let shown = browser.get("/account?saved=password");
    assert!(shown.body.contains("Your password is changed."));
    assert!(pop3_pass(&server, "alice", "alice-pw").starts_with("-ERR"));
    assert!(pop3_pass(&server, "alice", "n3w-pw").starts_with("+OK"));
    // The other browser, signed in with the old password, is signed out.
    assert_eq!(other.get("/account").status, 303);
    assert!(server.logged(
        "web alice@localhost from 127.0.0.1: password changed",
        Duration::from_secs(5)
    ));
}

#[test]
fn a_forward_sends_mail_on_and_stops() {
    let server = Server::with_users();
    let browser = Browser::new(&server);
    browser.sign_in("alice@localhost", "alice-pw");
    let set = browser.change(
        "/account/forward",
        &[("to", "bob@localhost"), ("action", "set")],
    );
    assert_eq!(set.status, 303, "{}", set.body);
    assert!(browser
        .get("/account")
        .body
        .contains("Your mail goes on to bob@localhost."));
    let mail = "From: <carol@b.test>\r\nSubject: hi\r\n\r\nHello.\r\n";
    let reply = send_mail(server.smtp, "carol@b.test", &["alice@localhost"], mail);
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(server.messages("bob").len(), 1);
    assert_eq!(server.messages("alice").len(), 0);
    // With a copy kept.
    let keep = browser.change(
        "/account/forward",
        &[("to", "bob@localhost"), ("keep", "1"), ("action", "set")],
    );
    assert_eq!(keep.status, 303);
    send_mail(server.smtp, "carol@b.test", &["alice@localhost"], mail);
    assert_eq!(
        (server.messages("bob").len(), server.messages("alice").len()),
        (2, 1)
    );
    let stop = browser.change("/account/forward", &[("action", "stop")]);
    assert_eq!(stop.status, 303);
    assert_eq!(stop.field("Location"), Some("/account?saved=forward-off"));
    send_mail(server.smtp, "carol@b.test", &["alice@localhost"], mail);
    assert_eq!(
        (server.messages("bob").len(), server.messages("alice").len()),
        (2, 2)
    );
    let bad = browser.change(
        "/account/forward",
        &[("to", "not an address@"), ("action", "set")],
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("class=\"message error\""));
}

#[test]
fn an_away_message_answers_a_stranger_once() {
    let server = Server::with_users();
    let browser = Browser::new(&server);
    browser.sign_in("alice@localhost", "alice-pw");
    let past = browser.change(
        "/account/away",
        &[
            ("until", "2001-01-01"),
            ("text", "Gone."),
            ("action", "set"),
        ],
    );
    assert_eq!(past.status, 400);
    assert!(past.body.contains("not in the future"), "{}", past.body);
    let set = browser.change(
        "/account/away",
        &[
            ("until", ""),
            ("subject", "Away"),
            ("text", "Back on Monday.\r\nAlice"),
            ("action", "set"),
        ],
    );
    assert_eq!(set.status, 303, "{}", set.body);
    let page = browser.get("/account");
    assert!(
        page.body
            .contains("On: answering mail until you turn it off."),
        "{}",
        page.body
    );
    assert!(page.body.contains("Back on Monday.\nAlice</textarea>"));
    let mail = |id: &str| {
        format!("From: <carol@b.test>\r\nTo: <alice@localhost>\r\nSubject: lunch\r\nMessage-ID: <{id}@b.test>\r\n\r\nHello.\r\n")
    };
    send_mail(
        server.smtp,
        "carol@b.test",
        &["alice@localhost"],
        &mail("m1"),
    );
    let replied = "away reply from alice@localhost to <carol@b.test>";
    assert!(
        server.logged(replied, Duration::from_secs(20)),
        "{}",
        server.log()
    );
    send_mail(
        server.smtp,
        "carol@b.test",
        &["alice@localhost"],
        &mail("m2"),
    );
    let not_again = "no away reply from alice@localhost to <carol@b.test>: answered within 7 days";
    assert!(
        server.logged(not_again, Duration::from_secs(20)),
        "{}",
        server.log()
    );
    assert_eq!(server.log().matches(&format!(": {replied}")).count(), 1);
    let off = browser.change("/account/away", &[("action", "stop")]);
    assert_eq!(off.status, 303);
    assert!(browser
        .get("/account")
        .body
        .contains("id=\"away-state\">Off.</p>"));
}

#[test]
fn forms_without_their_token_change_nothing() {
    let server = Server::with_users();
    let browser = Browser::new(&server);
    browser.sign_in("alice@localhost", "alice-pw");
    let other = Browser::new(&server);
    other.sign_in("bob@localhost", "bob-pw");
    let bobs_token = other.get("/account").csrf();
    let attempts: [(&str, Vec<(&str, &str)>); 3] = [
        (
            "/account/forward",
            vec![("to", "eve@example.com"), ("action", "set")],
        ),
        (
            "/account/password",
            vec![("old", "alice-pw"), ("new", "x"), ("again", "x")],
        ),
        ("/account/away", vec![("text", "Gone"), ("action", "set")]),
    ];
    for (path, fields) in &attempts {
        let none = browser.post(path, fields);
        assert_eq!(none.status, 403, "{path}");
        assert!(none.body.contains("nothing was changed"), "{}", none.body);
        let mut with_bobs = vec![("csrf", bobs_token.as_str())];
        with_bobs.extend_from_slice(fields);
        assert_eq!(browser.post(path, &with_bobs).status, 403, "{path}");
        // Signed out: refused too.
        assert_eq!(Browser::new(&server).post(path, fields).status, 403);
    }
    let page = browser.get("/account");
    assert!(page.body.contains("Your mail stays here."), "{}", page.body);
    assert!(page.body.contains("id=\"away-state\">Off.</p>"));
    assert!(!server.data.join("forwards").exists());
    assert!(pop3_pass(&server, "alice", "alice-pw").starts_with("+OK"));
    // Signing out needs the token too.
    assert_eq!(browser.post("/logout", &[]).status, 403);
    assert_eq!(browser.get("/account").status, 200);
}

#[test]
fn the_admin_signs_in_only_from_admin_networks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    let hash = postbox::auth::password::hash("admin-pw");
    std::fs::write(data.join("admin-password"), format!("{hash}\n")).unwrap();
    let config = dir.path().join("postbox.toml");
    std::fs::write(
        &config,
        "[web]\nadmin_from = [\"127.0.0.3/32\"]\n[limits]\nlogin_failures = 2\n",
    )
    .unwrap();
    let server = Server::start_in(&data, &["--config", config.to_str().unwrap()]);
    let outside = Browser::new(&server);
    for page in [
        outside.get("/admin/login"),
        outside.post("/admin/login", &[("password", "admin-pw")]),
        outside.get("/admin"),
    ] {
        assert_eq!(page.status, 403);
        assert!(page.body.contains("admin_from"), "{}", page.body);
    }
    let inside = Browser::from(&server, "127.0.0.3");
    let form = inside.get("/admin/login");
    assert_eq!(form.status, 200);
    assert!(form.body.contains("id=\"admin-login\""));
    let token = form.csrf();
    let wrong = inside.post("/admin/login", &[("csrf", &token), ("password", "nope")]);
    assert_eq!(wrong.status, 403);
    assert!(wrong.body.contains("Wrong password."));
    let ok = inside.post(
        "/admin/login",
        &[("csrf", &token), ("password", "admin-pw")],
    );
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.field("Location"), Some("/admin"));
    assert_strict_cookie(ok.field("Set-Cookie").unwrap(), "__Host-postbox_session");
    let admin = inside.get("/admin");
    assert_eq!(admin.status, 200);
    assert!(
        admin.body.contains("<table id=\"status\">"),
        "{}",
        admin.body
    );
    // The admin is no member, and the session is no good from elsewhere.
    assert_eq!(inside.get("/account").status, 303);
    let stolen = Browser::from(&server, "127.0.0.1");
    std::fs::copy(&inside.jar, &stolen.jar).unwrap();
    assert_eq!(stolen.get("/admin").status, 403);
    // A member's session does not open the admin pages.
    let member = Browser::from(&server, "127.0.0.3");
    member.sign_in("alice@localhost", "alice-pw");
    let refused = member.get("/admin");
    assert_eq!(refused.status, 303);
    assert_eq!(refused.field("Location"), Some("/admin/login"));
    assert!(server.logged(
        "web admin from 127.0.0.3: signed in",
        Duration::from_secs(5)
    ));
    // The admin password changed on the console: the session ends.
    assert_eq!(inside.get("/admin").status, 200);
    let new_hash = postbox::auth::password::hash("admin-pw-2");
    std::fs::write(data.join("admin-password"), format!("{new_hash}\n")).unwrap();
    let out = inside.get("/admin");
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.field("Location"), Some("/admin/login"));
    assert!(server.logged(
        "web admin from 127.0.0.3: signed out (admin password changed)",
        Duration::from_secs(5)
    ));
    // Guesses at the admin password count in the one throttle: the
    // client is refused, for the admin and for members alike.
    let guesser = Browser::from(&server, "127.0.0.3");
    let token = guesser.get("/admin/login").csrf();
    let guess = guesser.post("/admin/login", &[("csrf", &token), ("password", "guess")]);
    assert_eq!(guess.status, 403);
    let refused = guesser.post(
        "/admin/login",
        &[("csrf", &token), ("password", "admin-pw")],
    );
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(guesser.sign_in("alice@localhost", "alice-pw").status, 429);
}

#[test]
fn a_password_changed_or_user_removed_elsewhere_signs_out() {
    let server = Server::with_users();
    let alice = Browser::new(&server);
    let bob = Browser::new(&server);
    assert_eq!(alice.sign_in("alice@localhost", "alice-pw").status, 303);
    assert_eq!(bob.sign_in("bob@localhost", "bob-pw").status, 303);
    let data = server.data.to_str().unwrap();
    let passwd = postbox(
        &[
            "user",
            "passwd",
            "alice",
            "--password-stdin",
            "--data",
            data,
        ],
        "other-pw\n",
    );
    assert!(
        passwd.status.success(),
        "{}",
        String::from_utf8_lossy(&passwd.stderr)
    );
    let gone = postbox(&["user", "del", "bob", "--data", data], "");
    assert!(
        gone.status.success(),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
    for browser in [&alice, &bob] {
        let page = browser.get("/account");
        assert_eq!(page.status, 303);
        assert_eq!(page.field("Location"), Some("/login"));
    }
    assert_eq!(alice.sign_in("alice@localhost", "other-pw").status, 303);
    assert_eq!(alice.get("/account").status, 200);
}

#[test]
fn the_address_book_lists_adds_deletes_and_downloads() {
    let server = Server::with_users();
    let browser = Browser::new(&server);
    assert_eq!(browser.sign_in("alice@localhost", "alice-pw").status, 303);
    let page = browser.get("/account");
    assert!(page.body.contains("id=\"address-book\""), "{}", page.body);
    assert!(page.body.contains("No entries yet."), "{}", page.body);
    let added = browser.change(
        "/account/book",
        &[
            ("action", "add"),
            ("address", "bob@example.org"),
            ("name", "Bob <Smith>, Jr."),
        ],
    );
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(added.field("Location"), Some("/account?saved=book"));
    let page = browser.get("/account?saved=book");
    assert!(
        page.body
            .contains("<td>Bob &lt;Smith&gt;, Jr.</td><td>bob@example.org</td>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("href=\"/account/addressbook.vcf\""));
    // The command line sees what the page did.
    let data = server.data.to_str().unwrap();
    let listed = postbox(&["book", "alice", "list", "--data", data], "");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "bob@example.org  Bob <Smith>, Jr.\n"
    );
    let bad = browser.change(
        "/account/book",
        &[
            ("action", "add"),
            ("address", "not an address"),
            ("name", "X"),
        ],
    );
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("not an address is not an address"),
        "{}",
        bad.body
    );
    assert!(
        bad.body.contains("value=\"not an address\""),
        "typed value kept"
    );
    let cards = browser.get("/account/addressbook.vcf");
    assert_eq!(cards.status, 200);
    assert_eq!(
        cards.field("Content-Type"),
        Some("text/vcard; charset=utf-8")
    );
    assert_eq!(
        cards.body,
        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Bob <Smith>\\, Jr.\r\nEMAIL:bob@example.org\r\nEND:VCARD\r\n"
    );
    // A delete without the session's token changes nothing.
    let forged = browser.post(
        "/account/book",
        &[("action", "del"), ("address", "bob@example.org")],
    );
    assert_eq!(forged.status, 403);
    let page = browser.get("/account");
    assert!(page.body.contains("id=\"book-del-0\""), "{}", page.body);
    let deleted = browser.change(
        "/account/book",
        &[("action", "del"), ("address", "bob@example.org")],
    );
    assert_eq!(deleted.field("Location"), Some("/account?saved=book-off"));
    assert!(browser.get("/account").body.contains("No entries yet."));
    assert!(server.logged(
        "address book: deleted bob@example.org",
        Duration::from_secs(5)
    ));
}
