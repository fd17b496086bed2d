//! The checks of a stranger's message that need DNS, run by the shell at
//! the end of DATA: SPF of the MAIL FROM (or HELO), every DKIM signature
//! (up to a bound), and DMARC for the From: domain. The checkers are
//! sans-IO; this asks the resolver what they need and hands the results
//! to the policy's judgement (`dmarc::judge`) and to the
//! Authentication-Results field that records them.

use crate::dkim::{self, KeyLookup, Status, Verifier};
use crate::dmarc::{
    self, AuthFacts, AuthResult, Discovered, DkimOutcome, Evaluation, InboundModes, PolicyLookup,
    SpfIdentity, SpfOutcome, TxtAnswer, Verdict,
};
use crate::dns::message::{Answer, TYPE_TXT};
use crate::dns::Resolver;
use crate::spf::{self, Spf, SpfResult};
use std::net::IpAddr;

/// What the envelope and the header section said about a message.
pub struct Arrival<'a> {
    pub peer: IpAddr,
    /// MAIL FROM; "" for the null sender.
    pub sender: &'a str,
    pub helo: &'a str,
    /// The addresses of the From: field.
    pub from_header: &'a [String],
    /// One of them is a member's address.
    pub from_is_member: bool,
}

/// What the checks found and what the policy decided.
pub struct Checked {
    pub verdict: Verdict,
    /// The `Authentication-Results:` field, CRLF-terminated.
    pub header: String,
    /// Each finding, for the counters: "spf=pass", "dkim=fail", ...
    pub findings: Vec<String>,
}

/// Runs the checks `modes` asks for. `verifier` has seen the message as
/// stored; `hostname` is our authserv-id; `now` is Unix seconds.
pub async fn check(
    resolver: &Resolver,
    hostname: &str,
    modes: InboundModes,
    arrival: &Arrival<'_>,
    verifier: Option<Verifier>,
    now: u64,
) -> Checked {
    let spf = match modes.spf {
        dmarc::Enforcement::Off => None,
        _ => Some(check_spf(resolver, hostname, arrival, now).await),
    };
    let signatures = match (modes.dkim, verifier) {
        (dmarc::DkimMode::Verify, Some(verifier)) => {
            Some(verify_dkim(resolver, verifier, now).await)
        }
        _ => None,
    };
    let spf_outcome = spf.as_ref().map(|verdict| SpfOutcome {
        result: spf_result(verdict.result),
        identity: match verdict.identity {
            spf::Identity::MailFrom => SpfIdentity::MailFrom,
            spf::Identity::Helo => SpfIdentity::Helo,
        },
        domain: &verdict.domain,
    });
    let dkim_outcomes: Vec<DkimOutcome> = signatures
        .iter()
        .flatten()
        .map(|r| DkimOutcome {
            result: dkim_result(r.status),
            domain: &r.domain,
            selector: &r.selector,
            signature: &r.header_b,
            reason: r.reason,
        })
        .collect();
    // Unchecked SPF weighs as no policy: it cannot align.
    let unchecked = SpfOutcome {
        result: AuthResult::None,
        identity: SpfIdentity::MailFrom,
        domain: "",
    };
    let authors = dmarc::author_domains(arrival.from_header);
    let mut evaluations = Vec::new();
    // A From: without a domain still gets an evaluation (it fails to apply).
    for author in authors
        .iter()
        .map(String::as_str)
        .chain(authors.is_empty().then_some(""))
    {
        let facts = AuthFacts {
            author_domain: author,
            spf: spf_outcome.unwrap_or(unchecked),
            dkim: &dkim_outcomes,
        };
        let discovered = match modes.dmarc {
            dmarc::Enforcement::Off => Discovered::NotSought,
            _ => discover(resolver, author).await,
        };
        evaluations.push(dmarc::evaluate(&facts, &discovered, sample()));
    }
    let evaluation: Evaluation = dmarc::strictest(evaluations).expect("at least one author");
    let facts = AuthFacts {
        author_domain: &evaluation.author_domain,
        spf: spf_outcome.unwrap_or(unchecked),
        dkim: &dkim_outcomes,
    };
    let verdict = dmarc::judge(&facts, &evaluation, arrival.from_is_member, modes);
    let dmarc_checked = modes.dmarc != dmarc::Enforcement::Off;
    let header = dmarc::authentication_results(
        hostname,
        spf_outcome.as_ref(),
        signatures.as_ref().map(|_| dkim_outcomes.as_slice()),
        dmarc_checked.then_some(&evaluation),
    );
    let mut findings = Vec::new();
    if let Some(spf) = &spf_outcome {
        findings.push(format!("spf={}", spf.result.as_str()));
    }
    match &signatures {
        Some(list) if list.is_empty() => findings.push("dkim=none".into()),
        Some(_) => findings.extend(
            dkim_outcomes
                .iter()
                .map(|d| format!("dkim={}", d.result.as_str())),
        ),
        None => {}
    }
    if dmarc_checked {
        findings.push(format!("dmarc={}", evaluation.result.as_str()));
    }
    Checked {
        verdict,
        header,
        findings,
    }
}

async fn check_spf(
    resolver: &Resolver,
    hostname: &str,
    arrival: &Arrival<'_>,
    now: u64,
) -> spf::Verdict {
    let check = Spf::mail_from(arrival.peer, arrival.sender, arrival.helo, hostname).at_time(now);
    spf::check(resolver, check).await
}

fn spf_result(result: SpfResult) -> AuthResult {
    match result {
        SpfResult::None => AuthResult::None,
        SpfResult::Neutral => AuthResult::Neutral,
        SpfResult::Pass => AuthResult::Pass,
        SpfResult::Fail => AuthResult::Fail,
        SpfResult::SoftFail => AuthResult::SoftFail,
        SpfResult::TempError => AuthResult::TempError,
        SpfResult::PermError => AuthResult::PermError,
    }
}

fn dkim_result(status: Status) -> AuthResult {
    match status {
        Status::Pass => AuthResult::Pass,
        Status::Fail => AuthResult::Fail,
        Status::Neutral => AuthResult::Neutral,
        Status::TempError => AuthResult::TempError,
        Status::PermError => AuthResult::PermError,
    }
}

/// Looks up each signature's key, then gives every signature's result.
async fn verify_dkim(resolver: &Resolver, verifier: Verifier, now: u64) -> Vec<dkim::DkimResult> {
    let hashed = verifier.finish();
    let mut keys = Vec::new();
    for name in hashed.key_queries() {
        let found = match resolver.lookup(&name, TYPE_TXT).await {
            Ok(answer @ Answer::Records(_)) => KeyLookup::Records(
                answer
                    .txt()
                    .iter()
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .collect(),
            ),
            Ok(_) => KeyLookup::NotFound,
            Err(_) => KeyLookup::TempError,
        };
        keys.push((name, found));
    }
    hashed.results(
        |name| {
            keys.iter()
                .find(|(n, _)| n == name)
                .map_or(KeyLookup::TempError, |(_, k)| k.clone())
        },
        now,
    )
}

/// Finds the author domain's DMARC policy (at most two TXT questions).
async fn discover(resolver: &Resolver, author: &str) -> Discovered {
    let mut lookup = PolicyLookup::new(author);
    while let Some(name) = lookup.query() {
        let answer = resolver.lookup(&name, TYPE_TXT).await;
        let records: Vec<Vec<u8>> = match &answer {
            Ok(a) => a.txt().iter().map(|t| t.to_vec()).collect(),
            Err(_) => Vec::new(),
        };
        lookup.answer(match &answer {
            Ok(Answer::Records(_)) => TxtAnswer::Records(&records),
            Ok(Answer::NoData { .. }) => TxtAnswer::NoData,
            Ok(Answer::NoSuchName { .. }) => TxtAnswer::NxDomain,
            Err(_) => TxtAnswer::TempFail,
        });
    }
    lookup
        .into_outcome()
        .expect("no question left means an outcome")
}

/// A uniform draw from 0 to 99, for a DMARC record's `pct`.
fn sample() -> u8 {
    let mut byte = [0u8; 1];
    let rng = ring::rand::SystemRandom::new();
    let _ = ring::rand::SecureRandom::fill(&rng, &mut byte);
    // 256 = 2 × 100 + 56: redraw rather than favour the low numbers.
    if byte[0] >= 200 {
        return sample();
    }
    byte[0] % 100
}
