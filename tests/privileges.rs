//! `serve --user`: root binds the ports and then runs as the service user
//! before it touches the data directory, so links planted there by that
//! user never lead root to other files; a data directory with parts the
//! service user does not own is refused, naming them. The tests run as
//! root (see scripts/test) and use `nobody` as the service user.

mod common;
use common::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

const NOBODY: u32 = 65534;

fn assert_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests need root (scripts/test runs as root, as CI does)"
    );
}

/// A temp dir the service user can pass through, with an empty data
/// directory in it owned by that user.
fn data_dir_for_nobody() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
    chown_nobody(&data);
    (dir, data)
}

/// What the service user made: `path`, given to nobody once `made`.
fn mine(made: std::io::Result<()>, path: &Path) -> PathBuf {
    made.unwrap();
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    path.to_path_buf()
}

/// Hands `path` (and what lies below it, links not followed) to nobody.
fn chown_nobody(path: &Path) {
    let status = Command::new("chown")
        .args(["-R", "-h", "65534:65534"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Root's file somewhere else: (its dir, the file, its content).
fn victim(name: &str) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    let content = format!("root's {name}, not to be touched\n").into_bytes();
    fs::write(&file, &content).unwrap();
    // Old enough for any sweep of abandoned files.
    let long_ago = SystemTime::now() - Duration::from_secs(30 * 86_400);
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    (dir, file, content)
}

/// How a start as nobody on `data` ended: `Ok(log)` once it served (it is
/// stopped then), `Err(log)` if it exited first.
fn serve_as_nobody(data: &Path) -> Result<String, String> {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--user",
            "nobody",
        ])
        .args(["--smtp", "127.0.0.1:0", "--pop3", "127.0.0.1:0"])
        .args([
            "--submission",
            "off",
            "--submissions",
            "off",
            "--pop3s",
            "off",
            "--web",
            "off",
            "--http",
            "off",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log += &line;
        log.push('\n');
        if line.contains(" serving ") {
            signal(&child, "TERM");
            wait_timeout(&mut child, Duration::from_secs(40)).expect("server did not stop");
            return Ok(log);
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "exited 0 without serving: {log}");
    Err(log)
}

fn unchanged(file: &Path, content: &[u8]) -> bool {
    let meta = fs::symlink_metadata(file);
    meta.as_ref().is_ok_and(|m| m.uid() == 0 && m.is_file())
        && fs::read(file).ok().as_deref() == Some(content)
}

#[test]
fn links_in_the_data_dir_do_not_reach_roots_files() {
    assert_root();
    type Plant = fn(&Path, &Path) -> PathBuf;
    // Each plants, as the service user could, a way from the data dir to
    // root's file (given the victim's dir or the file); returns the
    // planted path.
    let tricks: [(&str, Plant); 6] = [
        ("the spool is a link to root's dir", |data, dir| {
            mine(symlink(dir, data.join("tmp")), &data.join("tmp"))
        }),
        ("a file in the spool links to root's file", |data, file| {
            mine(fs::create_dir(data.join("tmp")), &data.join("tmp"));
            mine(symlink(file, data.join("tmp/x")), &data.join("tmp/x"))
        }),
        ("a mailbox's tmp/ is a link to root's dir", |data, dir| {
            let mut path = data.to_path_buf();
            for part in ["mail", "localhost", "alice", "new"] {
                path.push(part);
                mine(fs::create_dir(&path), &path);
            }
            let cur = data.join("mail/localhost/alice/cur");
            mine(fs::create_dir(&cur), &cur);
            let tmp = data.join("mail/localhost/alice/tmp");
            mine(symlink(dir, &tmp), &tmp)
        }),
        (
            "the certificate dir is a link to root's dir",
            |data, dir| mine(symlink(dir, data.join("tls")), &data.join("tls")),
        ),
        ("the TLS key is a link to root's file", |data, file| {
            mine(fs::create_dir(data.join("tls")), &data.join("tls"));
            let key = data.join("tls/key.pem");
            mine(symlink(file, &key), &key)
        }),
        ("a hard link to root's file", |data, file| {
            // A hard link shares its file's owner: root.
            fs::hard_link(file, data.join("notes")).unwrap();
            data.join("notes")
        }),
    ];
    for (trick, plant) in tricks {
        let (_dir, data) = data_dir_for_nobody();
        // The key's name, so the certificate dir trick finds it there.
        let (victim_dir, file, content) = victim("key.pem");
        let target = if trick.contains("dir") {
            victim_dir.path()
        } else {
            file.as_path()
        };
        let planted = plant(&data, target);
        let outcome = serve_as_nobody(&data);
        assert!(
            unchanged(&file, &content),
            "{trick}: root's file was changed; {outcome:?}"
        );
        assert!(
            fs::read_dir(victim_dir.path()).unwrap().count() == 1,
            "{trick}: files appeared beside root's file; {outcome:?}"
        );
        // Root's file is out of the service user's reach, so the start
        // is refused, naming the planted path.
        let log = outcome.expect_err(trick);
        assert!(
            log.contains(&planted.display().to_string()),
            "{trick}: refusal does not name {}: {log}",
            planted.display()
        );
    }
}

#[test]
fn parts_owned_by_another_user_are_refused_by_name() {
    assert_root();
    // A users file made by root (`user add` run as root).
    let (_dir, data) = data_dir_for_nobody();
    add_user(&data, "alice", "alice-pw");
    chown_nobody(&data);
    let users = data.join("users");
    std::os::unix::fs::lchown(&users, Some(0), Some(0)).unwrap();
    let log = serve_as_nobody(&data).expect_err("a root-owned users file");
    assert!(
        log.contains(&format!("{} is owned by root", users.display()))
            && log.contains("not nobody"),
        "{log}"
    );

    // The data directory itself.
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let log = serve_as_nobody(&data).expect_err("a root-owned data dir");
    assert!(
        log.contains(&format!("{} is owned by root", data.display())),
        "{log}"
    );
}

#[test]
fn a_data_dir_owned_by_the_user_serves_as_that_user() {
    assert_root();
    let (_dir, data) = data_dir_for_nobody();
    add_user(&data, "alice", "alice-pw");
    chown_nobody(&data);
    let server = Server::start_in(&data, &["--user", "nobody"]);
    let reply = send_mail(
        server.smtp,
        "someone@example.org",
        &["alice@localhost"],
        "Subject: hi\r\n\r\nhello\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let stored = server.messages("alice");
    assert_eq!(stored.len(), 1);
    // What the server made is the service user's.
    for made in [
        &stored[0],
        &data.join("tls/key.pem"),
        &data.join("serve.lock"),
    ] {
        assert_eq!(
            fs::metadata(made).unwrap().uid(),
            NOBODY,
            "{}",
            made.display()
        );
    }

    // A missing data dir is made by root for the service user.
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let fresh = dir.path().join("fresh");
    serve_as_nobody(&fresh).expect("a missing data dir is made");
    assert_eq!(fs::metadata(&fresh).unwrap().uid(), NOBODY);
}

#[test]
fn a_second_server_on_the_same_data_dir_is_told_so() {
    // Ports are bound before the data directory is locked: a second
    // server on the same ports still hears why it cannot start.
    let first = Server::with_users();
    let address = |a: Option<std::net::SocketAddr>| a.unwrap().to_string();
    let out = postbox(
        &[
            "serve",
            "--data",
            first.data.to_str().unwrap(),
            "--smtp",
            &first.smtp.to_string(),
            "--pop3",
            &first.pop3.to_string(),
            "--submission",
            &address(first.submission),
            "--submissions",
            &address(first.submissions),
            "--pop3s",
            &address(first.pop3s),
        ],
        "",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "another postbox serve is already using {}",
            first.data.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_refused_start_is_in_the_log_ring() {
    assert_root();
    // The board's init sends stderr nowhere: the console's `log` shows why.
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let ring = dir.path().join("log");
    let out = postbox(
        &[
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--user",
            "nobody",
            "--log-ring",
            ring.to_str().unwrap(),
            "--smtp",
            "127.0.0.1:0",
            "--pop3",
            "127.0.0.1:0",
            "--web",
            "off",
            "--http",
            "off",
        ],
        "",
    );
    assert!(!out.status.success());
    let logged = fs::read_to_string(&ring).unwrap();
    assert!(
        logged.contains(&format!("{} is owned by root", data.display())),
        "{logged}"
    );
}

/// `postbox ARGS` as root with umask 0, so a mode left to the umask shows.
fn as_root_with_umask_0(args: &[&str], stdin: &str) {
    let out = output_with_stdin(
        Command::new("sh")
            .arg("-c")
            .arg("umask 0; exec \"$0\" \"$@\"")
            .arg(BIN)
            .args(args),
        stdin.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every path under `dir`, links not followed.
fn everything_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_path_buf()];
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            found.extend(everything_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn admin_commands_by_root_leave_files_the_running_server_can_use() {
    assert_root();
    let (_dir, data) = data_dir_for_nobody();
    let server = Server::start_in(&data, &["--user", "nobody"]);
    let d = data.to_str().unwrap();
    as_root_with_umask_0(
        &["user", "add", "carol", "--password-stdin", "--data", d],
        "carol-pw\n",
    );
    as_root_with_umask_0(&["user", "quota", "carol", "10M", "--data", d], "");
    as_root_with_umask_0(
        &["user", "forward", "carol", "c@example.org", "--data", d],
        "",
    );
    as_root_with_umask_0(&["user", "forward", "carol", "off", "--data", d], "");
    as_root_with_umask_0(&["alias", "add", "club", "carol", "--data", d], "");
    // Mail reaches the new user, directly and through the new alias,
    // without a restart.
    for to in ["carol@localhost", "club@localhost"] {
        let reply = send_mail(
            server.smtp,
            "x@example.org",
            &[to],
            "Subject: s\r\n\r\nhi\r\n",
        );
        assert!(reply.starts_with("250"), "{to}: {reply}");
    }
    assert_eq!(server.messages("carol").len(), 2);
    drop(pop3_login(&server, "carol", "carol-pw"));
    // Everything in the data directory is the server's, with fixed modes.
    for path in everything_under(&data) {
        let meta = fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.uid(), NOBODY, "{} is not nobody's", path.display());
        assert_eq!(
            meta.mode() & 0o002,
            0,
            "{} is world-writable",
            path.display()
        );
    }
    for (file, mode) in [("users.lock", 0o600), ("users", 0o600), ("aliases", 0o640)] {
        let meta = fs::metadata(data.join(file)).unwrap();
        assert_eq!(meta.mode() & 0o777, mode, "{file}");
    }
}
