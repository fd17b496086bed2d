//! Mail authentication end to end: two Postbox instances on loopback, A
//! (a.test) and B (b.test), and a DNS responder of the test's own
//! (tests/common/dns_responder.rs) that both ask, publishing the MX hosts,
//! a.test's SPF and DMARC (p=reject) records and A's DKIM keys as
//! `postbox dkim show` prints them. A signs its members' mail; B checks
//! the mail of strangers on its SMTP listener (SPF, DKIM, DMARC), says
//! what it found in one Authentication-Results field, drops such fields
//! that claim its name, refuses what DMARC says to reject and defers when
//! DNS does not answer. B's fields are also read by Python's `authres`,
//! and A's signatures verified by dkimpy (tests/dmarc/authres_read.py,
//! tests/dkim/dkimpy.py; scripts/install-test-deps installs both).

mod common;
use common::dns_responder::{self, Zone};
use common::*;
use postbox::limits::{DNS_QUERY_TIMEOUT, SPF_TIMEOUT};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const A_HOST: &str = "mx.a.test";
const B_HOST: &str = "mx.b.test";
/// A's and B's address, and the source of A's queue's connections.
const LOOPBACK: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// A stranger's server: another loopback address, which a.test's SPF
/// record does not name.
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const WAIT: Duration = Duration::from_secs(30);

/// The responder, B, and A when a test needs it.
struct World {
    zone: Arc<Mutex<Zone>>,
    /// a.test's DKIM records as published: (name, value).
    dkim_records: Vec<(String, String)>,
    a: Option<Server>,
    b: Server,
    _dirs: Vec<tempfile::TempDir>,
}

impl World {
    fn a(&self) -> &Server {
        self.a.as_ref().unwrap()
    }

    /// Both servers' logs, for a failure's message.
    fn logs(&self) -> String {
        let a = self.a.as_ref().map(Server::log).unwrap_or_default();
        format!("--- A:\n{a}--- B:\n{}", self.b.log())
    }
}

fn publish_base_zone(zone: &mut Zone) {
    zone.add_mx("a.test", 10, A_HOST);
    zone.add_mx("b.test", 10, B_HOST);
    zone.add_a(A_HOST, LOOPBACK);
    zone.add_a(B_HOST, LOOPBACK);
    zone.add_txt("a.test", "v=spf1 ip4:127.0.0.1 -all");
    zone.add_txt("_dmarc.a.test", "v=DMARC1; p=reject");
    // A domain that quarantines what fails.
    zone.add_mx("q.test", 10, A_HOST);
    zone.add_txt("q.test", "v=spf1 ip4:127.0.0.1 -all");
    zone.add_txt("_dmarc.q.test", "v=DMARC1; p=quarantine");
    // The stranger's own domain: it exists, publishes no SPF or DMARC.
    zone.add_mx("stranger.test", 10, "mx.stranger.test");
    zone.add_a("mx.stranger.test", STRANGER);
}

/// Starts the responder and B, and A (whose queue hands b.test's mail to
/// B) with its DKIM keys published when `with_a`.
fn world(with_a: bool) -> World {
    let (dns, zone) = dns_responder::start();
    publish_base_zone(&mut zone.lock().unwrap());
    let resolver = format!("dns_resolver = \"{dns}\"\n");
    let (b_dir, b_data, b_config) = prepare("b.test", &["carol"], &resolver);
    let b = start(&b_data, &b_config, B_HOST, &[]);
    let mut world = World {
        zone,
        dkim_records: Vec::new(),
        a: None,
        b,
        _dirs: vec![b_dir],
    };
    if with_a {
        let queue = format!(
            "{resolver}[queue]\nsmtp_port = {}\nretry_first = 1\n",
            world.b.smtp.port()
        );
        let (a_dir, a_data, a_config) = prepare("a.test", &["alice"], &queue);
        let a = start(&a_data, &a_config, A_HOST, &[]);
        world.dkim_records = dkim_records(&a_data, &a_config, "a.test");
        let mut zone = world.zone.lock().unwrap();
        for (name, value) in &world.dkim_records {
            zone.add_txt(name, value);
        }
        drop(zone);
        world.a = Some(a);
        world._dirs.push(a_dir);
    }
    world
}

/// The DKIM records `postbox dkim show DOMAIN` prints for the keys the
/// server made at start: (name, value) of each `..._domainkey...` line,
/// the value the concatenation of its quoted strings.
fn dkim_records(data: &Path, config: &Path, domain: &str) -> Vec<(String, String)> {
    let out = postbox(
        &[
            "dkim",
            "show",
            domain,
            "--data",
            data.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        "",
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dkim show: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut records = Vec::new();
    for line in text.lines() {
        let Some(name) = line
            .split_whitespace()
            .find(|word| word.contains("._domainkey."))
        else {
            continue;
        };
        let value: String = line.split('"').skip(1).step_by(2).collect();
        if value.starts_with("v=DKIM1") {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            records.push((name, value));
        }
    }
    assert!(
        records.len() >= 2 && records.iter().any(|(_, v)| v.contains("k=ed25519")),
        "no RSA and Ed25519 records for {domain} in:\n{text}"
    );
    records
}

/// The header fields of `message`, each as it stands (folded), without
/// its final CRLF.
fn header_fields(message: &str) -> Vec<String> {
    let header = message.split("\r\n\r\n").next().unwrap();
    let mut fields: Vec<String> = Vec::new();
    for line in header.split("\r\n") {
        match (line.starts_with([' ', '\t']), fields.last_mut()) {
            (true, Some(field)) => {
                field.push_str("\r\n");
                field.push_str(line);
            }
            _ => fields.push(line.to_string()),
        }
    }
    fields
}

fn is_field(field: &str, name: &str) -> bool {
    field
        .split_once(':')
        .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
}

fn unfold(text: &str) -> String {
    text.replace("\r\n", "")
}

/// One result of an Authentication-Results field: `method=result` and
/// its properties (`ptype.property`, value), values unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    method: String,
    result: String,
    props: Vec<(String, String)>,
}

impl Clause {
    fn prop(&self, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct AuthResults {
    id: String,
    clauses: Vec<Clause>,
}

impl AuthResults {
    fn of(&self, method: &str) -> Vec<&Clause> {
        self.clauses.iter().filter(|c| c.method == method).collect()
    }

    /// The one result of `method`.
    fn one(&self, method: &str) -> &Clause {
        let all = self.of(method);
        assert_eq!(all.len(), 1, "one {method} result in {self:?}");
        all[0]
    }
}

/// Words of `text` (an unfolded field value): comments dropped, quoted
/// strings kept whole and unquoted, `;` a word of its own.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = text.chars();
    let mut depth = 0;
    let end_word = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '"' => {
                while let Some(q) = chars.next() {
                    match q {
                        '\\' => word.extend(chars.next()),
                        '"' => break,
                        q => word.push(q),
                    }
                }
            }
            ';' => {
                end_word(&mut word, &mut out);
                out.push(";".into());
            }
            c if c.is_whitespace() => end_word(&mut word, &mut out),
            c => word.push(c),
        }
    }
    end_word(&mut word, &mut out);
    out
}

/// Reads an Authentication-Results field (RFC 8601 §2.2), leniently: the
/// authserv-id, then each `;`-separated result.
fn parse_auth_results(field: &str) -> AuthResults {
    let value = unfold(field).split_once(':').unwrap().1.to_string();
    let words = words(&value);
    let mut parts = words.split(|w| w == ";");
    let id = parts.next().unwrap().first().cloned().unwrap_or_default();
    let mut clauses = Vec::new();
    // `none` alone says nothing was checked (§2.2).
    for part in parts.filter(|p| !p.is_empty() && p[..] != ["none"]) {
        let (method, result) = part[0].split_once('=').unwrap_or((&part[0], ""));
        let method = method.split('/').next().unwrap().to_ascii_lowercase();
        let mut props = Vec::new();
        for word in &part[1..] {
            let (name, value) = word.split_once('=').unwrap_or((word, ""));
            props.push((name.to_ascii_lowercase(), value.to_string()));
        }
        clauses.push(Clause {
            method,
            result: result.to_ascii_lowercase(),
            props,
        });
    }
    AuthResults { id, clauses }
}

/// authres's reading of `field` must be ours: the same authserv-id, and
/// the same results with the same properties.
fn check_with_authres(field: &str, ours: &AuthResults) {
    let out = python_script("tests/dmarc/authres_read.py", &[], field.as_bytes());
    assert!(!out.starts_with("error"), "authres: {out}\nfield: {field}");
    let mut expected = vec![format!("id {}", ours.id)];
    for clause in &ours.clauses {
        expected.push(format!("result {}={}", clause.method, clause.result));
        for (name, value) in &clause.props {
            if name != "reason" {
                expected.push(format!("prop {name}={value}"));
            }
        }
    }
    let read: Vec<String> = out
        .lines()
        .filter(|l| *l != "end" && !l.starts_with("reason "))
        .map(|l| l.to_ascii_lowercase())
        .collect();
    let expected: Vec<String> = expected.iter().map(|l| l.to_ascii_lowercase()).collect();
    assert_eq!(read, expected, "authres and this test read {field:?} apart");
}

/// The Authentication-Results field B added to a stored message: the one
/// field with B's name, which must come right after B's own trace fields
/// (its Return-Path and Received; above them only the spam tag's
/// `X-Spam:`, which goes first), read by this test and by authres.
fn b_results(message: &str) -> AuthResults {
    let fields = header_fields(message);
    let ours: Vec<usize> = (0..fields.len())
        .filter(|&i| {
            is_field(&fields[i], "Authentication-Results")
                && parse_auth_results(&fields[i])
                    .id
                    .eq_ignore_ascii_case(B_HOST)
        })
        .collect();
    assert_eq!(ours.len(), 1, "one field of {B_HOST}:\n{message}");
    let at = ours[0];
    let trace = &fields[..at];
    assert!(
        trace.iter().all(|f| ["Return-Path", "Received", "X-Spam"]
            .iter()
            .any(|name| is_field(f, name)))
            && trace
                .iter()
                .any(|f| unfold(f).contains(&format!("by {B_HOST} "))),
        "B's field is not right after B's trace fields:\n{message}"
    );
    let results = parse_auth_results(&fields[at]);
    check_with_authres(&fields[at], &results);
    results
}

/// The fields B put on top of a stored message: those up to and with its
/// Authentication-Results.
fn without_b_fields(message: &str) -> String {
    let fields = header_fields(message);
    let at = fields
        .iter()
        .position(|f| is_field(f, "Authentication-Results") && parse_auth_results(f).id == B_HOST)
        .unwrap();
    let (_, body) = message.split_once("\r\n\r\n").unwrap();
    format!("{}\r\n\r\n{body}", fields[at + 1..].join("\r\n"))
}

/// dkimpy's verdict on each DKIM-Signature of `message`, in order.
fn dkimpy_verifies(message: &str, records: &[(String, String)]) -> Vec<bool> {
    let json: Vec<String> = records
        .iter()
        .map(|(name, value)| format!("\"{name}\": \"{value}\""))
        .collect();
    let records = format!("{{{}}}", json.join(", "));
    let out = python_script(
        "tests/dkim/dkimpy.py",
        &["verify", &records],
        message.as_bytes(),
    );
    out.trim()
        .trim_matches(['[', ']'])
        .split(',')
        .map(|v| v.trim() == "true")
        .collect()
}

/// The tags of a DKIM-Signature field: (name, value without spaces).
fn signature_tags(field: &str) -> Vec<(String, String)> {
    let value = unfold(field).split_once(':').unwrap().1.to_string();
    value
        .split(';')
        .filter_map(|tag| tag.split_once('='))
        .map(|(n, v)| (n.trim().to_string(), v.split_whitespace().collect()))
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> &'a str {
    tags.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// How one SMTP transaction with a server went.
struct Sent {
    /// The reply to the final dot.
    reply: String,
    /// How long that reply took.
    took: Duration,
    /// The client's address, which names the session in the server's log.
    client: SocketAddr,
}

/// One transaction as another mail server would make it, from `source`:
/// EHLO `helo`, one recipient, `message` (CRLF lines, dot-stuffed here).
/// Every reply before the final dot must be positive.
fn relay(
    server: SocketAddr,
    source: Ipv4Addr,
    helo: &str,
    mail_from: &str,
    rcpt: &str,
    message: &str,
) -> Sent {
    let mut c = Client::connect_from(server, source);
    // Long enough for every DNS time limit of the server.
    c.stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let client = c.local_addr();
    for (command, want) in [
        (None, "220"),
        (Some(format!("EHLO {helo}")), "250"),
        (Some(format!("MAIL FROM:<{mail_from}>")), "250"),
        (Some(format!("RCPT TO:<{rcpt}>")), "250"),
        (Some("DATA".into()), "354"),
    ] {
        let reply = match &command {
            Some(line) => c.ask(line),
            None => c.reply(),
        };
        assert!(reply.starts_with(want), "{command:?}: {reply}");
    }
    let mut data = String::new();
    for line in message.trim_end_matches("\r\n").split("\r\n") {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    c.send(data.as_bytes());
    let started = Instant::now();
    c.send(b".\r\n");
    let reply = c.reply();
    let took = started.elapsed();
    c.ask("QUIT");
    Sent {
        reply,
        took,
        client,
    }
}

/// A stranger's server sends `message` to carol at B.
fn stranger_sends(w: &World, mail_from: &str, message: &str) -> Sent {
    relay(
        w.b.smtp,
        STRANGER,
        "mx.stranger.test",
        mail_from,
        "carol@b.test",
        message,
    )
}

/// alice's message submitted at A, as B stored it.
fn delivered_from_a(w: &World, subject: &str) -> String {
    let reply = submit(w.a(), "alice@a.test", &["carol@b.test"], subject);
    assert!(reply.starts_with("250"), "{reply}");
    let got = wait_for_mail(&w.b.data, "carol@b.test", 1, WAIT, &|| w.logs());
    got[0].clone()
}

#[test]
fn a_members_message_is_signed_at_a_and_passes_spf_dkim_and_dmarc_at_b() {
    let w = world(true);
    let message = delivered_from_a(&w, "signed at A");
    assert!(message.contains("Subject: signed at A"), "{message}");

    // Signed by A for the From: domain, with both kinds of key.
    let selectors: Vec<&str> = w
        .dkim_records
        .iter()
        .map(|(name, _)| name.split("._domainkey.").next().unwrap())
        .collect();
    let signatures: Vec<Vec<(String, String)>> = header_fields(&message)
        .iter()
        .filter(|f| is_field(f, "DKIM-Signature"))
        .map(|f| signature_tags(f))
        .collect();
    let mut algorithms: Vec<&str> = signatures.iter().map(|s| tag(s, "a")).collect();
    algorithms.sort();
    assert_eq!(algorithms, ["ed25519-sha256", "rsa-sha256"], "{message}");
    for signature in &signatures {
        assert_eq!(tag(signature, "d"), "a.test", "{message}");
        assert!(selectors.contains(&tag(signature, "s")), "{message}");
    }
    assert_eq!(
        dkimpy_verifies(&message, &w.dkim_records),
        [true, true],
        "dkimpy does not verify A's signatures:\n{message}"
    );

    let results = b_results(&message);
    let spf = results.one("spf");
    assert_eq!(spf.result, "pass", "{results:?}");
    let mail_from = spf.prop("smtp.mailfrom").unwrap_or_default();
    assert!(
        mail_from == "alice@a.test" || mail_from == "a.test",
        "{results:?}"
    );
    let dkim = results.of("dkim");
    assert_eq!(dkim.len(), 2, "a result per signature: {results:?}");
    for clause in dkim {
        assert_eq!(clause.result, "pass", "{results:?}");
        assert_eq!(clause.prop("header.d"), Some("a.test"), "{results:?}");
        let selector = clause.prop("header.s").unwrap_or_default();
        let b = clause.prop("header.b").unwrap_or_default();
        assert!(
            b.len() >= 8
                && signatures
                    .iter()
                    .any(|s| tag(s, "s") == selector && tag(s, "b").starts_with(b)),
            "header.s and header.b name no signature: {results:?}"
        );
    }
    let dmarc = results.one("dmarc");
    assert_eq!(dmarc.result, "pass", "{results:?}");
    assert_eq!(dmarc.prop("header.from"), Some("a.test"), "{results:?}");

    // Every question went to the responder, among them the ones of each check.
    let asked = w.zone.lock().unwrap().asked.clone();
    for (name, kind) in [
        ("a.test", dns_responder::TXT),
        ("_dmarc.a.test", dns_responder::TXT),
        ("b.test", dns_responder::MX),
    ] {
        assert!(
            asked.iter().any(|(n, k)| n == name && *k == kind),
            "no question for {name} {kind}: {asked:?}"
        );
    }
}

#[test]
fn a_stranger_forging_a_reject_domain_in_from_is_refused_at_the_end_of_data() {
    let w = world(false);
    let forged = "From: Someone <someone@a.test>\r\nTo: carol@b.test\r\n\
                  Subject: forged\r\n\r\nPlease pay the attached invoice.\r\n";
    // From the stranger's own return path (no SPF), and from one at
    // a.test (SPF fails): DMARC fails either way.
    for mail_from in ["bounces@stranger.test", "someone@a.test"] {
        let sent = stranger_sends(&w, mail_from, forged);
        assert!(
            sent.reply.starts_with("550") && sent.reply.contains("5.7.1"),
            "MAIL FROM {mail_from}: {}\n{}",
            sent.reply,
            w.logs()
        );
        w.b.wait_session_closed(sent.client);
    }
    assert!(
        mailbox_files(&w.b.data, "carol@b.test").is_empty(),
        "{}",
        w.logs()
    );
}

#[test]
fn a_changed_body_fails_dkim_and_passes_dmarc_through_spf() {
    let w = world(true);
    let original = delivered_from_a(&w, "to be changed");
    let changed = without_b_fields(&original).replace("Hello from A.", "Hello from Mallory.");
    assert_ne!(changed, without_b_fields(&original));
    let sent = relay(
        w.b.smtp,
        LOOPBACK,
        A_HOST,
        "alice@a.test",
        "carol@b.test",
        &changed,
    );
    assert!(
        sent.reply.starts_with("250"),
        "{}\n{}",
        sent.reply,
        w.logs()
    );
    let got = wait_for_mail(&w.b.data, "carol@b.test", 2, WAIT, &|| w.logs());
    let message = &got[1];
    assert!(message.contains("Hello from Mallory."), "{message}");
    assert_eq!(
        dkimpy_verifies(message, &w.dkim_records),
        [false, false],
        "dkimpy verifies a changed body:\n{message}"
    );

    let results = b_results(message);
    assert_eq!(results.one("spf").result, "pass", "{results:?}");
    let dkim = results.of("dkim");
    assert_eq!(dkim.len(), 2, "a result per signature: {results:?}");
    for clause in dkim {
        assert_eq!(clause.result, "fail", "{results:?}");
        assert_eq!(clause.prop("header.d"), Some("a.test"), "{results:?}");
    }
    let dmarc = results.one("dmarc");
    assert_eq!(dmarc.result, "pass", "{results:?}");
    assert_eq!(dmarc.prop("header.from"), Some("a.test"), "{results:?}");
}

#[test]
fn results_that_claim_b_are_dropped_and_others_kept() {
    let w = world(false);
    let message = "Authentication-Results: mx.b.test; dkim=pass header.d=forged-one.test\r\n\
                   From: someone@stranger.test\r\n\
                   Authentication-Results: MX.B.Test 1;\r\n\tspf=pass smtp.mailfrom=forged-two.test\r\n\
                   Authentication-Results: relay.elsewhere.test; dkim=pass header.d=kept.test\r\n\
                   To: carol@b.test\r\nSubject: results\r\n\r\nHello.\r\n";
    let sent = stranger_sends(&w, "someone@stranger.test", message);
    assert!(
        sent.reply.starts_with("250"),
        "{}\n{}",
        sent.reply,
        w.logs()
    );
    let got = wait_for_mail(&w.b.data, "carol@b.test", 1, WAIT, &|| w.logs());
    let stored = &got[0];
    for forged in ["forged-one.test", "forged-two.test"] {
        assert!(
            !stored.contains(forged),
            "a field claiming {B_HOST} kept:\n{stored}"
        );
    }
    assert!(
        stored.contains(
            "\r\nAuthentication-Results: relay.elsewhere.test; dkim=pass header.d=kept.test\r\n"
        ),
        "another authserv-id's field dropped:\n{stored}"
    );
    let results = b_results(stored);
    assert_eq!(results.one("dmarc").result, "none", "{results:?}");
}

#[test]
fn a_resolver_that_does_not_answer_defers_at_the_end_of_data() {
    let w = world(false);
    w.zone.lock().unwrap().dead = true;
    let message = "From: someone@a.test\r\nTo: carol@b.test\r\nSubject: unchecked\r\n\r\nHi.\r\n";
    let sent = stranger_sends(&w, "someone@a.test", message);
    assert!(
        sent.reply.starts_with("451"),
        "{}\n{}",
        sent.reply,
        w.logs()
    );
    // An SPF check's limit, then a question's for the DKIM key or the DMARC
    // record, with a margin.
    let limit = SPF_TIMEOUT + DNS_QUERY_TIMEOUT * 2;
    assert!(sent.took < limit, "{:?} to answer the final dot", sent.took);
    assert!(
        !w.zone.lock().unwrap().asked.is_empty(),
        "the server asked its DNS questions elsewhere"
    );
    w.b.wait_session_closed(sent.client);
    assert!(
        mailbox_files(&w.b.data, "carol@b.test").is_empty(),
        "{}",
        w.logs()
    );
}

#[test]
fn a_failing_message_from_a_quarantine_domain_is_delivered_as_spam() {
    let w = world(false);
    let message = "From: someone@q.test\r\nTo: carol@b.test\r\nSubject: quarantined\r\n\r\nHi.\r\n";
    let sent = stranger_sends(&w, "someone@q.test", message);
    assert!(
        sent.reply.starts_with("250"),
        "{}\n{}",
        sent.reply,
        w.logs()
    );
    let got = wait_for_mail(&w.b.data, "carol@b.test", 1, WAIT, &|| w.logs());
    let stored = &got[0];
    assert!(
        stored.starts_with("X-Spam: yes\r\n")
            && stored.contains("\r\nSubject: [SPAM] quarantined\r\n"),
        "{stored}"
    );
    let results = b_results(stored);
    assert_eq!(results.one("spf").result, "fail", "{results:?}");
    assert_eq!(results.one("dmarc").result, "fail", "{results:?}");
}
