//! Organizational domains (RFC 7489 §3.2) from the ICANN section of the
//! Public Suffix List, with its wildcard and exception rules. The list is
//! vendored (`public_suffix_list.dat`, MPL-2.0) and compiled by the build
//! script into a front-coded table of about 50 KB: rules with their labels
//! reversed, sorted, searched without a copy into RAM.

include!(concat!(env!("OUT_DIR"), "/psl_restarts.rs"));
static TABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/psl_rules.bin"));

/// Longest rule key: a domain name is at most 253 octets.
const MAX_KEY: usize = 255;

/// The full rule stored at a restart point.
fn restart_key(offset: u32) -> &'static [u8] {
    let offset = offset as usize;
    let len = TABLE[offset + 1] as usize;
    &TABLE[offset + 2..offset + 2 + len]
}

/// Whether the table holds `key` (a rule with its labels reversed).
fn has_rule(key: &[u8]) -> bool {
    let after = RESTARTS.partition_point(|&offset| restart_key(offset) <= key);
    let Some(&start) = after.checked_sub(1).and_then(|i| RESTARTS.get(i)) else {
        return false;
    };
    let mut pos = start as usize;
    let mut rule = [0u8; MAX_KEY + 1];
    for _ in 0..RESTART_EVERY {
        let Some(&[shared, rest]) = TABLE.get(pos..pos + 2) else {
            return false;
        };
        let (shared, rest) = (shared as usize, rest as usize);
        rule[shared..shared + rest].copy_from_slice(&TABLE[pos + 2..pos + 2 + rest]);
        pos += 2 + rest;
        match rule[..shared + rest].cmp(key) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Greater => return false,
            std::cmp::Ordering::Less => {}
        }
    }
    false
}

/// A domain in the form DNS and the table use: lower case, no final dot,
/// Unicode labels as A-labels. None for what is no domain name (an empty
/// label, a byte no host name has, too long).
pub fn normalize_domain(domain: &str) -> Option<String> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let mut out = String::with_capacity(domain.len());
    for label in domain.split('.') {
        let label = if label.is_ascii() {
            label.to_ascii_lowercase()
        } else {
            super::punycode::to_ascii_label(&label.to_lowercase())?
        };
        let fine = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if label.is_empty() || label.len() > 63 || !label.bytes().all(fine) {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&label);
    }
    (out.len() <= crate::limits::MAX_DOMAIN).then_some(out)
}

/// How many labels, from the right, the public suffix of a normalized
/// domain has (RFC 7489 §3.2 steps 1-3 and the list's own algorithm: an
/// exception wins, else the rule with the most labels, else `*`).
fn public_suffix_labels(domain: &str) -> usize {
    let labels: Vec<&str> = domain.split('.').collect();
    let mut key = Vec::with_capacity(domain.len() + 2);
    let mut longest = 1;
    for k in 1..=labels.len() {
        // The last k labels, reversed: "uk", "uk.co", "uk.co.example".
        key.clear();
        for (i, label) in labels[labels.len() - k..].iter().rev().enumerate() {
            if i > 0 {
                key.push(b'.');
            }
            if i == k - 1 {
                // The exception form of this suffix is "...!label".
                let plain = key.len();
                key.push(b'!');
                key.extend_from_slice(label.as_bytes());
                if has_rule(&key) {
                    return k - 1;
                }
                key.truncate(plain);
                // The wildcard rule one level up covers this suffix.
                key.push(b'*');
                if has_rule(&key) {
                    longest = k;
                }
                key.truncate(plain);
            }
            key.extend_from_slice(label.as_bytes());
        }
        if has_rule(&key) {
            longest = k;
        }
    }
    longest
}

/// The last `n` labels of `domain`.
fn last_labels(domain: &str, n: usize) -> &str {
    let mut start = domain.len();
    for _ in 0..n {
        start = domain[..start].rfind('.').unwrap_or(0);
        if start == 0 {
            return domain;
        }
    }
    &domain[start + 1..]
}

/// The registrable domain by the list (public suffix plus one label), in
/// normalized form; None for a public suffix itself or no domain name.
pub fn registrable_domain(domain: &str) -> Option<String> {
    let domain = normalize_domain(domain)?;
    let suffix = public_suffix_labels(&domain);
    let labels = domain.split('.').count();
    (labels > suffix).then(|| last_labels(&domain, suffix + 1).to_owned())
}

/// The organizational domain of RFC 7489 §3.2, normalized. A domain that is
/// itself a public suffix is its own organizational domain, so mail from
/// such a name still aligns only with itself. None for no domain name.
pub fn organizational_domain(domain: &str) -> Option<String> {
    let normalized = normalize_domain(domain)?;
    Some(registrable_domain(&normalized).unwrap_or(normalized))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The publicsuffix.org test list (tests/test_psl.txt, checkPublicSuffix)
    /// with the answers for the ICANN section; null is None. Its Unicode
    /// expectations come back as A-labels, the form we compare in.
    #[test]
    fn check_public_suffix_cases() {
        let cases: &[(&str, Option<&str>)] = &[
            // Mixed case.
            ("COM", None),
            ("example.COM", Some("example.com")),
            ("WwW.example.COM", Some("example.com")),
            // Leading dot.
            (".com", None),
            (".example", None),
            (".example.com", None),
            (".example.example", None),
            // Unlisted TLD.
            ("example", None),
            ("example.example", Some("example.example")),
            ("b.example.example", Some("example.example")),
            ("a.b.example.example", Some("example.example")),
            // TLD with only 1 rule.
            ("biz", None),
            ("domain.biz", Some("domain.biz")),
            ("b.domain.biz", Some("domain.biz")),
            ("a.b.domain.biz", Some("domain.biz")),
            // TLD with some 2-level rules.
            ("com", None),
            ("example.com", Some("example.com")),
            ("b.example.com", Some("example.com")),
            ("a.b.example.com", Some("example.com")),
            ("test.ac", Some("test.ac")),
            // TLD with only 1 (wildcard) rule.
            ("mm", None),
            ("c.mm", None),
            ("b.c.mm", Some("b.c.mm")),
            ("a.b.c.mm", Some("b.c.mm")),
            // More complex TLD.
            ("jp", None),
            ("test.jp", Some("test.jp")),
            ("www.test.jp", Some("test.jp")),
            ("ac.jp", None),
            ("test.ac.jp", Some("test.ac.jp")),
            ("www.test.ac.jp", Some("test.ac.jp")),
            ("kyoto.jp", None),
            ("test.kyoto.jp", Some("test.kyoto.jp")),
            ("ide.kyoto.jp", None),
            ("b.ide.kyoto.jp", Some("b.ide.kyoto.jp")),
            ("a.b.ide.kyoto.jp", Some("b.ide.kyoto.jp")),
            ("c.kobe.jp", None),
            ("b.c.kobe.jp", Some("b.c.kobe.jp")),
            ("a.b.c.kobe.jp", Some("b.c.kobe.jp")),
            ("city.kobe.jp", Some("city.kobe.jp")),
            ("www.city.kobe.jp", Some("city.kobe.jp")),
            // TLD with a wildcard rule and exceptions.
            ("ck", None),
            ("test.ck", None),
            ("b.test.ck", Some("b.test.ck")),
            ("a.b.test.ck", Some("b.test.ck")),
            ("www.ck", Some("www.ck")),
            ("www.www.ck", Some("www.ck")),
            // US K12.
            ("us", None),
            ("test.us", Some("test.us")),
            ("www.test.us", Some("test.us")),
            ("ak.us", None),
            ("test.ak.us", Some("test.ak.us")),
            ("www.test.ak.us", Some("test.ak.us")),
            ("k12.ak.us", None),
            ("test.k12.ak.us", Some("test.k12.ak.us")),
            ("www.test.k12.ak.us", Some("test.k12.ak.us")),
            // IDN labels.
            ("食狮.com.cn", Some("xn--85x722f.com.cn")),
            ("食狮.公司.cn", Some("xn--85x722f.xn--55qx5d.cn")),
            ("www.食狮.公司.cn", Some("xn--85x722f.xn--55qx5d.cn")),
            ("shishi.公司.cn", Some("shishi.xn--55qx5d.cn")),
            ("公司.cn", None),
            ("食狮.中国", Some("xn--85x722f.xn--fiqs8s")),
            ("www.食狮.中国", Some("xn--85x722f.xn--fiqs8s")),
            ("shishi.中国", Some("shishi.xn--fiqs8s")),
            ("中国", None),
            // Same as above, but punycoded.
            ("xn--85x722f.com.cn", Some("xn--85x722f.com.cn")),
            (
                "xn--85x722f.xn--55qx5d.cn",
                Some("xn--85x722f.xn--55qx5d.cn"),
            ),
            (
                "www.xn--85x722f.xn--55qx5d.cn",
                Some("xn--85x722f.xn--55qx5d.cn"),
            ),
            ("shishi.xn--55qx5d.cn", Some("shishi.xn--55qx5d.cn")),
            ("xn--55qx5d.cn", None),
            ("xn--85x722f.xn--fiqs8s", Some("xn--85x722f.xn--fiqs8s")),
            ("www.xn--85x722f.xn--fiqs8s", Some("xn--85x722f.xn--fiqs8s")),
            ("shishi.xn--fiqs8s", Some("shishi.xn--fiqs8s")),
            ("xn--fiqs8s", None),
        ];
        for &(domain, expected) in cases {
            assert_eq!(
                registrable_domain(domain).as_deref(),
                expected,
                "registrable domain of {domain}"
            );
        }
    }

    /// The list's PRIVATE section is left out: DMARC's organizational
    /// domain follows the ICANN section, so `uk.com` (a private rule) is an
    /// ordinary registered name here.
    #[test]
    fn private_rules_are_not_used() {
        assert_eq!(registrable_domain("uk.com").as_deref(), Some("uk.com"));
        assert_eq!(
            registrable_domain("example.uk.com").as_deref(),
            Some("uk.com")
        );
        assert_eq!(
            registrable_domain("someone.github.io").as_deref(),
            Some("github.io")
        );
    }

    #[test]
    fn organizational_domains_of_rfc7489_and_suffixes() {
        // RFC 7489 §3.2: the organizational domain of a.mail.example.com.
        assert_eq!(
            organizational_domain("a.mail.example.com").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            organizational_domain("news.bbc.co.uk.").as_deref(),
            Some("bbc.co.uk")
        );
        // A public suffix is its own.
        assert_eq!(organizational_domain("co.uk").as_deref(), Some("co.uk"));
        assert_eq!(organizational_domain("a..b"), None);
        assert_eq!(organizational_domain("a b.com"), None);
        assert_eq!(organizational_domain(""), None);
    }

    #[test]
    fn every_rule_of_the_table_is_found_and_near_misses_are_not() {
        let mut pos = 0;
        let mut rule = Vec::new();
        let mut count = 0;
        while pos < TABLE.len() {
            let (shared, rest) = (TABLE[pos] as usize, TABLE[pos + 1] as usize);
            rule.truncate(shared);
            rule.extend_from_slice(&TABLE[pos + 2..pos + 2 + rest]);
            pos += 2 + rest;
            assert!(has_rule(&rule), "{}", String::from_utf8_lossy(&rule));
            let mut longer = rule.clone();
            longer.push(b'0');
            assert!(!has_rule(&longer), "{}", String::from_utf8_lossy(&longer));
            count += 1;
        }
        assert!(count > 6000, "{count} rules");
        assert!(!has_rule(b""));
        assert!(!has_rule(b"zzzzzzzz"));
    }
}
