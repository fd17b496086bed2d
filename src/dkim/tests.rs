//! The signing and verifying cores together: RFC 6376's canonicalization
//! example, chunk-split invariance, bounds, and signatures this module
//! makes checked by its own verifier (dkimpy checks them in tests/dkim.rs).

use super::canon::header_field;
use super::message::fields;
use super::*;
use crate::limits::{MAX_DKIM_HEADER_SECTION, MAX_DKIM_SIGNATURES};
use crate::store::disk::Disk;
use std::sync::OnceLock;

/// RFC 6376 §3.4.5.
const EXAMPLE: &[u8] = b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";

fn body_hash(canon: Canon, body: &[u8], chunk: usize) -> BodyHash {
    let mut hasher = BodyHasher::new(canon);
    for piece in body.chunks(chunk.max(1)) {
        hasher.update(piece);
    }
    hasher.finish()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .try_into()
        .unwrap()
}

fn canonical_header(canon: Canon, header: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields(header) {
        header_field(canon, field.raw, &mut out);
    }
    out
}

#[test]
fn rfc6376_example_canonicalizes_as_the_rfc_shows() {
    let mut splitter = message::Splitter::new();
    let body = splitter.push(EXAMPLE);
    let header = splitter.header().unwrap();
    assert_eq!(
        canonical_header(Canon::Relaxed, header),
        b"a:X\r\nb:Y Z\r\n"
    );
    assert_eq!(
        canonical_header(Canon::Simple, header),
        b"A: X\r\nB : Y\t\r\n\tZ  \r\n"
    );
    let relaxed = body_hash(Canon::Relaxed, body, body.len());
    assert_eq!(relaxed.sha256, sha256(b" C\r\nD E\r\n"));
    assert_eq!(relaxed.canonical_len, 9);
    let simple = body_hash(Canon::Simple, body, body.len());
    assert_eq!(simple.sha256, sha256(b" C \r\nD \t E\r\n"));
}

#[test]
fn bodies_canonicalize_at_their_edges() {
    let cases: &[(&[u8], &[u8], &[u8])] = &[
        // body, simple, relaxed
        (b"", b"\r\n", b""),
        (b"\r\n", b"\r\n", b""),
        (b"\r\n\r\n\r\n", b"\r\n", b""),
        (b"x", b"x\r\n", b"x\r\n"),
        (b"x\r\n\r\n", b"x\r\n", b"x\r\n"),
        (b"\r\nx", b"\r\nx\r\n", b"\r\nx\r\n"),
        (
            b"a  \t b \r\n \r\n\t\r\n",
            b"a  \t b \r\n \r\n\t\r\n",
            b"a b\r\n",
        ),
        (b"  lead\r\n", b"  lead\r\n", b" lead\r\n"),
        (b"a\r\n\r\nb\r\n\r\n", b"a\r\n\r\nb\r\n", b"a\r\n\r\nb\r\n"),
        (
            b"bare\rcr\nlf\r",
            b"bare\rcr\nlf\r\r\n",
            b"bare\rcr\nlf\r\r\n",
        ),
        (
            b"8bit \xc3\xa9\xff\r\n",
            b"8bit \xc3\xa9\xff\r\n",
            b"8bit \xc3\xa9\xff\r\n",
        ),
        (
            b".dot\r\n..two\r\n",
            b".dot\r\n..two\r\n",
            b".dot\r\n..two\r\n",
        ),
    ];
    for (body, simple, relaxed) in cases {
        for chunk in 1..=body.len().max(1) {
            let s = body_hash(Canon::Simple, body, chunk);
            assert_eq!(s.sha256, sha256(simple), "simple {body:?} by {chunk}");
            assert_eq!(s.canonical_len, simple.len() as u64);
            let r = body_hash(Canon::Relaxed, body, chunk);
            assert_eq!(r.sha256, sha256(relaxed), "relaxed {body:?} by {chunk}");
        }
    }
}

#[test]
fn a_length_limit_hashes_only_that_many_canonical_bytes() {
    let body = b"first  line\r\nsecond\r\n\r\n";
    for limit in [0u64, 5, 12, 13, 20, 100] {
        for chunk in [1, 3, body.len()] {
            let mut hasher = BodyHasher::with_limit(Canon::Relaxed, Some(limit));
            for piece in body.chunks(chunk) {
                hasher.update(piece);
            }
            let hash = hasher.finish();
            let canonical = b"first line\r\nsecond\r\n";
            let end = (limit as usize).min(canonical.len());
            assert_eq!(hash.sha256, sha256(&canonical[..end]), "l={limit}");
            assert_eq!(hash.canonical_len, canonical.len() as u64);
        }
    }
}

#[test]
fn chunk_splits_never_change_a_long_body_hash() {
    let mut body = Vec::new();
    for i in 0..400u32 {
        body.extend_from_slice(format!("line {i}\t with  spaces  \r\n").as_bytes());
        if i % 7 == 0 {
            body.extend_from_slice(b"\r\n \r\n");
        }
    }
    body.extend_from_slice(b"\r\n\r\n");
    for canon in [Canon::Simple, Canon::Relaxed] {
        let whole = body_hash(canon, &body, body.len());
        for chunk in [1, 2, 3, 7, 255, 256, 257, 4096] {
            assert_eq!(
                body_hash(canon, &body, chunk),
                whole,
                "{canon:?} by {chunk}"
            );
        }
    }
}

/// One RSA and one Ed25519 key, made once for all tests here.
fn test_keys() -> &'static (Vec<u8>, Vec<u8>) {
    static KEYS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let disk = crate::store::memory::Memory::new();
        let data = std::path::Path::new("/data");
        keys::ensure(
            &disk,
            data,
            &["example.org".to_string()],
            Some("t"),
            std::time::UNIX_EPOCH,
        )
        .unwrap();
        let stored = keys::list(&disk, data, "example.org").unwrap();
        let rsa = disk.read(&stored[1].path).unwrap();
        let ed = disk.read(&stored[0].path).unwrap();
        (rsa, ed)
    })
}

fn signing_keys() -> Vec<SigningKey> {
    let (rsa, ed) = test_keys();
    vec![
        SigningKey::from_pkcs8(Algorithm::RsaSha256, "sr", rsa).unwrap(),
        SigningKey::from_pkcs8(Algorithm::Ed25519Sha256, "se", ed).unwrap(),
    ]
}

fn sign(message: &[u8], chunk: usize) -> Result<String, SignSkip> {
    let mut signer = Signer::new();
    for piece in message.chunks(chunk.max(1)) {
        signer.update(piece);
    }
    signer.finish("example.org", &signing_keys(), 1_700_000_000)
}

/// The published records of [`signing_keys`], as a lookup.
fn lookup(name: &str) -> KeyLookup {
    let keys = signing_keys();
    let found = keys
        .iter()
        .find(|k| key_name(&k.selector, "example.org") == name);
    match found {
        Some(key) => KeyLookup::Records(vec![key.public_record()]),
        None => KeyLookup::NotFound,
    }
}

fn verify_with(
    message: &[u8],
    chunk: usize,
    lookup: impl Fn(&str) -> KeyLookup,
    now: u64,
) -> Vec<DkimResult> {
    let mut verifier = Verifier::new();
    for piece in message.chunks(chunk.max(1)) {
        verifier.update(piece);
    }
    verifier.finish().results(lookup, now)
}

fn verify(message: &[u8]) -> Vec<DkimResult> {
    verify_with(message, 4096, lookup, 1_700_000_100)
}

fn statuses(results: &[DkimResult]) -> Vec<(Status, Option<&'static str>)> {
    results.iter().map(|r| (r.status, r.reason)).collect()
}

const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: a subject that is long enough to be\r\n folded over two lines\r\nDate: Wed, 02 Dec 2026 13:00:00 +0000\r\nMessage-ID: <1@example.org>\r\nReceived: by relay\r\n\r\nHello  Bob,\r\n.leading dot\r\n\r\n\r\n";

fn signed(message: &[u8]) -> Vec<u8> {
    let mut out = sign(message, 4096).unwrap().into_bytes();
    out.extend_from_slice(message);
    out
}

#[test]
fn signatures_verify_and_lines_stay_short() {
    let fields = sign(MESSAGE, 4096).unwrap();
    // Both algorithms are deterministic: any chunking signs alike.
    assert_eq!(fields, sign(MESSAGE, 1).unwrap());
    for line in fields.split("\r\n") {
        assert!(line.len() <= 78, "{line:?}");
    }
    assert_eq!(fields.matches("DKIM-Signature:").count(), 2);
    assert!(fields.contains("a=rsa-sha256;"));
    assert!(fields.contains("a=ed25519-sha256;"));
    assert!(fields.contains("t=1700000000;"));
    let unfolded = fields.replace("\r\n\t", "");
    assert!(
        unfolded.contains("h=from:from:subject:date:message-id:to;"),
        "{unfolded}"
    );
    let message = signed(MESSAGE);
    for chunk in [1, 5, 4096] {
        let results = verify_with(&message, chunk, lookup, 1_700_000_100);
        assert_eq!(
            statuses(&results),
            [(Status::Pass, None), (Status::Pass, None)]
        );
    }
    let results = verify(&message);
    assert_eq!(results[0].domain, "example.org");
    assert_eq!(results[0].selector, "sr");
    assert_eq!(results[1].algorithm, Some(Algorithm::Ed25519Sha256));
    assert_eq!(results[0].header_b.len(), verify::HEADER_B_CHARS);
}

#[test]
fn changes_to_signed_parts_fail_and_others_do_not() {
    let message = signed(MESSAGE);
    let text = String::from_utf8(message.clone()).unwrap();
    let body_changed = text.replace("Hello  Bob", "Hello Eve");
    let results = verify(body_changed.as_bytes());
    assert!(results
        .iter()
        .all(|r| r.reason == Some("body hash mismatch")));
    let subject_changed = text.replace("a subject", "A subject");
    let results = verify(subject_changed.as_bytes());
    assert!(results
        .iter()
        .all(|r| r.reason == Some("signature mismatch")));
    // Over-signed From: one added on the way breaks the signature.
    let from_added = text.replace("To: bob", "From: mallory@example.org\r\nTo: bob");
    assert!(verify(from_added.as_bytes())
        .iter()
        .all(|r| r.status == Status::Fail));
    // Relaxed: whitespace changes and unsigned fields do not matter.
    let reflowed = text
        .replace("Hello  Bob,", "Hello Bob, \t")
        .replace("Received: by relay", "Received: by another relay")
        .replace("To: bob", "To:   bob");
    assert!(verify(reflowed.as_bytes())
        .iter()
        .all(|r| r.status == Status::Pass));
}

#[test]
fn messages_without_from_or_with_huge_headers_are_not_signed() {
    assert_eq!(
        sign(b"Subject: x\r\n\r\nbody\r\n", 10),
        Err(SignSkip::NoFrom)
    );
    let mut huge = b"From: a@example.org\r\n".to_vec();
    while huge.len() <= MAX_DKIM_HEADER_SECTION {
        huge.extend_from_slice(b"X-Pad: 0123456789012345678901234567890123456789012345678\r\n");
    }
    huge.extend_from_slice(b"\r\nbody\r\n");
    assert_eq!(sign(&huge, 4096), Err(SignSkip::HeaderTooLarge));
    assert_eq!(
        SignSkip::HeaderTooLarge.to_string(),
        "header section too large"
    );
    let mut signer = Signer::new();
    signer.update(MESSAGE);
    assert_eq!(signer.finish("example.org", &[], 0), Err(SignSkip::NoKeys));
}

#[test]
fn a_signed_message_with_a_huge_header_section_is_neutral() {
    let mut message = signed(MESSAGE);
    let mut pad = Vec::new();
    while pad.len() <= MAX_DKIM_HEADER_SECTION {
        pad.extend_from_slice(b"X-Pad: 0123456789012345678901234567890123456789012345678\r\n");
    }
    message.splice(0..0, pad.iter().copied());
    let results = verify(&message);
    assert_eq!(
        statuses(&results),
        [(Status::Neutral, Some("header section too large"))]
    );
    // Without a signature it is simply unsigned.
    let mut unsigned = pad.clone();
    unsigned.extend_from_slice(MESSAGE);
    assert!(verify(&unsigned).is_empty());
}

#[test]
fn unsigned_messages_have_no_results_and_no_queries() {
    let mut verifier = Verifier::new();
    verifier.update(MESSAGE);
    let hashed = verifier.finish();
    assert!(hashed.unsigned());
    assert!(hashed.key_queries().is_empty());
    assert!(hashed.results(|_| KeyLookup::NotFound, 0).is_empty());
    // A name with space before its colon is still a signature.
    let mut verifier = Verifier::new();
    verifier.update(&with_signature("v=1")[..]);
    let spaced = [&b"DKIM-Signature : v=1\r\n"[..], MESSAGE].concat();
    let mut spaced_verifier = Verifier::new();
    spaced_verifier.update(&spaced);
    assert!(!verifier.finish().unsigned());
    assert!(!spaced_verifier.finish().unsigned());
}

#[test]
fn key_queries_name_each_selector_once() {
    let message = signed(MESSAGE);
    let mut verifier = Verifier::new();
    verifier.update(&message);
    let hashed = verifier.finish();
    assert_eq!(
        hashed.key_queries(),
        ["sr._domainkey.example.org", "se._domainkey.example.org"]
    );
}

/// A signature field put on top of MESSAGE, its `b=` and `bh=` made up.
fn with_signature(tags: &str) -> Vec<u8> {
    let mut message = format!("DKIM-Signature: {tags}\r\n").into_bytes();
    message.extend_from_slice(MESSAGE);
    message
}

#[test]
fn malformed_signatures_are_permerrors_with_their_reason() {
    let good = "v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA";
    let cases = [
        ("v=1; v=1", "signature syntax"),
        ("a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA", "missing v="),
        ("v=1; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA", "missing a="),
        ("v=1; a=rsa-sha256; s=sr; h=from; bh=AAAA; b=AAAA", "missing d="),
        ("v=1; a=rsa-sha256; d=example.org; h=from; bh=AAAA; b=AAAA", "missing s="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; bh=AAAA; b=AAAA", "missing h="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=from; b=AAAA", "missing bh="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA", "missing b="),
        ("v=2; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA", "unsupported version"),
        ("v=1; a=rsa-sha1; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA", "rsa-sha1 is not accepted"),
        ("v=1; a=dsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA", "unsupported algorithm"),
        ("v=1; a=rsa-sha256; c=loose; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA", "invalid c="),
        ("v=1; a=rsa-sha256; d=example..org; s=sr; h=from; bh=AAAA; b=AAAA", "invalid d="),
        ("v=1; a=rsa-sha256; d=example.org; s=s/r; h=from; bh=AAAA; b=AAAA", "invalid s="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=to:subject; bh=AAAA; b=AAAA", "h= does not include From"),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=A*; b=AAAA", "invalid bh="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=A", "invalid b="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA; i=@evil.org", "i= not within d="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA; l=-1", "invalid l="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA; l=99999999999999999999999", "invalid l="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA; q=http", "unsupported q="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA; t=x", "invalid t="),
        ("v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA; t=10; x=5", "x= before t="),
    ];
    for (tags, reason) in cases {
        let results = verify(&with_signature(tags));
        assert_eq!(
            statuses(&results),
            [(Status::PermError, Some(reason))],
            "{tags}"
        );
    }
    let results = verify(&with_signature(&format!("{good}; i=news@Mail.Example.org")));
    assert_eq!(
        results[0].identity.as_deref(),
        Some("news@Mail.Example.org")
    );
    assert_eq!(results[0].reason, Some("body hash mismatch"));
    let results = verify(&with_signature(good));
    assert_eq!(results[0].header_b, "AAAA");
}

#[test]
fn only_the_first_signatures_up_to_the_bound_are_checked() {
    let tags = "v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA";
    let mut message = Vec::new();
    for _ in 0..MAX_DKIM_SIGNATURES + 3 {
        message.extend_from_slice(format!("DKIM-Signature: {tags}\r\n").as_bytes());
    }
    message.extend_from_slice(MESSAGE);
    assert_eq!(verify(&message).len(), MAX_DKIM_SIGNATURES);
}

fn replace_record(name: &str, edit: impl Fn(String) -> String) -> KeyLookup {
    match lookup(name) {
        KeyLookup::Records(records) => KeyLookup::Records(records.into_iter().map(edit).collect()),
        other => other,
    }
}

#[test]
fn key_records_and_lookups_decide_the_result() {
    let message = signed(MESSAGE);
    let now = 1_700_000_100;
    let check =
        |lookup: &dyn Fn(&str) -> KeyLookup| statuses(&verify_with(&message, 4096, lookup, now));
    assert_eq!(
        check(&|_| KeyLookup::TempError),
        [(Status::TempError, Some("key lookup failed")); 2]
    );
    assert_eq!(
        check(&|_| KeyLookup::NotFound),
        [(Status::PermError, Some("no key record")); 2]
    );
    assert_eq!(
        check(&|_| KeyLookup::Records(vec![])),
        [(Status::PermError, Some("no key record")); 2]
    );
    let revoked = |n: &str| replace_record(n, |r| format!("{}p=", r.split("p=").next().unwrap()));
    assert_eq!(
        check(&revoked),
        [(Status::PermError, Some("key revoked")); 2]
    );
    let garbage = |_: &str| KeyLookup::Records(vec!["v=DKIM1; p".into()]);
    assert_eq!(
        check(&garbage),
        [(Status::PermError, Some("invalid key record")); 2]
    );
    let v_not_first = |n: &str| replace_record(n, |r| r.replace("v=DKIM1; k=", "k=") + "; v=DKIM1");
    assert_eq!(
        check(&v_not_first),
        [(Status::PermError, Some("invalid key record")); 2]
    );
    let swapped = |n: &str| {
        lookup(if n.starts_with("sr") {
            "se._domainkey.example.org"
        } else {
            "sr._domainkey.example.org"
        })
    };
    assert_eq!(
        check(&swapped),
        [(Status::PermError, Some("key type does not match a=")); 2]
    );
    let sha1_only = |n: &str| replace_record(n, |r| r.replace("; p=", "; h=sha1; p="));
    assert_eq!(
        check(&sha1_only),
        [(Status::PermError, Some("key does not allow sha256")); 2]
    );
    let other_service = |n: &str| replace_record(n, |r| r.replace("; p=", "; s=tlsrpt; p="));
    assert_eq!(
        check(&other_service),
        [(Status::PermError, Some("key not for email")); 2]
    );
    let testing =
        |n: &str| replace_record(n, |r| r.replace("; p=", "; t=y:s; s=email; h=sha256; p="));
    let results = verify_with(&message, 4096, testing, now);
    assert!(results
        .iter()
        .all(|r| r.status == Status::Pass && r.testing));
    // A record with a stray TXT beside it: the DKIM one counts.
    let with_other = |n: &str| match lookup(n) {
        KeyLookup::Records(mut r) => {
            r.insert(0, "google-site-verification=abc".into());
            KeyLookup::Records(r)
        }
        other => other,
    };
    assert_eq!(check(&with_other), [(Status::Pass, None); 2]);
}

#[test]
fn expired_signatures_are_permerrors() {
    let message = with_signature(
        "v=1; a=rsa-sha256; d=example.org; s=sr; h=from; bh=AAAA; b=AAAA; t=10; x=20",
    );
    let results = verify_with(&message, 4096, lookup, 21);
    assert_eq!(
        statuses(&results),
        [(Status::PermError, Some("signature expired"))]
    );
    let results = verify_with(&message, 4096, lookup, 20);
    assert_eq!(results[0].reason, Some("body hash mismatch"));
}

#[test]
fn short_rsa_keys_are_refused() {
    // A 512-bit RSA public key, published as DKIM does (SubjectPublicKeyInfo).
    let spki = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAOqvHdgG+nA2hiAI+PWlWcwWINLm2FR3kiOpBmEbYh2BekRzhiWDlFMx5HYvxy15UOa0bmjVKPf3Ftu92ZEqIwECAwEAAQ==";
    let message = signed(MESSAGE);
    let short = |n: &str| {
        if n.starts_with("sr") {
            KeyLookup::Records(vec![format!("v=DKIM1; k=rsa; p={spki}")])
        } else {
            lookup(n)
        }
    };
    let results = verify_with(&message, 4096, short, 0);
    assert_eq!(results[0].reason, Some("key too short"));
    assert_eq!(results[1].status, Status::Pass);
}

#[test]
fn a_bare_rsa_public_key_in_p_is_read_too() {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;
    let message = signed(MESSAGE);
    let bare = |n: &str| {
        replace_record(n, |record| {
            let (head, p) = record.split_once("p=").unwrap();
            let spki = BASE64.decode(p).unwrap();
            if head.contains("k=rsa") {
                // SEQUENCE, AlgorithmIdentifier, BIT STRING header: 24 bytes.
                format!("{head}p={}", BASE64.encode(&spki[24..]))
            } else {
                record.clone()
            }
        })
    };
    let results = verify_with(&message, 4096, bare, 0);
    assert_eq!(statuses(&results), [(Status::Pass, None); 2]);
    let broken = |n: &str| replace_record(n, |r| r.replace("p=MII", "p=MIJ"));
    let results = verify_with(&message, 4096, broken, 0);
    assert_eq!(results[0].reason, Some("invalid key data"));
}

/// A small deterministic generator, for the mutation test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Damaged messages and key records, fed in chunks of any size, never
/// panic the verifier.
#[test]
fn damaged_messages_and_records_are_judged_without_panics() {
    let message = signed(MESSAGE);
    let records: Vec<String> = signing_keys().iter().map(|k| k.public_record()).collect();
    let interesting = b"\r\n\t ;:=@.-/+0aAbBhHvV";
    let mut rng = XorShift(0x5eed_1234_abcd_ef01);
    for round in 0..3000 {
        let mut damaged = message.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(damaged.len());
            match rng.below(3) {
                0 => damaged[at] = interesting[rng.below(interesting.len())],
                1 => {
                    damaged.remove(at);
                }
                _ => damaged.insert(at, interesting[rng.below(interesting.len())]),
            }
        }
        let mut record = records[round % 2].clone().into_bytes();
        if round % 3 == 0 {
            let at = rng.below(record.len());
            record[at] = interesting[rng.below(interesting.len())];
        }
        let record = String::from_utf8_lossy(&record).into_owned();
        let chunk = 1 + rng.below(64);
        let results = verify_with(
            &damaged,
            chunk,
            |_| KeyLookup::Records(vec![record.clone()]),
            1_700_000_100,
        );
        assert!(results.len() <= 2);
    }
}
