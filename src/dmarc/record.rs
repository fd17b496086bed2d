//! The DMARC policy record (RFC 7489 §6.3, §6.4): a tag list that starts
//! with `v=DMARC1`. Unknown tags are ignored; a known tag with a bad value
//! falls back to its default (§6.3), except `p` and `sp`, whose errors make
//! the record unusable unless it names a valid `rua` (§6.6.3 step 6).

use crate::limits::{DMARC_MAX_RECORD, DMARC_MAX_REPORT_URIS};

/// What a domain asks receivers to do with mail that fails DMARC,
/// mildest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disposition {
    None,
    Quarantine,
    Reject,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::None => "none",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
        }
    }

    /// The next milder one: what a message left out by `pct` gets (§6.6.4).
    pub fn milder(self) -> Disposition {
        match self {
            Disposition::Reject => Disposition::Quarantine,
            _ => Disposition::None,
        }
    }

    fn parse(value: &str) -> Option<Disposition> {
        [
            Disposition::None,
            Disposition::Quarantine,
            Disposition::Reject,
        ]
        .into_iter()
        .find(|d| value.eq_ignore_ascii_case(d.as_str()))
    }
}

/// `adkim` and `aspf`: relaxed (same organizational domain) or strict
/// (the same name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlignmentMode {
    Relaxed,
    Strict,
}

/// `fo`: when the domain wants failure reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureOptions {
    /// `0`: when every mechanism failed to give an aligned pass.
    pub all_failed: bool,
    /// `1`: when any mechanism failed to give an aligned pass.
    pub any_failed: bool,
    /// `d`: when a DKIM signature failed.
    pub dkim_failed: bool,
    /// `s`: when SPF failed.
    pub spf_failed: bool,
}

/// A usable DMARC record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `p`; `none` when it was missing or invalid but `rua` is valid.
    pub policy: Disposition,
    /// `sp`, for subdomains of the domain that published it.
    pub subdomain_policy: Option<Disposition>,
    /// `adkim`, relaxed unless `s`.
    pub dkim_alignment: AlignmentMode,
    /// `aspf`, relaxed unless `s`.
    pub spf_alignment: AlignmentMode,
    /// `pct`: the share of failing mail the policy is for, 0 to 100.
    pub percent: u8,
    /// `rua`: where aggregate reports go (the valid URIs, at most a few).
    pub aggregate_reports: Vec<String>,
    /// `ruf`: where failure reports go.
    pub failure_reports: Vec<String>,
    pub failure_options: FailureOptions,
}

/// Why a TXT record gives no usable policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// It does not start with `v=DMARC1`: not a DMARC record at all; it is
    /// discarded (§6.6.3 step 2).
    NotDmarc,
    /// A DMARC record without a valid `p` (or with an invalid `sp`) and no
    /// valid `rua`: DMARC does not apply (§6.6.3 step 6).
    BadPolicy,
    /// Longer than we read.
    TooLong,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordError::NotDmarc => "not a DMARC record",
            RecordError::BadPolicy => "DMARC record without a valid policy",
            RecordError::TooLong => "DMARC record too long",
        })
    }
}

/// The tags of a tag list: `name = value` pairs between `;`, white space
/// around each part dropped, empty parts skipped.
fn tags(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(';').filter_map(|part| {
        let part = part.trim_matches(is_wsp);
        if part.is_empty() {
            return None;
        }
        match part.split_once('=') {
            Some((name, value)) => Some((name.trim_matches(is_wsp), value.trim_matches(is_wsp))),
            // A part without `=` is a syntax error; it counts as a tag with
            // no value so `v` first is still checked against it.
            None => Some((part, "")),
        }
    })
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Whether a TXT record is a DMARC record: its first tag is `v=DMARC1`,
/// the value exactly so (§6.3; the ABNF spells it with %x, case and all).
pub fn is_dmarc(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    let first = tags(&text).next();
    matches!(first, Some((name, "DMARC1")) if name.eq_ignore_ascii_case("v"))
}

/// A report URI (§6.4 `dmarc-uri`): a URI with a scheme, optionally
/// followed by `!` and a size limit.
fn valid_report_uri(uri: &str) -> bool {
    let (uri, limit) = match uri.rsplit_once('!') {
        Some((uri, limit)) => (uri, Some(limit)),
        None => (uri, None),
    };
    if let Some(limit) = limit {
        let digits = limit.trim_end_matches(['k', 'm', 'g', 't', 'K', 'M', 'G', 'T']);
        let unit = limit.len() - digits.len();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || unit > 1 {
            return false;
        }
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut scheme = scheme.bytes();
    scheme.next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_graphic())
}

fn report_uris(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|uri| uri.trim_matches(is_wsp))
        .filter(|uri| valid_report_uri(uri))
        .take(DMARC_MAX_REPORT_URIS)
        .map(str::to_owned)
        .collect()
}

fn failure_options(value: &str) -> Option<FailureOptions> {
    let mut options = FailureOptions::default();
    for option in value.split(':') {
        match option.trim_matches(is_wsp) {
            "0" => options.all_failed = true,
            "1" => options.any_failed = true,
            "d" | "D" => options.dkim_failed = true,
            "s" | "S" => options.spf_failed = true,
            _ => return None,
        }
    }
    Some(options)
}

fn alignment(value: &str) -> Option<AlignmentMode> {
    if value.eq_ignore_ascii_case("r") {
        Some(AlignmentMode::Relaxed)
    } else if value.eq_ignore_ascii_case("s") {
        Some(AlignmentMode::Strict)
    } else {
        None
    }
}

/// Reads one TXT record (its strings joined) as a DMARC record.
pub fn parse(text: &[u8]) -> Result<Record, RecordError> {
    if !is_dmarc(text) {
        return Err(RecordError::NotDmarc);
    }
    if text.len() > DMARC_MAX_RECORD {
        return Err(RecordError::TooLong);
    }
    let text = String::from_utf8_lossy(text);
    let mut record = Record {
        policy: Disposition::None,
        subdomain_policy: None,
        dkim_alignment: AlignmentMode::Relaxed,
        spf_alignment: AlignmentMode::Relaxed,
        percent: 100,
        aggregate_reports: Vec::new(),
        failure_reports: Vec::new(),
        failure_options: FailureOptions {
            all_failed: true,
            ..FailureOptions::default()
        },
    };
    let mut policy = None;
    let mut subdomain_policy_broken = false;
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in tags(&text).skip(1) {
        let name = name.to_ascii_lowercase();
        // The first of a repeated tag counts.
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        match name.as_str() {
            "p" => policy = Disposition::parse(value),
            "sp" => {
                record.subdomain_policy = Disposition::parse(value);
                subdomain_policy_broken = record.subdomain_policy.is_none();
            }
            "adkim" => record.dkim_alignment = alignment(value).unwrap_or(AlignmentMode::Relaxed),
            "aspf" => record.spf_alignment = alignment(value).unwrap_or(AlignmentMode::Relaxed),
            "pct" => {
                record.percent = value
                    .parse::<u8>()
                    .ok()
                    .filter(|&p| p <= 100 && (1..=3).contains(&value.len()))
                    .unwrap_or(100)
            }
            "rua" => record.aggregate_reports = report_uris(value),
            "ruf" => record.failure_reports = report_uris(value),
            "fo" => {
                if let Some(options) = failure_options(value) {
                    record.failure_options = options;
                }
            }
            _ => {}
        }
    }
    match policy {
        Some(policy) if !subdomain_policy_broken => record.policy = policy,
        _ if !record.aggregate_reports.is_empty() => {
            // §6.6.3 step 6: act as if p=none was published.
            record.policy = Disposition::None;
            if subdomain_policy_broken {
                record.subdomain_policy = None;
            }
        }
        _ => return Err(RecordError::BadPolicy),
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Record {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn rfc7489_example_records() {
        // §B.2.1.
        let r = ok("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com");
        assert_eq!(r.policy, Disposition::None);
        assert_eq!(r.aggregate_reports, ["mailto:dmarc-feedback@example.com"]);
        assert_eq!(r.dkim_alignment, AlignmentMode::Relaxed);
        assert_eq!(r.spf_alignment, AlignmentMode::Relaxed);
        assert_eq!(r.percent, 100);
        // §B.2.2.
        let r = ok("v=DMARC1; p=none; rua=mailto:dmarc-feedback@example.com; \
                    ruf=mailto:auth-reports@thirdparty.example.net");
        assert_eq!(
            r.failure_reports,
            ["mailto:auth-reports@thirdparty.example.net"]
        );
        // §B.2.4.
        let r = ok(
            "v=DMARC1; p=quarantine; rua=mailto:dmarc-feedback@example.com; \
                    ruf=mailto:auth-reports@thirdparty.example.net; pct=25",
        );
        assert_eq!(r.policy, Disposition::Quarantine);
        assert_eq!(r.percent, 25);
        // §B.3.1 (with the size limit of §6.2).
        let r = ok("v=DMARC1; p=reject; sp=none; adkim=s; aspf=s; \
                    rua=mailto:a@example.com!10m,mailto:b@example.net");
        assert_eq!(r.policy, Disposition::Reject);
        assert_eq!(r.subdomain_policy, Some(Disposition::None));
        assert_eq!(r.dkim_alignment, AlignmentMode::Strict);
        assert_eq!(r.spf_alignment, AlignmentMode::Strict);
        assert_eq!(
            r.aggregate_reports,
            ["mailto:a@example.com!10m", "mailto:b@example.net"]
        );
    }

    #[test]
    fn version_must_come_first_and_be_exact() {
        assert!(is_dmarc(b"v=DMARC1; p=none"));
        assert!(is_dmarc(b"v = DMARC1 ;p=none"));
        assert!(is_dmarc(b"V=DMARC1; p=none"));
        assert!(is_dmarc(b"v=DMARC1"));
        assert!(!is_dmarc(b"v=dmarc1; p=none"));
        assert!(!is_dmarc(b"v=DMARC10; p=none"));
        assert!(!is_dmarc(b"p=none; v=DMARC1"));
        assert!(!is_dmarc(b"v=spf1 -all"));
        assert!(!is_dmarc(b""));
        assert_eq!(parse(b"v=spf1 -all"), Err(RecordError::NotDmarc));
    }

    #[test]
    fn policy_errors_make_the_record_unusable_unless_rua_is_valid() {
        assert_eq!(parse(b"v=DMARC1"), Err(RecordError::BadPolicy));
        assert_eq!(parse(b"v=DMARC1; p=block"), Err(RecordError::BadPolicy));
        assert_eq!(
            parse(b"v=DMARC1; p=reject; sp=nope"),
            Err(RecordError::BadPolicy)
        );
        assert_eq!(
            parse(b"v=DMARC1; p=; rua=bogus"),
            Err(RecordError::BadPolicy)
        );
        let r = ok("v=DMARC1; p=block; rua=mailto:r@example.com");
        assert_eq!(r.policy, Disposition::None);
        let r = ok("v=DMARC1; rua=mailto:r@example.com");
        assert_eq!(r.policy, Disposition::None);
        let r = ok("v=DMARC1; p=reject; sp=nope; rua=mailto:r@example.com");
        assert_eq!(r.policy, Disposition::None);
        assert_eq!(r.subdomain_policy, None);
    }

    #[test]
    fn other_errors_fall_back_to_defaults_and_unknown_tags_are_ignored() {
        let r = ok("v=DMARC1;p=Reject;adkim=x;aspf=;pct=101;fo=2;ri=abc;zz=top;;");
        assert_eq!(r.policy, Disposition::Reject);
        assert_eq!(r.dkim_alignment, AlignmentMode::Relaxed);
        assert_eq!(r.spf_alignment, AlignmentMode::Relaxed);
        assert_eq!(r.percent, 100);
        assert!(r.failure_options.all_failed && !r.failure_options.any_failed);
        for pct in ["-1", "1000", "0x10", "", "50%", "0100"] {
            assert_eq!(
                ok(&format!("v=DMARC1; p=none; pct={pct}")).percent,
                100,
                "{pct}"
            );
        }
        assert_eq!(ok("v=DMARC1; p=none; pct=0").percent, 0);
        let r = ok("v=DMARC1; p=none; fo=1:d:s");
        assert!(r.failure_options.any_failed && r.failure_options.dkim_failed);
        assert!(r.failure_options.spf_failed && !r.failure_options.all_failed);
        // Bad URIs are dropped, good ones kept.
        let r = ok("v=DMARC1; p=none; rua=nope, mailto:a@example.com!x, mailto:b@example.com!5k, https://r.example/x");
        assert_eq!(
            r.aggregate_reports,
            ["mailto:b@example.com!5k", "https://r.example/x"]
        );
        // A part without `=`, and the first of a repeated tag.
        let r = ok("v=DMARC1; junk; p=quarantine; p=reject; adkim = s ");
        assert_eq!(r.policy, Disposition::Quarantine);
        assert_eq!(r.dkim_alignment, AlignmentMode::Strict);
        // Tabs count as white space.
        assert_eq!(ok("v=DMARC1;\tp\t=\treject\t").policy, Disposition::Reject);
    }

    #[test]
    fn a_record_past_the_cap_is_not_read() {
        let long = format!(
            "v=DMARC1; p=reject; rua=mailto:{}@example.com",
            "a".repeat(DMARC_MAX_RECORD)
        );
        assert_eq!(parse(long.as_bytes()), Err(RecordError::TooLong));
        assert!(is_dmarc(long.as_bytes()));
    }

    /// Every short tail of odd bytes after the version: no panic, and no
    /// policy read out of bytes that spell none.
    #[test]
    fn odd_bytes_never_panic() {
        let alphabet = [b';', b'=', b' ', b'p', b'r', b'\t', b'!', b',', b':', 0xff];
        for n in 0..100_000u32 {
            let mut text = b"v=DMARC1;".to_vec();
            let mut k = n;
            for _ in 0..5 {
                text.push(alphabet[(k % 10) as usize]);
                k /= 10;
            }
            assert_eq!(parse(&text), Err(RecordError::BadPolicy), "{text:?}");
        }
    }
}
