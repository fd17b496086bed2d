//! Faults injected inside the process, so tests find the bugs that only a
//! failing card shows: [`Faulty`] wraps a disk, every operation that
//! changes what is on flash (create, write, fsync, rename, link, unlink,
//! directory sync) asks its seeded plan first, and the plan may answer
//! with `ENOSPC` or `EIO`, or tear a write (part of the bytes written,
//! then an error).
//!
//! The plan comes from `POSTBOX_FAULTS`, read once, in debug builds only
//! (the release build that boards run has no plan and no cost):
//!
//! ```text
//! POSTBOX_FAULTS="seed=7,rate=0.02,ops=write+sync+link"
//! ```
//!
//! `rate` is the chance that one operation fails; `ops` names the kinds
//! that may (default: all). `delay_KIND_ms=N` makes every operation of a
//! kind (also `read`: opening a message, listing a folder, reading a
//! record file) take N ms longer, on
//! whichever thread runs it, so tests see what a slow card holds up. The same seed gives the same sequence of
//! answers for the same sequence of operations. Faults start once the
//! server is serving ([`arm`]), so start-up itself is not what is tested.

use super::disk::{Disk, Entry, Fs, Handle, Metadata, Reader};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What an operation on flash does, as the fault plan sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Write,
    Sync,
    Rename,
    Link,
    Unlink,
    SyncDir,
    /// Reading stored mail or a record file (opening a message, counting
    /// a mailbox, loading the users file); only ever delayed.
    Read,
}

impl Op {
    const ALL: [Op; 8] = [
        Op::Create,
        Op::Write,
        Op::Sync,
        Op::Rename,
        Op::Link,
        Op::Unlink,
        Op::SyncDir,
        Op::Read,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Write => "write",
            Op::Sync => "sync",
            Op::Rename => "rename",
            Op::Link => "link",
            Op::Unlink => "unlink",
            Op::SyncDir => "syncdir",
            Op::Read => "read",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// An injected failure: the error to return, and for a torn write how
/// many of the bytes reach the file first.
#[derive(Debug)]
pub struct Fault {
    pub error: io::Error,
    pub torn_at: Option<usize>,
}

/// A seeded plan of failures.
#[derive(Debug)]
pub struct Plan {
    state: u64,
    /// Chance of failure per operation, in millionths.
    rate: u32,
    ops: u8,
    injected: u64,
    /// Extra time each kind of operation takes, in ms, by `Op as usize`.
    delays: [u32; Op::ALL.len()],
}

impl Plan {
    /// Parses `seed=N,rate=F,ops=a+b`; an error names the bad part.
    pub fn parse(text: &str) -> Result<Plan, String> {
        let mut plan = Plan {
            state: 1,
            rate: 10_000,
            ops: Op::ALL.iter().fold(0, |bits, op| bits | op.bit()),
            injected: 0,
            delays: [0; Op::ALL.len()],
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("POSTBOX_FAULTS: '{part}' is not key=value"))?;
            match key {
                "seed" => {
                    let seed: u64 = value
                        .parse()
                        .map_err(|_| format!("POSTBOX_FAULTS: seed '{value}' is not a number"))?;
                    plan.state = seed.max(1);
                }
                "rate" => {
                    let rate: f64 = value
                        .parse()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| {
                            format!("POSTBOX_FAULTS: rate '{value}' is not between 0 and 1")
                        })?;
                    plan.rate = (rate * 1e6).round() as u32;
                }
                "ops" => {
                    plan.ops = 0;
                    for name in value.split('+') {
                        let op = Op::ALL
                            .into_iter()
                            .find(|op| op.name() == name)
                            .ok_or_else(|| format!("POSTBOX_FAULTS: unknown op '{name}'"))?;
                        plan.ops |= op.bit();
                    }
                }
                _ => {
                    let op = key
                        .strip_prefix("delay_")
                        .and_then(|k| k.strip_suffix("_ms"))
                        .and_then(|name| Op::ALL.into_iter().find(|op| op.name() == name))
                        .ok_or_else(|| format!("POSTBOX_FAULTS: unknown key '{key}'"))?;
                    plan.delays[op as usize] = value.parse().map_err(|_| {
                        format!("POSTBOX_FAULTS: {key} '{value}' is not a number of ms")
                    })?;
                }
            }
        }
        Ok(plan)
    }

    /// xorshift64*: small and seedable.
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Decides the fate of one operation moving `len` bytes (0 for none).
    pub fn decide(&mut self, op: Op, len: usize) -> Option<Fault> {
        if self.ops & op.bit() == 0 {
            return None;
        }
        let roll = self.next();
        if (roll % 1_000_000) as u32 >= self.rate {
            return None;
        }
        self.injected += 1;
        let roll = roll >> 20;
        let error = if roll & 1 == 0 {
            io::Error::from_raw_os_error(libc::ENOSPC)
        } else {
            io::Error::from_raw_os_error(libc::EIO)
        };
        let torn_at = (op == Op::Write && len > 1).then(|| (roll >> 1) as usize % len);
        Some(Fault { error, torn_at })
    }

    /// The extra time `op` takes.
    pub fn delay(&self, op: Op) -> std::time::Duration {
        std::time::Duration::from_millis(self.delays[op as usize].into())
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected
    }
}

/// A disk whose operations a seeded [`Plan`] may fail or slow down:
/// every change (create, write, fsync, rename, link, unlink, directory
/// sync) asks the plan first; opening or reading a file and listing a
/// folder only ever wait. Wraps any disk, so the same faults hit the filesystem in a
/// running server or [`super::memory::Memory`] in a test.
pub struct Faulty<D> {
    inner: D,
    plan: Mutex<Plan>,
    armed: AtomicBool,
}

impl<D: Disk> Faulty<D> {
    /// Faults from the first operation on.
    pub fn new(inner: D, plan: Plan) -> Self {
        let faulty = Faulty::unarmed(inner, plan);
        faulty.arm();
        faulty
    }

    /// No faults until [`Faulty::arm`].
    pub fn unarmed(inner: D, plan: Plan) -> Self {
        Faulty {
            inner,
            plan: Mutex::new(plan),
            armed: AtomicBool::new(false),
        }
    }

    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.plan().injected()
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The plan's answer for one operation; `None` means "do it for real".
    fn inject(&self, op: Op, len: usize) -> Option<Fault> {
        if !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        self.pause(op);
        let fault = self.plan().decide(op, len)?;
        log::debug!("injected fault: {} -> {}", op.name(), fault.error);
        Some(fault)
    }

    /// Fails with the injected error, if the plan says so.
    fn check(&self, op: Op) -> io::Result<()> {
        match self.inject(op, 0) {
            Some(fault) => Err(fault.error),
            None => Ok(()),
        }
    }

    /// Holds the calling thread for the plan's delay of `op`, if any.
    fn pause(&self, op: Op) {
        if !self.armed.load(Ordering::Relaxed) {
            return;
        }
        let delay = self.plan().delay(op);
        if !delay.is_zero() {
            log::warn!("storage delay: {} held for {delay:?}", op.name());
            std::thread::sleep(delay);
        }
    }
}

impl<D: Disk> Disk for Faulty<D> {
    fn create_new(&self, path: &Path, mode: u32) -> io::Result<Handle> {
        self.check(Op::Create)?;
        self.inner.create_new(path, mode)
    }

    fn open(&self, path: &Path) -> io::Result<Handle> {
        self.inner.open(path)
    }

    /// A torn write puts part of the bytes in the file, then fails.
    fn write(&self, file: &mut Handle, bytes: &[u8]) -> io::Result<()> {
        if let Some(fault) = self.inject(Op::Write, bytes.len()) {
            if let Some(at) = fault.torn_at {
                self.inner.write(file, &bytes[..at])?;
            }
            return Err(fault.error);
        }
        self.inner.write(file, bytes)
    }

    fn sync(&self, file: &Handle) -> io::Result<()> {
        self.check(Op::Sync)?;
        self.inner.sync(file)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::SyncDir)?;
        self.inner.sync_dir(dir)
    }

    fn syncfs(&self, file: &Handle) -> io::Result<()> {
        self.check(Op::Sync)?;
        self.inner.syncfs(file)
    }

    fn sync_keeps_names(&self, file: &Handle) -> bool {
        self.inner.sync_keeps_names(file)
    }

    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Link)?;
        self.inner.link(from, to)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename)?;
        self.inner.rename(from, to)
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Unlink)?;
        self.inner.unlink(path)
    }

    fn create_dir(&self, dir: &Path, mode: u32) -> io::Result<()> {
        self.inner.create_dir(dir, mode)
    }

    /// Removing a directory fails as removing a name does.
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::Unlink)?;
        self.inner.remove_dir(dir)
    }

    fn open_read(&self, path: &Path) -> io::Result<Reader> {
        self.pause(Op::Read);
        self.inner.open_read(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.pause(Op::Read);
        self.inner.read(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        self.pause(Op::Read);
        self.inner.list(dir)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.inner.metadata(path)
    }
}

/// The server's filesystem behind the plan in `POSTBOX_FAULTS`, if there
/// is one (debug builds only), unarmed until [`arm`].
pub(super) fn system() -> Option<&'static Arc<Faulty<Fs>>> {
    #[cfg(debug_assertions)]
    {
        static SYSTEM: std::sync::OnceLock<Option<Arc<Faulty<Fs>>>> = std::sync::OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                let text = std::env::var("POSTBOX_FAULTS").ok()?;
                let plan = Plan::parse(&text).unwrap_or_else(|e| panic!("{e}"));
                Some(Arc::new(Faulty::unarmed(Fs, plan)))
            })
            .as_ref()
    }
    #[cfg(not(debug_assertions))]
    None
}

/// Lets the server's plan, if there is one, start failing operations.
pub fn arm() {
    if let Some(faulty) = system() {
        let text = std::env::var("POSTBOX_FAULTS").unwrap_or_default();
        log::warn!("storage faults injected: {text}");
        faulty.arm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults() {
        let run = || {
            let mut plan = Plan::parse("seed=42,rate=0.3").unwrap();
            (0..200)
                .map(|i| plan.decide(Op::ALL[i % 7], 100).is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let failures = first.iter().filter(|f| **f).count();
        assert!((20..=100).contains(&failures), "{failures} of 200 at 0.3");
    }

    #[test]
    fn only_named_ops_fail_and_writes_tear_inside_the_buffer() {
        let mut plan = Plan::parse("seed=3,rate=1,ops=write").unwrap();
        assert!(plan.decide(Op::Sync, 0).is_none());
        let fault = plan.decide(Op::Write, 10).unwrap();
        assert!(fault.torn_at.unwrap() < 10);
        assert_eq!(plan.injected(), 1);
    }

    #[test]
    fn bad_plans_name_the_part() {
        assert!(Plan::parse("rate=2").unwrap_err().contains("rate"));
        assert!(Plan::parse("ops=write+fly").unwrap_err().contains("fly"));
        assert!(Plan::parse("sed=1").unwrap_err().contains("sed"));
        assert!(Plan::parse("delay_fly_ms=1").unwrap_err().contains("fly"));
        assert!(Plan::parse("delay_read_ms=x")
            .unwrap_err()
            .contains("delay_read_ms"));
    }

    #[test]
    fn delays_are_per_kind() {
        let plan = Plan::parse("delay_write_ms=30,rate=0").unwrap();
        assert_eq!(plan.delay(Op::Write), std::time::Duration::from_millis(30));
        assert!(plan.delay(Op::Read).is_zero());
    }

    /// Deliveries into two mailboxes on an in-memory disk that fails one
    /// change in ten, each followed by a power cut, through thousands of
    /// faults (one fresh disk per seed): every copy a delivery answered
    /// for is there whole exactly once (so no failed fsync was followed by
    /// a success), nothing partial is anywhere, and a copy never answered
    /// for is at most a whole one left by a failed rollback.
    #[test]
    fn deliveries_under_seeded_faults_keep_their_word_through_a_power_cut() {
        const SEEDS: u64 = 24;
        let injected: u64 = (11..11 + SEEDS).map(deliveries_through_power_cuts).sum();
        assert!(
            injected >= 1000,
            "{injected} faults injected, not at least 1000"
        );
    }

    /// 400 deliveries under the plan seeded with `seed`, each followed by a
    /// power cut, checked as above; how many faults were injected.
    fn deliveries_through_power_cuts(seed: u64) -> u64 {
        use crate::store::maildir::{clear_spool, mailbox_dir, scan_mailbox, Incoming, NameMaker};
        use crate::store::memory::Memory;
        use std::collections::HashMap;
        let memory = Arc::new(Memory::new());
        let faulty = Arc::new(Faulty::new(
            memory.clone(),
            Plan::parse(&format!("seed={seed},rate=0.1")).unwrap(),
        ));
        let disk: Arc<dyn Disk> = faulty.clone();
        let data = Path::new("/data");
        clear_spool(&*memory, data).unwrap();
        let boxes = [
            mailbox_dir(data, "a", "test"),
            mailbox_dir(data, "b", "test"),
        ];
        let names = NameMaker::new("h");
        let text = |i: usize| format!("Subject: {i}\r\n\r\n{}\r\n", "x".repeat(i % 40));
        const DELIVERIES: usize = 400;
        let mut acknowledged: HashMap<&Path, Vec<usize>> = HashMap::new();
        let mut refused = 0;
        for i in 0..DELIVERIES {
            let outcome = (|| {
                let mut message = Incoming::create(&disk, data, names.next())?;
                for chunk in text(i).as_bytes().chunks(7) {
                    message.write(chunk)?;
                }
                let delivered = message.deliver(&boxes);
                message.discard();
                delivered
            })();
            // The power goes after every delivery.
            memory.crash();
            match outcome {
                Ok(delivered) => {
                    for mailbox in &boxes {
                        if !delivered.failed.iter().any(|(m, _)| m == mailbox) {
                            let stored = memory.read(&mailbox.join("new").join(&delivered.name));
                            assert_eq!(
                                stored.ok(),
                                Some(text(i).into_bytes()),
                                "seed {seed}: message {i}"
                            );
                            acknowledged.entry(mailbox).or_default().push(i);
                        }
                    }
                }
                Err(_) => refused += 1,
            }
        }
        assert!(
            refused > 0 && refused < DELIVERIES,
            "seed {seed}: {refused} refused"
        );
        clear_spool(&*memory, data).unwrap();
        for mailbox in &boxes {
            let mut stored = HashMap::<usize, usize>::new();
            for message in scan_mailbox(&*memory, mailbox).unwrap() {
                let bytes = memory.read(&mailbox.join(&*message.name)).unwrap();
                let i = (0..DELIVERIES)
                    .find(|i| text(*i).as_bytes() == bytes)
                    .unwrap_or_else(|| panic!("seed {seed}: partial message {bytes:?}"));
                *stored.entry(i).or_default() += 1;
            }
            let answered = acknowledged.remove(&**mailbox).unwrap_or_default();
            for i in &answered {
                assert_eq!(
                    stored.get(i),
                    Some(&1),
                    "seed {seed}: message {i} in {}",
                    mailbox.display()
                );
            }
            assert!(
                stored.values().all(|copies| *copies == 1),
                "seed {seed}: a message twice in {}",
                mailbox.display()
            );
        }
        faulty.injected()
    }
}
