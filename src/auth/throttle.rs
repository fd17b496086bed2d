//! Slows and caps password guessing, whichever protocol it comes over.
//! Failures are counted per client (address, or IPv6 /64) and per target
//! account, and forgotten only with time: a guesser's own good login
//! forgives nothing. Attempts still being checked count against the cap
//! too, so parallel connections get no more guesses than serial ones.

use crate::conn::per_client::{client_key, evict_least_recent};
use crate::limits::{
    FAILED_LOGIN_DELAY, MAX_FAILED_LOGIN_DELAY, THROTTLE_ENTRIES, THROTTLE_MEMORY,
    USER_FAILURES_FACTOR,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Record {
    failures: u32,
    in_flight: u32,
    last: Option<Instant>,
}

impl Record {
    /// Failures within memory; older ones have expired.
    fn recent(&self, now: Instant) -> u32 {
        match self.last {
            Some(t) if now.duration_since(t) < THROTTLE_MEMORY => self.failures,
            _ => 0,
        }
    }
}

/// A bounded table of records; a record being checked is never dropped.
struct Table<K>(HashMap<K, Record>);

impl<K: Eq + Hash + Clone> Table<K> {
    fn get(&self, key: &K, now: Instant) -> (u32, u32) {
        self.0
            .get(key)
            .map_or((0, 0), |r| (r.recent(now), r.in_flight))
    }

    fn entry(&mut self, key: &K, now: Instant) -> &mut Record {
        if self.0.len() >= THROTTLE_ENTRIES && !self.0.contains_key(key) {
            self.0.retain(|_, r| r.in_flight > 0 || r.recent(now) > 0);
            if self.0.len() >= THROTTLE_ENTRIES {
                evict_least_recent(&mut self.0, |r| (r.in_flight == 0).then_some(r.last?));
            }
        }
        let record = self.0.entry(key.clone()).or_default();
        if record.recent(now) == 0 {
            record.failures = 0;
        }
        record
    }

    fn release(&mut self, key: &K) {
        if let Some(r) = self.0.get_mut(key) {
            r.in_flight = r.in_flight.saturating_sub(1);
        }
    }
}

pub struct LoginThrottle {
    by_client: RefCell<Table<IpAddr>>,
    by_account: RefCell<Table<String>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            by_client: RefCell::new(Table(HashMap::new())),
            by_account: RefCell::new(Table(HashMap::new())),
        }
    }
}

/// Why an attempt is refused without a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client failed (or is trying) `limit` times lately.
    Client,
    /// The account was guessed at too often lately, from anywhere.
    Account,
}

/// A login being checked; counts against the caps until dropped.
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    client: IpAddr,
    account: String,
}

impl LoginThrottle {
    /// Starts an attempt from `ip` at `account`, or refuses it: a client may
    /// have `limit` failures and attempts under way, an account
    /// `limit × USER_FAILURES_FACTOR` failures (so strangers alone cannot
    /// lock its owner out as easily as they can guess).
    pub fn begin(&self, ip: IpAddr, account: &str, limit: u32) -> Result<Attempt<'_>, Refusal> {
        let now = Instant::now();
        let client = client_key(ip);
        let account = account.to_ascii_lowercase();
        let (failures, in_flight) = self.by_client.borrow().get(&client, now);
        if failures.saturating_add(in_flight) >= limit {
            return Err(Refusal::Client);
        }
        let (failures, _) = self.by_account.borrow().get(&account, now);
        if failures >= limit.saturating_mul(USER_FAILURES_FACTOR) {
            return Err(Refusal::Account);
        }
        self.by_client.borrow_mut().entry(&client, now).in_flight += 1;
        self.by_account.borrow_mut().entry(&account, now).in_flight += 1;
        Ok(Attempt {
            throttle: self,
            client,
            account,
        })
    }
}

impl Attempt<'_> {
    /// Records the failure; returns how long to wait before saying so,
    /// longer the more the client or the account has failed.
    pub fn failed(self) -> Duration {
        let now = Instant::now();
        let client = bump(
            self.throttle
                .by_client
                .borrow_mut()
                .entry(&self.client, now),
            now,
        );
        let account = bump(
            self.throttle
                .by_account
                .borrow_mut()
                .entry(&self.account, now),
            now,
        );
        delay_for(client.max(account))
    }
}

fn bump(record: &mut Record, now: Instant) -> u32 {
    record.failures = record.failures.saturating_add(1);
    record.last = Some(now);
    record.failures
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.throttle.by_client.borrow_mut().release(&self.client);
        self.throttle.by_account.borrow_mut().release(&self.account);
    }
}

/// Doubles with every failure, up to the cap.
fn delay_for(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(8);
    (FAILED_LOGIN_DELAY * factor).min(MAX_FAILED_LOGIN_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(t: &LoginThrottle, ip: IpAddr, account: &str) -> Duration {
        t.begin(ip, account, u32::MAX).unwrap().failed()
    }

    #[test]
    fn delay_grows_per_client_and_account() {
        let t = LoginThrottle::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(fail(&t, a, "bob"), FAILED_LOGIN_DELAY);
        assert_eq!(fail(&t, a, "carol"), FAILED_LOGIN_DELAY * 2);
        assert_eq!(fail(&t, a, "dave"), FAILED_LOGIN_DELAY * 4);
        // Another client guessing at an account already guessed at.
        assert_eq!(fail(&t, b, "bob"), FAILED_LOGIN_DELAY * 2);
        for _ in 0..20 {
            fail(&t, a, "erin");
        }
        assert_eq!(fail(&t, a, "frank"), MAX_FAILED_LOGIN_DELAY);
    }

    #[test]
    fn a_success_forgives_nothing() {
        let t = LoginThrottle::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..2 {
            t.begin(a, "bob", 3).unwrap().failed();
            // A good login as the guesser's own account.
            drop(t.begin(a, "alice", 3).unwrap());
        }
        t.begin(a, "bob", 3).unwrap().failed();
        assert_eq!(t.begin(a, "alice", 3).err(), Some(Refusal::Client));
        assert!(t.begin("192.0.2.2".parse().unwrap(), "bob", 3).is_ok());
    }

    #[test]
    fn attempts_under_way_count() {
        let t = LoginThrottle::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| t.begin(a, "bob", 10).unwrap()).collect();
        assert_eq!(t.begin(a, "bob", 10).err(), Some(Refusal::Client));
        drop(held);
        assert!(t.begin(a, "bob", 10).is_ok());
    }

    #[test]
    fn accounts_have_a_cap_of_their_own() {
        let t = LoginThrottle::default();
        for i in 0..(2 * USER_FAILURES_FACTOR) {
            let ip = IpAddr::from((0xC000_0200 + i).to_be_bytes());
            t.begin(ip, "Bob", 2).unwrap().failed();
        }
        let fresh: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(t.begin(fresh, "bob", 2).err(), Some(Refusal::Account));
        assert!(t.begin(fresh, "alice", 2).is_ok());
    }

    #[test]
    fn ipv6_clients_are_their_64() {
        let t = LoginThrottle::default();
        t.begin("2001:db8::1".parse().unwrap(), "bob", 1)
            .unwrap()
            .failed();
        assert_eq!(
            t.begin("2001:db8::2:3".parse().unwrap(), "alice", 1).err(),
            Some(Refusal::Client)
        );
        assert!(t
            .begin("2001:db8:0:1::1".parse().unwrap(), "alice", 1)
            .is_ok());
    }

    #[test]
    fn memory_is_bounded_and_keeps_the_recent() {
        let t = LoginThrottle::default();
        let guesser: IpAddr = "198.51.100.7".parse().unwrap();
        for i in 0..(THROTTLE_ENTRIES as u32) {
            fail(&t, IpAddr::from(i.to_be_bytes()), "bob");
        }
        t.begin(guesser, "bob", u32::MAX).unwrap().failed();
        for i in 0..(THROTTLE_ENTRIES as u32 / 4) {
            fail(&t, IpAddr::from((1u32 << 31 | i).to_be_bytes()), "bob");
        }
        assert!(t.by_client.borrow().0.len() <= THROTTLE_ENTRIES);
        assert_eq!(t.by_client.borrow().get(&guesser, Instant::now()).0, 1);
    }
}
