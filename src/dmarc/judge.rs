//! The inbound decision for mail from strangers (port 25) over SPF, DKIM
//! and DMARC, as one pure function. The rules:
//!
//! * A DMARC failure under `p=reject` is refused (550 5.7.1, with the
//!   reason); under `p=quarantine` it is delivered tagged as spam; under
//!   `p=none` it is delivered. `pct` has already chosen the applied policy.
//! * SPF `fail` without an aligned DKIM pass: when the author domain
//!   publishes DMARC this is a DMARC failure, handled as above; in any case
//!   it is a spam signal (tagged), never a refusal on its own unless
//!   `spf = "enforce"`.
//! * A From: that is one of the members' addresses without an aligned
//!   pass is handled as a `p=quarantine` failure (tagged, not refused),
//!   whether or not the members' domain publishes DMARC.
//! * A temporary error on the path that decides (the DMARC record, an
//!   aligned SPF or DKIM check, SPF when it could have failed) is a
//!   temporary failure, 451 4.7.x: never a verdict that might be wrong.
//!
//! Severity orders the outcomes: refusal, then temporary failure, then
//! spam, then delivery; a refusal is only ever given on a definite result.

use super::evaluate::{Aligned, DmarcResult, Evaluation};
use super::record::Disposition;
use super::{AuthFacts, AuthResult};

/// `[inbound] spf` and `[inbound] dmarc`: what a failure may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// `"enforce"`: the published policy (DMARC) or the sender's `-all`
    /// (SPF) may refuse the message.
    Enforce,
    /// `"tag"`: a failure at most tags the message as spam.
    Tag,
    /// `"off"`: not checked; no effect.
    Off,
}

/// `[inbound] dkim`: whether signatures are verified. A failed signature
/// alone is never held against a message (RFC 6376 §6.1: it counts as
/// unsigned); passing ones feed DMARC and the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimMode {
    /// `"verify"`.
    Verify,
    /// `"off"`: not verified.
    Off,
}

/// The `[inbound]` modes. Defaults: `spf = "tag"`, `dkim = "verify"`,
/// `dmarc = "enforce"`, which give the rules of this module. The caller
/// skips the SPF check, DKIM verification or DMARC discovery that is off
/// (passing `AuthResult::None`, no signatures, `Discovered::NotSought`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundModes {
    pub spf: Enforcement,
    pub dkim: DkimMode,
    pub dmarc: Enforcement,
}

impl Default for InboundModes {
    fn default() -> Self {
        InboundModes {
            spf: Enforcement::Tag,
            dkim: DkimMode::Verify,
            dmarc: Enforcement::Enforce,
        }
    }
}

impl InboundModes {
    /// Whether any check is on.
    pub fn any(&self) -> bool {
        self.spf != Enforcement::Off || self.dkim != DkimMode::Off || self.dmarc != Enforcement::Off
    }
}

impl Enforcement {
    /// The config value, or None for an unknown one.
    pub fn parse(value: &str) -> Option<Enforcement> {
        match value {
            "enforce" => Some(Enforcement::Enforce),
            "tag" => Some(Enforcement::Tag),
            "off" => Some(Enforcement::Off),
            _ => None,
        }
    }
}

impl DkimMode {
    pub fn parse(value: &str) -> Option<DkimMode> {
        match value {
            "verify" => Some(DkimMode::Verify),
            "off" => Some(DkimMode::Off),
            _ => None,
        }
    }
}

/// What to do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    /// Deliver tagged as spam.
    Spam {
        reason: String,
    },
    /// Refuse at the end of DATA.
    Refuse {
        code: u16,
        enhanced: &'static str,
        reason: String,
    },
    /// Answer with a temporary failure; the sender tries again later.
    Defer {
        code: u16,
        enhanced: &'static str,
        reason: String,
    },
}

impl Verdict {
    fn severity(&self) -> u8 {
        match self {
            Verdict::Deliver => 0,
            Verdict::Spam { .. } => 1,
            Verdict::Defer { .. } => 2,
            Verdict::Refuse { .. } => 3,
        }
    }

    /// The reason, for the log; empty for delivery.
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Deliver => "",
            Verdict::Spam { reason }
            | Verdict::Refuse { reason, .. }
            | Verdict::Defer { reason, .. } => reason,
        }
    }
}

fn defer(enhanced: &'static str, reason: String) -> Verdict {
    Verdict::Defer {
        code: 451,
        enhanced,
        reason,
    }
}

/// Decides a stranger's message. `evaluation` is DMARC's for its author
/// domain; `from_is_member` says the From: address is one of the members'.
pub fn judge(
    facts: &AuthFacts<'_>,
    evaluation: &Evaluation,
    from_is_member: bool,
    modes: InboundModes,
) -> Verdict {
    let mut verdicts = Vec::new();
    let author = &evaluation.author_domain;

    if modes.dmarc != Enforcement::Off {
        match evaluation.result {
            DmarcResult::Fail => {
                let reason = format!(
                    "DMARC {} policy of {}: {}",
                    evaluation.applied.as_str(),
                    evaluation.policy_domain.as_deref().unwrap_or(author),
                    evaluation.reason
                );
                verdicts.push(match evaluation.applied {
                    Disposition::Reject if modes.dmarc == Enforcement::Enforce => Verdict::Refuse {
                        code: 550,
                        enhanced: "5.7.1",
                        reason,
                    },
                    Disposition::Reject | Disposition::Quarantine => Verdict::Spam { reason },
                    Disposition::None => Verdict::Deliver,
                });
            }
            DmarcResult::TempError if !evaluation.exact_pass => verdicts.push(defer(
                "4.7.0",
                format!(
                    "DMARC of {author} cannot be checked now: {}",
                    evaluation.reason
                ),
            )),
            _ => {}
        }
        if from_is_member && !evaluation.aligned_pass() {
            let undecided =
                evaluation.spf == Aligned::Undecided || evaluation.dkim == Aligned::Undecided;
            verdicts.push(if undecided {
                defer(
                    "4.7.0",
                    format!("a member's address in From: cannot be checked now ({author})"),
                )
            } else {
                Verdict::Spam {
                    reason: format!(
                        "a member's address in From: without an aligned SPF or DKIM pass ({author})"
                    ),
                }
            });
        }
    }

    if modes.spf != Enforcement::Off && evaluation.dkim != Aligned::Pass {
        let domain = facts.spf.domain;
        let dkim_undecided = evaluation.dkim == Aligned::Undecided;
        match facts.spf.result {
            AuthResult::Fail if dkim_undecided => verdicts.push(defer(
                "4.7.0",
                format!(
                    "SPF fails for {domain} and an aligned DKIM signature cannot be checked now"
                ),
            )),
            AuthResult::Fail => {
                let reason = format!("SPF fails for {domain}, no aligned DKIM pass");
                verdicts.push(if modes.spf == Enforcement::Enforce {
                    Verdict::Refuse {
                        code: 550,
                        enhanced: "5.7.23",
                        reason,
                    }
                } else {
                    Verdict::Spam { reason }
                });
            }
            AuthResult::TempError => verdicts.push(defer(
                "4.7.24",
                format!("SPF of {domain} cannot be checked now"),
            )),
            _ => {}
        }
    }

    // The first of the most severe: DMARC's reason before SPF's.
    let mut worst = Verdict::Deliver;
    for verdict in verdicts {
        if verdict.severity() > worst.severity() {
            worst = verdict;
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dmarc::discovery::Discovered;
    use crate::dmarc::evaluate::evaluate;
    use crate::dmarc::record::parse;
    use crate::dmarc::{DkimOutcome, SpfIdentity, SpfOutcome};

    const CLUB: &str = "club.example";

    struct Case<'a> {
        author: &'a str,
        spf: (AuthResult, &'a str),
        dkim: Vec<(AuthResult, &'a str)>,
        record: Option<&'a str>,
        discovered: Option<Discovered>,
        member: bool,
        modes: InboundModes,
    }

    fn case(author: &str) -> Case<'_> {
        Case {
            author,
            spf: (AuthResult::None, "bounces.example.net"),
            dkim: Vec::new(),
            record: None,
            discovered: None,
            member: false,
            modes: InboundModes::default(),
        }
    }

    impl Case<'_> {
        fn run(&self) -> Verdict {
            let signatures: Vec<DkimOutcome<'_>> = self
                .dkim
                .iter()
                .map(|&(result, domain)| DkimOutcome {
                    result,
                    domain,
                    selector: "s",
                    signature: "",
                    reason: None,
                })
                .collect();
            let facts = AuthFacts {
                author_domain: self.author,
                spf: SpfOutcome {
                    result: self.spf.0,
                    identity: SpfIdentity::MailFrom,
                    domain: self.spf.1,
                },
                dkim: &signatures,
            };
            let discovered = match (&self.discovered, self.record) {
                (Some(d), _) => d.clone(),
                (None, Some(text)) => Discovered::Policy {
                    record: parse(text.as_bytes()).unwrap(),
                    at: self.author.into(),
                    inherited: false,
                },
                (None, None) => Discovered::NoPolicy {
                    why: "no DMARC record",
                },
            };
            let evaluation = evaluate(&facts, &discovered, 0);
            judge(&facts, &evaluation, self.member, self.modes)
        }
    }

    fn is_spam(v: &Verdict) -> bool {
        matches!(v, Verdict::Spam { .. })
    }

    #[test]
    fn reject_failures_are_refused_with_the_reason() {
        let mut c = case("bank.example");
        c.record = Some("v=DMARC1; p=reject");
        c.spf = (AuthResult::Pass, "spammer.example");
        let v = c.run();
        let Verdict::Refuse {
            code,
            enhanced,
            reason,
        } = &v
        else {
            panic!("{v:?}")
        };
        assert_eq!((*code, *enhanced), (550, "5.7.1"));
        assert!(
            reason.contains("DMARC reject policy of bank.example"),
            "{reason}"
        );
        // In tag mode the same message is delivered as spam.
        c.modes.dmarc = Enforcement::Tag;
        assert!(is_spam(&c.run()));
        // Off: delivered.
        c.modes.dmarc = Enforcement::Off;
        assert_eq!(c.run(), Verdict::Deliver);
    }

    #[test]
    fn quarantine_failures_are_spam_and_none_failures_are_delivered() {
        let mut c = case("shop.example");
        c.record = Some("v=DMARC1; p=quarantine");
        assert!(is_spam(&c.run()));
        c.record = Some("v=DMARC1; p=none");
        assert_eq!(c.run(), Verdict::Deliver);
    }

    #[test]
    fn aligned_passes_are_delivered() {
        let mut c = case("bank.example");
        c.record = Some("v=DMARC1; p=reject");
        c.dkim = vec![(AuthResult::Pass, "bank.example")];
        assert_eq!(c.run(), Verdict::Deliver);
        c.dkim = vec![];
        c.spf = (AuthResult::Pass, "mail.bank.example");
        assert_eq!(c.run(), Verdict::Deliver);
    }

    #[test]
    fn spf_fail_without_aligned_dkim_is_a_dmarc_failure_when_published() {
        // Forged: -all fails, no signature; the domain publishes reject.
        let mut c = case("bank.example");
        c.record = Some("v=DMARC1; p=reject");
        c.spf = (AuthResult::Fail, "bank.example");
        assert!(matches!(
            c.run(),
            Verdict::Refuse {
                enhanced: "5.7.1",
                ..
            }
        ));
        // Forwarded: SPF fails but the aligned signature survives.
        c.dkim = vec![(AuthResult::Pass, "bank.example")];
        assert_eq!(c.run(), Verdict::Deliver);
        // p=none still leaves the SPF failure as a spam signal.
        c.dkim = vec![(AuthResult::Pass, "elsewhere.example")];
        c.record = Some("v=DMARC1; p=none");
        assert!(is_spam(&c.run()));
    }

    #[test]
    fn spf_fail_without_dmarc_is_only_a_spam_signal() {
        let mut c = case("small.example");
        c.spf = (AuthResult::Fail, "small.example");
        let v = c.run();
        assert!(is_spam(&v), "{v:?}");
        assert!(v.reason().contains("SPF fails for small.example"));
        // An aligned DKIM pass outweighs it.
        c.dkim = vec![(AuthResult::Pass, "small.example")];
        assert_eq!(c.run(), Verdict::Deliver);
        // An unaligned one does not.
        c.dkim = vec![(AuthResult::Pass, "esp.example")];
        assert!(is_spam(&c.run()));
        // spf = "enforce" refuses it; "off" ignores it.
        c.modes.spf = Enforcement::Enforce;
        assert!(matches!(
            c.run(),
            Verdict::Refuse {
                code: 550,
                enhanced: "5.7.23",
                ..
            }
        ));
        c.modes.spf = Enforcement::Off;
        assert_eq!(c.run(), Verdict::Deliver);
        // softfail and neutral are no signal.
        c.modes.spf = Enforcement::Tag;
        c.spf = (AuthResult::SoftFail, "small.example");
        assert_eq!(c.run(), Verdict::Deliver);
    }

    #[test]
    fn a_members_address_from_a_stranger_without_aligned_pass_is_quarantined() {
        let mut c = case(CLUB);
        c.member = true;
        c.spf = (AuthResult::Pass, "spammer.example");
        let v = c.run();
        assert!(is_spam(&v), "{v:?}");
        assert!(v.reason().contains("member's address"));
        // Even under the club's own p=none.
        c.record = Some("v=DMARC1; p=none");
        assert!(is_spam(&c.run()));
        // The club's p=reject is stronger.
        c.record = Some("v=DMARC1; p=reject");
        assert!(matches!(c.run(), Verdict::Refuse { .. }));
        // A member writing through their own provider, signed: delivered.
        c.record = None;
        c.dkim = vec![(AuthResult::Pass, CLUB)];
        assert_eq!(c.run(), Verdict::Deliver);
        // Not a member's address: nothing happens.
        c.dkim = vec![];
        c.member = false;
        assert_eq!(c.run(), Verdict::Deliver);
        // The rule is DMARC's: off turns it off, tag keeps it.
        c.member = true;
        c.modes.dmarc = Enforcement::Tag;
        assert!(is_spam(&c.run()));
        c.modes.dmarc = Enforcement::Off;
        assert_eq!(c.run(), Verdict::Deliver);
    }

    #[test]
    fn temporary_errors_on_the_deciding_path_defer() {
        let defers = |v: &Verdict, enhanced: &str| matches!(v, Verdict::Defer { code: 451, enhanced: e, .. } if *e == enhanced);
        // The DMARC record could not be looked up.
        let mut c = case("bank.example");
        c.discovered = Some(Discovered::TempError {
            at: "bank.example".into(),
        });
        assert!(defers(&c.run(), "4.7.0"), "{:?}", c.run());
        // Unless an exact pass makes any record pass it.
        c.dkim = vec![(AuthResult::Pass, "bank.example")];
        assert_eq!(c.run(), Verdict::Deliver);
        // A relaxed pass might not be enough under a strict record.
        c.dkim = vec![(AuthResult::Pass, "mail.bank.example")];
        assert!(defers(&c.run(), "4.7.0"));

        // An aligned DKIM key could not be fetched, under p=reject.
        let mut c = case("bank.example");
        c.record = Some("v=DMARC1; p=reject");
        c.dkim = vec![(AuthResult::TempError, "bank.example")];
        assert!(defers(&c.run(), "4.7.0"));
        // ... even with SPF fail under spf = "enforce": it might pass.
        c.spf = (AuthResult::Fail, "bank.example");
        c.modes.spf = Enforcement::Enforce;
        assert!(defers(&c.run(), "4.7.0"));
        // Without a DMARC record too: the SPF failure might be outweighed.
        c.record = None;
        c.modes.spf = Enforcement::Tag;
        assert!(defers(&c.run(), "4.7.0"));

        // SPF could not be checked and nothing aligned passed.
        let mut c = case("small.example");
        c.spf = (AuthResult::TempError, "small.example");
        assert!(defers(&c.run(), "4.7.24"));
        c.dkim = vec![(AuthResult::Pass, "small.example")];
        assert_eq!(c.run(), Verdict::Deliver);
        // A member's address with an aligned check undecided.
        let mut c = case(CLUB);
        c.member = true;
        c.dkim = vec![(AuthResult::TempError, CLUB)];
        assert!(defers(&c.run(), "4.7.0"));
    }

    #[test]
    fn a_definite_refusal_is_not_softened_by_an_unrelated_temporary_error() {
        let mut c = case("bank.example");
        c.record = Some("v=DMARC1; p=reject");
        // SPF errored for an unaligned domain: DMARC's failure is definite.
        c.spf = (AuthResult::TempError, "bulk.example");
        assert!(matches!(c.run(), Verdict::Refuse { code: 550, .. }));
    }

    #[test]
    fn broken_or_absent_policies_apply_nothing() {
        let mut c = case("odd.example");
        c.discovered = Some(Discovered::Broken { why: "bad".into() });
        assert_eq!(c.run(), Verdict::Deliver);
        c.discovered = Some(Discovered::NoPolicy {
            why: "several DMARC records",
        });
        assert_eq!(c.run(), Verdict::Deliver);
    }

    #[test]
    fn config_values() {
        assert_eq!(Enforcement::parse("enforce"), Some(Enforcement::Enforce));
        assert_eq!(Enforcement::parse("tag"), Some(Enforcement::Tag));
        assert_eq!(Enforcement::parse("off"), Some(Enforcement::Off));
        assert_eq!(Enforcement::parse("on"), None);
        assert_eq!(DkimMode::parse("verify"), Some(DkimMode::Verify));
        assert_eq!(DkimMode::parse("off"), Some(DkimMode::Off));
        assert_eq!(DkimMode::parse("tag"), None);
    }
}
