//! The Authentication-Results header field (RFC 8601): the one we add,
//! with our host name as authserv-id, and recognizing incoming ones that
//! claim that name, which must not reach a mailbox (§5): a reader would
//! trust them as ours.

use super::evaluate::{DmarcResult, Evaluation};
use super::psl::normalize_domain;
use super::{DkimOutcome, SpfIdentity, SpfOutcome};

const FIELD_NAME: &str = "Authentication-Results";
/// RFC 5322 §2.1.1: lines of at most 78 characters, CRLF excluded.
const LINE: usize = 78;

/// RFC 2045 token characters, which a value may use unquoted.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_byte)
}

/// A value as a token, or as a quoted-string when it is not one. Control
/// characters (a line break above all) become spaces.
fn value(text: &str) -> String {
    if is_token(text) {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A domain as a property value: its normalized form when it is a domain
/// name, else quoted as it came.
fn domain(text: &str) -> String {
    normalize_domain(text).unwrap_or_else(|| value(text))
}

/// Builds the field: `Authentication-Results: <authserv_id>;` and one
/// result per line (SPF when checked, each DKIM signature or `dkim=none`
/// when verification ran, DMARC when evaluated), folded to 78 characters,
/// ending in CRLF. With nothing checked it says `none` (§2.2).
pub fn authentication_results(
    authserv_id: &str,
    spf: Option<&SpfOutcome<'_>>,
    dkim: Option<&[DkimOutcome<'_>]>,
    dmarc: Option<&Evaluation>,
) -> String {
    // Each result is a list of words; a line break may go between any two.
    let mut results: Vec<Vec<String>> = Vec::new();
    if let Some(spf) = spf {
        let property = match spf.identity {
            SpfIdentity::MailFrom => "smtp.mailfrom",
            SpfIdentity::Helo => "smtp.helo",
        };
        results.push(vec![
            format!("spf={}", spf.result.as_str()),
            format!("{property}={}", domain(spf.domain)),
        ]);
    }
    match dkim {
        Some([]) => results.push(vec!["dkim=none".into()]),
        Some(signatures) => {
            for signature in signatures {
                let mut words = vec![format!("dkim={}", signature.result.as_str())];
                if let Some(reason) = signature.reason {
                    push_reason(&mut words, reason);
                }
                words.push(format!("header.d={}", domain(signature.domain)));
                words.push(format!("header.s={}", value(signature.selector)));
                if !signature.signature.is_empty() {
                    words.push(format!("header.b={}", value(signature.signature)));
                }
                results.push(words);
            }
        }
        None => {}
    }
    if let Some(dmarc) = dmarc {
        let mut words = vec![format!("dmarc={}", dmarc.result.as_str())];
        if dmarc.result != DmarcResult::Pass && !dmarc.reason.is_empty() {
            push_reason(&mut words, &dmarc.reason);
        }
        if dmarc.result == DmarcResult::Fail {
            words.push(format!("policy.dmarc={}", dmarc.applied.as_str()));
        }
        words.push(format!("header.from={}", domain(&dmarc.author_domain)));
        results.push(words);
    }
    if results.is_empty() {
        results.push(vec!["none".into()]);
    }

    let mut field = format!("{FIELD_NAME}: {};", value(authserv_id));
    let last = results.len() - 1;
    for (i, mut words) in results.into_iter().enumerate() {
        if i < last {
            words.last_mut().unwrap().push(';');
        }
        // Each result starts a line of its own.
        field.push_str("\r\n\t");
        let mut line = 1;
        for (j, word) in words.iter().enumerate() {
            if j > 0 {
                if line + 1 + word.len() > LINE {
                    // Folding puts a line break before the space between
                    // words, which stays: inside a quoted reason it is
                    // part of the text.
                    field.push_str("\r\n ");
                    line = 1;
                } else {
                    field.push(' ');
                    line += 1;
                }
            }
            field.push_str(word);
            line += word.len();
        }
    }
    field.push_str("\r\n");
    field
}

/// `reason="…"`, split at its spaces so a long one folds: unfolding puts
/// the spaces back (RFC 5322 §2.2.3).
fn push_reason(words: &mut Vec<String>, reason: &str) {
    let quoted = format!("reason={}", value(reason));
    words.extend(quoted.split(' ').map(str::to_owned));
}

/// Skips comments and folding white space (RFC 5322 CFWS); None for an
/// unclosed comment.
fn skip_cfws(bytes: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b'\\' if depth > 0 => i += 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if depth > 0 => {}
            _ => return Some(i),
        }
        i += 1;
    }
    (depth == 0).then_some(i)
}

/// Whether a header field (name, colon, value, folded or not) is an
/// Authentication-Results field whose authserv-id is `authserv_id`, in
/// any case, after any comments and white space. RFC 8601 §5: such a field
/// on incoming mail is a forgery (or ours come back) and is removed.
pub fn claims_authserv_id(field: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = field[..colon].trim_ascii_end();
    if !name.eq_ignore_ascii_case(FIELD_NAME.as_bytes()) {
        return false;
    }
    let Some(start) = skip_cfws(field, colon + 1) else {
        return false;
    };
    let mut id = Vec::new();
    if field.get(start) == Some(&b'"') {
        let mut i = start + 1;
        loop {
            match field.get(i) {
                None => return false,
                Some(b'"') => break,
                Some(b'\\') => {
                    let Some(&b) = field.get(i + 1) else {
                        return false;
                    };
                    id.push(b);
                    i += 2;
                }
                // Folding inside the quotes unfolds to its white space.
                Some(b'\r' | b'\n') => i += 1,
                Some(&b) => {
                    id.push(b);
                    i += 1;
                }
            }
        }
    } else {
        // UTF-8 names are allowed too (RFC 8616).
        id.extend(
            field[start..]
                .iter()
                .take_while(|&&b| is_token_byte(b) || b >= 0x80),
        );
    }
    let trim_dot = |s: &[u8]| s.strip_suffix(b".").unwrap_or(s).to_vec();
    !id.is_empty() && trim_dot(&id).eq_ignore_ascii_case(&trim_dot(authserv_id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dmarc::evaluate::Aligned;
    use crate::dmarc::{AuthResult, Disposition};

    fn evaluation(result: DmarcResult, reason: &str) -> Evaluation {
        Evaluation {
            result,
            author_domain: "example.com".into(),
            policy_domain: Some("example.com".into()),
            requested: Some(Disposition::Reject),
            applied: Disposition::Reject,
            spf: Aligned::No,
            dkim: Aligned::No,
            exact_pass: false,
            reason: reason.into(),
        }
    }

    #[test]
    fn a_typical_field() {
        let spf = SpfOutcome {
            result: AuthResult::Pass,
            identity: SpfIdentity::MailFrom,
            domain: "Example.COM",
        };
        let dkim = [DkimOutcome {
            result: AuthResult::Pass,
            domain: "example.com",
            selector: "sel",
            signature: "abcd/EF+",
            reason: None,
        }];
        let dmarc = evaluation(DmarcResult::Pass, "aligned SPF pass");
        let field =
            authentication_results("mx.club.example", Some(&spf), Some(&dkim), Some(&dmarc));
        assert_eq!(
            field,
            "Authentication-Results: mx.club.example;\r\n\
             \tspf=pass smtp.mailfrom=example.com;\r\n\
             \tdkim=pass header.d=example.com header.s=sel header.b=\"abcd/EF+\";\r\n\
             \tdmarc=pass header.from=example.com\r\n"
        );
    }

    #[test]
    fn nothing_checked_is_none_and_no_signature_is_dkim_none() {
        assert_eq!(
            authentication_results("mx.example", None, None, None),
            "Authentication-Results: mx.example;\r\n\tnone\r\n"
        );
        let helo = SpfOutcome {
            result: AuthResult::Neutral,
            identity: SpfIdentity::Helo,
            domain: "relay.example.net",
        };
        assert_eq!(
            authentication_results("mx.example", Some(&helo), Some(&[]), None),
            "Authentication-Results: mx.example;\r\n\
             \tspf=neutral smtp.helo=relay.example.net;\r\n\tdkim=none\r\n"
        );
    }

    #[test]
    fn long_reasons_fold_within_78_characters() {
        let dmarc = evaluation(
            DmarcResult::Fail,
            "no aligned pass for example.com: SPF fail (bounce.far-away-mailer.example), \
             DKIM fail (example.com), DKIM pass (another-signer.example) \"quoted\"",
        );
        let field = authentication_results("mx.example", None, None, Some(&dmarc));
        for line in field.split("\r\n") {
            assert!(line.len() <= 78, "{line:?}");
        }
        assert!(field.contains(r#"\"quoted\""#));
        let unfolded = field.replace("\r\n\t", " ").replace("\r\n", "");
        assert!(unfolded.ends_with("policy.dmarc=reject header.from=example.com"));
        assert!(unfolded.contains(&format!("reason=\"{}\"", dmarc.reason.replace('"', "\\\""))));
    }

    #[test]
    fn our_id_is_recognized_in_any_spelling() {
        let ours = "mx.club.example";
        for field in [
            "Authentication-Results: mx.club.example; spf=pass smtp.mailfrom=a.example",
            "authentication-results:MX.Club.Example;none",
            "AUTHENTICATION-RESULTS : mx.club.example 1; dkim=pass",
            "Authentication-Results: (forged) (nested (comment) \\) ) mx.club.example; none",
            "Authentication-Results:\r\n\t mx.club.example;\r\n\tnone",
            "Authentication-Results: \"mx.club.example\"; none",
            "Authentication-Results: mx.club.example.; none",
            "Authentication-Results: mx.club.example",
            "Authentication-Results: mx.club.example(comment); none",
        ] {
            assert!(claims_authserv_id(field.as_bytes(), ours), "{field}");
        }
        for field in [
            "Authentication-Results: mx.other.example; none",
            "Authentication-Results: mx.club.example.evil; none",
            "Authentication-Results: evil.mx.club.example; none",
            "Authentication-Results: (mx.club.example) other.example; none",
            "Authentication-Results: (unclosed mx.club.example; none",
            "Authentication-Results: ; none",
            "Authentication-Results:",
            "ARC-Authentication-Results: i=1; mx.club.example; none",
            "X-Authentication-Results: mx.club.example; none",
            "Received: from mx.club.example",
            "no colon",
        ] {
            assert!(!claims_authserv_id(field.as_bytes(), ours), "{field}");
        }
    }

    /// Every short tail of odd bytes after the field name: no panic, and
    /// only a tail that reads exactly as our id claims it.
    #[test]
    fn odd_bytes_never_panic() {
        let alphabet = [
            b'(', b')', b'\\', b'"', b' ', b'a', b';', b'\r', b'\n', 0xff,
        ];
        let mut tail = Vec::new();
        for n in 0..10_000u32 {
            tail.clear();
            let mut k = n;
            for _ in 0..4 {
                tail.push(alphabet[(k % 10) as usize]);
                k /= 10;
            }
            let mut field = b"Authentication-Results:".to_vec();
            field.extend_from_slice(&tail);
            let claims = claims_authserv_id(&field, "a");
            if claims {
                let text = String::from_utf8_lossy(&tail);
                assert!(text.contains('a'), "{text:?}");
            }
        }
    }
}
