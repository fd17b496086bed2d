//! What mail programs read to set themselves up, read back by code not
//! written here (tests/autoconfig/check.py): the autoconfig file as
//! Thunderbird's readFromXML reads it, the Autodiscover answer with
//! Python's XML parser under Outlook's namespaces (and as Thunderbird
//! reads it), the Apple profile with plistlib, `dns records` as a zone file
//! with dnslib; and `dns check` of the SRV and alias records against a
//! test responder.

mod common;

use common::dns_responder::{self, encode_name, CNAME, SRV};
use common::postbox;
use postbox::config::Config;
use postbox::web::autoconfig;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/autoconfig/check.py");

/// What check.py's reader `what` takes from `input`, one fact a line.
fn read_back(what: &str, input: &[u8]) -> Vec<String> {
    let out = common::output_with_stdin(Command::new("python3").arg(SCRIPT).arg(what), input);
    assert!(
        out.status.success(),
        "check.py {what} refused it: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(input)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether check.py's reader `what` refuses `input`.
fn refused(what: &str, input: &[u8]) -> bool {
    let out = common::output_with_stdin(Command::new("python3").arg(SCRIPT).arg(what), input);
    !out.status.success()
}

const HEAD: &str =
    "hostname = \"mail.club.example\"\ndomains = [\"club.example\", \"family.example\"]\n";

/// The standard ports, all on.
const STANDARD: &str = concat!(
    "[pop3]\nlisten = \"0.0.0.0:110\"\n",
    "[pop3s]\nlisten = \"0.0.0.0:995\"\n",
    "[submission]\nlisten = \"0.0.0.0:587\"\n",
    "[submissions]\nlisten = \"0.0.0.0:465\"\n",
);

/// Implicit TLS off: the STARTTLS ports only.
const STARTTLS_ONLY: &str = concat!(
    "[pop3]\nlisten = \"0.0.0.0:110\"\n",
    "[pop3s]\nlisten = \"off\"\n",
    "[submission]\nlisten = \"0.0.0.0:587\"\n",
    "[submissions]\nlisten = \"off\"\n",
);

fn config(listeners: &str) -> Config {
    Config::from_toml(&format!("{HEAD}{listeners}")).unwrap()
}

#[test]
fn thunderbird_reads_the_autoconfig_file() {
    let xml = autoconfig::thunderbird(&config(STANDARD), Some("ann@family.example"));
    let server = "mail.club.example";
    let login = "%EMAILADDRESS% password-cleartext";
    assert_eq!(
        read_back("thunderbird", xml.as_bytes()),
        [
            "id family.example".to_string(),
            "domains family.example club.example".into(),
            "displayName family.example mail".into(),
            format!("incoming pop3 {server} 995 SSL {login}"),
            format!("incoming pop3 {server} 110 STARTTLS {login}"),
            format!("outgoing smtp {server} 465 SSL {login}"),
            format!("outgoing smtp {server} 587 STARTTLS {login}"),
        ]
    );
    let xml = autoconfig::thunderbird(&config(STARTTLS_ONLY), None);
    assert_eq!(
        read_back("thunderbird", xml.as_bytes())[3..],
        [
            format!("incoming pop3 {server} 110 STARTTLS {login}"),
            format!("outgoing smtp {server} 587 STARTTLS {login}"),
        ]
    );
}

#[test]
fn the_thunderbird_reader_refuses_what_thunderbird_would() {
    let good = autoconfig::thunderbird(&config(STANDARD), None);
    assert!(!refused("thunderbird", good.as_bytes()));
    for (from, to) in [
        (
            "<socketType>SSL</socketType>",
            "<socketType>TLS</socketType>",
        ),
        ("<port>995</port>", "<port>99999</port>"),
        ("type=\"pop3\"", "type=\"pop4\""),
        ("password-cleartext", "password-magic"),
        ("<hostname>mail.club.example", "<hostname>mail_club.example"),
        ("version=\"1.1\"", "version=\"1.0\""),
    ] {
        let bad = good.replacen(from, to, 1);
        assert!(refused("thunderbird", bad.as_bytes()), "{to}");
    }
    let no_outgoing = config("[submission]\nlisten = \"off\"\n[submissions]\nlisten = \"off\"\n");
    let xml = autoconfig::thunderbird(&no_outgoing, None);
    assert!(
        refused("thunderbird", xml.as_bytes()),
        "no sending listener, nothing Thunderbird can set up"
    );
}

fn python_request(address: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .args([SCRIPT, "autodiscover-request", address])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// The request Thunderbird posts (its whitespace included).
fn thunderbird_request(address: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n    <Autodiscover xmlns=\"{}\">\n      <Request>\n        <EMailAddress>{address}</EMailAddress>\n        <AcceptableResponseSchema>{}</AcceptableResponseSchema>\n      </Request>\n    </Autodiscover>",
        autoconfig::REQUEST_SCHEMA,
        autoconfig::RESPONSE_SCHEMA
    )
    .into_bytes()
}

#[test]
fn outlook_reads_the_autodiscover_answer() {
    let request = python_request("ann@club.example");
    assert!(
        String::from_utf8_lossy(&request).contains("<ns0:Autodiscover"),
        "ElementTree writes a prefix: the reader must take it"
    );
    let answer = autoconfig::autodiscover(&config(STANDARD), &request).unwrap();
    let protocol = |kind: &str, port: u16, encryption: &str| {
        format!("protocol {kind} mail.club.example {port} ann@club.example on {encryption} off on")
    };
    assert_eq!(
        read_back("autodiscover", answer.as_bytes()),
        [
            "account email settings".to_string(),
            protocol("POP3", 995, "SSL"),
            "thunderbird pop3 SSL".into(),
            protocol("POP3", 110, "TLS"),
            "thunderbird pop3 STARTTLS".into(),
            protocol("SMTP", 465, "SSL"),
            "thunderbird smtp SSL".into(),
            protocol("SMTP", 587, "TLS"),
            "thunderbird smtp STARTTLS".into(),
        ]
    );
    let from_thunderbird = thunderbird_request("Ann@Family.Example");
    let answer = autoconfig::autodiscover(&config(STARTTLS_ONLY), &from_thunderbird).unwrap();
    let lines = read_back("autodiscover", answer.as_bytes());
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[1],
        "protocol POP3 mail.club.example 110 Ann@family.example on TLS off on"
    );
    let stranger = python_request("eve@elsewhere.example");
    assert!(autoconfig::autodiscover(&config(STANDARD), &stranger).is_err());
}

#[test]
fn apple_profiles_load_in_plistlib() {
    let c = config(STANDARD);
    let profile = autoconfig::mobileconfig(&c, "ann@club.example", "Ann Example & Co");
    let lines = read_back("mobileconfig", &profile);
    assert!(
        lines[0].starts_with("profile example.club.mail.mail."),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1..4],
        [
            "account EmailTypePOP ann@club.example Ann Example & Co",
            "incoming mail.club.example 995 ssl=True EmailAuthPassword ann@club.example",
            "outgoing mail.club.example 465 ssl=True EmailAuthPassword ann@club.example",
        ]
    );
    // Stable for the same member, different for another.
    let again = read_back(
        "mobileconfig",
        &autoconfig::mobileconfig(&c, "ann@club.example", "Ann"),
    );
    assert_eq!(again[4], lines[4]);
    let bob = read_back(
        "mobileconfig",
        &autoconfig::mobileconfig(&c, "bob@club.example", "Bob"),
    );
    assert_ne!(bob[4], lines[4]);
    assert_ne!(bob[0], lines[0]);
    let plain = read_back(
        "mobileconfig",
        &autoconfig::mobileconfig(&config(STARTTLS_ONLY), "ann@club.example", "Ann"),
    );
    assert_eq!(
        plain[2..4],
        [
            "incoming mail.club.example 110 ssl=True EmailAuthPassword ann@club.example",
            "outgoing mail.club.example 587 ssl=True EmailAuthPassword ann@club.example",
        ]
    );
}

/// A config file for the `dns` verbs and its data directory.
fn verb_setup(dir: &Path, listeners: &str, resolver: Option<&str>) -> (String, String) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut toml = format!("data_dir = {:?}\n{HEAD}", data.to_str().unwrap());
    if let Some(resolver) = resolver {
        toml.push_str(&format!("dns_resolver = \"{resolver}\"\n"));
    }
    toml.push_str(listeners);
    let file = dir.join("postbox.toml");
    std::fs::write(&file, toml).unwrap();
    (
        file.to_str().unwrap().to_string(),
        data.to_str().unwrap().to_string(),
    )
}

#[test]
fn dns_records_prints_srv_and_alias_lines_dnslib_reads() {
    let dir = tempfile::tempdir().unwrap();
    let listeners = concat!(
        "[pop3]\nlisten = \"0.0.0.0:110\"\n",
        "[pop3s]\nlisten = \"0.0.0.0:995\"\n",
        "[submission]\nlisten = \"off\"\n",
        "[submissions]\nlisten = \"0.0.0.0:465\"\n",
    );
    let (file, data) = verb_setup(dir.path(), listeners, None);
    let out = postbox(
        &[
            "dns",
            "records",
            "family.example",
            "--config",
            &file,
            "--data",
            &data,
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = "mail.club.example.";
    assert_eq!(
        read_back("zone", &out.stdout),
        [
            format!("_submissions._tcp.family.example. SRV 0 1 465 {host}"),
            "_submission._tcp.family.example. SRV 0 0 0 .".into(),
            format!("_pop3s._tcp.family.example. SRV 0 1 995 {host}"),
            format!("_pop3._tcp.family.example. SRV 10 1 110 {host}"),
            "_imaps._tcp.family.example. SRV 0 0 0 .".into(),
            "_imap._tcp.family.example. SRV 0 0 0 .".into(),
            format!("autoconfig.family.example. CNAME {host}"),
            format!("autodiscover.family.example. CNAME {host}"),
        ]
    );
}

fn srv_data(priority: u16, weight: u16, port: u16, target: &str) -> Vec<u8> {
    let mut data = Vec::new();
    for field in [priority, weight, port] {
        data.extend_from_slice(&field.to_be_bytes());
    }
    data.extend(encode_name(target));
    data
}

#[test]
fn dns_check_finds_srv_and_alias_records() {
    let (resolver, zone) = dns_responder::start();
    {
        let mut zone = zone.lock().unwrap();
        let d = "club.example";
        zone.add(
            &format!("_submissions._tcp.{d}"),
            SRV,
            srv_data(0, 1, 465, "mail.club.example"),
        );
        // The wrong port.
        zone.add(
            &format!("_submission._tcp.{d}"),
            SRV,
            srv_data(0, 1, 25, "mail.club.example"),
        );
        zone.add(
            &format!("_pop3s._tcp.{d}"),
            SRV,
            srv_data(5, 0, 995, "MAIL.club.example"),
        );
        // _pop3 missing; IMAP said to be off.
        zone.add(&format!("_imaps._tcp.{d}"), SRV, srv_data(0, 0, 0, ""));
        zone.add(&format!("_imap._tcp.{d}"), SRV, srv_data(0, 0, 0, ""));
        zone.add(
            &format!("autoconfig.{d}"),
            CNAME,
            encode_name("mail.club.example"),
        );
        // An address of its own does as well as an alias.
        zone.add_a(&format!("autodiscover.{d}"), Ipv4Addr::new(192, 0, 2, 1));
        zone.add(
            "autoconfig.family.example",
            CNAME,
            encode_name("web.elsewhere.example"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = verb_setup(dir.path(), STANDARD, Some(&resolver.to_string()));
    let check = |domain: &str| {
        let out = postbox(
            &["dns", "check", domain, "--config", &file, "--data", &data],
            "",
        );
        assert_eq!(out.status.code(), Some(1), "other records are missing");
        String::from_utf8(out.stderr).unwrap() + &String::from_utf8(out.stdout).unwrap()
    };
    let report = check("club.example");
    for line in [
        "ok       _submissions._tcp.club.example SRV",
        "wrong    _submission._tcp.club.example SRV: found 0 1 25 mail.club.example.; want 10 1 587 mail.club.example.",
        "ok       _pop3s._tcp.club.example SRV",
        "missing  _pop3._tcp.club.example. SRV 10 1 110 mail.club.example.",
        "ok       _imaps._tcp.club.example SRV",
        "ok       _imap._tcp.club.example SRV",
        "ok       autoconfig.club.example CNAME",
        "ok       autodiscover.club.example CNAME",
    ] {
        assert!(report.contains(line), "{line:?} not in\n{report}");
    }
    let report = check("family.example");
    for line in [
        "wrong    autoconfig.family.example CNAME: found web.elsewhere.example.; want mail.club.example.",
        "missing  autodiscover.family.example. CNAME mail.club.example.",
    ] {
        assert!(report.contains(line), "{line:?} not in\n{report}");
    }
}

#[test]
fn a_server_on_ports_the_system_chose_names_those_ports() {
    let server = common::Server::start();
    let web = server.web.unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-k"])
        .arg(format!(
            "https://127.0.0.1:{}/mail/config-v1.1.xml?emailaddress=ann%40localhost",
            web.port()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let login = "%EMAILADDRESS% password-cleartext";
    let facts = read_back("thunderbird", &out.stdout);
    for (kind, addr, security) in [
        ("incoming pop3", server.pop3s.unwrap(), "SSL"),
        ("incoming pop3", server.pop3, "STARTTLS"),
        ("outgoing smtp", server.submissions.unwrap(), "SSL"),
        ("outgoing smtp", server.submission.unwrap(), "STARTTLS"),
    ] {
        let line = format!("{kind} mx.test {} {security} {login}", addr.port());
        assert!(facts.contains(&line), "no {line:?} in {facts:?}");
    }
}
