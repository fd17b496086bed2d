//! DMARC (RFC 7489) for mail arriving on port 25, and the
//! Authentication-Results field (RFC 8601) that records it. Sans-IO: no
//! DNS and no clock here. The caller drives it at the end of DATA:
//!
//! ```text
//!  From: domain ─▶ PolicyLookup ──query()──▶ caller asks DNS for TXT
//!                      ▲  └──────answer(TxtAnswer)◀──┘   (at most twice)
//!                      └─ outcome(): Discovered
//!  SPF and DKIM results (AuthFacts) + Discovered + random draw
//!        ─▶ evaluate() ─▶ Evaluation (pass/fail/none/temperror/permerror,
//!                                      policy, alignment, reason)
//!        ─▶ judge(modes, From: is a member's?) ─▶ Verdict
//!                      (deliver / spam tag / 550 5.7.x / 451 4.7.x)
//!        ─▶ authentication_results(hostname, …) ─▶ the header field
//! ```
//!
//! * [`psl`]: organizational domains from the vendored Public Suffix List.
//! * [`record`]: the DMARC TXT record.
//! * [`discovery`]: which TXT names to ask, what the answers mean.
//! * [`evaluate`]: alignment and the DMARC result with its policy.
//! * [`judge`]: the inbound decision over SPF, DKIM and DMARC.
//! * [`header`]: writing our Authentication-Results field, and spotting
//!   incoming ones that claim our name.
//!
//! The SPF and DKIM verifiers' results come in as [`AuthResult`] values;
//! mapping their own types into these is the caller's.

pub mod discovery;
pub mod evaluate;
pub mod header;
pub mod judge;
pub mod psl;
pub mod punycode;
pub mod record;

pub use discovery::{Discovered, PolicyLookup, TxtAnswer};
pub use evaluate::{evaluate, strictest, Aligned, DmarcResult, Evaluation};
pub use header::{authentication_results, claims_authserv_id};
pub use judge::{judge, DkimMode, Enforcement, InboundModes, Verdict};
pub use psl::organizational_domain;
pub use record::{AlignmentMode, Disposition, Record};

/// The result of one SPF check or one DKIM signature, in the words of
/// RFC 8601 §2.7 (for DKIM, `softfail` does not occur).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl AuthResult {
    /// The keyword of Authentication-Results.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::SoftFail => "softfail",
            AuthResult::Neutral => "neutral",
            AuthResult::None => "none",
            AuthResult::TempError => "temperror",
            AuthResult::PermError => "permerror",
        }
    }
}

/// Which identity SPF checked: the MAIL FROM domain, or the HELO name for
/// a null reverse path (RFC 7208 §2.4), which DMARC then uses (RFC 7489
/// §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfIdentity {
    MailFrom,
    Helo,
}

/// What SPF said about the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpfOutcome<'a> {
    pub result: AuthResult,
    pub identity: SpfIdentity,
    /// The domain checked (of MAIL FROM, or the HELO name).
    pub domain: &'a str,
}

/// What one DKIM signature's check said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DkimOutcome<'a> {
    pub result: AuthResult,
    /// The signing domain, `d=`.
    pub domain: &'a str,
    /// The selector, `s=`.
    pub selector: &'a str,
    /// The start of the signature value `b=` (RFC 6008: at least 8
    /// characters tell signatures apart); empty to leave it out.
    pub signature: &'a str,
    /// Why it did not pass, for the header (e.g. "body hash mismatch").
    pub reason: Option<&'a str>,
}

/// The authentication facts of one message, as evaluation takes them.
#[derive(Debug, Clone, Copy)]
pub struct AuthFacts<'a> {
    /// The domain of the From: field (RFC 7489 §3.1: the author domain).
    pub author_domain: &'a str,
    pub spf: SpfOutcome<'a>,
    pub dkim: &'a [DkimOutcome<'a>],
}

/// The distinct domains of the From: addresses, lower case, in order:
/// the author domains DMARC evaluates. With several, RFC 7489 §6.6.1 has
/// each evaluated and the strictest result applied
/// ([`evaluate::strictest`]); with none (no address, or one without a
/// domain) there is nothing to evaluate.
pub fn author_domains(addresses: &[String]) -> Vec<String> {
    let mut domains: Vec<String> = Vec::new();
    for address in addresses {
        let Some((_, domain)) = address.rsplit_once('@') else {
            return Vec::new();
        };
        let domain = domain.to_ascii_lowercase();
        if domain.is_empty() {
            return Vec::new();
        }
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    domains
}

#[cfg(test)]
mod tests {
    use super::author_domains;

    #[test]
    fn the_author_domains_are_the_distinct_domains_of_from() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(author_domains(&v(&["joe@Example.COM"])), ["example.com"]);
        assert_eq!(
            author_domains(&v(&["a@example.com", "b@EXAMPLE.com"])),
            ["example.com"]
        );
        assert_eq!(
            author_domains(&v(&["a@example.com", "b@example.org", "c@example.com"])),
            ["example.com", "example.org"]
        );
        assert!(author_domains(&v(&[])).is_empty());
        assert!(author_domains(&v(&["nodomain"])).is_empty());
        assert!(author_domains(&v(&["a@example.com", "b@"])).is_empty());
    }
}
