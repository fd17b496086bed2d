//! The away reply itself (RFC 3834 §3): from the member to the original's
//! envelope sender, `Auto-Submitted: auto-replied`, threaded to the
//! original, the member's subject (or `Auto: ` and the original's) and
//! text.

use super::rule::Original;
use super::Away;
use crate::limits::AWAY_MAX_SUBJECT;
use crate::ops::clock::rfc5322_date;
use base64::Engine;
use std::time::SystemTime;

/// What a reply is made of.
pub struct Reply<'a> {
    pub member: &'a str,
    /// The original's envelope sender.
    pub to: &'a str,
    pub away: &'a Away,
    pub original: &'a Original,
    /// The reply's own Message-ID, without `<>` or domain.
    pub id: &'a str,
    pub hostname: &'a str,
    pub now: SystemTime,
}

/// The whole message, CRLF line ends.
pub fn compose(reply: &Reply) -> Vec<u8> {
    let Reply {
        member,
        to,
        away,
        original,
        id,
        hostname,
        now,
    } = reply;
    let subject = match away.subject.trim() {
        "" => format!("Auto: {}", original.subject.as_deref().unwrap_or("")),
        set => set.to_string(),
    };
    let mut head = format!(
        "From: <{member}>\r\nTo: <{to}>\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{id}@{hostname}>\r\n",
        header_text(shorten(subject.trim(), AWAY_MAX_SUBJECT)),
        rfc5322_date(*now),
    );
    if let Some(id) = &original.message_id {
        head.push_str(&format!("In-Reply-To: {id}\r\n"));
        let references: Vec<&str> = original
            .references
            .iter()
            .map(String::as_str)
            .filter(|r| r != id)
            .chain([id.as_str()])
            .collect();
        head.push_str(&format!("References: {}\r\n", references.join("\r\n ")));
    }
    head.push_str("Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
    let text = crlf(&away.text);
    let mut message = head.into_bytes();
    if text.is_ascii() {
        message.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n\r\n");
        message.extend_from_slice(text.as_bytes());
    } else {
        message.extend_from_slice(
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        );
        let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        for line in encoded.as_bytes().chunks(76) {
            message.extend_from_slice(line);
            message.extend_from_slice(b"\r\n");
        }
    }
    message
}

/// `text` with CRLF line ends, ending in one.
fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn shorten(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Header text as it may go in a field: ASCII as it is, anything else as
/// RFC 2047 encoded words (UTF-8, base64), each on a line of its own.
fn header_text(text: &str) -> String {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    if text.is_ascii() {
        return text;
    }
    let mut words = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        // 45 bytes make 60 of base64: a word stays within 75 characters.
        let piece = shorten(rest, 45);
        let piece = if piece.is_empty() {
            &rest[..rest.chars().next().map_or(0, char::len_utf8)]
        } else {
            piece
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(piece.as_bytes());
        words.push(format!("=?utf-8?b?{encoded}?="));
        rest = &rest[piece.len()..];
    }
    words.join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn reply_to(away: &Away, original: &Original) -> String {
        let text = compose(&Reply {
            member: "alice@club.example",
            to: "friend@example.org",
            away,
            original,
            id: "1800000000.A1.mx",
            hostname: "mx.club.example",
            now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        });
        String::from_utf8(text).unwrap()
    }

    fn away(subject: &str, text: &str) -> Away {
        Away {
            on: true,
            subject: subject.into(),
            text: text.into(),
            until: None,
            set_at: 0,
        }
    }

    #[test]
    fn a_reply_threads_and_says_it_is_automatic() {
        let original = Original::read(
            b"Subject: lunch\r\nMessage-ID: <m1@example.org>\r\nReferences: <r0@x> <m1@example.org>\r\n",
        );
        let text = reply_to(&away("", "Away until Monday.\nAlice"), &original);
        assert!(text.starts_with("From: <alice@club.example>\r\nTo: <friend@example.org>\r\nSubject: Auto: lunch\r\n"), "{text}");
        assert!(text.contains("\r\nMessage-ID: <1800000000.A1.mx@mx.club.example>\r\n"));
        assert!(text.contains("\r\nIn-Reply-To: <m1@example.org>\r\n"));
        assert!(text.contains("\r\nReferences: <r0@x>\r\n <m1@example.org>\r\n"));
        assert!(text.contains("\r\nAuto-Submitted: auto-replied\r\n"));
        assert!(
            text.ends_with("\r\n\r\nAway until Monday.\r\nAlice\r\n"),
            "{text}"
        );
    }

    #[test]
    fn the_members_subject_and_text_in_utf8() {
        let original = Original::read(b"Subject: x\r\n");
        let text = reply_to(&away("Abwesend bis März", "Grüße\n"), &original);
        assert!(text.contains("\r\nSubject: =?utf-8?b?"), "{text}");
        assert!(!text.contains("In-Reply-To"));
        assert!(
            text.contains("Content-Transfer-Encoding: base64\r\n\r\nR3LDvMOfZQ0K\r\n"),
            "{text}"
        );
        // A long subject is cut and encoded in words of at most 75.
        let long = "ä".repeat(150);
        let text = reply_to(&away(&long, "x"), &original);
        let subject = text.split("\r\nSubject: ").nth(1).unwrap();
        let subject = subject.split("\r\nDate:").next().unwrap();
        assert!(subject.split("\r\n ").all(|w| w.len() <= 75), "{subject}");
    }
}
