//! Verifying: a message streams through a [`Verifier`], which reads its
//! signatures once the header section is complete and hashes the body for
//! each; [`Verification`] then names the key records to look up and, given
//! them and the time, judges each signature.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey};

use super::canon::{header_field, BodyHash, BodyHasher, Canon};
use super::message::{fields, select, Splitter};
use super::tags::{colon_list, value_range, without_fws, TagList};
use super::Algorithm;
use crate::limits::MAX_DKIM_SIGNATURES;

/// A signature's verdict (RFC 8601 §2.7.1 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    /// The signature or body hash does not match: the message was changed.
    Fail,
    /// It could not be checked for a reason of ours (a header section too
    /// large to keep).
    Neutral,
    /// The key could not be looked up now; a later try may succeed.
    TempError,
    /// The signature or its key is unusable (syntax, revoked, too short,
    /// expired...).
    PermError,
}

impl Status {
    /// As `Authentication-Results: ...; dkim=pass` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Neutral => "neutral",
            Status::TempError => "temperror",
            Status::PermError => "permerror",
        }
    }
}

/// The verdict on one signature, with what Authentication-Results shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimResult {
    pub status: Status,
    /// Why, when not `Pass` ("body hash mismatch", "key revoked"...).
    pub reason: Option<&'static str>,
    /// `d=` (`header.d`), lowercased; empty when unreadable.
    pub domain: String,
    /// `s=` (`header.s`).
    pub selector: String,
    /// `i=` as given, if given (`header.i`).
    pub identity: Option<String>,
    pub algorithm: Option<Algorithm>,
    /// The first [`HEADER_B_CHARS`] characters of `b=` (`header.b`, RFC
    /// 6008), telling apart signatures of one domain.
    pub header_b: String,
    /// The key record says `t=y`: the domain is testing DKIM.
    pub testing: bool,
}

/// Characters of `b=` given as `header.b` (RFC 6008 asks at least 8).
pub const HEADER_B_CHARS: usize = 12;

/// What the caller's TXT lookup of a key record name gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// The TXT records there, each one's strings joined.
    Records(Vec<String>),
    /// NXDOMAIN, or the name has no TXT record: `permerror`.
    NotFound,
    /// SERVFAIL, a timeout, no answer: `temperror`.
    TempError,
}

/// One signature as read from its field.
#[derive(Debug, Clone)]
struct Signature {
    algorithm: Algorithm,
    header_canon: Canon,
    body_canon: Canon,
    domain: String,
    selector: String,
    identity: Option<String>,
    names: Vec<String>,
    body_hash: Vec<u8>,
    signature: Vec<u8>,
    length: Option<u64>,
    expires: Option<u64>,
    /// Which header field (of `fields`) it is.
    field_index: usize,
}

/// What is known of a signature that could not be read, for the report.
#[derive(Debug, Clone)]
struct Unreadable {
    reason: &'static str,
    domain: String,
    selector: String,
    b: String,
}

struct Check {
    signature: Result<Signature, Unreadable>,
    b: String,
    body: Option<BodyHasher>,
    body_hash: Option<BodyHash>,
}

/// Verifies one message as it streams past. Feed it the whole message
/// (header section, empty line, body; CRLF line ends, after SMTP
/// dot-unstuffing) with [`Verifier::update`] in chunks of any size, then
/// [`Verifier::finish`]. Memory: the header section (at most
/// [`crate::limits::MAX_DKIM_HEADER_SECTION`]) and one body hasher per
/// signature (at most [`MAX_DKIM_SIGNATURES`]; later ones are ignored).
pub struct Verifier {
    splitter: Splitter,
    checks: Option<Vec<Check>>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::new()
    }
}

impl Verifier {
    pub fn new() -> Verifier {
        Verifier {
            splitter: Splitter::new(),
            checks: None,
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        let body = self.splitter.push(chunk);
        if self.checks.is_none() && self.splitter.in_body() {
            self.checks = Some(self.read_signatures());
        }
        for check in self.checks.iter_mut().flatten() {
            if let Some(hasher) = &mut check.body {
                hasher.update(body);
            }
        }
    }

    fn read_signatures(&self) -> Vec<Check> {
        let Some(header) = self.splitter.header() else {
            return Vec::new();
        };
        fields(header)
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name.eq_ignore_ascii_case("dkim-signature"))
            .take(MAX_DKIM_SIGNATURES)
            .map(|(index, field)| {
                let value = String::from_utf8_lossy(field.value());
                let signature = parse_signature(&value, index);
                let b = TagList::parse(&value)
                    .ok()
                    .and_then(|t| t.get("b"))
                    .map(without_fws)
                    .unwrap_or_default();
                let body = signature
                    .as_ref()
                    .ok()
                    .map(|s| BodyHasher::with_limit(s.body_canon, s.length));
                Check {
                    signature,
                    b,
                    body,
                    body_hash: None,
                }
            })
            .collect()
    }

    /// The message is complete: hashes finish; keys are looked up next.
    pub fn finish(mut self) -> Verification {
        if self.checks.is_none() {
            // A message of header fields only: its body is empty.
            self.checks = Some(self.read_signatures());
        }
        let mut checks = self.checks.take().unwrap_or_default();
        for check in &mut checks {
            check.body_hash = check.body.take().map(BodyHasher::finish);
        }
        Verification {
            header: self.splitter.header().map(<[u8]>::to_vec),
            signature_seen: self.splitter.signature_seen(),
            checks,
        }
    }
}

/// A message hashed, waiting for its keys.
pub struct Verification {
    /// `None` when the header section was too large to keep.
    header: Option<Vec<u8>>,
    signature_seen: bool,
    checks: Vec<Check>,
}

impl Verification {
    /// Whether the message had no `DKIM-Signature:` field (result `none`).
    pub fn unsigned(&self) -> bool {
        match self.header {
            Some(_) => self.checks.is_empty(),
            None => !self.signature_seen,
        }
    }

    /// The TXT names to look up (`SELECTOR._domainkey.DOMAIN`), each once.
    pub fn key_queries(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for check in &self.checks {
            if let Ok(s) = &check.signature {
                let name = key_name(&s.selector, &s.domain);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }

    /// Each signature's verdict, in the order of the fields. `lookup`
    /// answers for each name of [`Verification::key_queries`]; `now` is
    /// seconds since the epoch (for `x=`). A message with a header
    /// section too large to keep gets one `neutral` result.
    pub fn results(&self, lookup: impl Fn(&str) -> KeyLookup, now: u64) -> Vec<DkimResult> {
        let Some(header) = &self.header else {
            if self.unsigned() {
                return Vec::new();
            }
            return vec![DkimResult {
                status: Status::Neutral,
                reason: Some("header section too large"),
                domain: String::new(),
                selector: String::new(),
                identity: None,
                algorithm: None,
                header_b: String::new(),
                testing: false,
            }];
        };
        let all = fields(header);
        self.checks
            .iter()
            .map(|check| match &check.signature {
                Err(unreadable) => DkimResult {
                    status: Status::PermError,
                    reason: Some(unreadable.reason),
                    domain: unreadable.domain.clone(),
                    selector: unreadable.selector.clone(),
                    identity: None,
                    algorithm: None,
                    header_b: header_b(&unreadable.b),
                    testing: false,
                },
                Ok(signature) => {
                    let body = check
                        .body_hash
                        .expect("every readable signature has a body hash");
                    let key = lookup(&key_name(&signature.selector, &signature.domain));
                    let (status, reason, testing) = judge(signature, &all, body, key, now);
                    DkimResult {
                        status,
                        reason,
                        domain: signature.domain.clone(),
                        selector: signature.selector.clone(),
                        identity: signature.identity.clone(),
                        algorithm: Some(signature.algorithm),
                        header_b: header_b(&check.b),
                        testing,
                    }
                }
            })
            .collect()
    }
}

fn header_b(b: &str) -> String {
    b.chars().take(HEADER_B_CHARS).collect()
}

/// `SELECTOR._domainkey.DOMAIN`, where a signature's key is published.
pub fn key_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}").to_ascii_lowercase()
}

fn is_domain(text: &str) -> bool {
    crate::wire::address::domain_is_valid(text) && !text.starts_with('[')
}

fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_signature(value: &str, field_index: usize) -> Result<Signature, Unreadable> {
    let list = TagList::parse(value);
    let partial = |reason: &'static str| {
        let tags = list.as_ref().ok();
        let tag = |name| tags.and_then(|t| t.get(name)).unwrap_or("");
        Unreadable {
            reason,
            domain: tag("d").to_ascii_lowercase(),
            selector: tag("s").to_string(),
            b: without_fws(tag("b")),
        }
    };
    let tags = match &list {
        Ok(tags) => tags,
        Err(_) => return Err(partial("signature syntax")),
    };
    let required =
        |name: &str, missing: &'static str| tags.get(name).ok_or_else(|| partial(missing));
    let version = required("v", "missing v=")?;
    let algorithm = required("a", "missing a=")?;
    let b = required("b", "missing b=")?;
    let bh = required("bh", "missing bh=")?;
    let domain = required("d", "missing d=")?;
    let h = required("h", "missing h=")?;
    let selector = required("s", "missing s=")?;
    if version != "1" {
        return Err(partial("unsupported version"));
    }
    let algorithm = match algorithm {
        "rsa-sha256" => Algorithm::RsaSha256,
        "ed25519-sha256" => Algorithm::Ed25519Sha256,
        // RFC 8301: SHA-1 signatures are not valid.
        "rsa-sha1" => return Err(partial("rsa-sha1 is not accepted")),
        _ => return Err(partial("unsupported algorithm")),
    };
    let (header_canon, body_canon) = match tags.get("c") {
        None => (Canon::Simple, Canon::Simple),
        Some(c) => Canon::parse_pair(c).ok_or_else(|| partial("invalid c="))?,
    };
    let domain = domain.to_ascii_lowercase();
    if !is_domain(&domain) {
        return Err(partial("invalid d="));
    }
    if !is_domain(selector) {
        return Err(partial("invalid s="));
    }
    let names: Vec<String> = colon_list(h).map(str::to_string).collect();
    if !names.iter().any(|n| n.eq_ignore_ascii_case("from")) {
        return Err(partial("h= does not include From"));
    }
    if names.iter().any(|n| n.is_empty()) {
        return Err(partial("invalid h="));
    }
    let body_hash = BASE64
        .decode(without_fws(bh))
        .map_err(|_| partial("invalid bh="))?;
    let signature = BASE64
        .decode(without_fws(b))
        .map_err(|_| partial("invalid b="))?;
    let Optional {
        identity,
        length,
        expires,
    } = optional_tags(tags, &domain).map_err(partial)?;
    Ok(Signature {
        algorithm,
        header_canon,
        body_canon,
        domain,
        selector: selector.to_string(),
        identity,
        names,
        body_hash,
        signature,
        length,
        expires,
        field_index,
    })
}

/// The optional tags a verifier acts on.
struct Optional {
    identity: Option<String>,
    length: Option<u64>,
    expires: Option<u64>,
}

fn optional_tags(tags: &TagList, domain: &str) -> Result<Optional, &'static str> {
    let identity = tags.get("i").map(str::to_string);
    if let Some(i) = &identity {
        let within = i.rsplit_once('@').is_some_and(|(_, d)| {
            let d = d.to_ascii_lowercase();
            d == domain || d.ends_with(&format!(".{domain}"))
        });
        if !within {
            return Err("i= not within d=");
        }
    }
    let number = |name: &str, invalid: &'static str| match tags.get(name) {
        None => Ok(None),
        Some(text) => decimal(text).map(Some).ok_or(invalid),
    };
    let length = number("l", "invalid l=")?;
    if let Some(q) = tags.get("q") {
        if !colon_list(q).any(|m| m.eq_ignore_ascii_case("dns/txt")) {
            return Err("unsupported q=");
        }
    }
    let timestamp = number("t", "invalid t=")?;
    let expires = number("x", "invalid x=")?;
    if let (Some(t), Some(x)) = (timestamp, expires) {
        if x < t {
            return Err("x= before t=");
        }
    }
    Ok(Optional {
        identity,
        length,
        expires,
    })
}

/// A key record, read.
struct Key {
    algorithm: Algorithm,
    /// RSAPublicKey DER, or the raw Ed25519 key.
    public: Vec<u8>,
    testing: bool,
    strict: bool,
}

fn parse_key(record: &str) -> Result<Key, &'static str> {
    let tags = TagList::parse(record).map_err(|_| "invalid key record")?;
    if let Some(v) = tags.get("v") {
        if v != "DKIM1" || tags.first_name() != Some("v") {
            return Err("invalid key record");
        }
    }
    let algorithm = match tags.get("k").unwrap_or("rsa") {
        "rsa" => Algorithm::RsaSha256,
        "ed25519" => Algorithm::Ed25519Sha256,
        _ => return Err("unsupported key type"),
    };
    if let Some(h) = tags.get("h") {
        if !colon_list(h).any(|a| a == "sha256") {
            return Err("key does not allow sha256");
        }
    }
    if let Some(s) = tags.get("s") {
        if !colon_list(s).any(|s| s == "*" || s == "email") {
            return Err("key not for email");
        }
    }
    let flags: Vec<&str> = tags
        .get("t")
        .map(|t| colon_list(t).collect())
        .unwrap_or_default();
    let p = tags.get("p").ok_or("invalid key record")?;
    let p = without_fws(p);
    if p.is_empty() {
        return Err("key revoked");
    }
    let data = BASE64.decode(p).map_err(|_| "invalid key data")?;
    let public = match algorithm {
        Algorithm::RsaSha256 => rsa_public_key(&data).ok_or("invalid key data")?.to_vec(),
        Algorithm::Ed25519Sha256 if data.len() == 32 => data,
        Algorithm::Ed25519Sha256 => return Err("invalid key data"),
    };
    Ok(Key {
        algorithm,
        public,
        testing: flags.contains(&"y"),
        strict: flags.contains(&"s"),
    })
}

/// One DER tag-length-value: (tag, content, rest).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (first as usize, rest),
        0x81..=0x84 => {
            let count = (first & 0x7f) as usize;
            let bytes = rest.get(..count)?;
            let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
            (len, &rest[count..])
        }
        _ => return None,
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The RSAPublicKey in a SubjectPublicKeyInfo (what DKIM records carry),
/// or one given bare.
fn rsa_public_key(der: &[u8]) -> Option<&[u8]> {
    let (0x30, content, _) = tlv(der)? else {
        return None;
    };
    let (tag, algorithm, rest) = tlv(content)?;
    if tag == 0x02 {
        // Already an RSAPublicKey: SEQUENCE { INTEGER n, INTEGER e }.
        return Some(der);
    }
    if tag != 0x30 || !super::sign::RSA_ALGORITHM_ID.ends_with(algorithm) {
        return None;
    }
    let (0x03, bits, _) = tlv(rest)? else {
        return None;
    };
    match bits.split_first() {
        Some((0, key)) => Some(key),
        _ => None,
    }
}

/// The size of an RSAPublicKey's modulus, in bits.
fn rsa_bits(rsa_public_key: &[u8]) -> Option<usize> {
    let (0x30, content, _) = tlv(rsa_public_key)? else {
        return None;
    };
    let (0x02, modulus, _) = tlv(content)? else {
        return None;
    };
    let start = modulus.iter().position(|&b| b != 0)?;
    let first = modulus[start];
    Some((modulus.len() - start - 1) * 8 + (8 - first.leading_zeros() as usize))
}

/// RFC 8301: shorter RSA keys are not accepted.
const MIN_RSA_BITS: usize = 1024;

fn judge(
    signature: &Signature,
    all: &[super::message::Field],
    body: BodyHash,
    lookup: KeyLookup,
    now: u64,
) -> (Status, Option<&'static str>, bool) {
    let perm = |reason| (Status::PermError, Some(reason), false);
    if signature.expires.is_some_and(|x| x < now) {
        return perm("signature expired");
    }
    let records = match lookup {
        KeyLookup::TempError => return (Status::TempError, Some("key lookup failed"), false),
        KeyLookup::NotFound => return perm("no key record"),
        KeyLookup::Records(records) => records,
    };
    // The first record that reads as a key record is the key.
    let key = match records.iter().map(|r| parse_key(r)).reduce(|a, b| a.or(b)) {
        None => return perm("no key record"),
        Some(Err(reason)) => return perm(reason),
        Some(Ok(key)) => key,
    };
    if key.algorithm != signature.algorithm {
        return perm("key type does not match a=");
    }
    if key.strict {
        let exact = signature.identity.as_ref().is_none_or(|i| {
            i.rsplit_once('@')
                .is_some_and(|(_, d)| d.eq_ignore_ascii_case(&signature.domain))
        });
        if !exact {
            return perm("i= must equal d= (key t=s)");
        }
    }
    let testing = key.testing;
    if signature.length.is_some_and(|l| body.canonical_len < l) {
        // Cut short on the way: as changed as a body can be.
        return (Status::Fail, Some("body shorter than l="), testing);
    }
    if body.sha256[..] != signature.body_hash[..] {
        return (Status::Fail, Some("body hash mismatch"), testing);
    }
    let data = header_data(signature, all);
    let verified = match key.algorithm {
        Algorithm::RsaSha256 => {
            let Some(bits) = rsa_bits(&key.public) else {
                return (Status::PermError, Some("invalid key data"), testing);
            };
            if bits < MIN_RSA_BITS {
                return (Status::PermError, Some("key too short"), testing);
            }
            let algorithm = if bits < 2048 {
                &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
            } else {
                &signature::RSA_PKCS1_2048_8192_SHA256
            };
            UnparsedPublicKey::new(algorithm, &key.public).verify(&data, &signature.signature)
        }
        Algorithm::Ed25519Sha256 => {
            let hash = ring::digest::digest(&ring::digest::SHA256, &data);
            UnparsedPublicKey::new(&signature::ED25519, &key.public)
                .verify(hash.as_ref(), &signature.signature)
        }
    };
    match verified {
        Ok(()) => (Status::Pass, None, testing),
        Err(_) => (Status::Fail, Some("signature mismatch"), testing),
    }
}

/// What the signature covers: the fields `h=` selects, then its own field
/// with `b=` emptied and no final CRLF.
fn header_data(signature: &Signature, all: &[super::message::Field]) -> Vec<u8> {
    let names: Vec<&str> = signature.names.iter().map(String::as_str).collect();
    let mut data = Vec::new();
    for field in select(all, &names) {
        header_field(signature.header_canon, field.raw, &mut data);
    }
    let own = all[signature.field_index].raw;
    let colon = own.iter().position(|&b| b == b':').unwrap_or(0);
    let mut blanked = own.to_vec();
    if let Some(range) = value_range(&own[colon + 1..], "b") {
        blanked.drain(colon + 1 + range.start..colon + 1 + range.end);
    }
    header_field(signature.header_canon, &blanked, &mut data);
    data.truncate(data.len() - 2);
    data
}
