//! Remembers recent successful logins so a mail client that polls every
//! few minutes costs one Argon2 hash per hour, not one per poll (the role
//! of Dovecot's auth cache). Entries hold an HMAC of the password under a
//! key made at start-up and never stored, tied to the stored hash they
//! were checked against: a changed password misses at once.

use crate::limits::{LOGIN_CACHE_ENTRIES, LOGIN_CACHE_TTL};
use ring::hmac;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

struct Entry {
    /// The stored password hash this login was verified against.
    phc: String,
    tag: hmac::Tag,
    at: Instant,
}

pub struct LoginCache {
    key: hmac::Key,
    entries: RefCell<HashMap<String, Entry>>,
}

impl LoginCache {
    pub fn new() -> Result<Self, String> {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| "no randomness for the login cache".to_string())?;
        Ok(LoginCache {
            key,
            entries: RefCell::new(HashMap::new()),
        })
    }

    /// Whether `password` was verified for `account` against `phc` lately.
    pub fn knows(&self, account: &str, phc: &str, password: &str) -> bool {
        let entries = self.entries.borrow();
        let Some(entry) = entries.get(account) else {
            return false;
        };
        entry.phc == phc
            && entry.at.elapsed() < LOGIN_CACHE_TTL
            && hmac::verify(&self.key, password.as_bytes(), entry.tag.as_ref()).is_ok()
    }

    /// Records a login that Argon2 just verified.
    pub fn remember(&self, account: &str, phc: &str, password: &str) {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= LOGIN_CACHE_ENTRIES && !entries.contains_key(account) {
            entries.retain(|_, e| e.at.elapsed() < LOGIN_CACHE_TTL);
            if entries.len() >= LOGIN_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            account.to_string(),
            Entry {
                phc: phc.to_string(),
                tag: hmac::sign(&self.key, password.as_bytes()),
                at: Instant::now(),
            },
        );
    }

    /// Drops an account's entry (a failed login with another password).
    pub fn forget(&self, account: &str) {
        self.entries.borrow_mut().remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_for_same_password_and_hash() {
        let cache = LoginCache::new().unwrap();
        assert!(!cache.knows("a@x", "phc1", "pw"));
        cache.remember("a@x", "phc1", "pw");
        assert!(cache.knows("a@x", "phc1", "pw"));
        assert!(!cache.knows("a@x", "phc1", "other"));
        assert!(!cache.knows("a@x", "phc2", "pw"), "password changed since");
        assert!(!cache.knows("b@x", "phc1", "pw"));
        cache.forget("a@x");
        assert!(!cache.knows("a@x", "phc1", "pw"));
    }

    #[test]
    fn bounded() {
        let cache = LoginCache::new().unwrap();
        for i in 0..LOGIN_CACHE_ENTRIES + 5 {
            cache.remember(&format!("u{i}@x"), "phc", "pw");
        }
        assert!(cache.entries.borrow().len() <= LOGIN_CACHE_ENTRIES);
    }
}
