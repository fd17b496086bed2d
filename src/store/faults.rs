//! Faults injected inside the process, so tests find the bugs that only a
//! failing card shows: every operation that changes what is on flash
//! (create, write, fsync, rename, link, unlink, directory sync) asks
//! [`inject`] first, and a seeded plan may answer with `ENOSPC` or `EIO`,
//! or tear a write (part of the bytes written, then an error).
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
//! kind (also `read`: opening a message, counting a mailbox) take N ms longer, on
//! whichever thread runs it, so tests see what a slow card holds up. The same seed gives the same sequence of
//! answers for the same sequence of operations. Faults start once the
//! server is serving ([`arm`]), so start-up itself is not what is tested.

use std::io;

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
    /// Reading stored mail (opening a message, counting a mailbox); only
    /// ever delayed.
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

static ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets the plan, if there is one, start failing operations.
pub fn arm() {
    #[cfg(debug_assertions)]
    let _ = plan(); // says so in the log now, if faults are planned
    ARMED.store(true, std::sync::atomic::Ordering::SeqCst);
}

#[cfg(debug_assertions)]
fn plan() -> Option<&'static std::sync::Mutex<Plan>> {
    use std::sync::{Mutex, OnceLock};
    static PLAN: OnceLock<Option<Mutex<Plan>>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let text = std::env::var("POSTBOX_FAULTS").ok()?;
        match Plan::parse(&text) {
            Ok(plan) => {
                log::warn!("storage faults injected: {text}");
                Some(Mutex::new(plan))
            }
            Err(e) => panic!("{e}"),
        }
    })
    .as_ref()
}

/// Asks the plan about one operation; `None` means "do it for real".
#[cfg(debug_assertions)]
pub fn inject(op: Op, len: usize) -> Option<Fault> {
    if !ARMED.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let plan = plan()?;
    pause(op);
    let fault = plan
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .decide(op, len)?;
    log::debug!("injected fault: {} -> {}", op.name(), fault.error);
    Some(fault)
}

/// Holds the calling thread for the plan's delay of `op`, if any.
#[cfg(debug_assertions)]
pub fn pause(op: Op) {
    if !ARMED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let Some(plan) = plan() else { return };
    let delay = plan.lock().unwrap_or_else(|e| e.into_inner()).delay(op);
    if !delay.is_zero() {
        log::warn!("storage delay: {} held for {delay:?}", op.name());
        std::thread::sleep(delay);
    }
}

/// Release builds carry no plan.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn inject(_op: Op, _len: usize) -> Option<Fault> {
    None
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn pause(_op: Op) {}

/// Fails with the injected error, if the plan says so.
pub fn check(op: Op) -> io::Result<()> {
    match inject(op, 0) {
        Some(fault) => Err(fault.error),
        None => Ok(()),
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
}
