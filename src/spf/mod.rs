//! SPF (RFC 7208): whether the client may send mail for the domain of the
//! MAIL FROM address (or, for a null sender, of the HELO name).
//!
//! [`Spf`] is the sans-IO evaluator. The caller drives it:
//!
//! ```text
//! let mut spf = Spf::mail_from(client_ip, "user@example.com", helo, my_hostname);
//! loop {
//!     match spf.step() {
//!         Step::Lookup(question) => {
//!             let reply = /* ask DNS for question.name, question.kind */;
//!             spf.answer(&question, reply);
//!         }
//!         Step::Done(verdict) => break verdict,
//!     }
//! }
//! ```
//!
//! [`check`] does exactly that against a [`Resolver`], within
//! [`SPF_TIMEOUT`] in all (past it: temperror).
//!
//! The evaluation is a pure function of the answers seen so far: each
//! [`Spf::step`] evaluates from the start with them and stops at the first
//! question not answered yet. The limits below keep that to at most
//! [`SPF_MAX_QUESTIONS`] short passes, and make the code read like the
//! RFC's check_host() instead of a hand-built stack of states.
//!
//! Limits (RFC 7208 §4.6.4): 10 terms that ask DNS (include, a, mx, ptr,
//! exists, redirect), 2 void lookups (no such name, or no records) among
//! the mechanisms' own lookups, at most 10 MX names per `mx` (more is a
//! permerror) and the first 10 PTR names per `ptr` or %{p}. The record
//! lookups of include and redirect are not void lookups.
//!
//! `exp=` is evaluated: on fail, [`Verdict::explanation`] holds the
//! domain's explanation, macros expanded (%{t} is the time given to
//! [`Spf::at_time`], 0 otherwise); any problem with it only leaves it out.

pub mod macros;
pub mod record;

use crate::dns::message::{
    valid_name, Answer, Record as DnsRecord, TYPE_A, TYPE_AAAA, TYPE_MX, TYPE_PTR, TYPE_TXT,
};
use crate::dns::{blocklist_name, LookupError, Resolver};
use crate::limits::{
    SPF_MAX_DNS_TERMS, SPF_MAX_MX_NAMES, SPF_MAX_PTR_NAMES, SPF_MAX_QUESTIONS,
    SPF_MAX_VOID_LOOKUPS, SPF_TIMEOUT,
};
use macros::{Context, MacroString, Values};
use record::{is_spf, Cidr, Mechanism, Qualifier, Record};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The result of a check (RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfResult {
    None,
    Neutral,
    Pass,
    Fail,
    SoftFail,
    TempError,
    PermError,
}

impl SpfResult {
    /// The name used in Received-SPF and Authentication-Results.
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::None => "none",
            SpfResult::Neutral => "neutral",
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::SoftFail => "softfail",
            SpfResult::TempError => "temperror",
            SpfResult::PermError => "permerror",
        }
    }
}

/// Which identity was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The MAIL FROM address.
    MailFrom,
    /// The HELO name (a null sender, or a check of the HELO itself).
    Helo,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub result: SpfResult,
    /// For logs: what matched, or what went wrong.
    pub reason: String,
    pub identity: Identity,
    /// The domain checked: the value of `smtp.mailfrom` or `smtp.helo`.
    pub domain: String,
    /// On fail, the domain's explanation (its `exp=`), when it gave one.
    pub explanation: Option<String>,
}

impl Verdict {
    /// The Authentication-Results property (RFC 8601 §2.7.2) that names
    /// the checked domain: `smtp.mailfrom` or `smtp.helo`.
    pub fn property(&self) -> &'static str {
        match self.identity {
            Identity::MailFrom => "smtp.mailfrom",
            Identity::Helo => "smtp.helo",
        }
    }
}

/// A DNS question the evaluator needs answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    /// Lower case, without a trailing dot.
    pub name: String,
    /// TYPE_TXT, TYPE_A, TYPE_AAAA, TYPE_MX or TYPE_PTR of
    /// [`crate::dns::message`].
    pub kind: u16,
}

/// What DNS said to a [`Question`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Records(Vec<DnsRecord>),
    /// The name exists, without records of that type.
    NoData,
    /// NXDOMAIN.
    NoSuchName,
    /// A server failure or no answer in time.
    Failed,
}

impl From<Result<Answer, LookupError>> for Reply {
    fn from(outcome: Result<Answer, LookupError>) -> Reply {
        match outcome {
            Ok(Answer::Records(r)) => Reply::Records(r.into_iter().map(|r| r.record).collect()),
            Ok(Answer::NoData { .. }) => Reply::NoData,
            Ok(Answer::NoSuchName { .. }) | Err(LookupError::InvalidName) => Reply::NoSuchName,
            Err(_) => Reply::Failed,
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask DNS this, then call [`Spf::answer`].
    Lookup(Question),
    Done(Verdict),
}

/// One SPF check, sans-IO. See the module notes for how to drive it.
pub struct Spf {
    ip: IpAddr,
    local: String,
    domain: String,
    helo: String,
    receiver: String,
    identity: Identity,
    now_unix: u64,
    answers: HashMap<Question, Reply>,
}

impl Spf {
    /// Checks the MAIL FROM `sender` ("local@domain"; an empty or "<>"
    /// sender checks postmaster@`helo` instead, RFC 7208 §2.4) sent by
    /// `ip`, which said HELO `helo`, to `receiver` (our host name, for
    /// %{r} in explanations).
    pub fn mail_from(ip: IpAddr, sender: &str, helo: &str, receiver: &str) -> Spf {
        let sender = sender.trim_start_matches('<').trim_end_matches('>');
        if sender.is_empty() {
            return Spf::helo(ip, helo, receiver);
        }
        let (local, domain) = sender.rsplit_once('@').unwrap_or(("", sender));
        let mut spf = Spf::new(ip, local, domain, helo, receiver);
        spf.identity = Identity::MailFrom;
        spf
    }

    /// Checks the HELO name `helo` of `ip` (as postmaster@`helo`).
    pub fn helo(ip: IpAddr, helo: &str, receiver: &str) -> Spf {
        Spf::new(ip, "postmaster", helo, helo, receiver)
    }

    fn new(ip: IpAddr, local: &str, domain: &str, helo: &str, receiver: &str) -> Spf {
        let local = if local.is_empty() {
            "postmaster"
        } else {
            local
        };
        Spf {
            ip: ip.to_canonical(),
            local: local.to_string(),
            domain: domain.trim_end_matches('.').to_string(),
            helo: helo.to_string(),
            receiver: receiver.to_string(),
            identity: Identity::Helo,
            now_unix: 0,
            answers: HashMap::new(),
        }
    }

    /// The time (seconds since 1970) %{t} expands to in explanations.
    pub fn at_time(mut self, now_unix: u64) -> Spf {
        self.now_unix = now_unix;
        self
    }

    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// The domain being checked.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The next question, or the verdict.
    pub fn step(&mut self) -> Step {
        let (result, reason, explanation) = if self.answers.len() > SPF_MAX_QUESTIONS {
            (
                SpfResult::PermError,
                "too many DNS questions".to_string(),
                None,
            )
        } else {
            let mut pass = Pass {
                spf: self,
                dns_terms: 0,
                voids: 0,
            };
            match pass.check_domain() {
                Ok(done) => done,
                Err(Stop::Ask(question)) => return Step::Lookup(question),
                Err(Stop::End(result, reason)) => (result, reason, None),
            }
        };
        Step::Done(self.verdict(result, reason, explanation))
    }

    /// Gives the reply to a question [`Spf::step`] asked.
    pub fn answer(&mut self, question: &Question, reply: Reply) {
        let reply = match reply {
            Reply::Records(r) if r.is_empty() => Reply::NoData,
            reply => reply,
        };
        self.answers.insert(question.clone(), reply);
    }

    /// The verdict when the check could not finish (out of time).
    pub fn timed_out(&self, limit: Duration) -> Verdict {
        let reason = format!("no verdict within {limit:?}");
        self.verdict(SpfResult::TempError, reason, None)
    }

    fn verdict(&self, result: SpfResult, reason: String, explanation: Option<String>) -> Verdict {
        Verdict {
            result,
            reason,
            identity: self.identity,
            domain: self.domain.clone(),
            explanation,
        }
    }
}

/// Runs `spf` against `resolver`, within [`SPF_TIMEOUT`] in all.
pub async fn check(resolver: &Resolver, spf: Spf) -> Verdict {
    check_within(resolver, spf, SPF_TIMEOUT).await
}

/// Runs `spf` against `resolver`; past `limit` the result is temperror.
pub async fn check_within(resolver: &Resolver, mut spf: Spf, limit: Duration) -> Verdict {
    let deadline = smol::Timer::after(limit);
    let run = async {
        loop {
            match spf.step() {
                Step::Lookup(question) => {
                    let outcome = resolver.lookup(&question.name, question.kind).await;
                    spf.answer(&question, outcome.into());
                }
                Step::Done(verdict) => return Some(verdict),
            }
        }
    };
    let timeout = async {
        deadline.await;
        None
    };
    match smol::future::or(run, timeout).await {
        Some(verdict) => verdict,
        None => spf.timed_out(limit),
    }
}

/// Why a pass stopped early.
enum Stop {
    /// This question has no answer yet.
    Ask(Question),
    /// The check ended with this result (an error, or a limit passed).
    End(SpfResult, String),
}

type Eval<T> = Result<T, Stop>;

/// One evaluation from the start with the answers so far.
struct Pass<'a> {
    spf: &'a Spf,
    dns_terms: usize,
    voids: usize,
}

/// A result, its reason, and on fail the explanation.
type Outcome = (SpfResult, String, Option<String>);

impl<'a> Pass<'a> {
    /// RFC 7208 §4.3: a name that is not a multi-label domain name has
    /// no policy.
    fn check_domain(&mut self) -> Eval<Outcome> {
        let domain = self.spf.domain.as_str();
        let plain = domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !plain || !valid_name(domain) || !domain.contains('.') {
            let reason = format!("{domain:?} is not a domain name");
            return Ok((SpfResult::None, reason, None));
        }
        self.check_host(domain, true)
    }

    fn lookup(&self, name: &str, kind: u16) -> Eval<&'a Reply> {
        static NO_SUCH_NAME: Reply = Reply::NoSuchName;
        let name = name.trim_end_matches('.');
        if !valid_name(name) {
            return Ok(&NO_SUCH_NAME);
        }
        let question = Question {
            name: name.to_ascii_lowercase(),
            kind,
        };
        match self.spf.answers.get(&question) {
            Some(reply) => Ok(reply),
            None => Err(Stop::Ask(question)),
        }
    }

    /// A lookup by a mechanism: an error ends the check (temperror), and
    /// an empty answer counts as a void lookup.
    fn mechanism_lookup(&mut self, name: &str, kind: u16) -> Eval<&'a [DnsRecord]> {
        match self.lookup(name, kind)? {
            Reply::Records(r) => Ok(r),
            Reply::Failed => Err(Stop::End(
                SpfResult::TempError,
                format!("DNS failure looking up {name}"),
            )),
            Reply::NoData | Reply::NoSuchName => {
                self.voids += 1;
                if self.voids > SPF_MAX_VOID_LOOKUPS {
                    return Err(Stop::End(
                        SpfResult::PermError,
                        format!("more than {SPF_MAX_VOID_LOOKUPS} void lookups"),
                    ));
                }
                Ok(&[])
            }
        }
    }

    /// The SPF record of `domain`; `None` when it has none.
    fn record(&self, domain: &str) -> Eval<Option<Record>> {
        let records = match self.lookup(domain, TYPE_TXT)? {
            Reply::Records(r) => r,
            Reply::NoData | Reply::NoSuchName => return Ok(None),
            Reply::Failed => {
                let reason = format!("DNS failure looking up the SPF record of {domain}");
                return Err(Stop::End(SpfResult::TempError, reason));
            }
        };
        let mut spf = records.iter().filter_map(|r| match r {
            DnsRecord::Txt(t) if is_spf(t) => Some(t),
            _ => None,
        });
        let Some(first) = spf.next() else {
            return Ok(None);
        };
        if spf.next().is_some() {
            let reason = format!("{domain} has more than one SPF record");
            return Err(Stop::End(SpfResult::PermError, reason));
        }
        match Record::parse(first) {
            Ok(record) => Ok(Some(record)),
            Err(why) => Err(Stop::End(
                SpfResult::PermError,
                format!("SPF record of {domain}: {why}"),
            )),
        }
    }

    fn count_dns_term(&mut self) -> Eval<()> {
        self.dns_terms += 1;
        if self.dns_terms > SPF_MAX_DNS_TERMS {
            let reason = format!("more than {SPF_MAX_DNS_TERMS} DNS-querying terms");
            return Err(Stop::End(SpfResult::PermError, reason));
        }
        Ok(())
    }

    /// RFC 7208 §4: check_host() of `domain`; `explain` says whether a
    /// fail here is final (not inside an include).
    fn check_host(&mut self, domain: &str, explain: bool) -> Eval<Outcome> {
        let Some(record) = self.record(domain)? else {
            let reason = format!("no SPF record at {domain}");
            return Ok((SpfResult::None, reason, None));
        };
        for directive in &record.directives {
            if directive.mechanism.asks_dns() {
                self.count_dns_term()?;
            }
            if !self.matches(&directive.mechanism, domain)? {
                continue;
            }
            let result = match directive.qualifier {
                Qualifier::Pass => SpfResult::Pass,
                Qualifier::Fail => SpfResult::Fail,
                Qualifier::SoftFail => SpfResult::SoftFail,
                Qualifier::Neutral => SpfResult::Neutral,
            };
            let reason = format!("{} matched in the SPF record of {domain}", directive.text);
            let explanation = match (&record.explanation, result, explain) {
                (Some(exp), SpfResult::Fail, true) => self.explanation(exp, domain)?,
                _ => None,
            };
            return Ok((result, reason, explanation));
        }
        if let Some(redirect) = &record.redirect {
            self.count_dns_term()?;
            let target = self.expand_domain(redirect, domain)?;
            let outcome = self.check_host(&target, explain)?;
            if outcome.0 == SpfResult::None {
                let reason = format!("redirect from {domain} to {target}, which has no SPF record");
                return Err(Stop::End(SpfResult::PermError, reason));
            }
            return Ok(outcome);
        }
        let reason = format!("nothing matched in the SPF record of {domain}");
        Ok((SpfResult::Neutral, reason, None))
    }

    fn matches(&mut self, mechanism: &Mechanism, domain: &str) -> Eval<bool> {
        let target = |pass: &mut Self, spec: &Option<MacroString>| match spec {
            Some(spec) => pass.expand_domain(spec, domain),
            None => Ok(domain.to_string()),
        };
        Ok(match mechanism {
            Mechanism::All => true,
            Mechanism::Ip4(net, len) => in_network(self.spf.ip, IpAddr::V4(*net), *len),
            Mechanism::Ip6(net, len) => in_network(self.spf.ip, IpAddr::V6(*net), *len),
            Mechanism::A(spec, cidr) => {
                let name = target(self, spec)?;
                self.address_matches(&name, *cidr)?
            }
            Mechanism::Mx(spec, cidr) => {
                let name = target(self, spec)?;
                let mut hosts: Vec<(u16, &str)> = self
                    .mechanism_lookup(&name, TYPE_MX)?
                    .iter()
                    .filter_map(|r| match r {
                        DnsRecord::Mx(pref, host) => Some((*pref, host.as_str())),
                        _ => None,
                    })
                    .collect();
                if hosts.len() > SPF_MAX_MX_NAMES {
                    let reason = format!("{name} has more than {SPF_MAX_MX_NAMES} MX records");
                    return Err(Stop::End(SpfResult::PermError, reason));
                }
                hosts.sort();
                for (_, host) in hosts {
                    // A null MX ("." ) names no host.
                    if !host.is_empty() && self.address_matches(host, *cidr)? {
                        return Ok(true);
                    }
                }
                false
            }
            Mechanism::Ptr(spec) => {
                let name = target(self, spec)?;
                let wanted = name.trim_end_matches('.').to_ascii_lowercase();
                self.validated_names(true)?
                    .iter()
                    .any(|n| is_within(n, &wanted))
            }
            Mechanism::Exists(spec) => {
                let name = self.expand_domain(spec, domain)?;
                !self.mechanism_lookup(&name, TYPE_A)?.is_empty()
            }
            Mechanism::Include(spec) => {
                let name = self.expand_domain(spec, domain)?;
                match self.check_host(&name, false)?.0 {
                    SpfResult::Pass => true,
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => false,
                    SpfResult::TempError => {
                        let reason = format!("include:{name}: temporary error");
                        return Err(Stop::End(SpfResult::TempError, reason));
                    }
                    SpfResult::PermError | SpfResult::None => {
                        let reason = format!("include:{name} has no valid SPF record");
                        return Err(Stop::End(SpfResult::PermError, reason));
                    }
                }
            }
        })
    }

    /// Whether an address of `name` (of the client's family) is within
    /// the prefix of the client.
    fn address_matches(&mut self, name: &str, cidr: Cidr) -> Eval<bool> {
        let (kind, len) = match self.spf.ip {
            IpAddr::V4(_) => (TYPE_A, cidr.v4),
            IpAddr::V6(_) => (TYPE_AAAA, cidr.v6),
        };
        let records = self.mechanism_lookup(name, kind)?;
        Ok(records.iter().any(|r| match r {
            DnsRecord::A(a) => in_network(self.spf.ip, IpAddr::V4(*a), len),
            DnsRecord::Aaaa(a) => in_network(self.spf.ip, IpAddr::V6(*a), len),
            _ => false,
        }))
    }

    /// The names the client's address points back at (PTR) that point at
    /// it again (A/AAAA): the first [`SPF_MAX_PTR_NAMES`] tried. For the
    /// ptr mechanism (`counted`) an empty answer is a void lookup; a DNS
    /// error only skips a name (RFC 7208 §5.5).
    fn validated_names(&mut self, counted: bool) -> Eval<Vec<String>> {
        let ip = self.spf.ip;
        let zone = if ip.is_ipv4() {
            "in-addr.arpa"
        } else {
            "ip6.arpa"
        };
        let reverse = blocklist_name(ip, zone);
        let kind = if ip.is_ipv4() { TYPE_A } else { TYPE_AAAA };
        let names: Vec<&str> = match self.lookup(&reverse, TYPE_PTR)? {
            Reply::Records(r) => r
                .iter()
                .filter_map(|r| match r {
                    DnsRecord::Ptr(p) => Some(p.as_str()),
                    _ => None,
                })
                .take(SPF_MAX_PTR_NAMES)
                .collect(),
            Reply::NoData | Reply::NoSuchName if counted => {
                self.mechanism_lookup(&reverse, TYPE_PTR)?;
                Vec::new()
            }
            _ => Vec::new(),
        };
        let mut validated = Vec::new();
        for name in names {
            let addresses = match self.lookup(name, kind)? {
                Reply::Records(r) => r,
                Reply::NoData | Reply::NoSuchName if counted => {
                    self.mechanism_lookup(name, kind)?;
                    continue;
                }
                _ => continue,
            };
            let back = addresses.iter().any(|r| match r {
                DnsRecord::A(a) => IpAddr::V4(*a) == ip,
                DnsRecord::Aaaa(a) => IpAddr::V6(*a) == ip,
                _ => false,
            });
            if back {
                validated.push(name.trim_end_matches('.').to_ascii_lowercase());
            }
        }
        Ok(validated)
    }

    /// %{p}: a validated name of the client, the domain's own or one in it
    /// preferred; "unknown" when there is none.
    fn p_macro(&mut self, domain: &str) -> Eval<String> {
        let names = self.validated_names(false)?;
        let domain = domain.to_ascii_lowercase();
        let best = names
            .iter()
            .find(|n| **n == domain)
            .or_else(|| names.iter().find(|n| is_within(n, &domain)))
            .or(names.first());
        Ok(best.cloned().unwrap_or_else(|| "unknown".into()))
    }

    /// `text` with its macros expanded for `domain`.
    fn expand(&mut self, text: &MacroString, domain: &str) -> Eval<String> {
        let validated = match text.uses_p() {
            true => self.p_macro(domain)?,
            false => String::new(),
        };
        Ok(text.expand(&self.values(domain, &validated)))
    }

    fn values<'v>(&'v self, domain: &'v str, validated: &'v str) -> Values<'v> {
        Values {
            validated,
            local: &self.spf.local,
            sender_domain: &self.spf.domain,
            domain,
            ip: self.spf.ip,
            helo: &self.spf.helo,
            receiver: &self.spf.receiver,
            now_unix: self.spf.now_unix,
        }
    }

    /// A domain-spec expanded, cut from the left to 253 characters
    /// (RFC 7208 §7.3).
    fn expand_domain(&mut self, spec: &MacroString, domain: &str) -> Eval<String> {
        let expanded = self.expand(spec, domain)?;
        let mut name = expanded.trim_end_matches('.');
        while name.len() > 253 {
            match name.split_once('.') {
                Some((_, rest)) => name = rest,
                None => break,
            }
        }
        Ok(name.to_string())
    }

    /// The text of `exp=` (RFC 7208 §6.2); `None` on any problem with it.
    fn explanation(&mut self, spec: &MacroString, domain: &str) -> Eval<Option<String>> {
        let name = self.expand_domain(spec, domain)?;
        let Reply::Records(records) = self.lookup(&name, TYPE_TXT)? else {
            return Ok(None);
        };
        let [DnsRecord::Txt(text)] = &records[..] else {
            return Ok(None);
        };
        let Some(text) = std::str::from_utf8(text).ok().filter(|t| t.is_ascii()) else {
            return Ok(None);
        };
        let Ok(parsed) = MacroString::parse(text, Context::Explanation) else {
            return Ok(None);
        };
        Ok(Some(self.expand(&parsed, domain)?))
    }
}

/// Whether `name` is `domain` or a name under it.
fn is_within(name: &str, domain: &str) -> bool {
    name == domain
        || (name.len() > domain.len()
            && name.ends_with(domain)
            && name.as_bytes()[name.len() - domain.len() - 1] == b'.')
}

/// Whether `ip` is in `net`/`len` (false across families).
fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `spf` against a zone of (name, type) → records; names absent
    /// from it do not exist; `failing` names give DNS errors.
    fn run(mut spf: Spf, zone: &[(&str, u16, DnsRecord)], failing: &[&str]) -> (Verdict, usize) {
        let mut asked = 0;
        loop {
            match spf.step() {
                Step::Done(verdict) => return (verdict, asked),
                Step::Lookup(q) => {
                    asked += 1;
                    let records: Vec<DnsRecord> = zone
                        .iter()
                        .filter(|(n, k, _)| *n == q.name && *k == q.kind)
                        .map(|(_, _, r)| r.clone())
                        .collect();
                    let reply = if failing.contains(&q.name.as_str()) {
                        Reply::Failed
                    } else if !records.is_empty() {
                        Reply::Records(records)
                    } else if zone.iter().any(|(n, _, _)| *n == q.name) {
                        Reply::NoData
                    } else {
                        Reply::NoSuchName
                    };
                    spf.answer(&q, reply);
                }
            }
        }
    }

    fn txt(text: &str) -> DnsRecord {
        DnsRecord::Txt(text.as_bytes().to_vec())
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn include_and_ip4_pass() {
        let zone = [
            (
                "example.test",
                TYPE_TXT,
                txt("v=spf1 include:_spf.example.test -all"),
            ),
            ("example.test", TYPE_TXT, txt("some other text")),
            (
                "_spf.example.test",
                TYPE_TXT,
                txt("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32"),
            ),
        ];
        let spf = Spf::mail_from(ip("192.0.2.9"), "<a@Example.test>", "mx.test", "me.test");
        let (verdict, asked) = run(spf, &zone, &[]);
        assert_eq!(verdict.result, SpfResult::Pass, "{verdict:?}");
        assert_eq!(asked, 2);
        assert_eq!(
            (verdict.property(), verdict.domain.as_str()),
            ("smtp.mailfrom", "Example.test")
        );
        assert!(
            verdict.reason.contains("include:_spf.example.test"),
            "{}",
            verdict.reason
        );
        let spf = Spf::mail_from(
            ip("::ffff:198.51.100.1"),
            "a@example.test",
            "mx.test",
            "me.test",
        );
        assert_eq!(
            run(spf, &zone, &[]).0.result,
            SpfResult::Fail,
            "mapped IPv4 is IPv4"
        );
        let spf = Spf::mail_from(ip("2001:db8::5"), "a@example.test", "mx.test", "me.test");
        assert_eq!(run(spf, &zone, &[]).0.result, SpfResult::Pass);
    }

    #[test]
    fn a_null_sender_checks_the_helo_name() {
        let zone = [
            ("mx.example.test", TYPE_TXT, txt("v=spf1 a -all")),
            (
                "mx.example.test",
                TYPE_A,
                DnsRecord::A([192, 0, 2, 1].into()),
            ),
        ];
        let spf = Spf::mail_from(ip("192.0.2.1"), "<>", "mx.example.test", "me.test");
        let (verdict, _) = run(spf, &zone, &[]);
        assert_eq!(verdict.result, SpfResult::Pass);
        assert_eq!(
            (verdict.property(), verdict.domain.as_str()),
            ("smtp.helo", "mx.example.test")
        );
        let spf = Spf::helo(ip("192.0.2.2"), "mx.example.test", "me.test");
        assert_eq!(run(spf, &zone, &[]).0.result, SpfResult::Fail);
    }

    #[test]
    fn errors_and_limits() {
        let check = |record: &str, zone_extra: &[(&str, u16, DnsRecord)], failing: &[&str]| {
            let mut zone = vec![("example.test", TYPE_TXT, txt(record))];
            zone.extend_from_slice(zone_extra);
            let spf = Spf::mail_from(ip("192.0.2.1"), "a@example.test", "h.test", "me.test");
            run(spf, &zone, failing).0
        };
        let none = check("not spf", &[], &[]);
        assert_eq!(none.result, SpfResult::None);
        let two = [("example.test", TYPE_TXT, txt("v=spf1 +all"))];
        assert_eq!(check("v=spf1 -all", &two, &[]).result, SpfResult::PermError);
        assert_eq!(
            check("v=spf1 -all", &[], &["example.test"]).result,
            SpfResult::TempError
        );
        assert_eq!(
            check("v=spf1 a:down.test -all", &[], &["down.test"]).result,
            SpfResult::TempError
        );
        // Syntax errors anywhere, even after a match.
        assert_eq!(
            check("v=spf1 +all foo:bar", &[], &[]).result,
            SpfResult::PermError
        );
        // Two void lookups are allowed, the third is not.
        let voids = check("v=spf1 a:n1.test a:n2.test ?all", &[], &[]);
        assert_eq!(voids.result, SpfResult::Neutral);
        let voids = check("v=spf1 a:n1.test a:n2.test exists:n3.test ?all", &[], &[]);
        assert_eq!(voids.result, SpfResult::PermError, "{}", voids.reason);
        // Ten DNS-querying terms are allowed, the eleventh is not.
        let hosts = [("h.test", TYPE_A, DnsRecord::A([198, 51, 100, 1].into()))];
        let ten = format!("v=spf1 {}-all", "a:h.test ".repeat(10));
        assert_eq!(check(&ten, &hosts, &[]).result, SpfResult::Fail);
        let eleven = format!("v=spf1 {}-all", "a:h.test ".repeat(11));
        let over = check(&eleven, &hosts, &[]);
        assert_eq!(over.result, SpfResult::PermError);
        assert!(
            over.reason.contains("10 DNS-querying terms"),
            "{}",
            over.reason
        );
        // An include loop ends at the limit.
        let looping = check("v=spf1 include:example.test -all", &[], &[]);
        assert_eq!(looping.result, SpfResult::PermError);
        // More than 10 MX names is a permerror.
        let mx: Vec<(&str, u16, DnsRecord)> = (0..11)
            .map(|i| {
                (
                    "example.test",
                    TYPE_MX,
                    DnsRecord::Mx(i, format!("mx{i}.test")),
                )
            })
            .collect();
        assert_eq!(
            check("v=spf1 mx -all", &mx, &[]).result,
            SpfResult::PermError
        );
        assert_eq!(
            check("v=spf1 mx -all", &mx[..10], &[]).result,
            SpfResult::PermError,
            "ten unknown MX hosts are more than 2 void lookups"
        );
    }

    #[test]
    fn ptr_and_explanations() {
        let zone = [
            (
                "example.test",
                TYPE_TXT,
                txt("v=spf1 ptr -all exp=why.example.test"),
            ),
            (
                "1.2.0.192.in-addr.arpa",
                TYPE_PTR,
                DnsRecord::Ptr("mail.example.test".into()),
            ),
            (
                "1.2.0.192.in-addr.arpa",
                TYPE_PTR,
                DnsRecord::Ptr("liar.example.test".into()),
            ),
            (
                "mail.example.test",
                TYPE_A,
                DnsRecord::A([192, 0, 2, 1].into()),
            ),
            (
                "liar.example.test",
                TYPE_A,
                DnsRecord::A([192, 0, 2, 99].into()),
            ),
            (
                "why.example.test",
                TYPE_TXT,
                txt("%{i} (%{p}) may not send for %{d} to %{r} at %{t}"),
            ),
        ];
        let spf = Spf::mail_from(ip("192.0.2.1"), "a@example.test", "h.test", "me.test");
        assert_eq!(run(spf, &zone, &[]).0.result, SpfResult::Pass);
        let spf = Spf::mail_from(ip("192.0.2.2"), "a@example.test", "h.test", "me.test").at_time(7);
        let verdict = run(spf, &zone, &[]).0;
        assert_eq!(verdict.result, SpfResult::Fail);
        assert_eq!(
            verdict.explanation.as_deref(),
            Some("192.0.2.2 (unknown) may not send for example.test to me.test at 7")
        );
        // A PTR that does not lead back is not a match.
        let spf = Spf::mail_from(ip("192.0.2.99"), "a@example.test", "h.test", "me.test");
        let mut zone = zone.to_vec();
        zone[1].0 = "99.2.0.192.in-addr.arpa";
        zone[2].0 = "99.2.0.192.in-addr.arpa";
        let verdict = run(spf, &zone, &[]).0;
        assert_eq!(
            verdict.result,
            SpfResult::Pass,
            "liar.example.test is under example.test"
        );
    }

    #[test]
    fn resolver_outcomes_become_replies() {
        use crate::dns::message::Resource;
        let record = DnsRecord::A([192, 0, 2, 1].into());
        let found = Answer::Records(vec![Resource {
            record: record.clone(),
            ttl: 0,
        }]);
        assert_eq!(Reply::from(Ok(found)), Reply::Records(vec![record]));
        let nodata = Answer::NoData {
            negative_ttl: Some(60),
        };
        assert_eq!(Reply::from(Ok(nodata)), Reply::NoData);
        let nx = Answer::NoSuchName { negative_ttl: None };
        assert_eq!(Reply::from(Ok(nx)), Reply::NoSuchName);
        // No query can be made for a name no server would know.
        assert_eq!(
            Reply::from(Err(LookupError::InvalidName)),
            Reply::NoSuchName
        );
        for error in [
            LookupError::TimedOut,
            LookupError::NoResolver,
            LookupError::Failed("x".into()),
        ] {
            assert_eq!(Reply::from(Err(error)), Reply::Failed);
        }
    }

    #[test]
    fn not_a_domain_has_no_policy() {
        for sender in ["a@[192.0.2.1]", "a@localhost", "a@a..test", "a@"] {
            let spf = Spf::mail_from(ip("192.0.2.1"), sender, "h", "me.test");
            let (verdict, asked) = run(spf, &[], &[]);
            assert_eq!((verdict.result, asked), (SpfResult::None, 0), "{sender}");
        }
    }
}
