//! Policy discovery (RFC 7489 §6.6.3) without I/O: [`PolicyLookup`] says
//! which TXT name it needs (`_dmarc.<author domain>`, then, if that has no
//! DMARC record, `_dmarc.<organizational domain>`), the caller asks DNS
//! and hands back what came, until it has an outcome.
//!
//! ```ignore
//! let mut lookup = PolicyLookup::new(author_domain);
//! while let Some(name) = lookup.query() {
//!     let answer = /* TXT lookup of `name` */;
//!     lookup.answer(answer);
//! }
//! let discovered = lookup.into_outcome();
//! ```

use super::psl::{normalize_domain, organizational_domain};
use super::record::{self, Record};

/// What DNS answered for a TXT question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxtAnswer<'a> {
    /// The TXT records, each with its character-strings joined.
    Records(&'a [Vec<u8>]),
    NxDomain,
    /// The name exists but has no TXT record.
    NoData,
    /// SERVFAIL, a timeout, no resolver: the answer is not known.
    TempFail,
}

/// What discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovered {
    /// A usable record, and the domain it was published at.
    Policy {
        record: Record,
        at: String,
        /// Found at the organizational domain for a subdomain author, so
        /// `sp` applies (§6.3).
        inherited: bool,
    },
    /// No DMARC record, or several (§6.6.3 step 5): DMARC does not apply.
    NoPolicy { why: &'static str },
    /// A DMARC record too broken to use (§6.6.3 step 6), or an author
    /// domain that is no domain name: DMARC's permerror.
    Broken { why: String },
    /// DNS could not answer: whether a policy exists is unknown.
    TempError { at: String },
    /// DMARC was not looked up (it is off).
    NotSought,
}

#[derive(Debug, Clone)]
enum Step {
    AuthorDomain,
    OrganizationalDomain,
    Done(Discovered),
}

/// The discovery of one author domain's policy.
#[derive(Debug, Clone)]
pub struct PolicyLookup {
    author_domain: String,
    organizational_domain: String,
    step: Step,
}

impl PolicyLookup {
    /// Starts discovery for the From: domain.
    pub fn new(author_domain: &str) -> PolicyLookup {
        let normalized = normalize_domain(author_domain);
        let organizational = normalized.as_deref().and_then(organizational_domain);
        match (normalized, organizational) {
            (Some(author), Some(organizational)) => PolicyLookup {
                author_domain: author,
                organizational_domain: organizational,
                step: Step::AuthorDomain,
            },
            _ => PolicyLookup {
                author_domain: String::new(),
                organizational_domain: String::new(),
                step: Step::Done(Discovered::Broken {
                    why: format!("From: domain {author_domain:?} is not a domain name"),
                }),
            },
        }
    }

    /// The TXT name to look up next; None once there is an outcome.
    pub fn query(&self) -> Option<String> {
        match self.step {
            Step::AuthorDomain => Some(format!("_dmarc.{}", self.author_domain)),
            Step::OrganizationalDomain => Some(format!("_dmarc.{}", self.organizational_domain)),
            Step::Done(_) => None,
        }
    }

    /// Takes the answer to [`query`](Self::query).
    pub fn answer(&mut self, answer: TxtAnswer<'_>) {
        let at = match self.step {
            Step::AuthorDomain => self.author_domain.clone(),
            Step::OrganizationalDomain => self.organizational_domain.clone(),
            Step::Done(_) => return,
        };
        let records: Vec<&[u8]> = match answer {
            TxtAnswer::TempFail => {
                self.step = Step::Done(Discovered::TempError { at });
                return;
            }
            TxtAnswer::NxDomain | TxtAnswer::NoData => Vec::new(),
            TxtAnswer::Records(records) => records
                .iter()
                .map(Vec::as_slice)
                .filter(|r| record::is_dmarc(r))
                .collect(),
        };
        let at_author = matches!(self.step, Step::AuthorDomain);
        if records.is_empty() && at_author && self.author_domain != self.organizational_domain {
            self.step = Step::OrganizationalDomain;
            return;
        }
        self.step = Step::Done(match records[..] {
            [] => Discovered::NoPolicy {
                why: "no DMARC record",
            },
            [one] => match record::parse(one) {
                Ok(record) => Discovered::Policy {
                    record,
                    inherited: !at_author,
                    at,
                },
                Err(e) => Discovered::Broken {
                    why: format!("{e} at {at}"),
                },
            },
            _ => Discovered::NoPolicy {
                why: "several DMARC records",
            },
        });
    }

    /// The outcome, once there is one.
    pub fn outcome(&self) -> Option<&Discovered> {
        match &self.step {
            Step::Done(outcome) => Some(outcome),
            _ => None,
        }
    }

    pub fn into_outcome(self) -> Option<Discovered> {
        match self.step {
            Step::Done(outcome) => Some(outcome),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dmarc::Disposition;

    /// Runs discovery against a zone given as (TXT name, answer).
    fn discover(author: &str, zone: &[(&str, TxtAnswer<'_>)]) -> (Discovered, Vec<String>) {
        let mut lookup = PolicyLookup::new(author);
        let mut asked = Vec::new();
        while let Some(name) = lookup.query() {
            assert!(asked.len() < 2, "asked {asked:?} then {name}");
            let answer = zone
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(TxtAnswer::NxDomain, |(_, a)| *a);
            asked.push(name);
            lookup.answer(answer);
        }
        (lookup.into_outcome().unwrap(), asked)
    }

    fn txt(records: &[&str]) -> Vec<Vec<u8>> {
        records.iter().map(|r| r.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_author_domain_record_is_used_first() {
        let example = txt(&["v=DMARC1; p=reject"]);
        let (found, asked) = discover(
            "Example.COM.",
            &[("_dmarc.example.com", TxtAnswer::Records(&example))],
        );
        assert_eq!(asked, ["_dmarc.example.com"]);
        let Discovered::Policy {
            record,
            at,
            inherited,
        } = found
        else {
            panic!("{found:?}")
        };
        assert_eq!(
            (record.policy, at.as_str(), inherited),
            (Disposition::Reject, "example.com", false)
        );
    }

    #[test]
    fn a_subdomain_without_a_record_falls_back_to_the_organizational_domain() {
        // RFC 7489 §6.6.3: mail from a.mail.example.com; only example.com
        // publishes.
        let example = txt(&["v=DMARC1; p=quarantine; sp=reject"]);
        let unrelated = txt(&["some other text", "v=spf1 -all"]);
        let (found, asked) = discover(
            "a.mail.example.com",
            &[
                ("_dmarc.a.mail.example.com", TxtAnswer::Records(&unrelated)),
                ("_dmarc.example.com", TxtAnswer::Records(&example)),
            ],
        );
        assert_eq!(asked, ["_dmarc.a.mail.example.com", "_dmarc.example.com"]);
        assert!(
            matches!(found, Discovered::Policy { inherited: true, ref at, .. } if at == "example.com")
        );
        // NODATA at the subdomain falls back too; mail.example.com is not asked.
        let (_, asked) = discover(
            "a.mail.example.com",
            &[("_dmarc.a.mail.example.com", TxtAnswer::NoData)],
        );
        assert_eq!(asked, ["_dmarc.a.mail.example.com", "_dmarc.example.com"]);
    }

    #[test]
    fn nothing_anywhere_is_no_policy_and_the_domain_is_asked_once() {
        let (found, asked) = discover("example.com", &[]);
        assert_eq!(asked, ["_dmarc.example.com"]);
        assert_eq!(
            found,
            Discovered::NoPolicy {
                why: "no DMARC record"
            }
        );
        let (found, asked) = discover("x.example.co.uk", &[]);
        assert_eq!(asked, ["_dmarc.x.example.co.uk", "_dmarc.example.co.uk"]);
        assert!(matches!(found, Discovered::NoPolicy { .. }));
    }

    #[test]
    fn several_records_mean_no_policy_without_falling_back() {
        let two = txt(&["v=DMARC1; p=reject", "v=DMARC1; p=none"]);
        let org = txt(&["v=DMARC1; p=reject"]);
        let (found, asked) = discover(
            "sub.example.com",
            &[
                ("_dmarc.sub.example.com", TxtAnswer::Records(&two)),
                ("_dmarc.example.com", TxtAnswer::Records(&org)),
            ],
        );
        assert_eq!(asked, ["_dmarc.sub.example.com"]);
        assert_eq!(
            found,
            Discovered::NoPolicy {
                why: "several DMARC records"
            }
        );
    }

    #[test]
    fn a_broken_record_is_a_permerror_and_does_not_fall_back() {
        let broken = txt(&["v=DMARC1; p=maybe"]);
        let org = txt(&["v=DMARC1; p=reject"]);
        let (found, asked) = discover(
            "sub.example.com",
            &[
                ("_dmarc.sub.example.com", TxtAnswer::Records(&broken)),
                ("_dmarc.example.com", TxtAnswer::Records(&org)),
            ],
        );
        assert_eq!(asked.len(), 1);
        assert!(matches!(found, Discovered::Broken { .. }), "{found:?}");
        let (found, asked) = discover("bad..domain", &[]);
        assert!(asked.is_empty());
        assert!(matches!(found, Discovered::Broken { .. }));
    }

    #[test]
    fn a_temporary_failure_at_either_step_is_a_temperror() {
        let (found, _) = discover(
            "example.com",
            &[("_dmarc.example.com", TxtAnswer::TempFail)],
        );
        assert_eq!(
            found,
            Discovered::TempError {
                at: "example.com".into()
            }
        );
        let (found, asked) = discover(
            "sub.example.com",
            &[("_dmarc.example.com", TxtAnswer::TempFail)],
        );
        assert_eq!(asked.len(), 2);
        assert_eq!(
            found,
            Discovered::TempError {
                at: "example.com".into()
            }
        );
    }

    #[test]
    fn answers_after_the_outcome_change_nothing() {
        let example = txt(&["v=DMARC1; p=reject"]);
        let mut lookup = PolicyLookup::new("example.com");
        lookup.answer(TxtAnswer::Records(&example));
        let before = lookup.outcome().cloned();
        lookup.answer(TxtAnswer::TempFail);
        assert_eq!(lookup.outcome().cloned(), before);
        assert_eq!(lookup.query(), None);
    }
}
