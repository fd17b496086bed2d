//! This server's signing keys: an RSA 2048 and an Ed25519 key per served
//! domain, made on demand, kept under `DATA/dkim/DOMAIN/` (owner-only
//! files), and rotated by adding a newer pair under new selectors.
//!
//! Each key is one file, `NNNN-SELECTOR.rsa` or `NNNN-SELECTOR.ed25519`,
//! holding its PKCS#8 DER. `NNNN` counts up with each key set made for the
//! domain: the signer uses the highest of each kind; the older ones stay,
//! so their records can stay published while mail signed with them is
//! still on its way, and are reported as removable once
//! [`DKIM_OLD_KEY_GRACE`] has passed since a newer key replaced them.
//!
//! Selectors: a base, from `[dkim] selector` or else `pb` and the year and
//! month (`pb202612`), then `r` for the RSA key and `e` for the Ed25519
//! key (`pb202612r`, `pb202612e`). A base already used for the domain gets
//! `-2`, `-3`... (`pb202612-2r`), so rotating twice in a month still makes
//! new selectors.
//!
//! Every function here reads or writes the disk and blocks: call them on
//! the blocking pool. Each takes the disk, so tests use the in-memory one.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Algorithm, SigningKey};
use crate::limits::DKIM_OLD_KEY_GRACE;
use crate::store::disk::{Disk, Kind};
use crate::store::durable::{create_dir_durable, is_leftover, replace_file};

/// The folder of all domains' keys, in the data directory.
pub const KEYS_DIR: &str = "dkim";

/// The longest `[dkim] selector` base, leaving room in the 63-octet label
/// for a `-NN` and the key kind's letter.
pub const MAX_SELECTOR_BASE: usize = 56;

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub sequence: u32,
    pub selector: String,
    pub algorithm: Algorithm,
    pub path: PathBuf,
    /// When the file was written.
    pub created: SystemTime,
}

/// A key just made, for the log or the verb's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
}

impl std::fmt::Display for Made {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "DKIM key {} for {} (selector {})",
            self.algorithm.key_type(),
            self.domain,
            self.selector
        )
    }
}

/// A TXT record to publish for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `SELECTOR._domainkey.DOMAIN`.
    pub name: String,
    /// `v=DKIM1; k=rsa; p=...`.
    pub value: String,
    pub selector: String,
    pub algorithm: Algorithm,
    /// For a key a newer one has replaced: from when its record may be
    /// removed. `None` for the keys in use.
    pub removable_after: Option<SystemTime>,
}

impl Record {
    /// The record as a zone file line: `NAME TXT "..." "..."`, the value
    /// in strings of at most 255 characters (the most one may hold).
    pub fn zone_line(&self) -> String {
        let strings: Vec<String> = self
            .value
            .as_bytes()
            .chunks(255)
            .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
            .collect();
        format!("{} TXT {}", self.name, strings.join(" "))
    }
}

/// Whether `text` may be a selector base: lowercase letters, digits and
/// inner hyphens, starting with a letter or digit.
pub fn selector_base_is_valid(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_SELECTOR_BASE
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// `pb` and the year and month of `now`: `pb202612`.
pub fn default_selector_base(now: SystemTime) -> String {
    let days = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 86_400;
    let (year, month, _) = crate::ops::clock::civil_from_days(days as i64);
    format!("pb{year}{month:02}")
}

fn domain_dir(data_dir: &Path, domain: &str) -> io::Result<PathBuf> {
    let domain = domain.to_ascii_lowercase();
    if !crate::wire::address::domain_is_valid(&domain) || domain.starts_with('[') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid domain {domain:?}"),
        ));
    }
    Ok(data_dir.join(KEYS_DIR).join(domain))
}

fn kind_suffix(algorithm: Algorithm) -> (&'static str, &'static str) {
    match algorithm {
        Algorithm::RsaSha256 => ("rsa", "r"),
        Algorithm::Ed25519Sha256 => ("ed25519", "e"),
    }
}

/// `0007-pb202612r.rsa` read back; `None` for anything else.
fn parse_name(name: &str) -> Option<(u32, String, Algorithm)> {
    let (stem, extension) = name.rsplit_once('.')?;
    let algorithm = match extension {
        "rsa" => Algorithm::RsaSha256,
        "ed25519" => Algorithm::Ed25519Sha256,
        _ => return None,
    };
    let (sequence, selector) = stem.split_once('-')?;
    if sequence.len() != 4 || !sequence.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((sequence.parse().ok()?, selector.to_string(), algorithm))
}

/// The domain's keys, oldest first (none when it has none yet).
pub fn list(disk: &dyn Disk, data_dir: &Path, domain: &str) -> io::Result<Vec<StoredKey>> {
    let dir = domain_dir(data_dir, domain)?;
    let entries = match disk.list(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let Some(name) = entry.name.to_str() else {
            continue;
        };
        if entry.kind != Kind::File || is_leftover(name) {
            continue;
        }
        let Some((sequence, selector, algorithm)) = parse_name(name) else {
            continue;
        };
        let path = dir.join(name);
        let created = disk.metadata(&path)?.modified;
        keys.push(StoredKey {
            sequence,
            selector,
            algorithm,
            path,
            created,
        });
    }
    keys.sort_by_key(|k| (k.sequence, k.algorithm.key_type()));
    Ok(keys)
}

/// The newest key of `algorithm`, the one signing uses.
fn newest(keys: &[StoredKey], algorithm: Algorithm) -> Option<&StoredKey> {
    keys.iter().rev().find(|k| k.algorithm == algorithm)
}

const KINDS: [Algorithm; 2] = [Algorithm::RsaSha256, Algorithm::Ed25519Sha256];

/// Finishes `signer` with the domain's newest keys: the header fields to
/// send ahead of the message, or why it goes unsigned. Blocking (reads
/// the keys; RSA signing takes a board's CPU a while): run it on the
/// blocking pool.
pub fn sign(
    disk: &dyn Disk,
    data_dir: &Path,
    domain: &str,
    signer: super::Signer,
    now: u64,
) -> Result<String, String> {
    let keys = signing_keys(disk, data_dir, domain)
        .map_err(|e| format!("no DKIM key for {domain}: {e}"))?;
    signer.finish(domain, &keys, now).map_err(|e| e.to_string())
}

/// The served domain that signs mail from `address`: its own, when
/// served, or the one it is a subdomain of (the host name's reports, from
/// MAILER-DAEMON@HOSTNAME, align with the club's domain that way).
pub fn signing_domain(address: &str, served: &[String]) -> Option<String> {
    let domain = address
        .rsplit_once('@')?
        .1
        .trim_end_matches('>')
        .to_ascii_lowercase();
    served
        .iter()
        .find(|d| {
            let d = d.to_ascii_lowercase();
            domain == d || domain.ends_with(&format!(".{d}"))
        })
        .map(|d| d.to_ascii_lowercase())
}

/// The keys to sign the domain's mail with: its newest of each kind.
pub fn signing_keys(disk: &dyn Disk, data_dir: &Path, domain: &str) -> io::Result<Vec<SigningKey>> {
    let keys = list(disk, data_dir, domain)?;
    KINDS
        .iter()
        .filter_map(|&algorithm| newest(&keys, algorithm))
        .map(|key| {
            let der = disk.read(&key.path)?;
            SigningKey::from_pkcs8(key.algorithm, &key.selector, &der).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", key.path.display()),
                )
            })
        })
        .collect()
}

/// A new private key, as PKCS#8 DER.
fn generate(algorithm: Algorithm) -> io::Result<Vec<u8>> {
    match algorithm {
        Algorithm::RsaSha256 => {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048)
                .map_err(|e| io::Error::other(format!("RSA key generation failed: {e}")))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| io::Error::other(format!("RSA key encoding failed: {e}")))?;
            Ok(der.as_bytes().to_vec())
        }
        Algorithm::Ed25519Sha256 => {
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .map(|der| der.as_ref().to_vec())
                .map_err(|_| io::Error::other("Ed25519 key generation failed"))
        }
    }
}

/// Makes a key of each of `kinds` for the domain, under the first set of
/// selectors from `base` that none of its keys has.
fn make(
    disk: &dyn Disk,
    data_dir: &Path,
    domain: &str,
    kinds: &[Algorithm],
    base: &str,
) -> io::Result<Vec<Made>> {
    let dir = domain_dir(data_dir, domain)?;
    let keys = list(disk, data_dir, domain)?;
    let sequence = keys.iter().map(|k| k.sequence).max().unwrap_or(0) + 1;
    if sequence > 9999 {
        return Err(io::Error::other(format!(
            "too many DKIM keys in {}",
            dir.display()
        )));
    }
    let taken = |stem: &str| {
        keys.iter().any(|k| {
            KINDS
                .iter()
                .any(|&a| k.selector == format!("{stem}{}", kind_suffix(a).1))
        })
    };
    let stem = (1..)
        .map(|n| match n {
            1 => base.to_string(),
            n => format!("{base}-{n}"),
        })
        .find(|stem| !taken(stem))
        .expect("some number is free");
    create_dir_durable(disk, &dir)?;
    let mut made = Vec::new();
    for &algorithm in kinds {
        let (extension, letter) = kind_suffix(algorithm);
        let selector = format!("{stem}{letter}");
        let der = generate(algorithm)?;
        let path = dir.join(format!("{sequence:04}-{selector}.{extension}"));
        replace_file(disk, &path, &der)?;
        made.push(Made {
            domain: domain.to_ascii_lowercase(),
            selector,
            algorithm,
        });
    }
    Ok(made)
}

/// The selector base: `[dkim] selector`, or the one of `now`'s month.
fn base_or_default(base: Option<&str>, now: SystemTime) -> String {
    base.map_or_else(|| default_selector_base(now), str::to_string)
}

/// At server start: each domain without a key of each kind gets one.
/// Returns what was made, for the log (empty when nothing was missing).
pub fn ensure(
    disk: &dyn Disk,
    data_dir: &Path,
    domains: &[String],
    base: Option<&str>,
    now: SystemTime,
) -> io::Result<Vec<Made>> {
    let base = base_or_default(base, now);
    let mut made = Vec::new();
    for domain in domains {
        let keys = list(disk, data_dir, domain)?;
        let missing: Vec<Algorithm> = KINDS
            .into_iter()
            .filter(|&a| newest(&keys, a).is_none())
            .collect();
        if !missing.is_empty() {
            made.extend(make(disk, data_dir, domain, &missing, &base)?);
        }
    }
    Ok(made)
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub made: Vec<Made>,
    /// The records of the keys replaced, to remove from DNS after
    /// `removable_after`.
    pub retired: Vec<Record>,
    pub removable_after: SystemTime,
}

/// Makes a new key pair for the domain under new selectors; signing uses
/// it from now on. The old keys stay (their records should stay published
/// for [`DKIM_OLD_KEY_GRACE`]).
pub fn rotate(
    disk: &dyn Disk,
    data_dir: &Path,
    domain: &str,
    base: Option<&str>,
    now: SystemTime,
) -> io::Result<Rotation> {
    let before = list(disk, data_dir, domain)?;
    let replaced: Vec<&StoredKey> = KINDS.iter().filter_map(|&a| newest(&before, a)).collect();
    let made = make(disk, data_dir, domain, &KINDS, &base_or_default(base, now))?;
    let removable_after = now + DKIM_OLD_KEY_GRACE;
    let mut retired = Vec::new();
    for key in replaced {
        let mut record = record(disk, domain, key)?;
        record.removable_after = Some(removable_after);
        retired.push(record);
    }
    Ok(Rotation {
        made,
        retired,
        removable_after,
    })
}

fn record(disk: &dyn Disk, domain: &str, key: &StoredKey) -> io::Result<Record> {
    let der = disk.read(&key.path)?;
    let signing = SigningKey::from_pkcs8(key.algorithm, &key.selector, &der).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", key.path.display()),
        )
    })?;
    Ok(Record {
        name: super::key_name(&key.selector, domain),
        value: signing.public_record(),
        selector: key.selector.clone(),
        algorithm: key.algorithm,
        removable_after: None,
    })
}

/// The records to publish for each of the domain's keys, oldest first;
/// each replaced key's says from when it may be removed.
pub fn records(disk: &dyn Disk, data_dir: &Path, domain: &str) -> io::Result<Vec<Record>> {
    let keys = list(disk, data_dir, domain)?;
    keys.iter()
        .map(|key| {
            let mut record = record(disk, domain, key)?;
            // Replaced when the next key of its kind was made.
            record.removable_after = keys
                .iter()
                .find(|k| k.algorithm == key.algorithm && k.sequence > key.sequence)
                .map(|newer| newer.created + DKIM_OLD_KEY_GRACE);
            Ok(record)
        })
        .collect()
}

/// A date as `2026-12-09`, for the verbs' answers.
pub fn date(time: SystemTime) -> String {
    let days = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        / 86_400;
    let (year, month, day) = crate::ops::clock::civil_from_days(days as i64);
    format!("{year}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_is_signed_for_the_served_domain_it_is_from() {
        let served = ["club.example".to_string(), "Other.Example".to_string()];
        let signing = |a: &str| signing_domain(a, &served);
        assert_eq!(
            signing("alice@club.example").as_deref(),
            Some("club.example")
        );
        assert_eq!(
            signing("Bob@OTHER.example").as_deref(),
            Some("other.example")
        );
        assert_eq!(
            signing("MAILER-DAEMON@mx.club.example").as_deref(),
            Some("club.example")
        );
        assert_eq!(signing("x@notclub.example"), None);
        assert_eq!(signing("x@example"), None);
        assert_eq!(signing("no-domain"), None);
    }
    use crate::store::memory::Memory;

    const DATA: &str = "/data";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2026-12-02.
    const DEC_2026: u64 = 1_796_200_000;

    fn selectors(disk: &Memory, domain: &str) -> Vec<String> {
        list(disk, Path::new(DATA), domain)
            .unwrap()
            .into_iter()
            .map(|k| k.selector)
            .collect()
    }

    #[test]
    fn ensure_makes_one_key_of_each_kind_once() {
        let disk = Memory::new();
        let data = Path::new(DATA);
        let domains = ["example.org".to_string(), "Club.Example".to_string()];
        let made = ensure(&disk, data, &domains, None, at(DEC_2026)).unwrap();
        assert_eq!(made.len(), 4);
        assert_eq!(
            made[0].to_string(),
            "DKIM key rsa for example.org (selector pb202612r)"
        );
        assert_eq!(made[3].domain, "club.example");
        assert_eq!(selectors(&disk, "example.org"), ["pb202612e", "pb202612r"]);
        assert!(ensure(&disk, data, &domains, None, at(DEC_2026))
            .unwrap()
            .is_empty());
        let keys = signing_keys(&disk, data, "example.org").unwrap();
        let kinds: Vec<Algorithm> = keys.iter().map(|k| k.algorithm()).collect();
        assert_eq!(kinds, [Algorithm::RsaSha256, Algorithm::Ed25519Sha256]);
        assert!(signing_keys(&disk, data, "other.example")
            .unwrap()
            .is_empty());
        assert!(ensure(&disk, data, &["../x".to_string()], None, at(0)).is_err());
    }

    #[test]
    fn rotations_get_new_selectors_even_within_a_month() {
        let disk = Memory::new();
        let data = Path::new(DATA);
        let domain = "example.org";
        ensure(
            &disk,
            data,
            &[domain.to_string()],
            Some("mail"),
            at(DEC_2026),
        )
        .unwrap();
        let first = rotate(&disk, data, domain, Some("mail"), at(DEC_2026)).unwrap();
        let made: Vec<&str> = first.made.iter().map(|m| m.selector.as_str()).collect();
        assert_eq!(made, ["mail-2r", "mail-2e"]);
        let retired: Vec<&str> = first.retired.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            retired,
            [
                "mailr._domainkey.example.org",
                "maile._domainkey.example.org"
            ]
        );
        assert_eq!(first.removable_after, at(DEC_2026) + DKIM_OLD_KEY_GRACE);
        let second = rotate(&disk, data, domain, Some("mail"), at(DEC_2026)).unwrap();
        assert_eq!(second.made[0].selector, "mail-3r");
        // A new month's default base starts afresh.
        let third = rotate(&disk, data, domain, None, at(DEC_2026 + 40 * 86_400)).unwrap();
        assert_eq!(third.made[1].selector, "pb202701e");
        let keys = signing_keys(&disk, data, domain).unwrap();
        let in_use: Vec<&str> = keys.iter().map(|k| k.selector.as_str()).collect();
        assert_eq!(in_use, ["pb202701r", "pb202701e"]);
        let records = records(&disk, data, domain).unwrap();
        assert_eq!(records.len(), 8);
        let current: Vec<&str> = records
            .iter()
            .filter(|r| r.removable_after.is_none())
            .map(|r| r.selector.as_str())
            .collect();
        assert_eq!(current, ["pb202701e", "pb202701r"]);
    }

    #[test]
    fn zone_lines_split_long_values_into_strings() {
        let record = Record {
            name: "s._domainkey.example.org".into(),
            value: "x".repeat(600),
            selector: "s".into(),
            algorithm: Algorithm::RsaSha256,
            removable_after: None,
        };
        let line = record.zone_line();
        let strings: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        assert_eq!(
            strings.iter().map(|s| s.len()).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        assert!(line.starts_with("s._domainkey.example.org TXT \""));
    }

    #[test]
    fn a_power_cut_while_making_keys_leaves_only_whole_ones() {
        let data = Path::new(DATA);
        let domains = ["example.org".to_string()];
        for changes in 0.. {
            let disk = Memory::new();
            disk.cut_power_after(changes);
            let done = ensure(&disk, data, &domains, None, at(DEC_2026)).is_ok();
            disk.crash();
            // Whatever survived is a usable key...
            assert!(
                signing_keys(&disk, data, "example.org").is_ok(),
                "after {changes}"
            );
            // ...and the next start makes what is missing.
            ensure(&disk, data, &domains, None, at(DEC_2026)).unwrap();
            assert_eq!(signing_keys(&disk, data, "example.org").unwrap().len(), 2);
            if done {
                break;
            }
        }
    }

    #[test]
    fn selector_bases() {
        assert_eq!(default_selector_base(at(DEC_2026)), "pb202612");
        assert!(selector_base_is_valid("pb202612"));
        assert!(selector_base_is_valid("mail-1"));
        for bad in ["", "-a", "a-", "A", "a.b", "a_b"] {
            assert!(!selector_base_is_valid(bad), "{bad}");
        }
        assert_eq!(date(at(DEC_2026)), "2026-12-02");
    }
}
