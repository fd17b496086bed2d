//! Greylisting on the real server: a stranger's first attempt is deferred,
//! its retry after the delay passes, and the triplet then keeps passing.

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
fn first_attempt_deferred_retry_accepted() {
    let (_dir, server) = Server::with_config("[greylist]\nenabled = true\ndelay = 1\n");
    let first = rcpt(&server, "news@remote.test", "alice@localhost");
    assert!(first.starts_with("451 4.7.1"), "{first}");
    assert!(rcpt(&server, "news@remote.test", "alice@localhost").starts_with("451 4.7.1"));
    std::thread::sleep(Duration::from_millis(1100));
    assert!(rcpt(&server, "news@remote.test", "alice@localhost").starts_with("250"));
    assert!(
        rcpt(&server, "NEWS@remote.test", "alice@localhost").starts_with("250"),
        "case"
    );
    assert!(rcpt(&server, "other@remote.test", "alice@localhost").starts_with("451"));
    // Unknown users are refused outright, not greylisted.
    assert!(rcpt(&server, "news@remote.test", "nobody@localhost").starts_with("550 5.1.1"));
    assert!(server.logged("greylisted", Duration::from_secs(10)));
}
