//! `dns records` and `dns check` through the real binary: the records are
//! read back by dnspython's zone file parser, then served by a test
//! responder on 127.0.0.1 for the check to find (or not).

mod common;

use common::dns_responder::{self, encode_name, Zone, CNAME, MX, SRV, TXT};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const DOMAIN: &str = "club.example";
/// The records for mail programs' setup with the default listeners
/// (tests/autoconfig.rs has them in detail): six SRV, two aliases.
const CLIENT_SETUP: usize = 8;
/// Every record `dns records` prints for DOMAIN: MX, SPF, two DKIM keys,
/// DMARC, the client setup; `dns check` also checks the host's address.
const PUBLISHED: usize = 5 + CLIENT_SETUP;
const CHECKED: usize = PUBLISHED + 1;

/// Parses a zone file given on stdin under `$ORIGIN argv[1]` and prints
/// each record as `name TAB type TAB field...` (TXT: each string; MX:
/// preference and exchange), sorted.
const ZONE_PARSER: &str = r#"
import sys, dns.zone, dns.rdatatype
origin = sys.argv[1]
text = "$ORIGIN %s\n$TTL 3600\n%s" % (origin, sys.stdin.read())
zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
rows = []
for name, rdataset in zone.iterate_rdatasets():
    kind = dns.rdatatype.to_text(rdataset.rdtype)
    for rdata in rdataset:
        if kind == "TXT":
            fields = [s.decode() for s in rdata.strings]
        elif kind == "MX":
            fields = [str(rdata.preference), rdata.exchange.to_text()]
        else:
            fields = [rdata.to_text()]
        rows.append("\t".join([name.to_text(), kind] + fields))
print("\n".join(sorted(rows)))
"#;

/// One record as dnspython read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Parsed {
    name: String,
    kind: String,
    fields: Vec<String>,
}

impl Parsed {
    /// A TXT record's strings joined: the text a resolver hands over.
    fn text(&self) -> String {
        self.fields.concat()
    }
}

/// `zone_text` read by dnspython as a zone whose $ORIGIN is `origin`.
fn parse_zone(zone_text: &str, origin: &str) -> Vec<Parsed> {
    let out = common::output_with_stdin(
        Command::new("python3").args(["-c", ZONE_PARSER, origin]),
        zone_text.as_bytes(),
    );
    assert!(
        out.status.success(),
        "dnspython (scripts/install-test-deps) refused the zone:\n{zone_text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut fields = line.split('\t').map(String::from);
            Parsed {
                name: fields.next().unwrap(),
                kind: fields.next().unwrap(),
                fields: fields.collect(),
            }
        })
        .collect()
}

/// A data dir and a config serving club.example as mx.club.example, with
/// `toml` added.
struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
}

impl Setup {
    fn new(toml: &str) -> Setup {
        let (dir, data, config) = common::prepare(
            DOMAIN,
            &["alice"],
            &format!("hostname = \"mx.club.example\"\n{toml}"),
        );
        Setup {
            _dir: dir,
            data,
            config,
        }
    }

    /// With `dns_resolver` at `resolver`.
    fn asking(resolver: SocketAddr) -> Setup {
        Setup::new(&format!("dns_resolver = \"{resolver}\"\n"))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(common::BIN);
        command.args(args).args([
            "--config",
            self.config.to_str().unwrap(),
            "--data",
            self.data.to_str().unwrap(),
        ]);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        common::output_with_stdin(&mut self.command(args), b"")
    }

    /// Runs `args`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `dns records` read back under the domain's own $ORIGIN, as when
    /// pasted into its zone.
    fn published(&self) -> Vec<Parsed> {
        parse_zone(&self.ok(&["dns", "records"]), &format!("{DOMAIN}."))
    }

    /// `dns check` with a time limit, so a hang fails instead of
    /// stopping the suite: exit status, the lines it printed (stdout and
    /// stderr: a failing check says all on stderr), and how long it took.
    fn check(&self) -> (Option<i32>, Vec<String>, Duration) {
        let start = Instant::now();
        let mut child = self
            .command(&["dns", "check"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = common::wait_timeout(&mut child, Duration::from_secs(60));
        let took = start.elapsed();
        if status.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        let status = status.expect("dns check still running after 60 s");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let lines = text
            .lines()
            .map(|l| l.trim_start_matches("postbox: ").to_string())
            .collect();
        (status.code(), lines, took)
    }
}

/// Serves `records` (as `dns records` wrote them) and an address for
/// the host name.
fn serve(zone: &mut Zone, records: &[Parsed]) {
    zone.add_a("mx.club.example", "192.0.2.25".parse().unwrap());
    for record in records {
        let name = record.name.trim_end_matches('.');
        match record.kind.as_str() {
            "MX" => zone.add_mx(name, record.fields[0].parse().unwrap(), &record.fields[1]),
            "TXT" => {
                // The strings exactly as published.
                let strings: Vec<Vec<u8>> = record
                    .fields
                    .iter()
                    .map(|s| s.as_bytes().to_vec())
                    .collect();
                zone.add(name, TXT, dns_responder::txt_data(&strings));
            }
            "SRV" => {
                // priority weight port target
                let fields: Vec<&str> = record.fields[0].split(' ').collect();
                let mut data = Vec::new();
                for number in &fields[..3] {
                    data.extend_from_slice(&number.parse::<u16>().unwrap().to_be_bytes());
                }
                data.extend(encode_name(fields[3].trim_end_matches('.')));
                zone.add(name, SRV, data);
            }
            "CNAME" => zone.add(
                name,
                CNAME,
                encode_name(record.fields[0].trim_end_matches('.')),
            ),
            other => panic!("{other} record in the output"),
        }
    }
}

fn find<'a>(records: &'a [Parsed], name: &str, kind: &str) -> Vec<&'a Parsed> {
    records
        .iter()
        .filter(|r| r.name == name && r.kind == kind)
        .collect()
}

fn dkim_records(records: &[Parsed]) -> Vec<&Parsed> {
    records
        .iter()
        .filter(|r| r.name.ends_with(&format!("._domainkey.{DOMAIN}.")))
        .collect()
}

#[test]
fn records_are_a_zone_file_with_every_record() {
    let setup = Setup::new("");
    let text = setup.ok(&["dns", "records"]);
    // Every record line comes after a comment saying what it is for.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with(';') {
            assert!(
                i > 0 && lines[i - 1].starts_with("; "),
                "no note before {line:?}:\n{text}"
            );
        }
    }
    // The host name's address is a hint to fill in, kept as a comment so
    // the rest stays a valid zone.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(';') && l.contains("mx.club.example. A ")),
        "no address hint:\n{text}"
    );

    // Names are absolute: the zone reads the same under the domain's
    // $ORIGIN as under the root's (a name without the final dot would get
    // the origin appended: club.example.club.example).
    let records = parse_zone(&text, "club.example.");
    assert_eq!(records, parse_zone(&text, "."), "{text}");
    for record in &records {
        assert!(
            record.name == "club.example." || record.name.ends_with(".club.example."),
            "{record:?} outside the domain:\n{text}"
        );
        assert!(!record.name.contains("club.example.club"), "{record:?}");
    }

    let mx = find(&records, "club.example.", "MX");
    assert_eq!(mx.len(), 1, "{records:?}");
    assert_eq!(mx[0].fields, ["10", "mx.club.example."]);
    let spf = find(&records, "club.example.", "TXT");
    assert_eq!(spf.len(), 1, "{records:?}");
    assert_eq!(spf[0].text(), "v=spf1 mx -all");
    let dmarc = find(&records, "_dmarc.club.example.", "TXT");
    assert_eq!(dmarc.len(), 1, "{records:?}");
    assert_eq!(
        dmarc[0].text(),
        "v=DMARC1; p=none; rua=mailto:postmaster@club.example"
    );

    // The DKIM keys: made by this command, one RSA and one Ed25519.
    let dkim = dkim_records(&records);
    assert_eq!(dkim.len(), 2, "{records:?}");
    let rsa = dkim
        .iter()
        .find(|r| r.text().starts_with("v=DKIM1; k=rsa; p="))
        .expect("an RSA key");
    let ed25519 = dkim
        .iter()
        .find(|r| r.text().starts_with("v=DKIM1; k=ed25519; p="))
        .expect("an Ed25519 key");
    assert!(rsa.name.ends_with("r._domainkey.club.example."), "{rsa:?}");
    assert!(ed25519.name.ends_with("e._domainkey.club.example."));
    // An RSA 2048 key does not fit one string: each holds at most 255.
    assert!(rsa.fields.len() > 1, "{rsa:?}");
    assert!(rsa.fields.iter().all(|s| s.len() <= 255), "{rsa:?}");
    assert!(rsa.fields[..rsa.fields.len() - 1]
        .iter()
        .all(|s| s.len() == 255));
    let setup_records = records
        .iter()
        .filter(|r| r.kind == "SRV" || r.kind == "CNAME")
        .count();
    assert_eq!(setup_records, CLIENT_SETUP, "{records:?}");
    assert_eq!(records.len(), PUBLISHED, "{records:?}");

    // `dkim show` prints the same keys (its names relative to the root),
    // and finds them made already.
    let shown = setup.ok(&["dkim", "show", DOMAIN]);
    assert!(!shown.contains("; made"), "{shown}");
    let shown = parse_zone(&shown, ".");
    let mut published: Vec<Parsed> = dkim.into_iter().cloned().collect();
    published.sort();
    assert_eq!(shown, published);
    // Its lines are in the output as they are, but for the final dot.
    for line in setup.ok(&["dkim", "show", DOMAIN]).lines() {
        let (name, rest) = line.split_once(' ').unwrap();
        assert!(
            text.contains(&format!("{name}. {rest}")),
            "{line:?} not in\n{text}"
        );
    }

    // Named, case and final dot aside, the domain gives the same.
    assert_eq!(setup.ok(&["dns", "records", "CLUB.example."]), text);
}

#[test]
fn spf_includes_a_known_smarthost() {
    let gmail = Setup::new("[queue]\nsmarthost = \"smtp.gmail.com\"\n");
    let spf = find(&gmail.published(), "club.example.", "TXT")[0].text();
    assert_eq!(spf, "v=spf1 mx include:_spf.google.com -all");

    // A smarthost of unknown provider: the record stays, the note says
    // what to add.
    let other = Setup::new("[queue]\nsmarthost = \"mail.isp.example\"\n");
    let spf = find(&other.published(), "club.example.", "TXT")[0].text();
    assert_eq!(spf, "v=spf1 mx -all");
    let text = other.ok(&["dns", "records"]);
    assert!(text.contains("include:"), "{text}");
}

#[test]
fn a_domain_not_served_is_refused_by_name() {
    let setup = Setup::new("");
    for verb in ["records", "check"] {
        let out = setup.run(&["dns", verb, "other.example"]);
        assert_eq!(out.status.code(), Some(1), "dns {verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("other.example"), "dns {verb}: {err}");
        assert!(out.stdout.is_empty(), "dns {verb}");
    }
}

#[test]
fn check_finds_published_records_and_says_what_is_missing_or_wrong() {
    let (resolver, zone) = dns_responder::start();
    let setup = Setup::asking(resolver);
    let records = setup.published();
    serve(&mut zone.lock().unwrap(), &records);

    let (code, lines, _) = setup.check();
    assert_eq!(code, Some(0), "{lines:#?}");
    assert_eq!(lines.len(), CHECKED, "{lines:#?}");
    assert!(lines.iter().all(|l| l.starts_with("ok ")), "{lines:#?}");
    // Each answer came from the responder.
    let asked = zone.lock().unwrap().asked.clone();
    for record in &records {
        let name = record.name.trim_end_matches('.').to_string();
        assert!(asked.iter().any(|(n, _)| *n == name), "{name} not asked");
    }

    // DMARC removed, the RSA key replaced by another.
    let rsa = dkim_records(&records)
        .into_iter()
        .find(|r| r.text().contains("k=rsa"))
        .unwrap()
        .clone();
    let rsa_name = rsa.name.trim_end_matches('.');
    {
        let mut zone = zone.lock().unwrap();
        zone.remove("_dmarc.club.example", TXT);
        zone.remove(rsa_name, TXT);
        zone.add_txt(rsa_name, "v=DKIM1; k=rsa; p=MIIBCgKCAQEAothernotthesame");
    }
    let (code, lines, _) = setup.check();
    assert_eq!(code, Some(1), "{lines:#?}");
    let starting = |word: &str| -> Vec<&String> {
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("{word} ")))
            .collect()
    };
    assert_eq!(starting("ok").len(), CHECKED - 2, "{lines:#?}");
    let missing = starting("missing");
    assert_eq!(missing.len(), 1, "{lines:#?}");
    assert!(missing[0].contains("_dmarc.club.example"), "{lines:#?}");
    // What is missing is given as the zone line to publish.
    let line = missing[0].trim_start_matches("missing").trim();
    let parsed = parse_zone(line, "club.example.");
    let dmarc = find(&records, "_dmarc.club.example.", "TXT")[0].clone();
    assert_eq!(parsed, [dmarc]);
    let wrong = starting("wrong");
    assert_eq!(wrong.len(), 1, "{lines:#?}");
    assert!(wrong[0].contains(rsa_name), "{lines:#?}");
    assert!(wrong[0].contains("othernotthesame"), "{lines:#?}");
    assert!(wrong[0].contains(&rsa.text()), "says what is wanted");
    assert!(
        lines
            .last()
            .unwrap()
            .contains(&format!("2 of {CHECKED} records need attention")),
        "{lines:#?}"
    );

    // No MX at all: missing.
    zone.lock().unwrap().remove("club.example", MX);
    let (code, lines, _) = setup.check();
    assert_eq!(code, Some(1));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("missing ") && l.contains(" MX 10 mx.club.example.")),
        "{lines:#?}"
    );
}

#[test]
fn check_without_answers_says_unknown_in_bounded_time() {
    let (resolver, zone) = dns_responder::start();
    let setup = Setup::asking(resolver);
    let records = setup.published();
    {
        let mut zone = zone.lock().unwrap();
        serve(&mut zone, &records);
        // One name goes unanswered.
        zone.remove("_dmarc.club.example", TXT);
        zone.silent.push("_dmarc.club.example".into());
    }
    let (code, lines, _) = setup.check();
    assert_eq!(code, Some(1), "{lines:#?}");
    let unknown: Vec<&String> = lines.iter().filter(|l| l.starts_with("unknown ")).collect();
    assert_eq!(unknown.len(), 1, "{lines:#?}");
    assert!(unknown[0].contains("_dmarc.club.example"), "{lines:#?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("ok ")).count(),
        CHECKED - 1
    );

    // A resolver that answers nothing: every record unknown, and the
    // questions wait together, not one time limit after another.
    zone.lock().unwrap().dead = true;
    let (code, lines, took) = setup.check();
    assert_eq!(code, Some(1), "{lines:#?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("unknown ")).count(),
        CHECKED,
        "{lines:#?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .contains(&format!("{CHECKED} of {CHECKED} records need attention")),
        "{lines:#?}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn the_command_line_and_the_console_offer_the_dns_verbs() {
    let setup = Setup::new("");
    let help = setup.ok(&["dns", "--help"]);
    for verb in ["postbox dns records [DOMAIN]", "postbox dns check [DOMAIN]"] {
        assert!(help.contains(verb), "no {verb:?} in\n{help}");
    }
    // The group alone is a usage error naming its verbs.
    let out = setup.run(&["dns"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("records"));

    let out = common::output_with_stdin(&mut setup.command(&["console"]), b"help\ndns records\n");
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    for verb in ["dns records [DOMAIN]", "dns check [DOMAIN]"] {
        assert!(shown.contains(verb), "no {verb:?} in help:\n{shown}");
    }
    assert!(
        shown.contains("club.example. MX 10 mx.club.example."),
        "{shown}"
    );
    assert!(shown.contains("_dmarc.club.example. TXT"), "{shown}");
}
