//! Logins: SASL responses as large as RFC 4954 allows, authorization
//! identities, and the throttle on password guessing.

mod common;
use base64::Engine;
use common::*;
use std::time::Duration;

fn b64(text: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// An SMTP session on the submission port, greeted and past EHLO.
fn submission(server: &Server) -> Client {
    let mut c = Client::connect(server.submission.unwrap());
    assert!(c.reply().starts_with("220"));
    assert!(c.ask("EHLO laptop.test").starts_with("250"));
    c
}

#[test]
fn sasl_responses_up_to_12288_octets_are_read_whole() {
    let server = Server::with_users();
    let mut c = submission(&server);
    // An authorization identity long enough to make a 12,288-octet line.
    let mut raw = vec![b'x'; 9000];
    raw.extend_from_slice(b"\0alice\0alice-pw");
    let line = format!("AUTH PLAIN {}", b64(&raw));
    assert!(line.len() > 12_000 && line.len() <= 12_288);
    let reply = c.ask(&line);
    assert!(reply.starts_with("535"), "long initial response: {reply}");
    // The same as a response to the 334 prompt, and LOGIN's password.
    assert!(c.ask("AUTH PLAIN").starts_with("334"));
    assert!(c.ask(&b64(&raw)).starts_with("535"), "long response");
    assert!(c.ask("AUTH LOGIN").starts_with("334"));
    assert!(c.ask(&b64(b"alice")).starts_with("334"));
    assert!(c.ask(&b64(&[b'p'; 9000])).starts_with("535"));
    // Still in step, and a normal login works.
    assert!(c
        .ask(&format!("AUTH PLAIN {}", b64(b"\0alice\0alice-pw")))
        .starts_with("235"));
    // Beyond the RFC's size, a line is still too long.
    let mut c = submission(&server);
    let huge = format!("AUTH PLAIN {}", "QUFB".repeat(3100));
    assert!(c.ask(&huge).starts_with("500"));
    assert!(c.ask("NOOP").starts_with("250"));
}

#[test]
fn plain_authorization_identity_must_be_the_login() {
    let server = Server::with_users();
    let mut c = submission(&server);
    let other = format!("AUTH PLAIN {}", b64(b"bob\0alice\0alice-pw"));
    assert!(c.ask(&other).starts_with("535"));
    let same = format!("AUTH PLAIN {}", b64(b"alice\0alice\0alice-pw"));
    assert!(c.ask(&same).starts_with("235"));
}

/// A wrong password for `user` over POP3; returns the reply.
fn pop3_failure(server: &Server, user: &str) -> String {
    let mut c = server.pop3();
    c.line();
    c.cmd(&format!("USER {user}"));
    c.line();
    c.cmd("PASS wrong");
    c.line()
}

#[test]
fn a_good_login_does_not_forgive_failures_against_others() {
    let (_dir, server) = Server::with_config("[limits]\nlogin_failures = 3\n");
    for _ in 0..2 {
        assert!(pop3_failure(&server, "bob").starts_with("-ERR [AUTH]"));
        // The guesser's own account logs in between guesses.
        drop(pop3_login(&server, "alice", "alice-pw"));
    }
    assert!(pop3_failure(&server, "bob").starts_with("-ERR [AUTH]"));
    assert!(
        pop3_failure(&server, "bob").starts_with("-ERR [SYS/TEMP]"),
        "a fourth guess was checked"
    );
}

#[test]
fn parallel_attempts_count_against_the_cap() {
    let server = Server::with_users();
    let addr = server.submission.unwrap();
    let attempt = b64(b"\0bob\0wrong");
    // All connected and greeted first, so the attempts really overlap.
    let mut clients: Vec<Client> = (0..45)
        .map(|_| {
            let mut c = Client::connect(addr);
            // Checked guesses are answered one after another, each later.
            c.stream
                .set_read_timeout(Some(Duration::from_secs(120)))
                .unwrap();
            assert!(c.reply().starts_with("220"));
            assert!(c.ask("EHLO guesser.test").starts_with("250"));
            c
        })
        .collect();
    for c in &mut clients {
        c.cmd(&format!("AUTH PLAIN {attempt}"));
    }
    let replies: Vec<String> = clients.iter_mut().map(|c| c.reply()).collect();
    let checked = replies.iter().filter(|r| r.starts_with("535")).count();
    let refused = replies
        .iter()
        .filter(|r| r.starts_with("454 4.7.0"))
        .count();
    assert_eq!(checked + refused, 45, "{replies:?}");
    assert!(
        checked <= 10,
        "{checked} of 45 parallel guesses were checked"
    );
    assert!(server.logged("failed login for \"bob\"", Duration::from_secs(5)));
}
