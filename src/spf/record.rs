//! An SPF record parsed (RFC 7208 §4.6, §5, §6, grammar in §12): all of
//! it before any of it is evaluated, so a syntax error anywhere is a
//! permerror whatever comes before it.

use super::macros::{Context, MacroString};
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

/// The prefix lengths an `a` or `mx` mechanism compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub v4: u8,
    pub v6: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    All,
    Include(MacroString),
    A(Option<MacroString>, Cidr),
    Mx(Option<MacroString>, Cidr),
    Ptr(Option<MacroString>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(MacroString),
}

impl Mechanism {
    /// Whether it asks DNS (RFC 7208 §4.6.4: counted against the limit).
    pub fn asks_dns(&self) -> bool {
        !matches!(
            self,
            Mechanism::All | Mechanism::Ip4(..) | Mechanism::Ip6(..)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub qualifier: Qualifier,
    pub mechanism: Mechanism,
    /// The term as written, for the reason given with the result.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub directives: Vec<Directive>,
    pub redirect: Option<MacroString>,
    pub explanation: Option<MacroString>,
}

/// Whether a TXT record is an SPF record: "v=spf1" alone or followed by a
/// space, in any case (RFC 7208 §4.5).
pub fn is_spf(txt: &[u8]) -> bool {
    txt.len() >= 6 && txt[..6].eq_ignore_ascii_case(b"v=spf1") && (txt.len() == 6 || txt[6] == b' ')
}

impl Record {
    /// Parses a record [`is_spf`] accepted; `Err` says what is wrong.
    pub fn parse(txt: &[u8]) -> Result<Record, String> {
        let text = std::str::from_utf8(txt)
            .ok()
            .filter(|t| t.is_ascii())
            .ok_or("the record is not ASCII")?;
        let mut record = Record {
            directives: Vec::new(),
            redirect: None,
            explanation: None,
        };
        // Terms are separated by spaces only (a tab or CR is a syntax error).
        for term in text[6..].split(' ').filter(|t| !t.is_empty()) {
            if let Some((name, value)) = modifier(term) {
                record.modifier(name, value)?;
            } else {
                record.directives.push(directive(term)?);
            }
        }
        Ok(record)
    }

    fn modifier(&mut self, name: &str, value: &str) -> Result<(), String> {
        let slot = if name.eq_ignore_ascii_case("redirect") {
            &mut self.redirect
        } else if name.eq_ignore_ascii_case("exp") {
            &mut self.explanation
        } else {
            // Unknown modifiers are ignored, but must be well formed.
            MacroString::parse(value, Context::Modifier)?;
            return Ok(());
        };
        if slot.is_some() {
            return Err(format!("{name}= given twice"));
        }
        *slot = Some(MacroString::parse(value, Context::Domain)?);
        Ok(())
    }
}

/// `name=value` when `term` is a modifier: name = ALPHA *( ALPHA / DIGIT
/// / "-" / "_" / "." ).
fn modifier(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let b = name.as_bytes();
    let ok = b.first()?.is_ascii_alphabetic()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c));
    ok.then_some((name, value))
}

fn directive(term: &str) -> Result<Directive, String> {
    let (qualifier, rest) = match term.as_bytes()[0] {
        b'+' => (Qualifier::Pass, &term[1..]),
        b'-' => (Qualifier::Fail, &term[1..]),
        b'~' => (Qualifier::SoftFail, &term[1..]),
        b'?' => (Qualifier::Neutral, &term[1..]),
        _ => (Qualifier::Pass, term),
    };
    let name_end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let (name, arg) = rest.split_at(name_end);
    let bad = || format!("bad term {term:?}");
    let domain = |arg: &str| -> Result<MacroString, String> {
        let spec = arg.strip_prefix(':').ok_or_else(bad)?;
        MacroString::parse(spec, Context::Domain)
    };
    let optional_domain = |arg: &str| match arg {
        "" => Ok(None),
        arg => domain(arg).map(Some),
    };
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" if arg.is_empty() => Mechanism::All,
        "include" => Mechanism::Include(domain(arg)?),
        "exists" => Mechanism::Exists(domain(arg)?),
        "ptr" => Mechanism::Ptr(optional_domain(arg)?),
        "a" | "mx" => {
            let (spec, cidr) = dual_cidr(arg).ok_or_else(bad)?;
            let target = optional_domain(spec)?;
            if name.eq_ignore_ascii_case("a") {
                Mechanism::A(target, cidr)
            } else {
                Mechanism::Mx(target, cidr)
            }
        }
        "ip4" => {
            let net = arg.strip_prefix(':').ok_or_else(bad)?;
            let (addr, len) = match net.split_once('/') {
                Some((addr, len)) => (addr, prefix_length(len, 32).ok_or_else(bad)?),
                None => (net, 32),
            };
            Mechanism::Ip4(addr.parse().map_err(|_| bad())?, len)
        }
        "ip6" => {
            let net = arg.strip_prefix(':').ok_or_else(bad)?;
            let (addr, len) = match net.split_once('/') {
                Some((addr, len)) => (addr, prefix_length(len, 128).ok_or_else(bad)?),
                None => (net, 128),
            };
            Mechanism::Ip6(addr.parse().map_err(|_| bad())?, len)
        }
        _ => return Err(format!("unknown mechanism in {term:?}")),
    };
    Ok(Directive {
        qualifier,
        mechanism,
        text: term.to_string(),
    })
}

/// A prefix length: "0", or digits without a leading zero, at most `max`.
fn prefix_length(digits: &str, max: u8) -> Option<u8> {
    let ok = !digits.is_empty()
        && digits.len() <= 3
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    let n: u8 = digits.parse().ok().filter(|_| ok)?;
    (n <= max).then_some(n)
}

/// Splits `[":" domain-spec] [ "/" ip4-len ] [ "//" ip6-len ]` at its
/// lengths (taken from the end: a domain-spec may hold "/" itself).
fn dual_cidr(arg: &str) -> Option<(&str, Cidr)> {
    let mut cidr = Cidr { v4: 32, v6: 128 };
    let mut rest = arg;
    if let Some(at) = rest.rfind("//") {
        cidr.v6 = prefix_length(&rest[at + 2..], 128)?;
        rest = &rest[..at];
    }
    if let Some(at) = rest.rfind('/') {
        let digits = &rest[at + 1..];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            cidr.v4 = prefix_length(digits, 32)?;
            rest = &rest[..at];
        } else if !rest.contains(':') {
            // "a/x": no domain-spec to hold the slash.
            return None;
        }
    }
    Some((rest, cidr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Record, String> {
        Record::parse(text.as_bytes())
    }

    #[test]
    fn records() {
        assert!(is_spf(b"v=spf1") && is_spf(b"V=SPF1 -all"));
        assert!(!is_spf(b"v=spf10") && !is_spf(b"v=spf1\t-all") && !is_spf(b"spf1"));
        let r =
            parse("v=spf1 a/24//64 mx:example.com//0 ~ip4:192.0.2.0/24 -all exp=e.%{d} x-y=%{l}")
                .unwrap();
        assert_eq!(r.directives.len(), 4);
        assert_eq!(
            r.directives[0].mechanism,
            Mechanism::A(None, Cidr { v4: 24, v6: 64 })
        );
        assert!(matches!(
            r.directives[1].mechanism,
            Mechanism::Mx(Some(_), Cidr { v4: 32, v6: 0 })
        ));
        assert_eq!(r.directives[2].qualifier, Qualifier::SoftFail);
        assert_eq!(
            r.directives[2].mechanism,
            Mechanism::Ip4([192, 0, 2, 0].into(), 24)
        );
        assert_eq!(r.directives[3].text, "-all");
        assert!(r.explanation.is_some() && r.redirect.is_none());
        let r = parse("v=spf1  ip6:2001:db8::/32 PTR INCLUDE:_spf.example.com ").unwrap();
        assert_eq!(r.directives.len(), 3);
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "v=spf1 -all foo",
            "v=spf1 a:example.com\rptr",
            "v=spf1 ip4:192.0.2.1\n",
            "v=spf1 ip4:192.0.2.0/33",
            "v=spf1 ip4:192.0.2.0/024",
            "v=spf1 ip6:2001:db8::/129",
            "v=spf1 a//129",
            "v=spf1 a/",
            "v=spf1 include",
            "v=spf1 all:x",
            "v=spf1 redirect=a.example.com redirect=b.example.com",
            "v=spf1 exp=",
            "v=spf1 \u{80}a",
            "v=spf1 ip4:1.2.3",
            "v=spf1 ?",
            "v=spf1 =x",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
