//! Several nodes on one shared directory, as behind a proxy: what one
//! node or the CLI against one node's config writes, every node sees.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A cluster's directories: one shared, and each node's own data and config.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn shared(&self) -> PathBuf {
        self.dir.path().join("shared")
    }

    fn data(&self, node: &str) -> PathBuf {
        self.dir.path().join(node).join("data")
    }

    /// Node `node`'s config file, with `extra` TOML appended to `[cluster]`.
    fn config(&self, node: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{node}.toml"));
        let shared = self.shared();
        let text = format!("[cluster]\nnode = \"{node}\"\nshared = {shared:?}\n{extra}");
        std::fs::create_dir_all(self.dir.path().join(node)).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn start(&self, node: &str, extra: &str) -> Server {
        let config = self.config(node, extra);
        Server::start_in(&self.data(node), &["--config", config.to_str().unwrap()])
    }

    /// `postbox user add NAME` with node `node`'s config.
    fn add_user(&self, node: &str, name: &str, password: &str) {
        let config = self.config(node, "");
        let data = self.data(node);
        let out = postbox(
            &[
                "user",
                "add",
                name,
                "--password-stdin",
                "--config",
                config.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
            ],
            &format!("{password}\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn mailbox(&self, user: &str) -> Vec<PathBuf> {
        mailbox_files(&self.shared(), user)
    }
}

fn names(files: &[PathBuf]) -> Vec<String> {
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    files.iter().map(|p| name(p)).collect()
}

#[test]
fn a_member_added_on_node_1_logs_in_on_node_3_at_once() {
    let cluster = Cluster::new();
    std::fs::create_dir_all(cluster.shared()).unwrap();
    let node3 = cluster.start("n3", "");
    let mut refused = node3.pop3();
    assert!(refused.line().starts_with("+OK"));
    refused.cmd("USER carol");
    refused.line();
    refused.cmd("PASS carol-pw");
    assert!(refused.line().starts_with("-ERR"), "no carol yet");
    cluster.add_user("n1", "carol", "carol-pw");
    let mut c = pop3_login(&node3, "carol", "carol-pw");
    assert!(c.ask("QUIT").starts_with("+OK"));
}

#[test]
fn mail_through_two_nodes_lands_in_one_mailbox_under_unique_names() {
    let cluster = Cluster::new();
    cluster.add_user("n1", "alice", "alice-pw");
    let (node1, node2) = (cluster.start("n1", ""), cluster.start("n2", ""));
    for node in [&node1, &node2] {
        let reply = send_mail(
            node.smtp,
            "x@other.test",
            &["alice@localhost"],
            "Subject: hi\r\n\r\nhi",
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    let names = names(&cluster.mailbox("alice"));
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].contains(".n1.mx.test,"), "{names:?}");
    assert!(names[1].contains(".n2.mx.test,"), "{names:?}");
    // Each node's spool is its own, under the shared directory.
    for node in ["n1", "n2"] {
        assert!(cluster
            .shared()
            .join("nodes")
            .join(node)
            .join("tmp")
            .is_dir());
    }
    let mut c = pop3_login(&node2, "alice", "alice-pw");
    assert!(c.ask("STAT").starts_with("+OK 2 "));
}

/// A POP3 login's first reply after PASS.
fn pop3_pass(node: &Server, user: &str, password: &str) -> (Client, String) {
    let mut c = node.pop3();
    assert!(c.line().starts_with("+OK"));
    c.cmd(&format!("USER {user}"));
    c.line();
    c.cmd(&format!("PASS {password}"));
    let reply = c.line();
    (c, reply)
}

#[test]
fn a_pop3_session_on_node_2_keeps_node_1_out_until_it_ends() {
    let cluster = Cluster::new();
    cluster.add_user("n1", "alice", "alice-pw");
    let (node1, node2) = (cluster.start("n1", ""), cluster.start("n2", ""));
    let mut holder = pop3_login(&node2, "alice", "alice-pw");
    let (_, reply) = pop3_pass(&node1, "alice", "alice-pw");
    assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
    assert!(holder.ask("QUIT").starts_with("+OK"));
    node2.wait_session_closed(holder.local_addr());
    wait_until(
        "node 1 may open the mailbox",
        Duration::from_secs(10),
        || pop3_pass(&node1, "alice", "alice-pw").1.starts_with("+OK"),
    );
}

#[test]
fn a_killed_nodes_pop3_lock_expires_with_its_lease() {
    let cluster = Cluster::new();
    cluster.add_user("n1", "alice", "alice-pw");
    let (node1, mut node2) = (
        cluster.start("n1", "lease = \"2s\""),
        cluster.start("n2", "lease = \"2s\""),
    );
    let _holder = pop3_login(&node2, "alice", "alice-pw");
    // Renewed (every 2/3 s) while the node lives: held past one lease.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let (_, reply) = pop3_pass(&node1, "alice", "alice-pw");
        assert!(reply.starts_with("-ERR [IN-USE]"), "{reply}");
    }
    node2.kill();
    wait_until(
        "the dead node's lock expires",
        Duration::from_secs(10),
        || pop3_pass(&node1, "alice", "alice-pw").1.starts_with("+OK"),
    );
    assert!(
        node1.logged("expired", Duration::from_secs(5)),
        "{}",
        node1.log()
    );
}

#[test]
fn queue_adopt_moves_a_dead_nodes_queue_exactly_once() {
    let cluster = Cluster::new();
    cluster.add_user("n1", "alice", "alice-pw");
    let outbound = "relay_from = [\"127.0.0.0/8\"]\n[queue]\nsmarthost = \"127.0.0.1:9\"\nsmarthost_tls = \"none\"\n[cluster]\n";
    let start = |node: &str| {
        let config = cluster.config(node, "");
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replacen("[cluster]\n", outbound, 1);
        std::fs::write(&config, text).unwrap();
        Server::start_in(&cluster.data(node), &["--config", config.to_str().unwrap()])
    };
    let mut node2 = start("n2");
    let reply = send_mail(
        node2.smtp,
        "alice@localhost",
        &["far@away.test"],
        "Subject: out\r\n\r\nout",
    );
    assert!(reply.starts_with("250"), "{reply}");
    node2.kill();
    let queued = |node: &str| -> usize {
        let dir = cluster.shared().join("nodes").join(node).join("queue");
        std::fs::read_dir(dir).map_or(0, |d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".env")
            })
            .count()
        })
    };
    assert_eq!(queued("n2"), 1);
    let config1 = cluster.config("n1", "");
    let data1 = cluster.data("n1");
    std::fs::create_dir_all(&data1).unwrap();
    let adopt = || {
        postbox(
            &[
                "queue",
                "adopt",
                "n2",
                "--config",
                config1.to_str().unwrap(),
                "--data",
                data1.to_str().unwrap(),
            ],
            "",
        )
    };
    let first = adopt();
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(said.contains("adopted 1 messages from n2"), "{said}");
    assert_eq!((queued("n1"), queued("n2")), (1, 0));
    let again = adopt();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("adopted already"));
    assert_eq!(queued("n1"), 1);
}

#[test]
fn a_draining_node_fails_the_health_check() {
    let cluster = Cluster::new();
    cluster.add_user("n1", "alice", "alice-pw");
    let mut node = cluster.start("n1", "");
    // A session in DATA keeps the node draining after SIGTERM.
    let mut busy = node.smtp();
    busy.reply();
    busy.ask("EHLO busy.test");
    busy.ask("MAIL FROM:<x@other.test>");
    busy.ask("RCPT TO:<alice@localhost>");
    assert!(busy.ask("DATA").starts_with("354"));
    signal(&node.child, "TERM");
    wait_until(
        "new connections are refused",
        Duration::from_secs(10),
        || {
            [node.smtp, node.pop3]
                .iter()
                .all(|addr| std::net::TcpStream::connect(addr).is_err())
        },
    );
    assert!(node.child.try_wait().unwrap().is_none(), "still draining");
    busy.send(b"Subject: late\r\n\r\nlate\r\n.\r\n");
    assert!(busy.reply().starts_with("250"));
    assert!(node.terminate().success());
}

/// Sends messages numbered `first..` to alice until the node goes away;
/// the numbers it acknowledged with 250.
fn send_until_gone(addr: std::net::SocketAddr, first: usize) -> Vec<usize> {
    let mut acknowledged = Vec::new();
    for n in first.. {
        let Ok(stream) = std::net::TcpStream::connect(addr) else {
            break;
        };
        let mut c = std::io::BufReader::new(stream);
        let mut say = |line: &str| -> Option<String> {
            use std::io::{BufRead, Write};
            if !line.is_empty() {
                c.get_mut().write_all(line.as_bytes()).ok()?;
            }
            let mut reply = String::new();
            loop {
                let mut l = String::new();
                (c.read_line(&mut l).ok()? > 0).then_some(())?;
                reply.push_str(&l);
                if l.as_bytes().get(3) != Some(&b'-') {
                    return Some(reply);
                }
            }
        };
        let body = format!("Subject: m{n}\r\n\r\nbody {n}\r\n.\r\n");
        let replies = [
            "",
            "EHLO c.test\r\n",
            "MAIL FROM:<x@other.test>\r\n",
            "RCPT TO:<alice@localhost>\r\n",
            "DATA\r\n",
            body.as_str(),
        ]
        .iter()
        .map(|l| say(l))
        .collect::<Option<Vec<String>>>();
        match replies {
            Some(r) if r[5].starts_with("250") => acknowledged.push(n),
            _ => break,
        }
    }
    acknowledged
}

#[test]
fn a_node_killed_under_load_loses_no_acknowledged_message() {
    let cluster = Cluster::new();
    cluster.add_user("n1", "alice", "alice-pw");
    let (_node1, mut node2) = (cluster.start("n1", ""), cluster.start("n2", ""));
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let addr = node2.smtp;
            std::thread::spawn(move || send_until_gone(addr, i * 100_000))
        })
        .collect();
    wait_until("some mail is in", Duration::from_secs(20), || {
        cluster.mailbox("alice").len() >= 20
    });
    node2.kill();
    let acknowledged: Vec<usize> = senders
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    let stored: String = cluster
        .mailbox("alice")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(acknowledged.len() >= 20);
    for n in acknowledged {
        assert!(
            stored.contains(&format!("Subject: m{n}\r\n")),
            "m{n} acknowledged, not stored"
        );
    }
}
