//! DKIM against an implementation not written here (dkimpy, driven by
//! tests/dkim/dkimpy.py): what Postbox signs verifies there, what dkimpy
//! signs verifies here (and fails once changed); and the `dkim` verbs.

mod common;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use postbox::dkim::{keys, KeyLookup, Signer, Status, Verifier};
use postbox::store::disk::Fs;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dkim/dkimpy.py");

fn python(args: &[&str], stdin: &[u8]) -> String {
    let out = common::output_with_stdin(Command::new("python3").arg(SCRIPT).args(args), stdin);
    assert!(
        out.status.success(),
        "dkimpy.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A JSON string value of a flat object the script prints.
fn json_field(json: &str, name: &str) -> String {
    let start = json.find(&format!("\"{name}\": \"")).unwrap() + name.len() + 5;
    let end = start + json[start..].find('"').unwrap();
    json[start..end].to_string()
}

fn json_records(records: &HashMap<String, String>) -> String {
    let items: Vec<String> = records
        .iter()
        .map(|(name, value)| format!("\"{name}\": \"{value}\""))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// dkimpy's verdict on each signature of `message`.
fn dkimpy_verify(message: &[u8], records: &HashMap<String, String>) -> Vec<bool> {
    let out = python(&["verify", &json_records(records)], message);
    out.trim()
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|v| v == "true")
        .collect()
}

/// Messages with the shapes that trip canonicalization up.
fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let long_line = "x".repeat(990);
    let head = "From: Alice Example <alice@example.org>\r\nTo: Bob <bob@example.net>,\r\n\tCarol <carol@example.net>\r\nSubject: a subject folded\r\n  over   two lines\t\r\nDate: Wed, 02 Dec 2026 13:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n";
    let with = |body: &[u8]| {
        let mut m = format!("{head}\r\n").into_bytes();
        m.extend_from_slice(body);
        m
    };
    vec![
        ("plain", with(b"Hello Bob,\r\n\r\nsee you.\r\n")),
        (
            "long lines",
            with(format!("{long_line}\r\n{long_line} \t \r\n").as_bytes()),
        ),
        (
            "8-bit",
            with("Gr\u{fc}\u{df}e, \u{e9}t\u{e9} \u{1f600}\r\n\u{ff}\r\n".as_bytes()),
        ),
        ("dot-leading lines", with(b".\r\n..\r\n.hidden\r\n")),
        ("empty body", with(b"")),
        ("trailing blank lines", with(b"text\r\n\r\n\r\n \r\n\r\n")),
        ("no final CRLF", with(b"no line end")),
        ("whitespace runs", with(b"  a \t  b  \r\n\t\r\nc\t\r\n")),
        ("header only", head.as_bytes().to_vec()),
    ]
}

#[test]
fn postbox_signatures_verify_in_dkimpy() {
    let dir = tempfile::tempdir().unwrap();
    let domains = vec!["example.org".to_string()];
    let now = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
    let made = keys::ensure(&Fs, dir.path(), &domains, None, now).unwrap();
    assert_eq!(made.len(), 2);
    let signing = keys::signing_keys(&Fs, dir.path(), "example.org").unwrap();
    let records: HashMap<String, String> = keys::records(&Fs, dir.path(), "example.org")
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.value))
        .collect();
    for (name, message) in messages() {
        let mut signer = Signer::new();
        for piece in message.chunks(7) {
            signer.update(piece);
        }
        let fields = signer
            .finish("example.org", &signing, 1_796_000_000)
            .unwrap();
        let mut signed = fields.into_bytes();
        signed.extend_from_slice(&message);
        assert_eq!(dkimpy_verify(&signed, &records), [true, true], "{name}");
        // And dkimpy sees a change.
        let changed = replace(&signed, "Alice Example", "Alice Exemple");
        assert_eq!(
            dkimpy_verify(&changed, &records),
            [false, false],
            "{name} changed"
        );
    }
}

/// Postbox's verdicts on `message`, fed in `chunk`-byte pieces.
fn postbox_verify(
    message: &[u8],
    record: &str,
    chunk: usize,
) -> Vec<(Status, Option<&'static str>)> {
    let mut verifier = Verifier::new();
    for piece in message.chunks(chunk) {
        verifier.update(piece);
    }
    let hashed = verifier.finish();
    assert_eq!(hashed.key_queries(), ["sel._domainkey.example.com"]);
    let results = hashed.results(
        |_| KeyLookup::Records(vec![record.to_string()]),
        1_796_000_000,
    );
    for r in &results {
        assert_eq!(r.domain, "example.com");
        assert_eq!(r.selector, "sel");
        assert!(r.header_b.len() >= 8);
    }
    results.iter().map(|r| (r.status, r.reason)).collect()
}

fn replace(message: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(message).into_owned();
    assert!(text.contains(from), "{from:?} not in the message");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn dkimpy_signatures_verify_here_and_fail_once_changed() {
    let message = b"From: Dora <dora@example.com>\r\nTo: eve@example.org\r\nSubject: Greetings  from\r\n  dkimpy\r\nDate: Wed, 02 Dec 2026 13:00:00 +0000\r\n\r\nBody  line one\r\n.dot line\r\n8-bit: \xc3\xa9\r\n\r\n\r\n";
    let pass = [(Status::Pass, None)];
    for algorithm in ["rsa-sha256", "ed25519-sha256"] {
        for canon in [
            "relaxed/relaxed",
            "simple/simple",
            "relaxed/simple",
            "simple/relaxed",
        ] {
            for length in ["length", "nolength"] {
                let case = format!("{algorithm} {canon} {length}");
                let out = python(
                    &["sign", algorithm, canon, length, "example.com", "sel"],
                    message,
                );
                let signed = BASE64.decode(json_field(&out, "message")).unwrap();
                let record = json_field(&out, "record");
                for chunk in [1, 3, 4096] {
                    assert_eq!(
                        postbox_verify(&signed, &record, chunk),
                        pass,
                        "{case} by {chunk}"
                    );
                }
                let body = replace(&signed, "line one", "line owe");
                assert_eq!(
                    postbox_verify(&body, &record, 4096),
                    [(Status::Fail, Some("body hash mismatch"))],
                    "{case}"
                );
                let shorter = replace(&signed, "line one", "line 1");
                assert_eq!(postbox_verify(&shorter, &record, 4096)[0].0, Status::Fail);
                let header = replace(&signed, "Greetings", "Regards");
                assert_eq!(
                    postbox_verify(&header, &record, 4096),
                    [(Status::Fail, Some("signature mismatch"))],
                    "{case}"
                );
                // Text added after the signed length passes only with l=.
                let mut appended = signed.clone();
                appended.extend_from_slice(b"added on the way\r\n");
                let expected = if length == "length" {
                    pass.to_vec()
                } else {
                    vec![(Status::Fail, Some("body hash mismatch"))]
                };
                assert_eq!(postbox_verify(&appended, &record, 4096), expected, "{case}");
                // Whitespace changes pass relaxed canonicalization only.
                let spaced = replace(&signed, "Body  line", "Body line");
                let body_relaxed = canon.ends_with("/relaxed");
                assert_eq!(
                    postbox_verify(&spaced, &record, 4096)[0].0 == Status::Pass,
                    body_relaxed,
                    "{case}"
                );
            }
        }
    }
}
