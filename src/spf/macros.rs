//! SPF macros (RFC 7208 §7): a domain-spec or an explanation is parsed
//! once into literal text and `%{...}` pieces, then expanded for one check.

use std::fmt::Write;
use std::net::IpAddr;

/// One `%{...}` expansion: `%{L<digits>r<delimiters>}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Macro {
    /// The lower-case letter: s l o d i p h v, and c r t in explanations.
    pub letter: u8,
    /// Upper-case letter: the value is URL-escaped.
    pub escape: bool,
    /// Keep only this many parts from the right.
    pub keep: Option<usize>,
    pub reverse: bool,
    /// Characters that split the value into parts ("." when none given).
    pub delimiters: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Expand(Macro),
}

/// A macro-string (or an explanation string) as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroString {
    pub pieces: Vec<Piece>,
}

/// Which text is being parsed: they differ in what they may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A domain-spec: no spaces, must end in a top label or a macro.
    Domain,
    /// The value of a modifier Postbox does not know: any macro-string.
    Modifier,
    /// The text of an explanation TXT record: spaces, and %{c} %{r} %{t}.
    Explanation,
}

/// The values macros expand to, for one check of one domain.
pub struct Values<'a> {
    pub local: &'a str,
    pub sender_domain: &'a str,
    pub domain: &'a str,
    pub ip: IpAddr,
    pub helo: &'a str,
    pub receiver: &'a str,
    pub now_unix: u64,
    /// %{p}, found by DNS lookups beforehand when [`MacroString::uses_p`].
    pub validated: &'a str,
}

impl MacroString {
    /// Parses `text`; `Err` says what is wrong (a permerror).
    pub fn parse(text: &str, context: Context) -> Result<MacroString, String> {
        let bytes = text.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b != b'%' {
                let allowed =
                    (0x21..=0x7e).contains(&b) || (b == b' ' && context == Context::Explanation);
                if !allowed {
                    return Err(format!("character {b:#04x} not allowed in {text:?}"));
                }
                literal.push(b as char);
                i += 1;
                continue;
            }
            match bytes.get(i + 1) {
                Some(b'%') => literal.push('%'),
                Some(b'_') => literal.push(' '),
                Some(b'-') => literal.push_str("%20"),
                Some(b'{') => {
                    let end = text[i..]
                        .find('}')
                        .ok_or_else(|| format!("unclosed macro in {text:?}"))?;
                    let inner = &text[i + 2..i + end];
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Expand(parse_macro(inner, context)?));
                    i += end + 1;
                    continue;
                }
                _ => return Err(format!("bad % in {text:?}")),
            }
            i += 2;
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        let parsed = MacroString { pieces };
        if context == Context::Domain && !parsed.ends_like_a_domain(text) {
            return Err(format!("{text:?} does not end in a top-level name"));
        }
        Ok(parsed)
    }

    /// RFC 7208 §7.1 domain-end: "." toplabel ["."], or a macro-expand.
    fn ends_like_a_domain(&self, text: &str) -> bool {
        if text.ends_with(['%', '_', '-']) && text.len() >= 2 {
            // Could be %% %_ %- : a macro-expand by the grammar.
            let b = text.as_bytes();
            let mut percents = 0;
            for &c in b[..b.len() - 1].iter().rev() {
                if c != b'%' {
                    break;
                }
                percents += 1;
            }
            if percents % 2 == 1 {
                return true;
            }
        }
        match self.pieces.last() {
            Some(Piece::Expand(_)) => true,
            Some(Piece::Text(tail)) => {
                let tail = tail.strip_suffix('.').unwrap_or(tail);
                let Some(dot) = tail.rfind('.') else {
                    return false;
                };
                top_label(&tail[dot + 1..])
            }
            None => false,
        }
    }

    /// Whether it holds %{p}, whose value takes DNS lookups.
    pub fn uses_p(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Expand(m) if m.letter == b'p'))
    }

    /// The text with every macro expanded.
    pub fn expand(&self, values: &Values) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Expand(m) => {
                    let value = value_of(m.letter, values);
                    let transformed = transform(&value, m);
                    if m.escape {
                        url_escape(&transformed, &mut out);
                    } else {
                        out.push_str(&transformed);
                    }
                }
            }
        }
        out
    }
}

/// toplabel = ( *alphanum ALPHA *alphanum ) /
///            ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
fn top_label(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().any(|c| c.is_ascii_alphabetic() || *c == b'-')
}

fn parse_macro(inner: &str, context: Context) -> Result<Macro, String> {
    let bad = || format!("bad macro %{{{inner}}}");
    let b = inner.as_bytes();
    let first = *b.first().ok_or_else(bad)?;
    let letter = first.to_ascii_lowercase();
    let allowed: &[u8] = if context == Context::Explanation {
        b"slodiphvcrt"
    } else {
        b"slodiphv"
    };
    if !allowed.contains(&letter) {
        return Err(bad());
    }
    let mut i = 1;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let keep = if i > 1 {
        // More parts than a name can have mean "all of them".
        let n: usize = inner[1..i.min(5)].parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        Some(n)
    } else {
        None
    };
    let reverse = matches!(b.get(i), Some(b'r' | b'R'));
    if reverse {
        i += 1;
    }
    let delimiters = b[i..].to_vec();
    if !delimiters.iter().all(|d| b".-+,/_=".contains(d)) {
        return Err(bad());
    }
    Ok(Macro {
        letter,
        escape: first.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters,
    })
}

fn value_of(letter: u8, v: &Values) -> String {
    match letter {
        b's' => format!("{}@{}", v.local, v.sender_domain),
        b'l' => v.local.to_string(),
        b'o' => v.sender_domain.to_string(),
        b'd' => v.domain.to_string(),
        b'i' => match v.ip {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => {
                let mut s = String::with_capacity(63);
                for byte in a.octets() {
                    let _ = write!(s, "{:x}.{:x}.", byte >> 4, byte & 0x0f);
                }
                s.pop();
                s
            }
        },
        b'p' => v.validated.to_string(),
        b'v' => if v.ip.is_ipv4() { "in-addr" } else { "ip6" }.to_string(),
        b'h' => v.helo.to_string(),
        b'c' => v.ip.to_string(),
        b'r' => v.receiver.to_string(),
        b't' => v.now_unix.to_string(),
        _ => String::new(),
    }
}

/// Splits on the delimiters, reverses, keeps the rightmost parts, joins
/// with dots (RFC 7208 §7.3).
fn transform(value: &str, m: &Macro) -> String {
    if m.keep.is_none() && !m.reverse && m.delimiters.is_empty() {
        return value.to_string();
    }
    let delimiters: &[u8] = if m.delimiters.is_empty() {
        b"."
    } else {
        &m.delimiters
    };
    let mut parts: Vec<&str> = value
        .split(|c: char| c.is_ascii() && delimiters.contains(&(c as u8)))
        .collect();
    if m.reverse {
        parts.reverse();
    }
    let keep = m.keep.unwrap_or(parts.len()).min(parts.len());
    parts[parts.len() - keep..].join(".")
}

/// RFC 3986 escaping of all but the unreserved characters.
fn url_escape(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7208 §7.4's examples.
    fn expand(text: &str, ip: &str) -> String {
        let values = Values {
            local: "strong-bad",
            sender_domain: "email.example.com",
            domain: "email.example.com",
            ip: ip.parse().unwrap(),
            helo: "mx.example.org",
            receiver: "mx.example.net",
            now_unix: 1_700_000_000,
            validated: "mx.example.org",
        };
        MacroString::parse(text, Context::Explanation)
            .unwrap()
            .expand(&values)
    }

    #[test]
    fn rfc_7208_examples() {
        let v4 = "192.0.2.3";
        assert_eq!(expand("%{s}", v4), "strong-bad@email.example.com");
        assert_eq!(expand("%{o}", v4), "email.example.com");
        assert_eq!(expand("%{d}", v4), "email.example.com");
        assert_eq!(expand("%{d4}", v4), "email.example.com");
        assert_eq!(expand("%{d3}", v4), "email.example.com");
        assert_eq!(expand("%{d2}", v4), "example.com");
        assert_eq!(expand("%{d1}", v4), "com");
        assert_eq!(expand("%{dr}", v4), "com.example.email");
        assert_eq!(expand("%{d2r}", v4), "example.email");
        assert_eq!(expand("%{l}", v4), "strong-bad");
        assert_eq!(expand("%{l-}", v4), "strong.bad");
        assert_eq!(expand("%{lr}", v4), "strong-bad");
        assert_eq!(expand("%{lr-}", v4), "bad.strong");
        assert_eq!(expand("%{l1r-}", v4), "strong");
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", v4),
            "3.2.0.192.in-addr._spf.example.com"
        );
        assert_eq!(
            expand("%{lr-}.lp._spf.%{d2}", v4),
            "bad.strong.lp._spf.example.com"
        );
        assert_eq!(
            expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", v4),
            "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"
        );
        assert_eq!(
            expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", v4),
            "3.2.0.192.in-addr.strong.lp._spf.example.com"
        );
        assert_eq!(
            expand("%{d2}.trusted-domains.example.net", v4),
            "example.com.trusted-domains.example.net"
        );
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01"),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
    }

    #[test]
    fn escapes_and_explanation_letters() {
        let v4 = "192.0.2.3";
        assert_eq!(expand("%%%_%-", v4), "% %20");
        assert_eq!(expand("%{S}", v4), "strong-bad%40email.example.com");
        assert_eq!(
            expand("%{c} %{r} %{t} %{p} %{h}", "2001:db8::1"),
            "2001:db8::1 mx.example.net 1700000000 mx.example.org mx.example.org"
        );
        assert_eq!(expand("%{l+=}", v4), "strong-bad");
        assert_eq!(expand("%{d99}", v4), "email.example.com");
    }

    #[test]
    fn syntax_errors() {
        let domain = |t| MacroString::parse(t, Context::Domain);
        assert!(domain("%{d}").is_ok());
        assert!(domain("example.com").is_ok());
        assert!(domain("example.com.").is_ok());
        assert!(domain("_spf.%{d2}").is_ok());
        assert!(domain("foo%%").is_ok(), "%% is a macro-expand");
        assert!(domain("com").is_err(), "no dot before the top label");
        assert!(domain("example.123").is_err(), "numeric top label");
        assert!(domain("example.-com").is_err());
        assert!(
            domain("%{c}.example.com").is_err(),
            "c only in explanations"
        );
        assert!(domain("%{d0}.example.com").is_err());
        assert!(domain("%{x}.example.com").is_err());
        assert!(domain("%{d.example.com").is_err());
        assert!(domain("%a.example.com").is_err());
        assert!(domain("%{d}%").is_err());
        assert!(domain("a b.example.com").is_err());
        assert!(domain("%{d*}.example.com").is_err(), "not a delimiter");
        assert!(MacroString::parse("%{c} and %{t}", Context::Explanation).is_ok());
        assert!(MacroString::parse("a\tb", Context::Explanation).is_err());
        assert!(MacroString::parse("anything=goes/here", Context::Modifier).is_ok());
    }
}
