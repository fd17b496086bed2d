//! Greylisting on the real server: a stranger's first attempts are
//! deferred, and a triplet past its delay is let through. When a retry
//! is past the delay is the greylist's own rule, driven by the clock in
//! its unit tests (src/policy/greylist.rs).

mod common;
use common::*;
use std::time::Duration;

fn rcpt(server: &Server, from: &str, to: &str) -> String {
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO sender.test");
    c.ask(&format!("MAIL FROM:<{from}>"));
    c.ask(&format!("RCPT TO:<{to}>"))
}

#[test]
fn first_attempts_are_deferred_until_the_delay_is_over() {
    let (_dir, server) = Server::with_config("[greylist]\nenabled = true\ndelay = 300\n");
    let first = rcpt(&server, "news@remote.test", "alice@localhost");
    assert!(
        first.starts_with("451 4.7.1 Greylisted, please try again in 300 seconds"),
        "{first}"
    );
    assert!(rcpt(&server, "news@remote.test", "alice@localhost").starts_with("451 4.7.1"));
    assert!(rcpt(&server, "other@remote.test", "alice@localhost").starts_with("451"));
    // Unknown users are refused outright, not greylisted.
    assert!(rcpt(&server, "news@remote.test", "nobody@localhost").starts_with("550 5.1.1"));
    assert!(server.logged("greylisted", Duration::from_secs(10)));
}

#[test]
fn a_triplet_past_its_delay_is_let_through() {
    // With no delay every triplet is past it at its first attempt.
    let (_dir, server) = Server::with_config("[greylist]\nenabled = true\ndelay = 0\n");
    assert!(rcpt(&server, "news@remote.test", "alice@localhost").starts_with("250"));
    assert!(rcpt(&server, "news@remote.test", "alice@localhost").starts_with("250"));
    assert!(rcpt(&server, "news@remote.test", "nobody@localhost").starts_with("550 5.1.1"));
}
