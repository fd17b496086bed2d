//! The Sender Rewriting Scheme (Shevek's SRS, as in libsrs2 and postsrsd):
//! mail forwarded elsewhere leaves with an envelope sender in our own
//! domain, so it passes the receiver's SPF checks, and a bounce for it
//! comes back here, where [`Srs::reverse`] recovers the original sender.
//!
//! ```text
//! alice@example.org  →  SRS0=HHHH=TT=example.org=alice@our.domain
//! ```
//!
//! `HHHH` is the first four base64 characters of an HMAC-SHA256 over the
//! rest (taken in lower case, and compared without regard to case, since
//! some mail servers fold local parts); `TT` is the day number modulo 1024
//! in base32, and a bounce older than [`MAX_AGE_DAYS`] is refused, so the
//! address cannot be used as an open relay for long.
//!
//! A sender that is already an SRS address from another forwarder becomes
//! `SRS1=HHHH=first-forwarder==HHHH=TT=domain=local@our.domain` as the
//! scheme prescribes, rather than wrapping SRS0 in SRS0: the address stays
//! short however many forwarders the mail passes, and a bounce goes back
//! to the first forwarder, which holds the key to the original sender.

use crate::store::disk;
use crate::store::record;
use crate::store::users::lock_users;
use crate::wire::address::{domain_is_valid, Address};
use base64::Engine;
use ring::hmac;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const FILE: &str = "srs-key";
const KIND: [u8; 4] = *b"PBSK";
const VERSION: u16 = 1;

/// How long a rewritten sender accepts bounces, in days.
pub const MAX_AGE_DAYS: u64 = 21;
const TIMESTAMP_PERIOD: u64 = 1024;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const HASH_LEN: usize = 4;

/// The rewriting key. Deliberately not `Debug`.
pub struct Srs {
    key: hmac::Key,
}

/// Days since the Unix epoch, the clock [`Srs`] works in.
pub fn day_number(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0)
}

impl Srs {
    pub fn new(secret: [u8; 32]) -> Srs {
        Srs {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        }
    }

    /// The key kept in `DATA/srs-key`, made from 32 random bytes the first
    /// time. It must outlive restarts: bounces arrive days later. A
    /// damaged key is set aside and a new one made: only bounces to mail
    /// forwarded before are lost, never new mail.
    pub fn load_or_create(data_dir: &Path) -> Result<Srs, String> {
        let path = data_dir.join(FILE);
        let read = |set_aside: bool| match record::load::<[u8; 32]>(
            disk::system(),
            &path,
            KIND,
            VERSION,
        ) {
            Err(e) if e.is_damage() && set_aside => {
                record::start_afresh(disk::system(), &path, &e);
                Ok(None)
            }
            other => other.map_err(|e| format!("cannot read {}: {e}", path.display())),
        };
        if let Ok(Some(secret)) = read(false) {
            return Ok(Srs::new(secret));
        }
        // Under the lock, so two processes starting together agree on one key.
        let _lock = lock_users(data_dir)?;
        if let Some(secret) = read(true)? {
            return Ok(Srs::new(secret));
        }
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| "no randomness for the SRS key".to_string())?;
        record::save(disk::system(), &path, KIND, VERSION, &secret)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Srs::new(secret))
    }

    /// The envelope sender to use when forwarding mail from `sender` out
    /// of `our_domain` on day `now_days`. The null sender stays null, and a
    /// sender in our own domain (or without a domain) is left as it is:
    /// its bounces come here anyway.
    pub fn forward(&self, sender: &str, our_domain: &str, now_days: u64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return sender.to_string();
        };
        if local.is_empty() || domain.is_empty() || domain.eq_ignore_ascii_case(our_domain) {
            return sender.to_string();
        }
        if let Some(rest) = srs0_rest(local) {
            let hash = self.hash(&["1", domain, rest]);
            return format!("SRS1={hash}={domain}={rest}@{our_domain}");
        }
        if let Some((_, forwarder, rest)) = split_srs1(local) {
            // The first forwarder's hash is its own to check; only ours is
            // renewed.
            let hash = self.hash(&["1", forwarder, rest]);
            return format!("SRS1={hash}={forwarder}={rest}@{our_domain}");
        }
        let timestamp = encode_timestamp(now_days);
        let hash = self.hash(&["0", &timestamp, domain, local]);
        format!("SRS0={hash}={timestamp}={domain}={local}@{our_domain}")
    }

    /// The address a bounce to `local_part@our_domain` belongs to: the
    /// original sender for SRS0, the first forwarder's SRS0 address for
    /// SRS1. `None` for anything not made with this key, or an SRS0 address
    /// older than [`MAX_AGE_DAYS`] (or from the future).
    pub fn reverse(&self, local_part: &str, now_days: u64) -> Option<String> {
        if let Some(rest) = srs0_rest(local_part) {
            let mut fields = rest[1..].splitn(4, '=');
            let (hash, timestamp, domain, local) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            let age = (now_days % TIMESTAMP_PERIOD + TIMESTAMP_PERIOD
                - decode_timestamp(timestamp)?)
                % TIMESTAMP_PERIOD;
            if age > MAX_AGE_DAYS || !self.verify(hash, &["0", timestamp, domain, local]) {
                return None;
            }
            let original = Address::new(local, domain).ok()?;
            return Some(original.to_string());
        }
        let (hash, forwarder, rest) = split_srs1(local_part)?;
        if !domain_is_valid(forwarder) || !self.verify(hash, &["1", forwarder, rest]) {
            return None;
        }
        Some(format!("SRS0{rest}@{}", forwarder.to_ascii_lowercase()))
    }

    /// Whether a local part looks like an SRS address (of any key).
    pub fn is_srs(local_part: &str) -> bool {
        srs0_rest(local_part).is_some() || split_srs1(local_part).is_some()
    }

    fn hash(&self, fields: &[&str]) -> String {
        let data = fields.join("=").to_ascii_lowercase();
        let tag = hmac::sign(&self.key, data.as_bytes());
        let mut text = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        text.truncate(HASH_LEN);
        text
    }

    fn verify(&self, hash: &str, fields: &[&str]) -> bool {
        hash.len() == HASH_LEN && hash.eq_ignore_ascii_case(&self.hash(fields))
    }
}

/// What follows `SRS0` (any case), starting with its separator (`=`, `+`
/// or `-`).
fn srs0_rest(local: &str) -> Option<&str> {
    srs_rest(local, "SRS0")
}

fn srs_rest<'a>(local: &'a str, tag: &str) -> Option<&'a str> {
    let rest = local
        .get(..tag.len())
        .filter(|p| p.eq_ignore_ascii_case(tag))
        .map(|_| &local[tag.len()..])?;
    rest.starts_with(['=', '+', '-']).then_some(rest)
}

/// `SRS1=hash=forwarder=rest` as (hash, forwarder, rest); `rest` starts
/// with the separator the first forwarder used after `SRS0`.
fn split_srs1(local: &str) -> Option<(&str, &str, &str)> {
    let rest = srs_rest(local, "SRS1")?;
    let mut fields = rest[1..].splitn(3, '=');
    let (hash, forwarder, rest) = (fields.next()?, fields.next()?, fields.next()?);
    let valid = !hash.is_empty()
        && !forwarder.is_empty()
        && rest.len() > 1
        && rest.starts_with(['=', '+', '-']);
    valid.then_some((hash, forwarder, rest))
}

fn encode_timestamp(days: u64) -> String {
    let t = (days % TIMESTAMP_PERIOD) as usize;
    [BASE32[t >> 5] as char, BASE32[t & 31] as char]
        .iter()
        .collect()
}

fn decode_timestamp(text: &str) -> Option<u64> {
    let digit = |b: u8| {
        BASE32
            .iter()
            .position(|&c| c == b.to_ascii_uppercase())
            .map(|p| p as u64)
    };
    match text.as_bytes() {
        &[hi, lo] => Some((digit(hi)? << 5) | digit(lo)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 20_500;

    fn srs() -> Srs {
        Srs::new([7; 32])
    }

    fn local(address: &str) -> &str {
        address.rsplit_once('@').unwrap().0
    }

    #[test]
    fn round_trip() {
        let srs = srs();
        let rewritten = srs.forward("alice@Example.org", "club.example", DAY);
        assert!(rewritten.starts_with("SRS0="), "{rewritten}");
        assert!(rewritten.ends_with("=Example.org=alice@club.example"));
        assert_eq!(
            srs.reverse(local(&rewritten), DAY).as_deref(),
            Some("alice@example.org")
        );
        assert!(Srs::is_srs(local(&rewritten)));
        assert!(!Srs::is_srs("alice"));
    }

    #[test]
    fn age_limit_and_wrap_around() {
        let srs = srs();
        let l = srs.forward("alice@example.org", "club.example", DAY);
        assert!(srs.reverse(local(&l), DAY + MAX_AGE_DAYS).is_some());
        assert!(srs.reverse(local(&l), DAY + MAX_AGE_DAYS + 1).is_none());
        assert!(srs.reverse(local(&l), DAY - 1).is_none());
        let l = srs.forward("alice@example.org", "club.example", 1023);
        assert!(srs.reverse(local(&l), 1024 + 5).is_some());
        assert_eq!(encode_timestamp(0), "AA");
        assert_eq!(decode_timestamp("a7"), Some(31));
    }

    #[test]
    fn tampering_and_other_keys_are_refused() {
        let srs = srs();
        let rewritten = srs.forward("alice@example.org", "club.example", DAY);
        let l = local(&rewritten);
        let hash = &l[5..9];
        let other_hash = if hash.eq_ignore_ascii_case("AAAA") {
            "BBBB"
        } else {
            "AAAA"
        };
        assert!(srs.reverse(&l.replacen(hash, other_hash, 1), DAY).is_none());
        assert!(srs
            .reverse(&l.replace("example.org", "evil.example"), DAY)
            .is_none());
        assert!(srs.reverse(&l.replace("=alice", "=mallory"), DAY).is_none());
        assert!(Srs::new([8; 32]).reverse(l, DAY).is_none());
        for garbage in [
            "",
            "alice",
            "SRS0",
            "SRS0=",
            "SRS0=abcd",
            "SRS0=abcd=AA=",
            "SRS0=ab=AA=x=y",
            "SRS0=abcd=A=x=y",
            "SRS1=",
            "SRS1=abcd=x",
            "SRS1=abcd=x=",
            "SRS1=abcd=x==",
            "SRS0=é=ÄÄ=x=y",
            "SRS1=ab=cd=ef",
        ] {
            assert!(srs.reverse(garbage, DAY).is_none(), "{garbage:?}");
        }
    }

    #[test]
    fn case_folded_addresses_still_reverse() {
        let srs = srs();
        let rewritten = srs.forward("Alice@Example.org", "club.example", DAY);
        let l = local(&rewritten);
        assert_eq!(
            srs.reverse(&l.to_lowercase(), DAY).as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(
            srs.reverse(&l.to_uppercase(), DAY).as_deref(),
            Some("ALICE@example.org")
        );
    }

    #[test]
    fn null_own_and_bare_senders_are_kept() {
        let srs = srs();
        assert_eq!(srs.forward("", "club.example", DAY), "");
        assert_eq!(
            srs.forward("bob@Club.Example", "club.example", DAY),
            "bob@Club.Example"
        );
        assert_eq!(srs.forward("postmaster", "club.example", DAY), "postmaster");
    }

    #[test]
    fn forwarding_srs_addresses_uses_srs1() {
        let first = Srs::new([1; 32]);
        let ours = srs();
        let third = Srs::new([3; 32]);
        let srs0 = first.forward("alice@example.org", "first.example", DAY);
        let srs1 = ours.forward(&srs0, "club.example", DAY);
        assert!(srs1.starts_with("SRS1="), "{srs1}");
        assert!(srs1.ends_with("@club.example"));
        assert!(srs1.contains("=first.example==")); // the first forwarder and SRS0's separator
        assert_eq!(
            ours.reverse(local(&srs1), DAY + 500).as_deref(),
            Some(srs0.as_str())
        );
        // A third hop keeps the first forwarder and re-signs.
        let again = third.forward(&srs1, "third.example", DAY);
        assert!(again.contains("=first.example=="), "{again}");
        assert_eq!(
            third.reverse(local(&again), DAY).as_deref(),
            Some(srs0.as_str())
        );
        assert!(ours.reverse(local(&again), DAY).is_none());
        // And the chain ends at the original sender.
        assert_eq!(
            first.reverse(local(&srs0), DAY).as_deref(),
            Some("alice@example.org")
        );
    }

    #[test]
    fn key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = Srs::load_or_create(dir.path()).unwrap();
        let b = Srs::load_or_create(dir.path()).unwrap();
        let rewritten = a.forward("alice@example.org", "club.example", DAY);
        assert_eq!(
            b.forward("alice@example.org", "club.example", DAY),
            rewritten
        );
        assert!(b.reverse(local(&rewritten), DAY).is_some());
        // A damaged key is set aside and a new one made: mail goes on.
        std::fs::write(dir.path().join(FILE), b"damaged").unwrap();
        let c = Srs::load_or_create(dir.path()).unwrap();
        assert_ne!(
            c.forward("alice@example.org", "club.example", DAY),
            rewritten
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("srs-key.damaged-")),
            "{names:?}"
        );
    }
}
