//! Slows password guessing: each failed login from an address makes the
//! next failure's answer wait longer, whichever protocol it comes over.

use crate::limits::{
    FAILED_LOGIN_DELAY, MAX_FAILED_LOGIN_DELAY, THROTTLE_ENTRIES, THROTTLE_MEMORY,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Default)]
pub struct LoginThrottle {
    by_address: RefCell<HashMap<IpAddr, Failures>>,
}

impl LoginThrottle {
    /// Records a failure from `ip`; returns how long to wait before saying so.
    pub fn failed(&self, ip: IpAddr) -> Duration {
        let now = Instant::now();
        let mut map = self.by_address.borrow_mut();
        if map.len() >= THROTTLE_ENTRIES && !map.contains_key(&ip) {
            map.retain(|_, f| now.duration_since(f.last) < THROTTLE_MEMORY);
            if map.len() >= THROTTLE_ENTRIES {
                // Under a flood from many addresses, bounded memory wins.
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= THROTTLE_MEMORY {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        delay_for(entry.count)
    }

    /// Whether `ip` has failed `limit` times lately: its logins are refused
    /// outright until the record expires.
    pub fn too_many(&self, ip: IpAddr, limit: u32) -> bool {
        self.by_address
            .borrow()
            .get(&ip)
            .is_some_and(|f| f.count >= limit && f.last.elapsed() < THROTTLE_MEMORY)
    }

    /// A successful login clears the address's record.
    pub fn succeeded(&self, ip: IpAddr) {
        self.by_address.borrow_mut().remove(&ip);
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

    #[test]
    fn delay_grows_per_address_and_resets_on_success() {
        let t = LoginThrottle::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = t.failed(a);
        assert_eq!(first, FAILED_LOGIN_DELAY);
        assert_eq!(t.failed(a), FAILED_LOGIN_DELAY * 2);
        assert_eq!(t.failed(a), FAILED_LOGIN_DELAY * 4);
        assert_eq!(t.failed(b), FAILED_LOGIN_DELAY);
        for _ in 0..20 {
            t.failed(a);
        }
        assert_eq!(t.failed(a), MAX_FAILED_LOGIN_DELAY);
        assert!(t.too_many(a, 10));
        assert!(!t.too_many(b, 10));
        t.succeeded(a);
        assert!(!t.too_many(a, 10));
        assert_eq!(t.failed(a), FAILED_LOGIN_DELAY);
    }

    #[test]
    fn memory_is_bounded() {
        let t = LoginThrottle::default();
        for i in 0..(THROTTLE_ENTRIES as u32 + 10) {
            t.failed(IpAddr::from(i.to_be_bytes()));
        }
        assert!(t.by_address.borrow().len() <= THROTTLE_ENTRIES);
    }
}
