//! Resource limits against abusive clients: slow-drip (slowloris) command
//! lines and message bodies are cut off, not just idle ones.

mod common;
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

fn server_with(config: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    let path = dir.path().join("postbox.toml");
    std::fs::write(&path, config).unwrap();
    let server = Server::start_in(&data, &["--config", path.to_str().unwrap()]);
    (dir, server)
}

/// Sends `bytes` one at a time, `gap` apart, until the server hangs up;
/// returns how long that took (or None if it never did).
fn drip(c: &mut Client, bytes: &[u8], gap: Duration) -> Option<Duration> {
    let start = Instant::now();
    for b in bytes.iter().cycle().take(200) {
        if c.stream.write_all(&[*b]).is_err() {
            return Some(start.elapsed());
        }
        std::thread::sleep(gap);
        if start.elapsed() > Duration::from_secs(15) {
            return None;
        }
    }
    None
}

#[test]
fn smtp_command_drip_is_cut_off() {
    let (_dir, server) = server_with("[smtp]\ncommand_timeout = 1\n");
    let mut c = server.smtp();
    c.reply();
    // Each byte comes well within the per-read timeout, but the line never ends.
    let took = drip(&mut c, b"NOOPNOOPNOOP", Duration::from_millis(300));
    assert!(took.is_some(), "a drip-fed command line held the session");
    assert!(c.reply().starts_with("421 4.4.2"));
}

#[test]
fn smtp_data_drip_is_cut_off_and_nothing_stored() {
    let (_dir, server) = server_with("[smtp]\ndata_timeout = 1\n");
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO slow.test");
    c.ask("MAIL FROM:<x@remote.test>");
    c.ask("RCPT TO:<alice@localhost>");
    assert!(c.ask("DATA").starts_with("354"));
    let took = drip(&mut c, b"slow body ", Duration::from_millis(300));
    assert!(took.is_some(), "a drip-fed message held the session");
    assert!(c.reply().starts_with("421"));
    assert!(server.messages("alice").is_empty());
    // Others are still served.
    let reply = send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: ok\r\n\r\nok",
    );
    assert!(reply.starts_with("250"));
}

#[test]
fn pop3_command_drip_is_cut_off() {
    let (_dir, server) = server_with("[pop3]\ntimeout = 1\n");
    let mut c = server.pop3();
    c.line();
    let took = drip(&mut c, b"CAPACAPA", Duration::from_millis(300));
    assert!(took.is_some(), "a drip-fed POP3 command held the session");
}
