//! Answers remembered for as long as their TTLs allow (RFC 1035 §7.4,
//! negative ones per RFC 2308), within bounds: each kept at least
//! [`DNS_CACHE_MIN_TTL`] (so a burst of checks of one message does not ask
//! again for a TTL of 0) and at most [`DNS_CACHE_MAX_TTL`]; at most
//! [`DNS_CACHE_ENTRIES`] answers of at most [`DNS_CACHE_MAX_ANSWER`] bytes
//! each, the oldest stored going first when full. Sans-IO: the caller
//! passes the time.

use super::message::Answer;
use crate::limits::{
    DNS_CACHE_ENTRIES, DNS_CACHE_MAX_ANSWER, DNS_CACHE_MAX_TTL, DNS_CACHE_MIN_TTL,
};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A name (lower case, no trailing dot) and a record type.
type Key = (String, u16);

struct Entry {
    answer: Answer,
    expires: Instant,
    /// When it was stored, in store order: the key into `by_age`.
    stored: u64,
}

pub struct Cache {
    entries: HashMap<Key, Entry>,
    by_age: BTreeMap<u64, Key>,
    stores: u64,
    capacity: usize,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::with_capacity(DNS_CACHE_ENTRIES)
    }
}

fn key(name: &str, kind: u16) -> Key {
    (name.trim_end_matches('.').to_ascii_lowercase(), kind)
}

impl Cache {
    pub fn with_capacity(capacity: usize) -> Self {
        Cache {
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            stores: 0,
            capacity,
        }
    }

    /// The remembered answer about `name`'s records of type `kind`, if it
    /// has not expired by `now` (the TTLs inside are as first received).
    pub fn get(&self, name: &str, kind: u16, now: Instant) -> Option<&Answer> {
        let entry = self.entries.get(&key(name, kind))?;
        (now < entry.expires).then_some(&entry.answer)
    }

    /// Remembers `answer` from `now` for its TTL, bounded; an answer that
    /// must not be remembered (a negative one without an SOA) or is too big
    /// is not, and drops what was remembered for that question before.
    pub fn insert(&mut self, name: &str, kind: u16, answer: Answer, now: Instant) {
        let key = key(name, kind);
        self.remove(&key);
        let Some(ttl) = answer.ttl() else { return };
        if answer.size() > DNS_CACHE_MAX_ANSWER || self.capacity == 0 {
            return;
        }
        let keep = Duration::from_secs(ttl.into()).clamp(DNS_CACHE_MIN_TTL, DNS_CACHE_MAX_TTL);
        if self.entries.len() >= self.capacity {
            self.drop_expired(now);
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.stores += 1;
        self.by_age.insert(self.stores, key.clone());
        let entry = Entry {
            answer,
            expires: now + keep,
            stored: self.stores,
        };
        self.entries.insert(key, entry);
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.entries.remove(key) {
            self.by_age.remove(&old.stored);
        }
    }

    fn drop_expired(&mut self, now: Instant) {
        let by_age = &mut self.by_age;
        self.entries.retain(|_, e| {
            let live = now < e.expires;
            if !live {
                by_age.remove(&e.stored);
            }
            live
        });
    }

    /// How many answers are remembered (expired ones included until they
    /// are swept out to make room).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::message::{Record, Resource, TYPE_A, TYPE_TXT};
    use super::*;

    fn a(ttl: u32) -> Answer {
        let record = Record::A([192, 0, 2, 1].into());
        Answer::Records(vec![Resource { record, ttl }])
    }

    #[test]
    fn answers_last_their_ttl() {
        let t0 = Instant::now();
        let mut cache = Cache::default();
        cache.insert("Host.Example.", TYPE_A, a(300), t0);
        let later = |s| t0 + Duration::from_secs(s);
        assert_eq!(cache.get("host.example", TYPE_A, later(299)), Some(&a(300)));
        assert_eq!(cache.get("host.example", TYPE_A, later(300)), None);
        assert_eq!(
            cache.get("host.example", TYPE_TXT, t0),
            None,
            "another type"
        );
        // A negative answer lasts its SOA's TTL; one without SOA is not kept.
        let nx = Answer::NoSuchName {
            negative_ttl: Some(60),
        };
        cache.insert("gone.example", TYPE_A, nx.clone(), t0);
        assert_eq!(cache.get("gone.example", TYPE_A, later(59)), Some(&nx));
        assert_eq!(cache.get("gone.example", TYPE_A, later(60)), None);
        let unsure = Answer::NoData { negative_ttl: None };
        cache.insert("host.example", TYPE_A, unsure, t0);
        assert_eq!(
            cache.get("host.example", TYPE_A, t0),
            None,
            "replaced, not kept"
        );
    }

    #[test]
    fn ttls_are_kept_within_floor_and_ceiling() {
        let t0 = Instant::now();
        let mut cache = Cache::default();
        cache.insert("zero.example", TYPE_A, a(0), t0);
        let floor = DNS_CACHE_MIN_TTL;
        assert!(cache
            .get(
                "zero.example",
                TYPE_A,
                t0 + floor - Duration::from_millis(1)
            )
            .is_some());
        assert!(cache.get("zero.example", TYPE_A, t0 + floor).is_none());
        cache.insert("week.example", TYPE_A, a(7 * 86400), t0);
        let ceiling = DNS_CACHE_MAX_TTL;
        assert!(cache
            .get(
                "week.example",
                TYPE_A,
                t0 + ceiling - Duration::from_secs(1)
            )
            .is_some());
        assert!(cache.get("week.example", TYPE_A, t0 + ceiling).is_none());
    }

    #[test]
    fn the_oldest_goes_when_full() {
        let t0 = Instant::now();
        let mut cache = Cache::with_capacity(3);
        for (i, name) in ["one", "two", "three"].iter().enumerate() {
            cache.insert(name, TYPE_A, a(600), t0 + Duration::from_secs(i as u64));
        }
        // Storing "one" again makes it the newest.
        cache.insert("one", TYPE_A, a(600), t0 + Duration::from_secs(3));
        cache.insert("four", TYPE_A, a(600), t0 + Duration::from_secs(4));
        let now = t0 + Duration::from_secs(5);
        assert_eq!(cache.len(), 3);
        assert!(cache.get("two", TYPE_A, now).is_none(), "oldest evicted");
        for name in ["one", "three", "four"] {
            assert!(cache.get(name, TYPE_A, now).is_some(), "{name}");
        }
        // Expired answers make room before live ones are evicted.
        let short = a(10);
        cache.insert("brief", TYPE_A, short, now);
        let much_later = now + Duration::from_secs(30);
        cache.insert("five", TYPE_A, a(600), much_later);
        assert_eq!(cache.len(), 3);
        for name in ["one", "four", "five"] {
            assert!(cache.get(name, TYPE_A, much_later).is_some(), "{name}");
        }
    }

    #[test]
    fn big_answers_are_not_kept() {
        let t0 = Instant::now();
        let mut cache = Cache::default();
        let record = Record::Txt(vec![b'x'; DNS_CACHE_MAX_ANSWER]);
        let big = Answer::Records(vec![Resource { record, ttl: 300 }]);
        cache.insert("big.example", TYPE_TXT, big, t0);
        assert!(cache.is_empty());
    }
}
