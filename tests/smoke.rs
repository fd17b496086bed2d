mod common;
use common::*;

#[test]
fn message_goes_in_by_smtp_and_out_by_pop3() {
    let server = Server::with_users();
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: t\r\n\r\nhello",
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let mut c = pop3_login(&server, "alice", "alice-pw");
    c.cmd("RETR 1");
    assert!(c.line().starts_with("+OK"));
    let body = String::from_utf8(c.multiline()).unwrap();
    assert!(
        body.starts_with("Return-Path: <x@remote.test>\r\nReceived: from client.test"),
        "{body}"
    );
    assert!(body.ends_with("Subject: t\r\n\r\nhello\r\n"));
}
