//! The command-line contract: help, exit codes, user management (also
//! while `serve` runs), the console over stdin/stdout, and the embedded
//! default data directory.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn help_and_version() {
    let out = postbox(&["--version"], "");
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("postbox 0."));
    let out = postbox(&["--help"], "");
    assert!(out.status.success());
    for verb in ["serve", "user add", "console", "tls show"] {
        assert!(text(&out.stdout).contains(verb), "{verb}");
    }
    for args in [
        &["serve", "--help"][..],
        &["user", "--help"],
        &["user", "add", "--help"],
        &["user", "list", "--help"],
        &["console", "--help"],
        &["tls", "--help"],
    ] {
        let out = postbox(args, "");
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).starts_with("usage"), "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for args in [
        &[][..],
        &["frob"],
        &["user"],
        &["user", "add"],
        &["user", "add", "a", "b"],
        &["user", "frob", "a"],
        &["user", "list", "--bogus"],
        &["serve", "extra"],
        &["serve", "--smtp", "not-an-address"],
        &["tls", "frob"],
    ] {
        let out = postbox(args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).starts_with("postbox: "), "{args:?}");
    }
    add_user(dir.path().join("data").as_path(), "alice", "pw");
    let fails = |args: &[&str], stdin: &str| {
        let out = postbox(args, stdin);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        err
    };
    assert!(fails(
        &["user", "add", "alice", "--password-stdin", "--data", data],
        "pw\n"
    )
    .contains("already exists"));
    for bad in ["../x", "a/b", "a b", "a\u{7}b", "", "x@bad domain"] {
        fails(
            &["user", "add", bad, "--password-stdin", "--data", data],
            "pw\n",
        );
    }
    assert!(fails(&["user", "del", "nobody", "--data", data], "").contains("no such user"));
    fails(
        &[
            "user",
            "passwd",
            "nobody",
            "--password-stdin",
            "--data",
            data,
        ],
        "pw\n",
    );
    // Without a terminal and without --password-stdin there is no way to ask.
    fails(&["user", "add", "bob", "--data", data], "");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "smtp_port = 25\n").unwrap();
    let err = fails(&["user", "list", "--config", config.to_str().unwrap()], "");
    assert!(err.contains("smtp_port"), "{err}");
    std::fs::write(&config, "[smtp\n").unwrap();
    fails(&["user", "list", "--config", config.to_str().unwrap()], "");
}

#[test]
fn users_change_on_a_running_server() {
    let server = Server::with_users();
    let data = server.data.to_str().unwrap();
    let out = postbox(&["user", "list", "--data", data], "");
    let list = text(&out.stdout);
    assert!(
        list.contains("alice@localhost") && list.contains("bob@localhost"),
        "{list}"
    );
    let out = postbox(
        &["user", "passwd", "bob", "--password-stdin", "--data", data],
        "new-pw\n",
    );
    assert!(out.status.success());
    let mut c = server.pop3();
    c.line();
    c.cmd("USER bob");
    c.line();
    c.cmd("PASS bob-pw");
    assert!(
        c.line().starts_with("-ERR [AUTH]"),
        "old password still works"
    );
    drop(pop3_login(&server, "bob", "new-pw"));
    let out = postbox(&["user", "del", "bob", "--data", data], "");
    assert!(out.status.success());
    let mut c = server.smtp();
    c.reply();
    c.ask("EHLO client.test");
    c.ask("MAIL FROM:<x@remote.test>");
    assert!(c.ask("RCPT TO:<bob@localhost>").starts_with("550 5.1.1"));
    // Passwords are never stored in clear.
    for entry in walk(&server.data) {
        let bytes = std::fs::read(&entry).unwrap();
        for secret in [&b"alice-pw"[..], b"new-pw"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{entry:?}"
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn console_over_stdin() {
    let server = Server::with_users();
    send_mail(
        server.smtp,
        "x@remote.test",
        &["alice@localhost"],
        "Subject: s\r\n\r\nhi",
    );
    let data = server.data.to_str().unwrap();
    let script = "help\nuser add carol\ncarol-pw\ncarol-pw\nuser list\nstatus\nfrob\nuser del carol\nuser list\nquit\n";
    let out = postbox(&["console", "--data", data], script);
    assert!(out.status.success());
    let shown = text(&out.stdout);
    for expected in [
        "user add NAME",
        "added carol@localhost",
        "carol@localhost",
        "server: running",
        &format!("smtp {}", server.smtp),
        &format!("pop3 {}", server.pop3),
        "users: 3",
        "stored: 1 messages",
        "tls SHA-256:",
        "error: unknown command \"frob\"",
        "deleted carol@localhost",
    ] {
        assert!(shown.contains(expected), "{expected:?} missing:\n{shown}");
    }
    // Carol could log in while she existed; mismatched passwords are refused.
    let out = postbox(
        &["console", "--data", data],
        "user add dave\na\nb\nuser list\n",
    );
    assert!(out.status.success(), "EOF ends the console cleanly");
    assert!(
        !text(&out.stdout).contains("dave@"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn serve_defaults_to_postbox_data_here_and_stops_on_signals() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--smtp", "127.0.0.1:0", "--pop3", "127.0.0.1:0"])
            .args([
                "--submission",
                "off",
                "--submissions",
                "off",
                "--pop3s",
                "off",
            ])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let (tx, rx) = std::sync::mpsc::channel();
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains(" serving ") {
                    let _ = tx.send(());
                }
            }
            rx
        });
        // Keep reading stderr to the end: the server logs until it exits.
        std::thread::sleep(Duration::from_millis(100));
        let started = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            dir.path().join("postbox-data/serve.status").exists()
        });
        assert!(started, "server did not start");
        assert!(dir.path().join("postbox-data/tls/cert.pem").exists());
        signal_child(&child, signal);
        let status = wait_timeout(&mut child, Duration::from_secs(20)).expect("did not stop");
        assert_eq!(status.code(), Some(0), "SIG{signal}");
        assert!(reader.join().unwrap().try_recv().is_ok(), "no serving line");
    }
}

fn signal_child(child: &std::process::Child, name: &str) {
    signal(child, name);
}
