//! Greylisting: the first message for a (client network, sender,
//! recipient) triplet is deferred with a 4xx; real mail servers retry
//! after a few minutes and are let through, most spam software never
//! does. A triplet that passed stays allowed for weeks. Kept in RAM with a
//! fixed bound; after a restart senders simply retry once more.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Triplets remembered; when full, new ones pass rather than lose mail.
const CAPACITY: usize = 20_000;

/// The settings live with the rest of the configuration.
pub use crate::config::GreylistConfig as Settings;

struct Entry {
    first_seen: Instant,
    last_seen: Instant,
    passed: bool,
}

pub struct Greylist {
    settings: Settings,
    entries: HashMap<(String, String, String), Entry>,
}

/// The client's network: its /24 (IPv4) or /64 (IPv6), since big senders
/// retry from another host of the same pool.
fn network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}", s[0], s[1], s[2], s[3])
        }
    }
}

impl Greylist {
    pub fn new(settings: Settings) -> Self {
        Greylist {
            settings,
            entries: HashMap::new(),
        }
    }

    /// `None` lets the recipient through; `Some(wait)` defers it.
    pub fn check(&mut self, client: IpAddr, sender: &str, rcpt: &str) -> Option<Duration> {
        self.check_at(client, sender, rcpt, Instant::now())
    }

    fn check_at(
        &mut self,
        client: IpAddr,
        sender: &str,
        rcpt: &str,
        now: Instant,
    ) -> Option<Duration> {
        let s = &self.settings;
        let key = (
            network(client),
            sender.to_ascii_lowercase(),
            rcpt.to_ascii_lowercase(),
        );
        if !self.entries.contains_key(&key) && self.entries.len() >= CAPACITY {
            let (retry, allow) = (s.retry_window, s.allow);
            self.entries.retain(|_, e| {
                let age = now.duration_since(e.last_seen);
                if e.passed {
                    age < allow
                } else {
                    age < retry
                }
            });
            if self.entries.len() >= CAPACITY {
                return None;
            }
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            first_seen: now,
            last_seen: now,
            passed: false,
        });
        let since_first = now.duration_since(entry.first_seen);
        let since_last = now.duration_since(entry.last_seen);
        let expired = if entry.passed {
            since_last >= s.allow
        } else {
            since_first >= s.retry_window
        };
        if expired {
            *entry = Entry {
                first_seen: now,
                last_seen: now,
                passed: false,
            };
        }
        entry.last_seen = now;
        if entry.passed {
            return None;
        }
        let waited = now.duration_since(entry.first_seen);
        if waited >= s.delay {
            entry.passed = true;
            return None;
        }
        Some(s.delay - waited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Greylist {
        Greylist::new(Settings {
            delay: Duration::from_secs(300),
            retry_window: Duration::from_secs(3600),
            allow: Duration::from_secs(86400),
        })
    }

    #[test]
    fn first_deferred_retry_after_delay_passes_and_stays() {
        let mut g = list();
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(
            g.check_at(ip, "a@x", "b@y", t0),
            Some(Duration::from_secs(300))
        );
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(
            g.check_at(ip, "a@x", "b@y", t1),
            Some(Duration::from_secs(240))
        );
        // Another host of the same /24 retries: that counts.
        let other: IpAddr = "192.0.2.77".parse().unwrap();
        let t2 = t0 + Duration::from_secs(301);
        assert_eq!(g.check_at(other, "A@X", "b@y", t2), None);
        assert_eq!(
            g.check_at(ip, "a@x", "b@y", t2 + Duration::from_secs(80_000)),
            None
        );
        // A different triplet starts its own wait.
        assert!(g.check_at(ip, "c@x", "b@y", t2).is_some());
    }

    #[test]
    fn a_retry_passes_at_the_delay_not_before() {
        let mut g = Greylist::new(Settings {
            delay: Duration::from_secs(1),
            ..list().settings
        });
        let t0 = Instant::now();
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let (from, to) = ("news@remote.test", "alice@localhost");
        let second = Duration::from_secs(1);
        assert_eq!(g.check_at(ip, from, to, t0), Some(second));
        // Retried at once, or just short of the delay: still deferred.
        assert_eq!(g.check_at(ip, from, to, t0), Some(second));
        let almost = t0 + Duration::from_millis(999);
        assert_eq!(
            g.check_at(ip, from, to, almost),
            Some(Duration::from_millis(1))
        );
        assert_eq!(g.check_at(ip, from, to, t0 + second), None);
        // Passed: the triplet keeps passing, in any case of the sender.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(g.check_at(ip, "NEWS@remote.test", to, later), None);
        assert!(g.check_at(ip, "other@remote.test", to, later).is_some());
    }

    #[test]
    fn with_no_delay_the_first_attempt_passes() {
        let mut g = Greylist::new(Settings {
            delay: Duration::ZERO,
            ..list().settings
        });
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(g.check_at(ip, "a@x", "b@y", Instant::now()), None);
    }

    #[test]
    fn stale_entries_start_over() {
        let mut g = list();
        let t0 = Instant::now();
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(g.check_at(ip, "a@x", "b@y", t0).is_some());
        // No retry within the window: the next attempt waits again.
        let late = t0 + Duration::from_secs(4000);
        assert_eq!(
            g.check_at(ip, "a@x", "b@y", late),
            Some(Duration::from_secs(300))
        );
    }
}
