//! Mail addresses as they appear in SMTP paths, and the rules for user names.
//!
//! An [`Address`] is a fixed-capacity `local@domain` with the domain folded to
//! lower case. Parsing accepts what RFC 5321 §4.1.2 allows on the wire (source
//! routes are read and dropped, quoted local parts are kept verbatim) and
//! refuses anything with control characters or without a domain.

use crate::limits::{MAX_ADDRESS, MAX_DOMAIN, MAX_USER_NAME};
use core::fmt;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address {
    text: heapless::String<MAX_ADDRESS>,
    at: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    Syntax,
    TooLong,
    BadDomain,
    BadLocalPart,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::Syntax => "address syntax error",
            AddressError::TooLong => "address too long",
            AddressError::BadDomain => "invalid domain",
            AddressError::BadLocalPart => "invalid local part",
        })
    }
}

impl Address {
    /// Builds `local@domain`, validating both halves. A local part may be
    /// longer than RFC 5321's 64 octets, as long as the whole fits: VERP
    /// and SRS return paths often are, and refusing them would lose their
    /// mail or bounces (RFC 5321 §4.5.3.1 asks for no limits where possible).
    pub fn new(local: &str, domain: &str) -> Result<Self, AddressError> {
        if local.is_empty() || !local_part_is_valid(local) {
            return Err(AddressError::BadLocalPart);
        }
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        if !domain_is_valid(domain) {
            return Err(AddressError::BadDomain);
        }
        let mut text = heapless::String::new();
        let fits = text.push_str(local).is_ok()
            && text.push('@').is_ok()
            && domain
                .chars()
                .all(|c| text.push(c.to_ascii_lowercase()).is_ok());
        if !fits {
            return Err(AddressError::TooLong);
        }
        Ok(Address {
            at: local.len(),
            text,
        })
    }

    /// Parses the inside of an SMTP path (`<` and `>` already removed),
    /// dropping an optional source route (`@a,@b:user@c`).
    pub fn parse_path(inner: &str) -> Result<Self, AddressError> {
        if inner.len() > MAX_ADDRESS {
            return Err(AddressError::TooLong);
        }
        let mailbox = if inner.starts_with('@') {
            let colon = inner.find(':').ok_or(AddressError::Syntax)?;
            let route = &inner[..colon];
            if !route
                .split(',')
                .all(|hop| hop.strip_prefix('@').is_some_and(domain_is_valid))
            {
                return Err(AddressError::Syntax);
            }
            &inner[colon + 1..]
        } else {
            inner
        };
        let at = mailbox.rfind('@').ok_or(AddressError::Syntax)?;
        Address::new(&mailbox[..at], &mailbox[at + 1..])
    }

    pub fn local(&self) -> &str {
        &self.text[..self.at]
    }

    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.text)
    }
}

/// A dot-string or quoted-string local part (RFC 5321 §4.1.2), UTF-8 allowed
/// (RFC 6531), no control characters anywhere.
fn local_part_is_valid(local: &str) -> bool {
    if local.chars().any(|c| c.is_control()) {
        return false;
    }
    if let Some(quoted) = local.strip_prefix('"') {
        return !quoted.is_empty() && quoted.ends_with('"');
    }
    const SPECIALS: &str = "()<>[]:;@\\,\" ";
    !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !local.chars().any(|c| SPECIALS.contains(c))
}

/// A host name of letters, digits and hyphens, or an address literal in brackets.
pub fn domain_is_valid(domain: &str) -> bool {
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return false;
    }
    if let Some(literal) = domain.strip_prefix('[') {
        return literal.strip_suffix(']').is_some_and(|inner| {
            inner.parse::<std::net::Ipv4Addr>().is_ok()
                || inner
                    .strip_prefix("IPv6:")
                    .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok())
        });
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && !c.is_control())
            })
    })
}

/// User names are a strict subset of local parts: they become directory
/// names, so only lower-case ASCII letters, digits and `.-_+`, never a
/// leading dot (no `..`, no hidden files, no path separators).
pub fn user_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-+".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_folds_domain_case() {
        let a = Address::parse_path("Alice@Example.ORG").unwrap();
        assert_eq!(a.local(), "Alice");
        assert_eq!(a.domain(), "example.org");
        assert_eq!(a.as_str(), "Alice@example.org");
    }

    #[test]
    fn drops_source_route() {
        let a = Address::parse_path("@relay.example,@b.example:bob@c.example").unwrap();
        assert_eq!(a.as_str(), "bob@c.example");
        assert!(Address::parse_path("@:bob@c.example").is_err());
    }

    #[test]
    fn keeps_percent_and_bang_in_local_part() {
        let a = Address::parse_path("user%other@localhost").unwrap();
        assert_eq!(a.local(), "user%other");
        let b = Address::parse_path("host!user@localhost").unwrap();
        assert_eq!(b.local(), "host!user");
    }

    #[test]
    fn quoted_local_part_uses_last_at() {
        let a = Address::parse_path("\"a@b\"@localhost").unwrap();
        assert_eq!(a.local(), "\"a@b\"");
        assert_eq!(a.domain(), "localhost");
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in [
            "",
            "nodomain",
            "@localhost",
            "a@",
            "a@-x.org",
            "a@x..org",
            "a..b@x.org",
            ".a@x.org",
            "a b@x.org",
            "a\r@x.org",
            "a@x\u{0}.org",
            "a@[1.2.3]",
        ] {
            assert!(Address::parse_path(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@x.org", "a".repeat(300));
        assert_eq!(Address::parse_path(&long), Err(AddressError::TooLong));
    }

    #[test]
    fn long_return_paths_are_kept() {
        let srs = format!(
            "SRS0=HHHH=TT=lists.example.org={}@club.example",
            "b".repeat(80)
        );
        let address = Address::parse_path(&srs).unwrap();
        assert_eq!(address.local().len(), 80 + 31);
        assert!(!user_name_is_valid(address.local()));
    }

    #[test]
    fn accepts_literals_and_utf8() {
        assert!(Address::parse_path("a@[127.0.0.1]").is_ok());
        assert!(Address::parse_path("a@[IPv6:::1]").is_ok());
        assert!(Address::parse_path("jörg@bücher.example").is_ok());
        assert!(Address::parse_path("a@localhost.").is_ok());
    }

    #[test]
    fn user_names() {
        for good in ["alice", "a.b", "x-y_z+1", "0"] {
            assert!(user_name_is_valid(good), "{good}");
        }
        for bad in [
            "", "Alice", ".x", "x.", "a..b", "a/b", "../x", "a b", "a\nb", "é",
        ] {
            assert!(!user_name_is_valid(bad), "{bad:?}");
        }
    }
}
