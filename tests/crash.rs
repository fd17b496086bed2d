//! Crash safety under load: the server is SIGKILLed at seeded random
//! moments while several SMTP clients deliver to alice and bob and a POP3
//! client deletes from bob's box, then restarted on the same data dir and
//! the store is checked file by file:
//!
//! * every message answered `250` after its final dot is in each of its
//!   mailboxes exactly once, unless bob's copy was deleted by a POP3
//!   session that reached UPDATE (or may have: its QUIT went unanswered);
//! * every file in `new/` and `cur/` is a whole message (its checksum
//!   matches, its size is the `,S=`/`,W=` of its name) and belongs to a
//!   message whose final dot was sent to that mailbox; no stray links;
//! * a deletion answered `+OK` to QUIT never comes back, and nothing is
//!   deleted without QUIT;
//! * the spool (`DATA/tmp`) is empty after a restart (`clear_spool` runs
//!   before the listeners open) and the users file still logs people in.
//!
//! The seed is printed; `CRASH_SEED=0x...` replays another one (timing
//! still varies from run to run, the choices do not). `CRASH_ROUNDS=N`
//! sets the number of kills (`scripts/crash-soak` runs many); the last
//! line printed is a summary a script can read:
//! `crash summary: cycles C acknowledged A lost L damaged D`.

mod common;
use common::*;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const DEFAULT_SEED: u64 = 0x5eed_2026_c0de_0001;
/// Kills per run unless `CRASH_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: usize = 12;
const SENDERS: usize = 4;
/// Milliseconds of load before each SIGKILL.
const KILL_AFTER_MS: (u64, u64) = (50, 600);
const USERS: [(&str, &str); 2] = [("alice", "alice-pw"), ("bob", "bob-pw")];
/// Generous: the machine may be loaded; a dead server answers at once anyway.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// xorshift64*: tiny, seedable, good enough to pick sizes and delays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

fn rounds() -> usize {
    match std::env::var("CRASH_ROUNDS") {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("CRASH_ROUNDS={n}: not a number")),
        Err(_) => DEFAULT_ROUNDS,
    }
}

fn seed() -> u64 {
    match std::env::var("CRASH_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.expect("CRASH_SEED: a decimal or 0x-hex u64")
        }
        Err(_) => DEFAULT_SEED,
    }
}

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A message of mixed size whose body carries its id and whose header
/// carries the body's checksum. Some lines start with dots (a lone "." too,
/// which must be stuffed and must not end the message).
fn make_message(id: u64, rng: &mut Rng) -> Vec<u8> {
    let size = match rng.below(20) {
        0 => rng.between(200_000, 300 * 1024),
        1..=4 => rng.between(8_000, 64_000),
        _ => rng.between(300, 6_000),
    } as usize;
    let mut body = Vec::with_capacity(size + 200);
    while body.len() < size {
        let line = match rng.below(12) {
            0 => ".".to_string(),
            1 => "..".to_string(),
            2 => format!(".dot line of {id}"),
            3 => String::new(),
            _ => {
                let words = rng.between(1, 24) as usize;
                let mut line = format!("{id}");
                for _ in 0..words {
                    line.push_str(&format!(" {:x}", rng.next() >> 40));
                }
                line
            }
        };
        body.extend_from_slice(line.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    let mut message = format!(
        "From: <load@crash.test>\r\nMessage-ID: <{id}@crash.test>\r\nX-Id: {id}\r\nX-Check: {:016x}\r\nSubject: crash {id}\r\n\r\n",
        fnv64(&body)
    )
    .into_bytes();
    message.extend_from_slice(&body);
    message
}

/// Dot-stuffing, as every SMTP client does (the message ends with CRLF).
fn stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out
}

/// What the clients did, as far as they can know.
#[derive(Default)]
struct Ledger {
    /// id → (mailboxes, queue id from the 250) for every 250 after the dot.
    acked: HashMap<u64, (Vec<&'static str>, String)>,
    /// id → mailboxes: the dot went out but no reply came; stored or not.
    /// Settled (moved to `settled`) at the next check of the store.
    in_doubt: HashMap<u64, Vec<&'static str>>,
    settled: HashMap<u64, Vec<&'static str>>,
    /// Cut before the dot was sent, or refused: must never be stored.
    never: HashSet<u64>,
    /// (id, mailbox) seen stored after a restart: must stay unless deleted.
    seen: HashSet<(u64, &'static str)>,
    /// Bob's deletions answered +OK to QUIT (UPDATE reached).
    deleted: HashSet<u64>,
    /// DELEted, QUIT sent, no answer: the deletion may or may not be done.
    maybe_deleted: HashSet<u64>,
    /// Replies or events no client should see from a healthy server.
    odd: Vec<String>,
    retr_checked: u64,
    in_doubt_stored: u64,
    split_in_doubt: u64,
}

struct Ctx {
    smtp: SocketAddr,
    pop3: SocketAddr,
    host: String,
    stop: AtomicBool,
    ids: Arc<AtomicU64>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Ctx {
    fn odd(&self, what: String) {
        self.ledger.lock().unwrap().odd.push(what);
    }
}

/// A blocking line client with timeouts; any error means "cut".
struct Line {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Line {
    fn connect(addr: SocketAddr) -> io::Result<Line> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Line {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 || !line.ends_with('\n') {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// A whole SMTP reply; its last line.
    fn reply(&mut self) -> io::Result<String> {
        loop {
            let line = self.line()?;
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(line);
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)
    }

    /// A POP3 multi-line body, unstuffed.
    fn multiline(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let mut line = Vec::new();
            if self.r.read_until(b'\n', &mut line)? == 0 || !line.ends_with(b"\n") {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if line == b".\r\n" {
                return Ok(body);
            }
            body.extend_from_slice(line.strip_prefix(b".").unwrap_or(&line));
        }
    }
}

enum Outcome {
    Acked(String),
    /// The final dot was (perhaps) sent, no reply.
    InDoubt,
    /// Nothing can have been stored; the connection is gone.
    Cut,
    /// A reply other than 250 somewhere: nothing stored, session goes on.
    Refused(String),
    /// Odd replies before the body; we hung up, so nothing is stored.
    Abandoned(String),
}

/// One mail transaction on an open session, sometimes pipelined.
fn transaction(c: &mut Line, rcpts: &[String], message: &[u8], pipelined: bool) -> Outcome {
    let mut commands = vec!["MAIL FROM:<load@crash.test>".to_string()];
    commands.extend(rcpts.iter().map(|r| format!("RCPT TO:<{r}>")));
    commands.push("DATA".into());
    let mut replies = Vec::new();
    let io = (|| -> io::Result<()> {
        if pipelined {
            let all: String = commands.iter().map(|c| format!("{c}\r\n")).collect();
            c.send(all.as_bytes())?;
            for _ in &commands {
                replies.push(c.reply()?);
            }
        } else {
            for command in &commands {
                c.send(format!("{command}\r\n").as_bytes())?;
                let reply = c.reply()?;
                let go_on = reply.starts_with("250");
                replies.push(reply);
                if !go_on {
                    break;
                }
            }
        }
        Ok(())
    })();
    if io.is_err() {
        return Outcome::Cut;
    }
    let data_ok = replies.len() == commands.len() && replies.last().unwrap().starts_with("354");
    let all_ok = data_ok
        && replies[..replies.len() - 1]
            .iter()
            .all(|r| r.starts_with("250"));
    if !data_ok {
        // No DATA phase: end the transaction (a pipelined DATA was refused).
        let _ = c.send(b"RSET\r\n").and_then(|()| c.reply().map(drop));
        return Outcome::Refused(replies.join(" | "));
    }
    if !all_ok {
        // Some RCPT failed but DATA went on: hanging up mid-DATA is the
        // only way to store nothing at all.
        return Outcome::Abandoned(replies.join(" | "));
    }
    if c.send(&stuff(message)).is_err() {
        return Outcome::Cut; // the dot never left
    }
    if c.send(b".\r\n").is_err() {
        return Outcome::InDoubt;
    }
    match c.reply() {
        Ok(reply) if reply.starts_with("250") => {
            // "250 2.0.0 OK queued as NAME"
            Outcome::Acked(reply.rsplit(' ').next().unwrap_or("").to_string())
        }
        Ok(reply) => Outcome::Refused(reply),
        Err(_) => Outcome::InDoubt,
    }
}

/// Recipients as given, and the mailboxes they land in (deduplicated).
fn pick_recipients(rng: &mut Rng) -> (Vec<String>, Vec<&'static str>) {
    let rcpts: &[&str] = match rng.below(10) {
        0..=2 => &["alice"],
        3..=5 => &["bob"],
        6..=8 => &["alice", "bob"],
        // The same mailbox twice (another spelling): still one copy.
        _ => &["bob", "alice", "Bob"],
    };
    let mut boxes: Vec<&'static str> = rcpts
        .iter()
        .map(|r| {
            if r.eq_ignore_ascii_case("alice") {
                "alice"
            } else {
                "bob"
            }
        })
        .collect();
    boxes.sort();
    boxes.dedup();
    let given = rcpts.iter().map(|r| format!("{r}@localhost")).collect();
    (given, boxes)
}

/// Delivers until stopped or the server is gone; 1–3 messages per session.
fn sender(ctx: &Ctx, seed: u64) {
    let mut rng = Rng::new(seed);
    while !ctx.stop.load(Ordering::SeqCst) {
        let Ok(mut c) = Line::connect(ctx.smtp) else {
            return;
        };
        // Our own greeting: a recycled port could belong to someone else.
        match c.reply() {
            Ok(g) if g.starts_with("220") && g.contains(&ctx.host) => {}
            _ => return,
        }
        let ehlo = c
            .send(b"EHLO sender.crash.test\r\n")
            .and_then(|()| c.reply());
        if !ehlo.is_ok_and(|r| r.starts_with("250")) {
            return;
        }
        for _ in 0..rng.between(1, 3) {
            if ctx.stop.load(Ordering::SeqCst) {
                return;
            }
            let id = ctx.ids.fetch_add(1, Ordering::SeqCst);
            let (rcpts, boxes) = pick_recipients(&mut rng);
            let message = make_message(id, &mut rng);
            let pipelined = rng.below(2) == 0;
            let outcome = transaction(&mut c, &rcpts, &message, pipelined);
            let mut ledger = ctx.ledger.lock().unwrap();
            match outcome {
                Outcome::Acked(queue_id) => {
                    ledger.acked.insert(id, (boxes, queue_id));
                }
                Outcome::InDoubt => {
                    ledger.in_doubt.insert(id, boxes);
                    return;
                }
                Outcome::Cut => {
                    ledger.never.insert(id);
                    return;
                }
                Outcome::Refused(why) => {
                    ledger.never.insert(id);
                    ledger.odd.push(format!("message {id} refused: {why}"));
                }
                Outcome::Abandoned(why) => {
                    ledger.never.insert(id);
                    ledger.odd.push(format!("message {id} abandoned: {why}"));
                    return;
                }
            }
        }
        let _ = c.send(b"QUIT\r\n").and_then(|()| c.reply());
    }
}

/// The id of a stored or retrieved message, once its checksum matches.
fn parse_message(bytes: &[u8]) -> Result<u64, String> {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of header")?;
    let head = std::str::from_utf8(&bytes[..split]).map_err(|_| "header not UTF-8")?;
    let body = &bytes[split + 4..];
    let field = |key: &str| {
        head.split("\r\n")
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .ok_or(format!("no {key}"))
    };
    let id: u64 = field("X-Id:")?.parse().map_err(|_| "bad X-Id")?;
    let check = u64::from_str_radix(field("X-Check:")?, 16).map_err(|_| "bad X-Check")?;
    if fnv64(body) != check {
        return Err(format!(
            "message {id}: body checksum differs ({} bytes)",
            body.len()
        ));
    }
    Ok(id)
}

/// Logs in as bob and DELEs some messages; then QUIT, RSET+QUIT, or just
/// drops the connection; now and then RETRieves one to check it whole.
fn deleter(ctx: &Ctx, seed: u64) {
    let mut rng = Rng::new(seed);
    while !ctx.stop.load(Ordering::SeqCst) {
        match pop3_session(ctx, &mut rng) {
            Ok(()) => {}
            Err(_) => return, // the server is gone
        }
        std::thread::sleep(Duration::from_millis(rng.between(5, 40)));
    }
}

fn pop3_session(ctx: &Ctx, rng: &mut Rng) -> io::Result<()> {
    let mut c = Line::connect(ctx.pop3)?;
    let greeting = c.line()?;
    if !(greeting.starts_with("+OK") && greeting.contains(&ctx.host)) {
        return Err(io::ErrorKind::Other.into());
    }
    c.send(b"USER bob\r\nPASS bob-pw\r\n")?;
    c.line()?;
    let login = c.line()?;
    if login.starts_with("-ERR [IN-USE]") {
        return Ok(()); // our previous, dropped session is still being noticed
    }
    if !login.starts_with("+OK") {
        ctx.odd(format!("POP3 login as bob: {login}"));
        return Ok(());
    }
    c.send(b"LIST\r\n")?;
    if !c.line()?.starts_with("+OK") {
        return Ok(());
    }
    let count = c
        .multiline()?
        .split(|&b| b == b'\n')
        .count()
        .saturating_sub(1) as u64;
    let mut doomed = Vec::new();
    let mode = rng.below(10);
    if count > 0 {
        if mode < 2 {
            let n = rng.between(1, count);
            c.send(format!("RETR {n}\r\n").as_bytes())?;
            if c.line()?.starts_with("+OK") {
                let message = c.multiline()?;
                // Retrieved copies carry the trace headers before ours.
                match parse_message(&message) {
                    Ok(_) => ctx.ledger.lock().unwrap().retr_checked += 1,
                    Err(e) => ctx.odd(format!("RETR {n} from bob: {e}")),
                }
            }
        }
        let mut picked = HashSet::new();
        for _ in 0..rng.between(1, 3) {
            picked.insert(rng.between(1, count));
        }
        for n in picked {
            c.send(format!("TOP {n} 0\r\n").as_bytes())?;
            if !c.line()?.starts_with("+OK") {
                continue;
            }
            let head = c.multiline()?;
            let id = String::from_utf8_lossy(&head)
                .split("\r\n")
                .find_map(|l| l.strip_prefix("X-Id:").map(|v| v.trim().parse::<u64>()));
            let Some(Ok(id)) = id else {
                ctx.odd(format!("TOP {n} from bob: no X-Id"));
                continue;
            };
            c.send(format!("DELE {n}\r\n").as_bytes())?;
            if c.line()?.starts_with("+OK") {
                doomed.push(id);
            }
        }
    }
    match mode {
        // Undo, then leave properly: nothing may be deleted.
        6 | 7 => {
            c.send(b"RSET\r\n")?;
            c.line()?;
            c.send(b"QUIT\r\n")?;
            c.line()?;
        }
        // Leave without QUIT: nothing may be deleted (ids stay "seen").
        8 | 9 => drop(c),
        _ => {
            // From here on the deletion may happen even if we hear nothing.
            ctx.ledger
                .lock()
                .unwrap()
                .maybe_deleted
                .extend(doomed.iter().copied());
            let answered = c.send(b"QUIT\r\n").and_then(|()| c.line());
            if matches!(&answered, Ok(r) if r.starts_with("+OK")) {
                let mut ledger = ctx.ledger.lock().unwrap();
                for id in doomed {
                    ledger.maybe_deleted.remove(&id);
                    ledger.deleted.insert(id);
                }
            }
            answered?;
        }
    }
    Ok(())
}

/// Checks one Dovecot-style name for this host: returns (base, size).
fn parse_name<'a>(sub: &str, name: &'a str, host: &str) -> Result<(&'a str, u64), String> {
    let (base, flags) = match name.split_once(':') {
        Some((base, flags)) => (base, Some(flags)),
        None => (name, None),
    };
    match (sub, flags) {
        ("new", None) => {}
        ("cur", Some(f)) if f.starts_with("2,") => {}
        _ => return Err(format!("{sub}/{name}: wrong flags for {sub}/")),
    }
    let (unique, sizes) = base
        .split_once(&format!(".{host},S="))
        .ok_or(format!("{sub}/{name}: not a name this server makes"))?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = unique.split_once(".M").is_some_and(|(secs, rest)| {
        digits(secs)
            && rest.split_once('P').is_some_and(|(us, rest)| {
                digits(us)
                    && rest
                        .split_once('Q')
                        .is_some_and(|(p, q)| digits(p) && digits(q))
            })
    });
    let (s, w) = sizes
        .split_once(",W=")
        .ok_or(format!("{sub}/{name}: no ,W="))?;
    if !well_formed || !digits(s) || s != w {
        return Err(format!("{sub}/{name}: malformed name"));
    }
    let base_name = &base[..unique.len() + host.len() + 1];
    Ok((base_name, s.parse().unwrap()))
}

/// Scans the store and checks it against the ledger; returns every problem.
fn verify(data: &Path, host: &str, ledger: &mut Ledger) -> Vec<String> {
    let mut problems = Vec::new();
    let mail = data.join("mail/localhost");
    let mut entries: Vec<String> = std::fs::read_dir(&mail)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries.retain(|e| e != "alice" && e != "bob");
    if !entries.is_empty() {
        problems.push(format!("unexpected entries in mail/localhost: {entries:?}"));
    }
    match std::fs::read_dir(data.join("tmp")) {
        Ok(d) => {
            let left: Vec<_> = d.map(|e| e.unwrap().file_name()).collect();
            if !left.is_empty() {
                problems.push(format!("spool not empty after start: {left:?}"));
            }
        }
        Err(e) => problems.push(format!("no spool dir: {e}")),
    }
    // (dev, ino) → (nlink, paths seen), to find links outside the mailboxes.
    let mut inodes: HashMap<(u64, u64), (u64, usize)> = HashMap::new();
    // (id, mailbox) → copies.
    let mut found: HashMap<(u64, &'static str), usize> = HashMap::new();
    for (user, _) in USERS {
        let dir = mail.join(user);
        if let Ok(d) = std::fs::read_dir(dir.join("tmp")) {
            let left: Vec<_> = d.map(|e| e.unwrap().file_name()).collect();
            if !left.is_empty() {
                problems.push(format!("{user}/tmp not empty: {left:?}"));
            }
        }
        for sub in ["new", "cur"] {
            let Ok(d) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for entry in d {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                if !meta.is_file() {
                    problems.push(format!("{user}/{sub}/{name}: not a regular file"));
                    continue;
                }
                let (base, size) = match parse_name(sub, &name, host) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        problems.push(format!("{user}/{e}"));
                        continue;
                    }
                };
                let links = inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_insert((meta.nlink(), 0));
                links.1 += 1;
                let bytes = std::fs::read(&path).unwrap();
                if bytes.len() as u64 != size {
                    problems.push(format!(
                        "{user}/{sub}/{name}: {} bytes, name says {size}",
                        bytes.len()
                    ));
                }
                if !bytes.starts_with(b"Return-Path: <load@crash.test>\r\nReceived: ") {
                    problems.push(format!("{user}/{sub}/{name}: no trace headers"));
                }
                let id = match parse_message(&bytes) {
                    Ok(id) => id,
                    Err(e) => {
                        problems.push(format!("{user}/{sub}/{name}: {e}"));
                        continue;
                    }
                };
                let doubt = ledger.in_doubt.get(&id).or(ledger.settled.get(&id));
                let to = match (ledger.acked.get(&id), doubt) {
                    (Some((to, queue_id)), _) => {
                        if queue_id != base {
                            problems.push(format!(
                                "{user}/{sub}/{name}: message {id} was queued as {queue_id}"
                            ));
                        }
                        Some(to)
                    }
                    (None, Some(to)) => Some(to),
                    (None, None) if ledger.never.contains(&id) => {
                        problems.push(format!(
                            "{user}/{sub}/{name}: message {id} stored though its dot was never sent or it was refused"
                        ));
                        None
                    }
                    (None, None) => {
                        problems.push(format!("{user}/{sub}/{name}: unknown message {id}"));
                        None
                    }
                };
                if to.is_some_and(|to| !to.contains(&user)) {
                    problems.push(format!(
                        "{user}/{sub}/{name}: message {id} was not for {user}"
                    ));
                }
                *found.entry((id, user)).or_insert(0) += 1;
            }
        }
    }
    for ((dev, ino), (nlink, seen)) in &inodes {
        if *nlink != *seen as u64 {
            problems.push(format!(
                "inode {dev}:{ino} has {nlink} links, {seen} in the mailboxes"
            ));
        }
    }
    for ((id, user), copies) in &found {
        if *copies != 1 {
            problems.push(format!("message {id} stored {copies} times for {user}"));
        }
    }
    let gone_ok = |ledger: &Ledger, id: &u64, user: &str| {
        user == "bob" && (ledger.deleted.contains(id) || ledger.maybe_deleted.contains(id))
    };
    for (id, (to, _)) in &ledger.acked {
        for user in to {
            if !found.contains_key(&(*id, user)) && !gone_ok(ledger, id, user) {
                problems.push(format!("message {id} got 250 but is missing for {user}"));
            }
        }
    }
    for (id, user) in &ledger.seen {
        let acked = ledger.acked.contains_key(id); // reported above
        if !acked && !found.contains_key(&(*id, user)) && !gone_ok(ledger, id, user) {
            problems.push(format!("message {id} was stored for {user} and vanished"));
        }
    }
    for id in &ledger.deleted {
        if found.contains_key(&(*id, "bob")) {
            problems.push(format!(
                "message {id} came back after bob's QUIT deleted it"
            ));
        }
    }
    // Settle what the last kill left in doubt, for the rounds to come.
    for (id, to) in std::mem::take(&mut ledger.in_doubt) {
        let stored: Vec<_> = to
            .iter()
            .filter(|u| found.contains_key(&(id, **u)))
            .collect();
        if !stored.is_empty() {
            ledger.in_doubt_stored += 1;
            if stored.len() < to.len() {
                // Killed between the links into several new/ dirs, before
                // any 250: a retry would duplicate, which SMTP allows.
                ledger.split_in_doubt += 1;
            }
        }
        ledger.settled.insert(id, to);
    }
    for &(id, user) in found.keys() {
        ledger.seen.insert((id, user));
    }
    for id in std::mem::take(&mut ledger.maybe_deleted) {
        if !found.contains_key(&(id, "bob")) {
            ledger.deleted.insert(id); // it happened; it must stay gone
        }
    }
    problems
}

fn print_summary(cycles: usize, acked: usize, lost: usize, damaged: usize) {
    eprintln!("crash summary: cycles {cycles} acknowledged {acked} lost {lost} damaged {damaged}");
}

/// After every start: both users can still log in (the users file is whole).
fn check_logins(server: &Server) -> Vec<String> {
    let mut problems = Vec::new();
    for (user, password) in USERS {
        let result = (|| -> io::Result<String> {
            let mut c = Line::connect(server.pop3)?;
            c.line()?;
            c.send(format!("USER {user}\r\nPASS {password}\r\n").as_bytes())?;
            c.line()?;
            let reply = c.line()?;
            c.send(b"QUIT\r\n")?;
            c.line()?;
            Ok(reply)
        })();
        match result {
            Ok(reply) if reply.starts_with("+OK") => {}
            other => problems.push(format!("POP3 login as {user} after restart: {other:?}")),
        }
    }
    problems
}

/// Prints the summary line and panics with the problems, if there are any.
fn assert_clean(problems: Vec<String>, when: &str, seed: u64, cycles: usize, acked: usize) {
    if problems.is_empty() {
        return;
    }
    // Acknowledged mail that is not where it belongs is lost; anything
    // else wrong in the store (partial, stray, duplicated, resurrected) is damage.
    let lost = problems
        .iter()
        .filter(|p| p.contains("is missing for") || p.contains("vanished"))
        .count();
    print_summary(cycles, acked, lost, problems.len() - lost);
    panic!(
        "{when} (seed {seed:#x}): {} problems:\n  {}",
        problems.len(),
        problems[..problems.len().min(25)].join("\n  ")
    );
}

#[test]
fn sigkill_at_random_moments_loses_and_damages_nothing() {
    let seed = seed();
    let rounds = rounds();
    eprintln!("crash harness: seed {seed:#x} (CRASH_SEED=... to change)");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (user, password) in USERS {
        add_user(&data, user, password);
    }
    // A name of our own: greetings prove we talk to this server, and
    // stored file names must carry it.
    let host = format!("crash{}.test", std::process::id());
    let start = || Server::start_in(&data, &["--hostname", &host]);
    let ids = Arc::new(AtomicU64::new(1));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut server = start();
    let (mut leftovers_after_kill, mut planted) = (0, 0);

    for round in 1..=rounds {
        let mut problems = check_logins(&server); // also warms the login cache
        let mut ledger_now = ledger.lock().unwrap();
        problems.extend(verify(&data, &host, &mut ledger_now));
        let acked = ledger_now.acked.len();
        drop(ledger_now);
        assert_clean(
            problems,
            &format!("after start {round}"),
            seed,
            round - 1,
            acked,
        );

        let ctx = Arc::new(Ctx {
            smtp: server.smtp,
            pop3: server.pop3,
            host: host.clone(),
            stop: AtomicBool::new(false),
            ids: ids.clone(),
            ledger: ledger.clone(),
        });
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        for _ in 0..SENDERS {
            let (ctx, s) = (ctx.clone(), rng.next());
            threads.push(std::thread::spawn(move || sender(&ctx, s)));
        }
        let (ctx2, s) = (ctx.clone(), rng.next());
        threads.push(std::thread::spawn(move || deleter(&ctx2, s)));
        // The run must exercise something: until a message has been
        // acknowledged, a kill waits for one.
        let waiting = Instant::now();
        while acked == 0 && ledger.lock().unwrap().acked.is_empty() {
            assert!(
                waiting.elapsed() < IO_TIMEOUT,
                "round {round}: no message acknowledged:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(
            rng.between(KILL_AFTER_MS.0, KILL_AFTER_MS.1),
        ));
        // Stop first, so no client reconnects to a port recycled after the kill.
        ctx.stop.store(true, Ordering::SeqCst);
        server.kill(); // SIGKILL: no chance to tidy up
        for t in threads {
            t.join().expect("client thread panicked");
        }

        // What the kill left in the spool, plus a partial message of our
        // own: the next start must remove all of it.
        let spool = data.join("tmp");
        let left = std::fs::read_dir(&spool).unwrap().count();
        leftovers_after_kill += left;
        let fake = spool.join(format!("1700000000.M1P999999Q{round}.{host}"));
        std::fs::write(&fake, b"Return-Path: <x@y.test>\r\nReceived: from half").unwrap();
        planted += 1;

        server = start();
        let log = server.log();
        if !log.contains(&format!("removed {} partial messages", left + 1)) {
            panic!(
                "round {round}: start did not report clearing {} spool files:\n{log}",
                left + 1
            );
        }
        assert!(
            !fake.exists(),
            "round {round}: planted spool file survived a start"
        );
    }

    let mut problems = check_logins(&server);
    let acked = ledger.lock().unwrap().acked.len();
    problems.extend(verify(&data, &host, &mut ledger.lock().unwrap()));
    assert_clean(problems, "after the last start", seed, rounds, acked);
    // And a clean stop leaves a clean store.
    assert_eq!(
        server.terminate().code(),
        Some(0),
        "SIGTERM after the rounds"
    );
    assert_clean(
        verify(&data, &host, &mut ledger.lock().unwrap()),
        "after SIGTERM",
        seed,
        rounds,
        acked,
    );

    let ledger = ledger.lock().unwrap();
    eprintln!(
        "crash harness: {rounds} kills in {:.1}s; {} acknowledged, {} in doubt ({} stored, {} in only some mailboxes), {} never sent; \
         {} deletions confirmed, {} RETR checks; {} spool files left by kills (+{planted} planted) all cleared",
        started.elapsed().as_secs_f64(),
        ledger.acked.len(),
        ledger.settled.len(),
        ledger.in_doubt_stored,
        ledger.split_in_doubt,
        ledger.never.len(),
        ledger.deleted.len(),
        ledger.retr_checked,
        leftovers_after_kill,
    );
    print_summary(rounds, ledger.acked.len(), 0, 0);
    assert!(
        ledger.odd.is_empty(),
        "unexpected replies from a running server (seed {seed:#x}):\n  {}",
        ledger.odd.join("\n  ")
    );
    // Not a throughput figure: only that the harness exercised something.
    assert!(
        !ledger.acked.is_empty(),
        "no message was acknowledged at all"
    );
}
