//! Power-loss safety: the server is SIGKILLed at seeded random moments
//! while SMTP deliveries and POP3 deletions run, restarted, and the store
//! checked each time. Every message answered 250 must be there exactly
//! once and intact; nothing partial may show; nothing may be deleted
//! unless its POP3 session reached UPDATE.

mod common;
use common::*;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SEED: u64 = 0x5eed_2026_1125;
const ROUNDS: usize = 10;
const SENDERS: usize = 3;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A body of about `size` bytes, some lines starting with dots.
fn body_text(id: u64, size: usize, rng: &mut Rng) -> String {
    let mut body = String::new();
    while body.len() < size {
        if rng.below(7) == 0 {
            body.push_str(".a line that starts with a dot\r\n");
        }
        body.push_str(&format!(
            "{id} {:016x} lorem ipsum dolor sit amet\r\n",
            rng.next()
        ));
    }
    body
}

#[derive(Default)]
struct Ledger {
    /// id → recipients, for every message answered 250.
    acked: HashMap<u64, Vec<&'static str>>,
    /// Ids whose deletion from bob's box reached UPDATE (+OK to QUIT).
    deleted: HashSet<u64>,
    /// Ids DELEted in a session cut before its QUIT answer: either way.
    maybe_deleted: HashSet<u64>,
}

fn read_reply(r: &mut impl BufRead) -> io::Result<String> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let last = line.len() < 4 || line.as_bytes()[3] != b'-';
        all.push_str(&line);
        if last {
            return Ok(all);
        }
    }
}

fn connect(addr: SocketAddr) -> io::Result<(BufReader<TcpStream>, TcpStream)> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok((BufReader::new(s.try_clone()?), s))
}

/// One SMTP transaction; `Ok(true)` only for a 250 after the dot.
fn deliver(addr: SocketAddr, to: &[&str], message: &str) -> io::Result<bool> {
    let (mut r, mut w) = connect(addr)?;
    read_reply(&mut r)?;
    let mut ask = |line: &str| -> io::Result<String> {
        w.write_all(line.as_bytes())?;
        read_reply(&mut r)
    };
    ask("EHLO crash.test\r\n")?;
    ask("MAIL FROM:<load@remote.test>\r\n")?;
    for rcpt in to {
        if !ask(&format!("RCPT TO:<{rcpt}@localhost>\r\n"))?.starts_with("250") {
            return Ok(false);
        }
    }
    if !ask("DATA\r\n")?.starts_with("354") {
        return Ok(false);
    }
    // Dot-stuffing, as every SMTP client does.
    let stuffed = message.replace("\r\n.", "\r\n..");
    let reply = ask(&format!("{stuffed}.\r\n"))?;
    let _ = ask("QUIT\r\n");
    Ok(reply.starts_with("250"))
}

fn sender(addr: SocketAddr, seed: u64, ids: Arc<AtomicU64>, ledger: Arc<Mutex<Ledger>>) {
    let mut rng = Rng(seed);
    loop {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let to: &[&'static str] = match rng.below(3) {
            0 => &["alice"],
            1 => &["bob"],
            _ => &["alice", "bob"],
        };
        let size = if rng.below(8) == 0 {
            300_000
        } else {
            200 + rng.below(6000) as usize
        };
        let body = body_text(id, size, &mut rng);
        let message = format!(
            "X-Id: {id}\r\nX-Check: {:016x}\r\nSubject: crash {id}\r\n\r\n{body}",
            fnv64(body.as_bytes())
        );
        match deliver(addr, to, &message) {
            Ok(true) => {
                ledger.lock().unwrap().acked.insert(id, to.to_vec());
            }
            Ok(false) => {}
            Err(_) => return, // the server is gone
        }
    }
}

/// Logs in as bob, deletes up to three messages, quits; repeats.
fn deleter(addr: SocketAddr, stop: Arc<AtomicBool>, ledger: Arc<Mutex<Ledger>>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut r, mut w)) = connect(addr) else {
            return;
        };
        let mut doomed = Vec::new();
        let result = (|| -> io::Result<bool> {
            let line = |r: &mut BufReader<TcpStream>| -> io::Result<String> {
                let mut line = String::new();
                if r.read_line(&mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(line)
            };
            let mut ask = |r: &mut BufReader<TcpStream>, command: &str| -> io::Result<String> {
                w.write_all(command.as_bytes())?;
                line(r)
            };
            line(&mut r)?; // greeting
            ask(&mut r, "USER bob\r\n")?;
            if !ask(&mut r, "PASS bob-pw\r\n")?.starts_with("+OK") {
                return Ok(false);
            }
            for n in 1..=3 {
                if !ask(&mut r, &format!("TOP {n} 0\r\n"))?.starts_with("+OK") {
                    break;
                }
                let mut id = None;
                loop {
                    let header = line(&mut r)?;
                    if header == ".\r\n" {
                        break;
                    }
                    if let Some(v) = header.strip_prefix("X-Id: ") {
                        id = v.trim().parse::<u64>().ok();
                    }
                }
                if ask(&mut r, &format!("DELE {n}\r\n"))?.starts_with("+OK") {
                    doomed.extend(id);
                }
            }
            Ok(ask(&mut r, "QUIT\r\n")?.starts_with("+OK"))
        })();
        let mut ledger = ledger.lock().unwrap();
        match result {
            Ok(true) => ledger.deleted.extend(doomed),
            _ => ledger.maybe_deleted.extend(doomed),
        }
        drop(ledger);
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// Every message file of a mailbox: id → count, checking each is whole.
fn check_mailbox(data: &Path, user: &str) -> HashMap<u64, usize> {
    let mut found = HashMap::new();
    for path in mailbox_files(data, user) {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let size: usize = name
            .split(",S=")
            .nth(1)
            .and_then(|s| s.split([',', ':']).next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no S= in {name}"));
        assert_eq!(size, bytes.len(), "{name}: size in name differs from file");
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("header/body split");
        let field = |key: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{name}: no {key}"))
                .trim()
                .to_string()
        };
        let id: u64 = field("X-Id:").parse().unwrap();
        let check = u64::from_str_radix(&field("X-Check:"), 16).unwrap();
        assert_eq!(fnv64(body.as_bytes()), check, "{name}: damaged body");
        *found.entry(id).or_insert(0) += 1;
    }
    found
}

fn verify(data: &Path, ledger: &Ledger) {
    let alice = check_mailbox(data, "alice");
    let bob = check_mailbox(data, "bob");
    for (user, found) in [("alice", &alice), ("bob", &bob)] {
        for (id, count) in found {
            assert_eq!(*count, 1, "message {id} appears {count} times for {user}");
        }
    }
    for (id, to) in &ledger.acked {
        for user in to {
            let found = if *user == "alice" { &alice } else { &bob };
            let may_be_gone = *user == "bob"
                && (ledger.deleted.contains(id) || ledger.maybe_deleted.contains(id));
            assert!(
                found.contains_key(id) || may_be_gone,
                "message {id} got 250 but is missing for {user}"
            );
        }
    }
    for id in &ledger.deleted {
        assert!(
            !bob.contains_key(id),
            "message {id} came back after its deletion"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(data.join("tmp")).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "spool not cleaned at start: {leftovers:?}"
    );
}

#[test]
fn sigkill_at_random_moments_loses_and_damages_nothing() {
    eprintln!("crash harness seed {SEED:#x}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "alice", "alice-pw");
    add_user(&data, "bob", "bob-pw");
    let mut rng = Rng(SEED);
    let ids = Arc::new(AtomicU64::new(1));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for round in 0..ROUNDS {
        let mut server = Server::start_in(&data, &[]);
        verify(&data, &ledger.lock().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for s in 0..SENDERS {
            let (ids, ledger) = (ids.clone(), ledger.clone());
            let seed = SEED ^ ((round * SENDERS + s + 1) as u64 * 0x9e37_79b9);
            let addr = server.smtp;
            threads.push(std::thread::spawn(move || sender(addr, seed, ids, ledger)));
        }
        let (addr, stop2, ledger2) = (server.pop3, stop.clone(), ledger.clone());
        threads.push(std::thread::spawn(move || deleter(addr, stop2, ledger2)));
        std::thread::sleep(Duration::from_millis(150 + rng.below(650)));
        server.kill(); // SIGKILL: no chance to tidy up
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
    }
    let server = Server::start_in(&data, &[]);
    let ledger = ledger.lock().unwrap();
    verify(&data, &ledger);
    assert!(
        ledger.acked.len() > 20,
        "too little load to prove anything: {}",
        ledger.acked.len()
    );
    eprintln!(
        "{} messages acknowledged, {} deletions confirmed",
        ledger.acked.len(),
        ledger.deleted.len()
    );
    // The users file survived every kill.
    drop(pop3_login(&server, "alice", "alice-pw"));
}
