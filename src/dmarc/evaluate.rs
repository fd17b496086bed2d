//! Identifier alignment (RFC 7489 §3.1) and the DMARC result with the
//! policy it asks for (§6.6.2, §6.6.4).

use super::discovery::Discovered;
use super::psl::{normalize_domain, organizational_domain};
use super::record::{AlignmentMode, Disposition};
use super::{AuthFacts, AuthResult};
use std::fmt::Write as _;

/// The DMARC result (RFC 7489 §11.2, as Authentication-Results words it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcResult {
    Pass,
    Fail,
    /// No policy published (or DMARC not looked up).
    None,
    TempError,
    /// A broken record, or a From: domain that is no domain name.
    PermError,
}

impl DmarcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::None => "none",
            DmarcResult::TempError => "temperror",
            DmarcResult::PermError => "permerror",
        }
    }
}

/// What one mechanism (SPF, or the DKIM signatures together) gives DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aligned {
    /// It passed for a domain aligned with the author domain.
    Pass,
    /// It could not be checked (temperror) for an aligned domain: it
    /// might have passed.
    Undecided,
    No,
}

/// The DMARC evaluation of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub result: DmarcResult,
    /// The From: domain (normalized when it is a domain name), `header.from`.
    pub author_domain: String,
    /// The domain whose record applied.
    pub policy_domain: Option<String>,
    /// The policy the record asks for this author domain (`p`, or `sp`
    /// for a subdomain), when a record applies.
    pub requested: Option<Disposition>,
    /// What to do with this message: `none` unless it failed; the
    /// requested policy, or the next milder one when `pct` left it out.
    pub applied: Disposition,
    /// Alignment by the record's modes (relaxed when there is none).
    pub spf: Aligned,
    pub dkim: Aligned,
    /// SPF or a DKIM signature passed for exactly the author domain: an
    /// aligned pass whatever a record, still unknown, might say.
    pub exact_pass: bool,
    /// Why, for the log and the header.
    pub reason: String,
}

impl Evaluation {
    /// SPF or DKIM passed aligned.
    pub fn aligned_pass(&self) -> bool {
        self.spf == Aligned::Pass || self.dkim == Aligned::Pass
    }
}

/// Whether the authenticated `identifier` aligns with the author domain.
fn aligns(identifier: &str, author: &str, author_org: &str, mode: AlignmentMode) -> bool {
    let Some(identifier) = normalize_domain(identifier) else {
        return false;
    };
    match mode {
        AlignmentMode::Strict => identifier == author,
        AlignmentMode::Relaxed => organizational_domain(&identifier).as_deref() == Some(author_org),
    }
}

fn exactly(identifier: &str, author: &str) -> bool {
    normalize_domain(identifier).as_deref() == Some(author)
}

/// How SPF and DKIM align with the author domain, and whether one passed
/// for exactly that name.
fn alignment(
    facts: &AuthFacts<'_>,
    author: &str,
    author_org: &str,
    spf_mode: AlignmentMode,
    dkim_mode: AlignmentMode,
) -> (Aligned, Aligned, bool) {
    let spf = &facts.spf;
    let spf_aligned = aligns(spf.domain, author, author_org, spf_mode);
    let spf_alignment = match spf.result {
        AuthResult::Pass if spf_aligned => Aligned::Pass,
        AuthResult::TempError if spf_aligned => Aligned::Undecided,
        _ => Aligned::No,
    };
    let aligned_dkim = |result| {
        facts
            .dkim
            .iter()
            .any(|s| s.result == result && aligns(s.domain, author, author_org, dkim_mode))
    };
    let dkim_alignment = if aligned_dkim(AuthResult::Pass) {
        Aligned::Pass
    } else if aligned_dkim(AuthResult::TempError) {
        Aligned::Undecided
    } else {
        Aligned::No
    };
    let exact_pass = (spf.result == AuthResult::Pass && exactly(spf.domain, author))
        || facts
            .dkim
            .iter()
            .any(|s| s.result == AuthResult::Pass && exactly(s.domain, author));
    (spf_alignment, dkim_alignment, exact_pass)
}

/// Evaluates DMARC for a message: its SPF and DKIM results, the policy
/// discovery found, and `sample`, a uniform random draw from 0 to 99 that
/// decides whether a `pct` below 100 picks this message.
pub fn evaluate(facts: &AuthFacts<'_>, discovered: &Discovered, sample: u8) -> Evaluation {
    let author = normalize_domain(facts.author_domain);
    let author_org = author.as_deref().and_then(organizational_domain);
    let (Some(author), Some(author_org)) = (author, author_org) else {
        return Evaluation {
            result: DmarcResult::PermError,
            author_domain: facts.author_domain.to_owned(),
            policy_domain: None,
            requested: None,
            applied: Disposition::None,
            spf: Aligned::No,
            dkim: Aligned::No,
            exact_pass: false,
            reason: "From: domain is not a domain name".into(),
        };
    };
    let (spf_mode, dkim_mode) = match discovered {
        Discovered::Policy { record, .. } => (record.spf_alignment, record.dkim_alignment),
        _ => (AlignmentMode::Relaxed, AlignmentMode::Relaxed),
    };

    let (spf_alignment, dkim_alignment, exact_pass) =
        alignment(facts, &author, &author_org, spf_mode, dkim_mode);
    let mut evaluation = Evaluation {
        result: DmarcResult::None,
        author_domain: author,
        policy_domain: None,
        requested: None,
        applied: Disposition::None,
        spf: spf_alignment,
        dkim: dkim_alignment,
        exact_pass,
        reason: String::new(),
    };
    match discovered {
        Discovered::NotSought => evaluation.reason = "DMARC not checked".into(),
        Discovered::NoPolicy { why } => evaluation.reason = (*why).into(),
        Discovered::Broken { why } => {
            evaluation.result = DmarcResult::PermError;
            evaluation.reason = why.clone();
        }
        Discovered::TempError { at } => {
            evaluation.result = DmarcResult::TempError;
            evaluation.reason = format!("DNS failed for _dmarc.{at}");
        }
        Discovered::Policy {
            record,
            at,
            inherited,
        } => {
            let requested = match (inherited, record.subdomain_policy) {
                (true, Some(subdomain_policy)) => subdomain_policy,
                _ => record.policy,
            };
            evaluation.policy_domain = Some(at.clone());
            evaluation.requested = Some(requested);
            if evaluation.aligned_pass() {
                evaluation.result = DmarcResult::Pass;
                evaluation.reason = match spf_alignment {
                    Aligned::Pass => "aligned SPF pass".into(),
                    _ => "aligned DKIM pass".into(),
                };
            } else if spf_alignment == Aligned::Undecided || dkim_alignment == Aligned::Undecided {
                evaluation.result = DmarcResult::TempError;
                evaluation.reason = "an aligned SPF or DKIM check failed temporarily".into();
            } else {
                evaluation.result = DmarcResult::Fail;
                evaluation.applied = if sample < record.percent {
                    requested
                } else {
                    requested.milder()
                };
                evaluation.reason = failure_reason(facts, &evaluation.author_domain);
                if evaluation.applied != requested {
                    let _ = write!(evaluation.reason, "; pct={} spared it", record.percent);
                }
            }
        }
    }
    evaluation
}

/// How strongly an evaluation acts on the message, for [`strictest`]: a
/// definite refusal first, then an unknown outcome, then milder failures.
fn strictness(evaluation: &Evaluation) -> u8 {
    match (evaluation.result, evaluation.applied) {
        (DmarcResult::Fail, Disposition::Reject) => 6,
        (DmarcResult::Fail, Disposition::Quarantine) => 5,
        (DmarcResult::TempError, _) => 4,
        (DmarcResult::Fail, Disposition::None) => 3,
        (DmarcResult::PermError, _) => 2,
        (DmarcResult::None, _) => 1,
        (DmarcResult::Pass, _) => 0,
    }
}

/// Of the evaluations of several author domains (a From: with addresses
/// in different domains), the one to apply: the strictest (RFC 7489
/// §6.6.1), the first of equals. None for none.
pub fn strictest(evaluations: Vec<Evaluation>) -> Option<Evaluation> {
    let mut strictest: Option<Evaluation> = None;
    for evaluation in evaluations {
        if strictest
            .as_ref()
            .is_none_or(|s| strictness(&evaluation) > strictness(s))
        {
            strictest = Some(evaluation);
        }
    }
    strictest
}

/// Which identifiers passed and failed, for a failure.
fn failure_reason(facts: &AuthFacts<'_>, author: &str) -> String {
    let mut reason = format!(
        "no aligned pass for {author}: SPF {} ({})",
        facts.spf.result.as_str(),
        facts.spf.domain
    );
    if facts.dkim.is_empty() {
        reason.push_str(", no DKIM signature");
    }
    for signature in facts.dkim.iter().take(3) {
        let _ = write!(
            reason,
            ", DKIM {} ({})",
            signature.result.as_str(),
            signature.domain
        );
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dmarc::record::parse;
    use crate::dmarc::{DkimOutcome, SpfIdentity, SpfOutcome};

    fn spf(result: AuthResult, domain: &str) -> SpfOutcome<'_> {
        SpfOutcome {
            result,
            identity: SpfIdentity::MailFrom,
            domain,
        }
    }

    fn dkim(result: AuthResult, domain: &str) -> DkimOutcome<'_> {
        DkimOutcome {
            result,
            domain,
            selector: "s1",
            signature: "",
            reason: None,
        }
    }

    fn policy(text: &str, at: &str, inherited: bool) -> Discovered {
        Discovered::Policy {
            record: parse(text.as_bytes()).unwrap(),
            at: at.into(),
            inherited,
        }
    }

    fn run(
        author: &str,
        spf_result: SpfOutcome<'_>,
        signatures: &[DkimOutcome<'_>],
        found: &Discovered,
    ) -> Evaluation {
        let facts = AuthFacts {
            author_domain: author,
            spf: spf_result,
            dkim: signatures,
        };
        evaluate(&facts, found, 0)
    }

    /// RFC 7489 §3.1.1 and §3.1.2: the examples of DKIM and SPF alignment.
    #[test]
    fn rfc7489_alignment_examples() {
        let relaxed = policy("v=DMARC1; p=reject", "example.com", false);
        let strict = policy("v=DMARC1; p=reject; adkim=s; aspf=s", "example.com", false);
        let none = spf(AuthResult::None, "unrelated.example");
        // DKIM d=example.com, From: news.example.com: relaxed aligns,
        // strict does not.
        let signature = [dkim(AuthResult::Pass, "example.com")];
        let from = "news.example.com";
        assert_eq!(
            run(from, none, &signature, &relaxed).result,
            DmarcResult::Pass
        );
        assert_eq!(
            run(from, none, &signature, &strict).result,
            DmarcResult::Fail
        );
        // MAIL FROM example.com, From: news.example.com: the same for SPF.
        let spf_pass = spf(AuthResult::Pass, "example.com");
        assert_eq!(run(from, spf_pass, &[], &relaxed).spf, Aligned::Pass);
        assert_eq!(run(from, spf_pass, &[], &strict).spf, Aligned::No);
        // Exact names align either way; case and a final dot do not matter.
        let spf_pass = spf(AuthResult::Pass, "News.Example.COM.");
        assert_eq!(run(from, spf_pass, &[], &strict).result, DmarcResult::Pass);
        // Different organizational domains never align.
        let other = [dkim(AuthResult::Pass, "example.net")];
        assert_eq!(run(from, none, &other, &relaxed).dkim, Aligned::No);
        // Sibling names under a public suffix are different organizations.
        let sibling = [dkim(AuthResult::Pass, "other.co.uk")];
        assert_eq!(
            run("mine.co.uk", none, &sibling, &relaxed).dkim,
            Aligned::No
        );
        let same = [dkim(AuthResult::Pass, "mail.mine.co.uk")];
        assert_eq!(run("mine.co.uk", none, &same, &relaxed).dkim, Aligned::Pass);
    }

    #[test]
    fn only_passing_results_align_and_any_passing_signature_is_enough() {
        let found = policy("v=DMARC1; p=reject", "example.com", false);
        let signatures = [
            dkim(AuthResult::Fail, "example.com"),
            dkim(AuthResult::Pass, "example.org"),
            dkim(AuthResult::Pass, "mail.example.com"),
        ];
        let e = run(
            "example.com",
            spf(AuthResult::SoftFail, "example.com"),
            &signatures,
            &found,
        );
        assert_eq!(
            (e.result, e.spf, e.dkim),
            (DmarcResult::Pass, Aligned::No, Aligned::Pass)
        );
        assert!(!e.exact_pass);
        let e = run(
            "example.com",
            spf(AuthResult::Neutral, "example.com"),
            &signatures[..2],
            &found,
        );
        assert_eq!(e.result, DmarcResult::Fail);
        assert_eq!(e.applied, Disposition::Reject);
        assert!(e.reason.contains("DKIM fail (example.com)"), "{}", e.reason);
    }

    #[test]
    fn subdomains_get_sp_only_when_the_record_is_inherited() {
        let text = "v=DMARC1; p=reject; sp=quarantine";
        let fail = spf(AuthResult::Fail, "example.com");
        let e = run(
            "sub.example.com",
            fail,
            &[],
            &policy(text, "example.com", true),
        );
        assert_eq!(
            (e.requested, e.applied),
            (Some(Disposition::Quarantine), Disposition::Quarantine)
        );
        // A subdomain's own record: its p.
        let e = run(
            "sub.example.com",
            fail,
            &[],
            &policy(text, "sub.example.com", false),
        );
        assert_eq!(e.applied, Disposition::Reject);
        // Without sp, p covers subdomains.
        let e = run(
            "sub.example.com",
            fail,
            &[],
            &policy("v=DMARC1; p=reject", "example.com", true),
        );
        assert_eq!(e.applied, Disposition::Reject);
    }

    #[test]
    fn pct_applies_the_policy_to_the_drawn_share_and_a_milder_one_to_the_rest() {
        let facts = AuthFacts {
            author_domain: "example.com",
            spf: spf(AuthResult::Fail, "example.com"),
            dkim: &[],
        };
        let found = policy("v=DMARC1; p=reject; pct=25", "example.com", false);
        assert_eq!(evaluate(&facts, &found, 0).applied, Disposition::Reject);
        assert_eq!(evaluate(&facts, &found, 24).applied, Disposition::Reject);
        let spared = evaluate(&facts, &found, 25);
        assert_eq!(spared.applied, Disposition::Quarantine);
        assert!(spared.reason.contains("pct=25"));
        let found = policy("v=DMARC1; p=quarantine; pct=0", "example.com", false);
        assert_eq!(evaluate(&facts, &found, 0).applied, Disposition::None);
        let found = policy("v=DMARC1; p=quarantine", "example.com", false);
        assert_eq!(
            evaluate(&facts, &found, 99).applied,
            Disposition::Quarantine
        );
    }

    #[test]
    fn an_aligned_temporary_error_makes_a_failure_a_temperror() {
        let found = policy("v=DMARC1; p=reject", "example.com", false);
        let e = run(
            "example.com",
            spf(AuthResult::TempError, "example.com"),
            &[],
            &found,
        );
        assert_eq!(
            (e.result, e.spf),
            (DmarcResult::TempError, Aligned::Undecided)
        );
        assert_eq!(e.applied, Disposition::None);
        let e = run(
            "example.com",
            spf(AuthResult::Fail, "example.com"),
            &[dkim(AuthResult::TempError, "example.com")],
            &found,
        );
        assert_eq!(
            (e.result, e.dkim),
            (DmarcResult::TempError, Aligned::Undecided)
        );
        // An unaligned one changes nothing.
        let e = run(
            "example.com",
            spf(AuthResult::TempError, "example.net"),
            &[],
            &found,
        );
        assert_eq!(e.result, DmarcResult::Fail);
        // A pass beats it.
        let e = run(
            "example.com",
            spf(AuthResult::TempError, "example.com"),
            &[dkim(AuthResult::Pass, "example.com")],
            &found,
        );
        assert_eq!(e.result, DmarcResult::Pass);
    }

    #[test]
    fn of_several_author_domains_the_strictest_applies() {
        let fail = spf(AuthResult::Fail, "example.org");
        let pass = spf(AuthResult::Pass, "example.org");
        let reject = policy("v=DMARC1; p=reject", "example.com", false);
        let quarantine = policy("v=DMARC1; p=quarantine", "example.org", false);
        let none = Discovered::NoPolicy {
            why: "no DMARC record",
        };
        let temp = Discovered::TempError {
            at: "example.net".into(),
        };
        let passing = run("example.org", pass, &[], &quarantine);
        let quarantined = run("example.org", fail, &[], &quarantine);
        let rejected = run("example.com", fail, &[], &reject);
        let unknown = run("example.net", fail, &[], &temp);
        let unpublished = run("example.info", fail, &[], &none);
        let pick = |all: &[&Evaluation]| {
            strictest(all.iter().map(|e| (*e).clone()).collect()).map(|e| e.author_domain)
        };
        assert_eq!(pick(&[&passing, &rejected]).as_deref(), Some("example.com"));
        assert_eq!(
            pick(&[&unknown, &quarantined]).as_deref(),
            Some("example.org")
        );
        assert_eq!(pick(&[&passing, &unknown]).as_deref(), Some("example.net"));
        assert_eq!(
            pick(&[&unpublished, &passing]).as_deref(),
            Some("example.info")
        );
        assert_eq!(
            pick(&[&rejected, &quarantined, &unknown]).as_deref(),
            Some("example.com")
        );
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn without_a_usable_policy_the_result_says_why_and_alignment_is_relaxed() {
        let pass = spf(AuthResult::Pass, "mail.example.com");
        let e = run(
            "example.com",
            pass,
            &[],
            &Discovered::NoPolicy {
                why: "no DMARC record",
            },
        );
        assert_eq!(
            (e.result, e.spf, e.exact_pass),
            (DmarcResult::None, Aligned::Pass, false)
        );
        let e = run(
            "example.com",
            pass,
            &[],
            &Discovered::TempError {
                at: "example.com".into(),
            },
        );
        assert_eq!(e.result, DmarcResult::TempError);
        let e = run(
            "example.com",
            pass,
            &[],
            &Discovered::Broken { why: "bad".into() },
        );
        assert_eq!(e.result, DmarcResult::PermError);
        let e = run("not a domain", pass, &[], &Discovered::NotSought);
        assert_eq!(e.result, DmarcResult::PermError);
        let e = run("example.com", pass, &[], &Discovered::NotSought);
        assert_eq!(e.result, DmarcResult::None);
    }
}
