//! DMARC and Authentication-Results against implementations not written
//! here: the fields we write are read back by Python's `authres`, our
//! organizational domains are compared with the `publicsuffixlist` package
//! for every ICANN rule of the vendored list, and DMARC results with the
//! `dmarc` package. The scripts are in tests/dmarc/; scripts/install-test-deps
//! installs the packages.

mod common;

use postbox::dmarc::psl::registrable_domain;
use postbox::dmarc::{
    authentication_results, claims_authserv_id, evaluate, judge, AuthFacts, AuthResult, Discovered,
    DkimOutcome, DmarcResult, Evaluation, InboundModes, PolicyLookup, SpfIdentity, SpfOutcome,
    TxtAnswer, Verdict,
};
use std::path::PathBuf;

const HOST: &str = "mx.club.example";

fn suffix_list() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/dmarc/public_suffix_list.dat");
    path.to_str().unwrap().to_owned()
}

/// Runs a script of tests/dmarc/ with `input` on stdin; its stdout.
fn python(script: &str, args: &[&str], input: &[u8]) -> String {
    common::python_script(&format!("tests/dmarc/{script}"), args, input)
}

/// authres's reading of each field: its lines up to `end`.
fn authres_reads(fields: &[String]) -> Vec<Vec<String>> {
    let out = python("authres_read.py", &[], fields.join("\0").as_bytes());
    let mut read = vec![Vec::new()];
    for line in out.lines() {
        if line == "end" {
            read.push(Vec::new());
        } else {
            read.last_mut().unwrap().push(line.to_owned());
        }
    }
    read.pop();
    assert_eq!(read.len(), fields.len(), "{out}");
    read
}

fn spf(result: AuthResult, domain: &str) -> SpfOutcome<'_> {
    SpfOutcome {
        result,
        identity: SpfIdentity::MailFrom,
        domain,
    }
}

fn signature<'a>(result: AuthResult, domain: &'a str, b: &'a str) -> DkimOutcome<'a> {
    DkimOutcome {
        result,
        domain,
        selector: "sel2026",
        signature: b,
        reason: (result != AuthResult::Pass).then_some("signature did not verify"),
    }
}

/// Discovery against a zone of (TXT name, records); names not in it are
/// NXDOMAIN, as the server's DNS would answer.
fn discover(author: &str, zone: &[(&str, &[&str])]) -> Discovered {
    let mut lookup = PolicyLookup::new(author);
    while let Some(name) = lookup.query() {
        let records: Option<Vec<Vec<u8>>> = zone
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, r)| r.iter().map(|t| t.as_bytes().to_vec()).collect());
        match &records {
            Some(records) => lookup.answer(TxtAnswer::Records(records)),
            None => lookup.answer(TxtAnswer::NxDomain),
        }
    }
    lookup.into_outcome().unwrap()
}

fn evaluation_of(facts: &AuthFacts<'_>, zone: &[(&str, &[&str])]) -> Evaluation {
    evaluate(facts, &discover(facts.author_domain, zone), 0)
}

#[test]
fn authres_reads_the_fields_we_write() {
    let dkim = [
        signature(AuthResult::Pass, "bank.example", "AbC/dE+fG="),
        signature(AuthResult::Fail, "mailer.example.net", "zzzzzzzz"),
    ];
    let facts = AuthFacts {
        author_domain: "bank.example",
        spf: spf(AuthResult::SoftFail, "bounces.mailer.example.net"),
        dkim: &dkim,
    };
    let passed = evaluation_of(&facts, &[("_dmarc.bank.example", &["v=DMARC1; p=reject"])]);
    let failing = AuthFacts {
        author_domain: "Sub.Bank.Example",
        spf: spf(
            AuthResult::Fail,
            "a-very-long-bounce-domain-name.bulk-mailer.example.net",
        ),
        dkim: &dkim[1..],
    };
    let failed = evaluation_of(
        &failing,
        &[(
            "_dmarc.bank.example",
            &["v=DMARC1; p=quarantine; sp=reject; rua=mailto:d@bank.example"],
        )],
    );
    assert_eq!(failed.result, DmarcResult::Fail);
    let helo = SpfOutcome {
        result: AuthResult::None,
        identity: SpfIdentity::Helo,
        domain: "relay.example.org",
    };
    let fields = vec![
        authentication_results(HOST, Some(&facts.spf), Some(&dkim), Some(&passed)),
        authentication_results(HOST, Some(&failing.spf), Some(failing.dkim), Some(&failed)),
        authentication_results(HOST, Some(&helo), Some(&[]), None),
        authentication_results(HOST, None, None, None),
    ];
    for field in &fields {
        assert!(field.split("\r\n").all(|line| line.len() <= 78), "{field}");
    }
    let read = authres_reads(&fields);
    let lines = |text: &str| text.lines().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        read[0],
        lines(
            "id mx.club.example\n\
             result spf=softfail\n\
             prop smtp.mailfrom=bounces.mailer.example.net\n\
             result dkim=pass\n\
             prop header.d=bank.example\n\
             prop header.s=sel2026\n\
             prop header.b=AbC/dE+fG=\n\
             result dkim=fail\n\
             reason signature did not verify\n\
             prop header.d=mailer.example.net\n\
             prop header.s=sel2026\n\
             prop header.b=zzzzzzzz\n\
             result dmarc=pass\n\
             prop header.from=bank.example"
        )
    );
    assert_eq!(
        read[1],
        lines(&format!(
            "id mx.club.example\n\
             result spf=fail\n\
             prop smtp.mailfrom=a-very-long-bounce-domain-name.bulk-mailer.example.net\n\
             result dkim=fail\n\
             reason signature did not verify\n\
             prop header.d=mailer.example.net\n\
             prop header.s=sel2026\n\
             prop header.b=zzzzzzzz\n\
             result dmarc=fail\n\
             reason {}\n\
             prop policy.dmarc=reject\n\
             prop header.from=sub.bank.example",
            failed.reason
        ))
    );
    assert_eq!(
        read[2],
        lines(
            "id mx.club.example\n\
             result spf=none\n\
             prop smtp.helo=relay.example.org\n\
             result dkim=none"
        )
    );
    assert_eq!(read[3], lines("id mx.club.example"));
}

#[test]
fn our_authserv_id_is_spotted_where_authres_reads_it() {
    let fields = [
        "Authentication-Results: mx.club.example; spf=pass smtp.mailfrom=a.example",
        "Authentication-Results: MX.CLUB.EXAMPLE; none",
        "Authentication-Results: mx.club.example 1; dkim=pass header.d=a.example",
        "Authentication-Results:\r\n\tmx.club.example;\r\n\tdmarc=pass header.from=a.example",
        "Authentication-Results: (our name, forged) mx.club.example; none",
        "Authentication-Results: mx.other.example; none",
        "Authentication-Results: mx.club.example.other; none",
        "Authentication-Results: other.mx.club.example; none",
        "Authentication-Results: (mx.club.example) other.example; none",
    ];
    let read = authres_reads(&fields.iter().map(|f| f.to_string()).collect::<Vec<_>>());
    let mut ours = 0;
    for (field, read) in fields.iter().zip(&read) {
        let id = read[0]
            .strip_prefix("id ")
            .unwrap_or_else(|| panic!("authres: {read:?} for {field}"));
        let claims = id.eq_ignore_ascii_case(HOST);
        assert_eq!(
            claims_authserv_id(field.as_bytes(), HOST),
            claims,
            "{field}"
        );
        ours += claims as usize;
    }
    assert_eq!(ours, 5);
}

#[test]
fn every_icann_rule_gives_the_registrable_domain_publicsuffixlist_gives() {
    let out = python("psl_expect.py", &[&suffix_list()], b"");
    let mut checked = 0;
    let mut differ = Vec::new();
    for line in out.lines() {
        let (domain, expected) = line.split_once(' ').unwrap();
        let expected = (expected != "-").then_some(expected);
        let ours = registrable_domain(domain);
        if ours.as_deref() != expected {
            differ.push(format!(
                "{domain}: ours {ours:?}, publicsuffixlist {expected:?}"
            ));
        }
        checked += 1;
    }
    assert!(checked > 20_000, "{checked} names");
    assert!(
        differ.is_empty(),
        "{} differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

#[test]
fn dmarc_results_agree_with_the_dmarc_package() {
    let records = [
        "v=DMARC1; p=reject",
        "v=DMARC1; p=quarantine; adkim=s",
        "v=DMARC1; p=none; aspf=s",
        "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s",
        "v=DMARC1; p=quarantine; sp=none",
    ];
    let authors = ["example.com", "news.example.com", "mine.co.uk"];
    let identifiers = [
        "example.com",
        "news.example.com",
        "mail.example.com",
        "other.example",
        "mine.co.uk",
        "x.mine.co.uk",
        "other.co.uk",
    ];
    let spf_results = [
        AuthResult::Pass,
        AuthResult::Fail,
        AuthResult::SoftFail,
        AuthResult::None,
    ];
    let dkim_results = [AuthResult::Pass, AuthResult::Fail];
    let mut input = String::new();
    let mut ours = Vec::new();
    for record in records {
        for author in authors {
            for inherited in [false, true] {
                let discovered = Discovered::Policy {
                    record: postbox::dmarc::record::parse(record.as_bytes()).unwrap(),
                    at: author.into(),
                    inherited,
                };
                for &spf_result in &spf_results {
                    for spf_domain in identifiers {
                        for dkim in [None, Some(0), Some(1)] {
                            for dkim_domain in identifiers {
                                let signatures: Vec<DkimOutcome<'_>> = dkim
                                    .map(|i| signature(dkim_results[i], dkim_domain, ""))
                                    .into_iter()
                                    .collect();
                                let facts = AuthFacts {
                                    author_domain: author,
                                    spf: spf(spf_result, spf_domain),
                                    dkim: &signatures,
                                };
                                let e = evaluate(&facts, &discovered, 0);
                                ours.push(format!("{} {}", e.result.as_str(), e.applied.as_str()));
                                let dkim_text = signatures
                                    .iter()
                                    .map(|s| format!("{}:{}", s.result.as_str(), s.domain))
                                    .next()
                                    .unwrap_or_else(|| "-".into());
                                input.push_str(&format!(
                                    "{record}\t{author}\t{}\t{}\t{spf_domain}\t{dkim_text}\n",
                                    inherited as u8,
                                    spf_result.as_str()
                                ));
                                if dkim.is_none() {
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let out = python("dmarc_eval.py", &[&suffix_list()], input.as_bytes());
    let theirs: Vec<&str> = out.lines().collect();
    assert_eq!(theirs.len(), ours.len());
    let cases: Vec<&str> = input.lines().collect();
    let differ: Vec<String> = (0..ours.len())
        .filter(|&i| ours[i] != theirs[i])
        .map(|i| format!("{}: ours {}, dmarc {}", cases[i], ours[i], theirs[i]))
        .collect();
    assert!(ours.len() > 4000, "{} cases", ours.len());
    assert!(
        differ.is_empty(),
        "{} differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

/// The server's path at the end of DATA, for forged mail from a domain
/// that publishes p=reject: discovery, evaluation, the judgement, and the
/// header a tagged or delivered message would carry.
#[test]
fn the_end_of_data_path_refuses_a_forgery_of_a_reject_domain() {
    let zone: &[(&str, &[&str])] = &[(
        "_dmarc.bank.example",
        &[
            "v=spf1 -all",
            "v=DMARC1; p=reject; rua=mailto:d@bank.example",
        ],
    )];
    let facts = AuthFacts {
        author_domain: "login.bank.example",
        spf: spf(AuthResult::Pass, "cheap-host.example"),
        dkim: &[],
    };
    let discovered = discover(facts.author_domain, zone);
    assert!(matches!(
        discovered,
        Discovered::Policy {
            inherited: true,
            ..
        }
    ));
    let evaluation = evaluate(&facts, &discovered, 42);
    let verdict = judge(&facts, &evaluation, false, InboundModes::default());
    let Verdict::Refuse {
        code,
        enhanced,
        reason,
    } = &verdict
    else {
        panic!("{verdict:?}")
    };
    assert_eq!((*code, *enhanced), (550, "5.7.1"));
    assert!(reason.contains("bank.example"), "{reason}");
    let field = authentication_results(HOST, Some(&facts.spf), Some(facts.dkim), Some(&evaluation));
    let read = &authres_reads(&[field])[0];
    assert!(read.contains(&"result dmarc=fail".to_owned()), "{read:?}");
    assert!(read.contains(&"prop header.from=login.bank.example".to_owned()));
}
