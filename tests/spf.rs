//! SPF checked against the RFC 7208 test suite of the OpenSPF project
//! (tests/spf/rfc7208-tests.yml, as shipped in pyspf's source
//! distribution; see tests/spf/README), through the real resolver code:
//! each scenario's zone is served by a DNS responder on 127.0.0.1.

mod common;
use common::dns_responder as responder;

use postbox::dns::Resolver;
use postbox::spf::{check_within, Spf, SpfResult};
use responder::{encode_name, txt_data, Data, Zone, CNAME};
use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Cases not run, and why.
const NOT_APPLICABLE: &[(&str, &str)] = &[];

/// Cases whose explanation is compared without regard to case, and why.
const EXPLANATION_ANY_CASE: &[(&str, &str)] = &[(
    "v-macro-ip6",
    "the suite writes %{ir}'s IPv6 nibbles in upper case (its reference \
     implementation's rendering); RFC 7208 §7.4's example writes them in \
     lower case, as Postbox does",
)];

struct Case {
    name: String,
    ip: IpAddr,
    mail_from: String,
    helo: String,
    results: Vec<String>,
    explanation: Option<String>,
}

fn unhex(text: &str) -> String {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    String::from_utf8(bytes).unwrap()
}

fn unhex_bytes(text: &str) -> Vec<u8> {
    unhex(text).into_bytes()
}

fn add_zone_line(zone: &mut Zone, fields: &[&str]) {
    let name = fields[1];
    let kind = match fields[2] {
        "TIMEOUT" => {
            zone.silent.push(name.to_string());
            return;
        }
        "A" => 1,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "CNAME" => CNAME,
        // Type SPF (99) is no longer looked at (RFC 7208 §3.1).
        "SPF" => return,
        other => panic!("record type {other}"),
    };
    if fields.get(3) == Some(&"TIMEOUT") {
        zone.records
            .insert((name.to_ascii_lowercase(), kind), Data::Timeout);
        return;
    }
    let data = match kind {
        1 => fields[3]
            .parse::<std::net::Ipv4Addr>()
            .unwrap()
            .octets()
            .to_vec(),
        28 => fields[3]
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec(),
        12 | CNAME => encode_name(fields[3]),
        15 => {
            let mut d = fields[3].parse::<u16>().unwrap().to_be_bytes().to_vec();
            d.extend(encode_name(fields[4]));
            d
        }
        _ => txt_data(
            &fields[3..]
                .iter()
                .map(|s| unhex_bytes(s))
                .collect::<Vec<_>>(),
        ),
    };
    zone.add(name, kind, data);
}

/// The scenarios: each zone and its cases.
fn suite() -> Vec<(String, Zone, Vec<Case>)> {
    let output = Command::new("python3")
        .args(["tests/spf/suite.py", "tests/spf/rfc7208-tests.yml"])
        .output()
        .expect("python3 (scripts/install-test-deps)");
    assert!(
        output.status.success(),
        "tests/spf/suite.py needs PyYAML (scripts/install-test-deps): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut scenarios: Vec<(String, Zone, Vec<Case>)> = Vec::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields[0] {
            "scenario" => scenarios.push((unhex(fields[1]), Zone::default(), Vec::new())),
            "zone" => add_zone_line(&mut scenarios.last_mut().unwrap().1, &fields),
            "case" => scenarios.last_mut().unwrap().2.push(Case {
                name: fields[1].to_string(),
                ip: fields[2].parse().unwrap(),
                mail_from: unhex(fields[3]),
                helo: unhex(fields[4]),
                results: fields[5].split(',').map(String::from).collect(),
                explanation: (fields[6] != "-").then(|| unhex(fields[6])),
            }),
            other => panic!("line {other}"),
        }
    }
    scenarios
}

#[test]
fn rfc_7208_test_suite() {
    let (server, served) = responder::start();
    let (mut passed, mut failed, mut skipped) = (0, Vec::new(), 0);
    for (description, zone, cases) in suite() {
        *served.lock().unwrap() = zone;
        for case in cases {
            if NOT_APPLICABLE.iter().any(|(name, _)| *name == case.name) {
                skipped += 1;
                continue;
            }
            // A fresh cache per case; a short limit for the cases whose
            // questions go unanswered.
            let resolver = Resolver::new(Some(server)).with_timeout(Duration::from_millis(300));
            let spf = Spf::mail_from(case.ip, &case.mail_from, &case.helo, "receiver.test");
            let verdict = smol::block_on(check_within(&resolver, spf, Duration::from_secs(10)));
            let result_ok = case.results.iter().any(|r| r == verdict.result.as_str());
            let explanation_ok = match case.explanation.as_deref() {
                None => true,
                // The suite's driver stands "DEFAULT" in when there is none.
                Some("DEFAULT") => verdict.explanation.is_none(),
                Some(text) => {
                    let any_case = EXPLANATION_ANY_CASE.iter().any(|(n, _)| *n == case.name);
                    let same = |got: &str| match any_case {
                        true => got.eq_ignore_ascii_case(text),
                        false => got == text,
                    };
                    verdict.result != SpfResult::Fail
                        || verdict.explanation.as_deref().is_some_and(same)
                }
            };
            if result_ok && explanation_ok {
                passed += 1;
            } else {
                failed.push(format!(
                    "{description} / {}: expected {:?} {:?}, got {} ({}) {:?}",
                    case.name,
                    case.results,
                    case.explanation,
                    verdict.result.as_str(),
                    verdict.reason,
                    verdict.explanation
                ));
            }
        }
    }
    println!(
        "RFC 7208 suite: {passed} passed, {} failed, {skipped} not applicable",
        failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn a_resolver_that_does_not_answer_gives_temperror_in_time() {
    // Bound but never read: every question goes unanswered.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap();
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let check = |resolver: Resolver, limit| {
        let spf = Spf::mail_from(ip, "a@example.test", "mx.example.test", "receiver.test");
        let started = Instant::now();
        let verdict = smol::block_on(check_within(&resolver, spf, limit));
        (verdict, started.elapsed())
    };
    // Each question's own limit.
    let per_question = Duration::from_millis(200);
    let resolver = Resolver::new(Some(server)).with_timeout(per_question);
    let (verdict, took) = check(resolver, Duration::from_secs(30));
    assert_eq!(verdict.result, SpfResult::TempError, "{verdict:?}");
    assert_eq!(verdict.domain, "example.test");
    assert!(
        took >= per_question && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The whole check's limit, when it comes first.
    let overall = Duration::from_millis(300);
    let (verdict, took) = check(Resolver::new(Some(server)), overall);
    assert_eq!(verdict.result, SpfResult::TempError, "{verdict:?}");
    assert!(took >= overall && took < Duration::from_secs(5), "{took:?}");
}
