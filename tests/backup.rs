//! `postbox backup`, `backup --verify` and `restore`: a backup taken while
//! SMTP and POP3 clients keep the server busy restores into a box that
//! serves every message acknowledged before it began, byte for byte under
//! the same UIDL; a damaged or truncated archive is refused naming the
//! file; Python's `tarfile` and `sha256sum` read the archive as we do.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Every message of `user` over POP3: UIDL to bytes.
fn pop3_messages(server: &Server, user: &str) -> BTreeMap<String, Vec<u8>> {
    let mut c = pop3_login(server, user, &format!("{user}-pw"));
    c.cmd("UIDL");
    assert!(c.line().starts_with("+OK"));
    let listing = String::from_utf8(c.multiline()).unwrap();
    let mut messages = BTreeMap::new();
    for line in listing.lines() {
        let (number, uid) = line.split_once(' ').unwrap();
        c.cmd(&format!("RETR {number}"));
        assert!(c.line().starts_with("+OK"));
        messages.insert(uid.to_string(), c.multiline());
    }
    c.cmd("QUIT");
    messages
}

fn message(n: usize, to: &str) -> String {
    let line = format!("line of message {n} ").repeat(8);
    format!(
        "From: sender@example.net\r\nTo: {to}@localhost\r\nSubject: message {n}\r\n\r\n{}",
        format!("{line}\r\n").repeat(n % 50 + 1)
    )
}

fn run_ok(args: &[&str]) -> String {
    let out = postbox(args, "");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_fails(args: &[&str]) -> String {
    let out = postbox(args, "");
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A box with mail for alice and bob and a backup of it.
fn backed_up_box(dir: &Path) -> (Server, std::path::PathBuf) {
    let server = Server::with_users();
    for n in 0..6 {
        let reply = send_mail(
            server.smtp,
            "s@example.net",
            &["alice@localhost"],
            &message(n, "alice"),
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    let archive = dir.join("box.tar");
    run_ok(&[
        "backup",
        archive.to_str().unwrap(),
        "--data",
        server.data.to_str().unwrap(),
    ]);
    (server, archive)
}

#[test]
fn a_backup_under_load_restores_every_acknowledged_message_with_its_uidl() {
    let server = Server::with_users();
    for n in 0..30 {
        let to = ["alice", "bob"][n % 2];
        let reply = send_mail(
            server.smtp,
            "s@example.net",
            &[&format!("{to}@localhost")],
            &message(n, to),
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    let before: Vec<_> = ["alice", "bob"]
        .iter()
        .map(|user| (*user, pop3_messages(&server, user)))
        .collect();
    let busy = Arc::new(AtomicBool::new(true));
    let sender = {
        let (busy, smtp) = (busy.clone(), server.smtp);
        std::thread::spawn(move || {
            let mut n = 100;
            while busy.load(Ordering::Relaxed) {
                let reply = send_mail(
                    smtp,
                    "s@example.net",
                    &["alice@localhost"],
                    &message(n, "alice"),
                );
                assert!(reply.starts_with("250"), "{reply}");
                n += 1;
            }
            n - 100
        })
    };
    let pop3 = server.pop3;
    let read = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (busy, read) = (busy.clone(), read.clone());
        std::thread::spawn(move || {
            let mut sessions = 0;
            while busy.load(Ordering::Relaxed) {
                let mut c = Client::connect(pop3);
                assert!(c.line().starts_with("+OK"));
                c.cmd("USER bob");
                c.line();
                c.cmd("PASS bob-pw");
                // The mailbox may still be held by the last session's end.
                if c.line().starts_with("+OK") {
                    c.cmd("RETR 1");
                    assert!(c.line().starts_with("+OK"));
                    c.multiline();
                    sessions += 1;
                    read.fetch_add(1, Ordering::Relaxed);
                }
                c.cmd("QUIT");
                c.line();
            }
            sessions
        })
    };
    // Under way before the backup starts: a message past those counted,
    // and a POP3 session of the reader's.
    common::wait_until("load under way", std::time::Duration::from_secs(20), || {
        mailbox_files(&server.data, "alice").len() > before[0].1.len()
            && read.load(Ordering::Relaxed) > 0
    });
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("box.tar");
    let said = run_ok(&[
        "backup",
        archive.to_str().unwrap(),
        "--data",
        server.data.to_str().unwrap(),
    ]);
    assert!(said.starts_with("backed up "), "{said}");
    busy.store(false, Ordering::Relaxed);
    let sent_during = sender.join().unwrap();
    let sessions = reader.join().unwrap();
    assert!(
        sent_during > 0 && sessions > 0,
        "{sent_during} sent, {sessions} read"
    );

    let verified = run_ok(&["backup", "--verify", archive.to_str().unwrap()]);
    assert!(verified.contains("every checksum matches"), "{verified}");
    let restored = dir.path().join("restored");
    run_ok(&[
        "restore",
        archive.to_str().unwrap(),
        "--data",
        restored.to_str().unwrap(),
    ]);
    let copy = Server::start_in(&restored, &[]);
    for (user, messages) in &before {
        let now = pop3_messages(&copy, user);
        for (uid, bytes) in messages {
            assert!(
                now.get(uid) == Some(bytes),
                "{user}: {uid} not restored whole"
            );
        }
        // Whatever else came along (during the backup) is whole too.
        let original = pop3_messages(&server, user);
        for (uid, bytes) in &now {
            assert!(original.get(uid) == Some(bytes), "{user}: {uid} differs");
        }
    }
}

#[test]
fn python_tarfile_extracts_the_archive_and_sha256sum_matches_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, archive) = backed_up_box(dir.path());
    let extracted = dir.path().join("extracted");
    let script = "import sys, tarfile\n\
        t = tarfile.open(sys.argv[1])\n\
        assert t.getnames()[0] == 'postbox-backup.json', t.getnames()[0]\n\
        t.extractall(sys.argv[2])\n\
        print(len(t.getnames()))\n";
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            archive.to_str().unwrap(),
            extracted.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(extracted.join("postbox-backup.json")).unwrap())
            .unwrap();
    let files = manifest["files"].as_array().unwrap();
    let members: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(members, files.len() + 1);
    assert!(files.iter().any(|f| f["path"] == "data/users"));
    assert!(
        files
            .iter()
            .filter(|f| f["path"].as_str().unwrap().contains("/new/"))
            .count()
            >= 6
    );
    let mut check = String::new();
    for file in files {
        check.push_str(&format!(
            "{}  {}\n",
            file["sha256"].as_str().unwrap(),
            file["path"].as_str().unwrap()
        ));
    }
    let out = output_with_stdin(
        std::process::Command::new("sha256sum")
            .args(["--check", "--strict", "-"])
            .current_dir(&extracted),
        check.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_damaged_or_truncated_archive_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, archive) = backed_up_box(dir.path());
    let bytes = std::fs::read(&archive).unwrap();
    let manifest: serde_json::Value = {
        let size =
            usize::from_str_radix(std::str::from_utf8(&bytes[124..135]).unwrap(), 8).unwrap();
        serde_json::from_slice(&bytes[512..512 + size]).unwrap()
    };
    // The bytes of the first message, found in the archive by its path.
    let files = manifest["files"].as_array().unwrap();
    let first = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().contains("/new/"))
        .unwrap();
    let name = first["path"].as_str().unwrap();
    let base = name.rsplit('/').next().unwrap();
    // Past the manifest, which names it too.
    let manifest_size =
        usize::from_str_radix(std::str::from_utf8(&bytes[124..135]).unwrap(), 8).unwrap();
    let manifest_end = 512 + manifest_size.div_ceil(512) * 512;
    let header = manifest_end
        + bytes[manifest_end..]
            .windows(base.len())
            .position(|w| w == base.as_bytes())
            .unwrap();
    let header = header - header % 512;
    let mut flipped = bytes.clone();
    flipped[header + 512 + 10] ^= 0x20;
    let damaged = dir.path().join("damaged.tar");
    std::fs::write(&damaged, &flipped).unwrap();
    let said = run_fails(&["backup", "--verify", damaged.to_str().unwrap()]);
    assert!(said.contains(name) && said.contains("damaged"), "{said}");
    let target = dir.path().join("from-damaged");
    let said = run_fails(&[
        "restore",
        damaged.to_str().unwrap(),
        "--data",
        target.to_str().unwrap(),
    ]);
    assert!(said.contains(name), "{said}");
    assert!(
        !target.exists(),
        "a damaged archive left a restored directory"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "a partial restore is left"
    );

    let truncated = dir.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..header + 512 + 100]).unwrap();
    let said = run_fails(&["backup", "--verify", truncated.to_str().unwrap()]);
    assert!(said.contains(name) && said.contains("truncated"), "{said}");
    let said = run_fails(&[
        "restore",
        truncated.to_str().unwrap(),
        "--data",
        target.to_str().unwrap(),
    ]);
    assert!(said.contains("truncated"), "{said}");
    assert!(!target.exists());
}

#[test]
fn restore_refuses_a_directory_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, archive) = backed_up_box(dir.path());
    let target = dir.path().join("taken");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("users"), "x").unwrap();
    let said = run_fails(&[
        "restore",
        archive.to_str().unwrap(),
        "--data",
        target.to_str().unwrap(),
    ]);
    assert!(
        said.contains(target.to_str().unwrap()) && said.contains("not empty"),
        "{said}"
    );
    assert_eq!(std::fs::read(target.join("users")).unwrap(), b"x");
    // An empty one is taken.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    run_ok(&[
        "restore",
        archive.to_str().unwrap(),
        "--data",
        empty.to_str().unwrap(),
    ]);
    assert!(empty.join("users").is_file());
}
