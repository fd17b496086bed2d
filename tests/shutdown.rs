//! SIGTERM: stop accepting, let a message in DATA finish, tell idle
//! sessions 421, delete nothing without QUIT, exit 0 with nothing
//! half-written.

mod common;
use common::*;
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn message_in_flight_finishes_and_idle_sessions_are_told() {
    let mut server = Server::with_users();
    send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: one\r\n\r\nkeep",
    );
    // A POP3 session with a deletion pending, never QUIT.
    let mut pop = pop3_login(&server, "alice", "alice-pw");
    pop.cmd("DELE 1");
    assert!(pop.line().starts_with("+OK"));
    // An idle SMTP session.
    let mut idle = server.smtp();
    idle.reply();
    idle.ask("EHLO idle.test");
    // A session in the middle of DATA.
    let mut busy = server.smtp();
    busy.reply();
    busy.ask("EHLO busy.test");
    busy.ask("MAIL FROM:<x@remote.test>");
    busy.ask("RCPT TO:<bob@localhost>");
    assert!(busy.ask("DATA").starts_with("354"));
    busy.send(b"Subject: in flight\r\n\r\nfirst half, ");
    std::thread::sleep(Duration::from_millis(200));

    signal(&server.child, "TERM");
    assert!(
        idle.reply().starts_with("421 4.3.2"),
        "idle session not told"
    );
    assert!(idle.closed());
    assert!(pop.line().starts_with("-ERR"), "POP3 session not told");
    // No new connections once shutdown began.
    std::thread::sleep(Duration::from_millis(200));
    let refused = match TcpStream::connect(server.smtp) {
        Err(_) => true,
        Ok(s) => {
            let mut c = Client {
                reader: std::io::BufReader::new(s.try_clone().unwrap()),
                stream: s,
            };
            c.closed()
        }
    };
    assert!(refused, "accepted a connection during shutdown");
    busy.send(b"second half\r\n.\r\n");
    let reply = busy.reply();
    assert!(
        reply.starts_with("250"),
        "message in flight not accepted: {reply}"
    );
    let status = common::wait_timeout(&mut server.child, Duration::from_secs(40)).expect("no exit");
    assert_eq!(status.code(), Some(0));

    let bob = server.messages("bob");
    assert_eq!(bob.len(), 1);
    let text = std::fs::read_to_string(&bob[0]).unwrap();
    assert!(text.ends_with("first half, second half\r\n"), "{text}");
    assert_eq!(server.messages("alice").len(), 1, "deleted without QUIT");
    assert!(std::fs::read_dir(server.data.join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn idle_server_exits_zero_on_sigterm() {
    let mut server = Server::with_users();
    assert_eq!(server.terminate().code(), Some(0));
    assert!(
        !server.data.join("serve.status").exists(),
        "status left behind"
    );
}
