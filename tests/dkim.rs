//! DKIM against an implementation not written here (dkimpy, driven by
//! tests/dkim/dkimpy.py): what Postbox signs verifies there, what dkimpy
//! signs verifies here (and fails once changed); and the `dkim` verbs.

mod common;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use common::postbox;
use postbox::dkim::{self, keys, KeyLookup, Signer, Status, Verifier};
use postbox::store::disk::Fs;
use std::collections::HashMap;
use std::path::Path;
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

fn data_arg(dir: &Path) -> Vec<String> {
    vec!["--data".into(), dir.to_str().unwrap().into()]
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    let data = data_arg(dir);
    all.extend(data.iter().map(String::as_str));
    all.extend(["--domain", "club.example"]);
    postbox(&all, "")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The TXT value of a `dkim show` line: its strings joined.
fn txt_value(line: &str) -> String {
    let strings = line.split_once(" TXT ").unwrap().1;
    strings
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect()
}

#[test]
fn dkim_show_and_rotate_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();

    // Keys are made on first show, one of each kind per served domain.
    let out = run(&data, &["dkim", "show"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let lines: Vec<&str> = shown.lines().filter(|l| l.contains(" TXT ")).collect();
    assert_eq!(lines.len(), 4, "{shown}");
    for domain in ["localhost", "club.example"] {
        for kind in ["rsa", "ed25519"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l
                        .contains(&format!("._domainkey.{domain} TXT \"v=DKIM1; k={kind}; p="))),
                "{shown}"
            );
        }
    }
    for line in &lines {
        for string in line.split('"').skip(1).step_by(2) {
            assert!(string.len() <= 255);
        }
    }
    let rsa_line = lines
        .iter()
        .find(|l| l.contains("club.example") && l.contains("k=rsa"))
        .unwrap();
    assert!(
        rsa_line.matches('"').count() >= 4,
        "a 2048-bit key needs two strings: {rsa_line}"
    );

    // Owner-only key files.
    use std::os::unix::fs::PermissionsExt;
    let key_dir = data.join("dkim/club.example");
    let files: Vec<_> = std::fs::read_dir(&key_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2);
    for file in &files {
        assert_eq!(
            std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // A second show makes nothing new; one domain shows only its records.
    let again = run(&data, &["dkim", "show", "club.example"]);
    assert!(again.status.success());
    let again = text(&again.stdout);
    let club: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("club.example"))
        .collect();
    let again_lines: Vec<&str> = again.lines().filter(|l| l.contains(" TXT ")).collect();
    assert_eq!(again_lines, club);

    // The record shown verifies what the stored key signs, in dkimpy.
    let signing = keys::signing_keys(&Fs, &data, "club.example").unwrap();
    let message = b"From: a@club.example\r\nSubject: hi\r\n\r\nbody\r\n";
    let mut signer = Signer::new();
    signer.update(message);
    let mut signed = signer
        .finish("club.example", &signing, 1_796_000_000)
        .unwrap()
        .into_bytes();
    signed.extend_from_slice(message);
    let records: HashMap<String, String> = club
        .iter()
        .map(|l| (l.split(' ').next().unwrap().to_string(), txt_value(l)))
        .collect();
    assert_eq!(dkimpy_verify(&signed, &records), [true, true]);

    // Rotation: new selectors, old records named for removal later.
    let out = run(&data, &["dkim", "rotate", "club.example"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rotated = text(&out.stdout);
    for old in &club {
        let name = old.split(' ').next().unwrap();
        assert!(rotated.contains(name), "{rotated}");
    }
    assert!(rotated.contains("may be removed"), "{rotated}");
    let out = run(&data, &["dkim", "rotate", "club.example"]);
    assert!(out.status.success());
    let show = text(&run(&data, &["dkim", "show", "club.example"]).stdout);
    let names: Vec<&str> = show
        .lines()
        .filter(|l| l.contains(" TXT "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names.len(), 6, "{show}");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        6,
        "selectors are new on each rotation: {show}"
    );
    let newest = keys::signing_keys(&Fs, &data, "club.example").unwrap();
    assert!(newest
        .iter()
        .all(|k| names[4..].contains(&dkim::key_name(&k.selector, "club.example").as_str())));

    // Mistakes name the argument; usage errors exit 2.
    let out = run(&data, &["dkim", "show", "nowhere.example"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nowhere.example"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&data, &["dkim", "rotate", "nowhere.example"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nowhere.example"));
    let out = run(&data, &["dkim", "rotate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&dir.path().join("missing"), &["dkim", "show"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn rsa_keys_of_1024_bits_still_verify_and_shorter_ones_do_not() {
    let message = b"From: a@example.com\r\nSubject: old key\r\n\r\nbody\r\n";
    let out = python(
        &[
            "sign",
            "rsa-sha256:1024",
            "relaxed/relaxed",
            "nolength",
            "example.com",
            "sel",
        ],
        message,
    );
    let signed = BASE64.decode(json_field(&out, "message")).unwrap();
    let record = json_field(&out, "record");
    assert_eq!(
        postbox_verify(&signed, &record, 4096),
        [(Status::Pass, None)]
    );
    let out = python(
        &[
            "sign",
            "rsa-sha256:768",
            "relaxed/relaxed",
            "nolength",
            "example.com",
            "sel",
        ],
        message,
    );
    let signed = BASE64.decode(json_field(&out, "message")).unwrap();
    let record = json_field(&out, "record");
    assert_eq!(
        postbox_verify(&signed, &record, 4096),
        [(Status::PermError, Some("key too short"))]
    );
}

#[test]
fn the_console_has_the_dkim_verbs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = postbox(
        &["console", "--data", data.to_str().unwrap()],
        "help\ndkim show localhost\ndkim rotate elsewhere.example\nquit\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("dkim show [DOMAIN]"), "{shown}");
    assert!(shown.contains("dkim rotate DOMAIN"), "{shown}");
    assert!(
        shown.contains("._domainkey.localhost TXT \"v=DKIM1; k=ed25519; p="),
        "{shown}"
    );
    assert!(
        shown.contains("elsewhere.example is not a served domain"),
        "{shown}"
    );
}
