//! A full disk: deliveries get 452 4.3.1, nothing stored is damaged, POP3
//! keeps working, the users file survives a failed change, and delivery
//! resumes once space returns. The data dir is a small tmpfs this test
//! mounts (the tests run as root; see scripts/test).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A 1 MiB tmpfs, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot mount a tmpfs (needs root)");
        SmallDisk { path, _dir: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn body(n: usize) -> String {
    let line = format!("message {n} ").repeat(6) + "\r\n";
    format!("Subject: fill {n}\r\n\r\n{}", line.repeat(1500))
}

/// Message `n` from `from` to `to`; the reply to its final dot.
fn send_fill(server: &Server, from: &str, to: &str, n: usize) -> String {
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO fill.test");
    c.ask(&format!("MAIL FROM:<{from}>"));
    c.ask(&format!("RCPT TO:<{to}>"));
    c.ask("DATA");
    c.send(body(n).as_bytes());
    c.send(b"\r\n.\r\n");
    c.reply()
}

fn try_send(server: &Server, n: usize) -> String {
    send_fill(server, "x@remote.test", "alice@localhost", n)
}

fn users_file(data: &Path) -> Vec<u8> {
    std::fs::read(data.join("users")).unwrap()
}

#[test]
fn full_disk_refuses_temporarily_and_recovers() {
    let disk = SmallDisk::mount();
    let data = disk.path.join("data");
    add_user(&data, "alice", "alice-pw");
    let server = Server::start_in(&data, &[]);
    let mut accepted = 0;
    let refusal = loop {
        let reply = try_send(&server, accepted);
        if !reply.starts_with("250") {
            break reply;
        }
        accepted += 1;
        assert!(accepted < 200, "the small disk never filled");
    };
    assert!(refusal.starts_with("452 4.3.1"), "{refusal}");
    assert!(accepted > 0);
    // Every accepted message is whole; the refused one left nothing.
    let files = server.messages("alice");
    assert_eq!(files.len(), accepted);
    assert!(std::fs::read_dir(data.join("tmp"))
        .unwrap()
        .next()
        .is_none());
    // A users-file change fails cleanly and leaves the file as it was.
    let before = users_file(&data);
    let out = postbox(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--data",
            data.to_str().unwrap(),
        ],
        "bob-pw\n",
    );
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(users_file(&data), before);
    }
    // POP3 still works on a full disk: read everything, delete half.
    let mut c = pop3_login(&server, "alice", "alice-pw");
    for n in 1..=accepted {
        c.cmd(&format!("RETR {n}"));
        assert!(c.line().starts_with("+OK"));
        let text = String::from_utf8(c.multiline()).unwrap();
        assert!(
            text.contains(&format!("Subject: fill {}", n - 1)),
            "message {n} damaged"
        );
        if n % 2 == 0 {
            c.cmd(&format!("DELE {n}"));
            assert!(c.line().starts_with("+OK"));
        }
    }
    c.cmd("QUIT");
    assert!(c.line().starts_with("+OK"));
    // Space is back: delivery resumes.
    let reply = try_send(&server, 1000);
    assert!(reply.starts_with("250"), "{reply}");
}

#[test]
fn full_disk_and_the_outbound_queue() {
    let disk = SmallDisk::mount();
    let data = disk.path.join("data");
    add_user(&data, "alice", "alice-pw");
    // Nothing listens at the smarthost: everything stays queued.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = disk._dir.path().join("postbox.toml");
    std::fs::write(
        &config,
        format!("relay_from = [\"127.0.0.1/32\"]\nsmarthost = \"127.0.0.1:{port}\"\nsmarthost_tls = \"none\"\n[queue]\nretry_first = 3600\n"),
    )
    .unwrap();
    let server = Server::start_in(&data, &["--config", config.to_str().unwrap()]);
    let queue_for = |n: usize| send_fill(&server, "printer@lan.test", "friend@elsewhere.test", n);
    let mut accepted = 0;
    let refusal = loop {
        let reply = queue_for(accepted);
        if !reply.starts_with("250") {
            break reply;
        }
        accepted += 1;
        assert!(accepted < 200, "the small disk never filled");
    };
    assert!(refusal.starts_with("452 4.3.1"), "{refusal}");
    // Every queued message is listed (its record parses) and whole.
    let list = |data: &Path| {
        let out = postbox(&["queue", "list", "--data", data.to_str().unwrap()], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let listed = list(&data);
    assert!(
        listed.ends_with(&format!("{accepted} messages\n")),
        "{listed}"
    );
    let queue_dir = data.join("queue");
    let mut bodies: Vec<String> = std::fs::read_dir(&queue_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "msg"))
        .map(|p| String::from_utf8(std::fs::read(p).unwrap()).unwrap())
        .collect();
    bodies.sort();
    assert_eq!(bodies.len(), accepted);
    for n in 0..accepted {
        assert!(bodies
            .iter()
            .any(|b| b.contains(&format!("Subject: fill {n}\r\n")) && b.ends_with("\r\n")));
    }
    assert!(std::fs::read_dir(data.join("tmp"))
        .unwrap()
        .next()
        .is_none());
    // Room made by deleting from the queue: queueing resumes.
    let first = listed.split_whitespace().next().unwrap().to_string();
    let out = postbox(
        &["queue", "delete", &first, "--data", data.to_str().unwrap()],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = queue_for(1000);
    assert!(reply.starts_with("250"), "{reply}");
    assert!(list(&data).ends_with(&format!("{accepted} messages\n")));
}
