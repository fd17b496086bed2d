//! Whether an arriving message earns an away reply (RFC 3834 §2), as a
//! pure function of the message's header section, its envelope sender,
//! the member's setting, whom they answered when, and the time.

use super::{Answered, Away};
use crate::dkim::message::fields;
use crate::limits::AWAY_MAX_REFERENCES;
use crate::policy::from_header::RecipientHeaderScanner;

/// What the header section of an arriving message says that matters here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Original {
    /// `Auto-Submitted:`, its keyword in lower case.
    pub auto_submitted: Option<String>,
    /// `Precedence:`, in lower case.
    pub precedence: Option<String>,
    /// A mailing list's field (`List-Id:`, `List-Unsubscribe:`...), or
    /// another sign that no automatic answer is wanted.
    pub no_reply_field: Option<&'static str>,
    /// The addresses of To: and Cc:.
    pub recipients: Vec<String>,
    /// `<id@host>`, when there is one.
    pub message_id: Option<String>,
    /// The Message-IDs of its `References:` (else its `In-Reply-To:`),
    /// the last [`AWAY_MAX_REFERENCES`] of them.
    pub references: Vec<String>,
    /// Unfolded and trimmed.
    pub subject: Option<String>,
}

/// Fields that mark list mail (RFC 2369, 2919) or ask for no automatic
/// answer (Microsoft's X-Auto-Response-Suppress).
const NO_REPLY_FIELDS: &[&str] = &[
    "list-id",
    "list-unsubscribe",
    "list-post",
    "list-help",
    "list-subscribe",
    "list-owner",
    "list-archive",
    "x-auto-response-suppress",
];

impl Original {
    /// Reads a header section (CRLF lines, as stored; it may be cut short).
    pub fn read(header: &[u8]) -> Original {
        let mut original = Original::default();
        let mut recipients = RecipientHeaderScanner::recipients();
        recipients.feed(header);
        // The scanner wants the end of the section to stop there.
        recipients.feed(b"\r\n\r\n");
        original.recipients = recipients.addresses_seen();
        let mut in_reply_to = Vec::new();
        for field in fields(header) {
            let name = field.name.to_ascii_lowercase();
            let value = || unfold(field.value());
            match name.as_str() {
                "auto-submitted" => {
                    original
                        .auto_submitted
                        .get_or_insert_with(|| keyword(&value()));
                }
                "precedence" => {
                    original.precedence.get_or_insert_with(|| keyword(&value()));
                }
                "message-id" => {
                    if original.message_id.is_none() {
                        original.message_id = message_ids(&value()).into_iter().next();
                    }
                }
                "references" => original.references = message_ids(&value()),
                "in-reply-to" => in_reply_to = message_ids(&value()),
                "subject" => {
                    original
                        .subject
                        .get_or_insert_with(|| value().trim().to_string());
                }
                _ => {
                    if let Some(found) = NO_REPLY_FIELDS.iter().find(|f| **f == name) {
                        original.no_reply_field.get_or_insert(found);
                    }
                }
            }
        }
        if original.references.is_empty() {
            original.references = in_reply_to;
        }
        let extra = original
            .references
            .len()
            .saturating_sub(AWAY_MAX_REFERENCES);
        original.references.drain(..extra);
        original
    }
}

/// A field's value on one line, folding taken out.
fn unfold(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .replace(['\r', '\n'], "")
        .trim()
        .to_string()
}

/// The first word of a structured value, comments left out, in lower case.
fn keyword(value: &str) -> String {
    let value = match value.find('(') {
        Some(at) => &value[..at],
        None => value,
    };
    value
        .split([' ', '\t', ';'])
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Every `<...>` of a value, each once.
fn message_ids(value: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        let id = &rest[start..start + len + 1];
        let plain = id.len() > 2 && !id[1..id.len() - 1].contains(['<', ' ', '\t', '"']);
        if plain && !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
        rest = &rest[start + len + 1..];
    }
    ids
}

/// Local parts of senders that are programs, not people: their mail is
/// never answered (RFC 3834 §2 names owner-, -request and MAILER-DAEMON).
fn automatic_sender(sender: &str) -> bool {
    let local = sender
        .rsplit_once('@')
        .map_or(sender, |(local, _)| local)
        .to_ascii_lowercase();
    const NAMES: &[&str] = &[
        "mailer-daemon",
        "postmaster",
        "listserv",
        "majordomo",
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "bounce",
        "bounces",
    ];
    NAMES.contains(&local.as_str())
        || local.starts_with("owner-")
        || local.starts_with("bounce-")
        || local.starts_with("bounces+")
        || local.ends_with("-request")
        || local.ends_with("-owner")
        || local.ends_with("-bounces")
}

/// What one arriving message is, for the rule.
pub struct Arrival<'a> {
    /// The envelope sender (empty: the null sender).
    pub sender: &'a str,
    /// The member's own address.
    pub member: &'a str,
    pub original: &'a Original,
    /// The copy delivered was tagged as spam.
    pub spam: bool,
}

/// Whether to answer: `Err` says why not. `now` in Unix seconds.
pub fn decide(
    away: &Away,
    arrival: &Arrival,
    answered: &Answered,
    now: u64,
) -> Result<(), &'static str> {
    let Arrival {
        sender,
        member,
        original,
        spam,
    } = arrival;
    if !away.on {
        return Err("away message off");
    }
    if away.until.is_some_and(|until| now >= until) {
        return Err("away message ended");
    }
    if sender.is_empty() {
        return Err("null sender");
    }
    if sender.eq_ignore_ascii_case(member) {
        return Err("the member's own mail");
    }
    if automatic_sender(sender) {
        return Err("sender is a program");
    }
    if *spam {
        return Err("spam");
    }
    if original
        .auto_submitted
        .as_deref()
        .is_some_and(|k| k != "no")
    {
        return Err("Auto-Submitted");
    }
    if matches!(
        original.precedence.as_deref(),
        Some("bulk" | "list" | "junk")
    ) {
        return Err("Precedence: bulk, list or junk");
    }
    if original.no_reply_field.is_some() {
        return Err("list mail");
    }
    let addressed = original
        .recipients
        .iter()
        .any(|r| r.trim_end_matches('.').eq_ignore_ascii_case(member));
    if !addressed {
        return Err("not addressed in To: or Cc:");
    }
    if answered.recently(away.set_at, sender, now) {
        return Err("answered within 7 days");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::AWAY_REPLY_INTERVAL;

    const NOW: u64 = 1_800_000_000;
    const MEMBER: &str = "alice@club.example";
    const SENDER: &str = "friend@example.org";

    fn away() -> Away {
        Away {
            on: true,
            subject: "Away".into(),
            text: "Back soon.\n".into(),
            until: None,
            set_at: NOW - 100,
        }
    }

    fn original(extra: &str) -> Original {
        Original::read(
            format!(
                "Return-Path: <friend@example.org>\r\nFrom: Friend <friend@example.org>\r\n\
                 To: Alice <Alice@Club.Example>, bob@club.example\r\n\
                 Subject: lunch\r\n on friday\r\nMessage-ID: <m1@example.org>\r\n{extra}"
            )
            .as_bytes(),
        )
    }

    fn decide_for(
        original: &Original,
        sender: &str,
        answered: &Answered,
        now: u64,
    ) -> Result<(), &'static str> {
        let arrival = Arrival {
            sender,
            member: MEMBER,
            original,
            spam: false,
        };
        decide(&away(), &arrival, answered, now)
    }

    #[test]
    fn reads_what_matters() {
        let o = original("References: <a@x>\r\n <b@x> <a@x>\r\nAuto-Submitted: No (a person)\r\n");
        assert_eq!(o.subject.as_deref(), Some("lunch on friday"));
        assert_eq!(o.message_id.as_deref(), Some("<m1@example.org>"));
        assert_eq!(o.references, ["<a@x>", "<b@x>"]);
        assert_eq!(o.auto_submitted.as_deref(), Some("no"));
        assert_eq!(o.recipients, ["Alice@Club.Example", "bob@club.example"]);
        let o = original("In-Reply-To: <p@x>\r\n");
        assert_eq!(o.references, ["<p@x>"]);
        let many: String = (0..30).map(|i| format!(" <r{i}@x>")).collect();
        let o = original(&format!("References:{many}\r\n"));
        assert_eq!(o.references.len(), AWAY_MAX_REFERENCES);
        assert_eq!(o.references.last().unwrap(), "<r29@x>");
    }

    #[test]
    fn answers_a_person_who_wrote_to_the_member() {
        let none = Answered::default();
        assert_eq!(decide_for(&original(""), SENDER, &none, NOW), Ok(()));
        let o = original("Auto-Submitted: no\r\nPrecedence: first-class\r\n");
        assert_eq!(decide_for(&o, SENDER, &none, NOW), Ok(()));
        let cc = Original::read(b"To: bob@club.example\r\nCc: alice@club.example\r\n");
        assert_eq!(decide_for(&cc, SENDER, &none, NOW), Ok(()));
    }

    #[test]
    fn never_answers_automatic_or_list_mail() {
        let none = Answered::default();
        for extra in [
            "Auto-Submitted: auto-generated\r\n",
            "Auto-Submitted: auto-replied\r\n",
            "auto-submitted:  Auto-Notified; owner-email=x@y\r\n",
            "Precedence: list\r\n",
            "Precedence: BULK\r\n",
            "Precedence: junk\r\n",
            "List-Id: Club <club.example.org>\r\n",
            "List-Unsubscribe: <mailto:leave@example.org>\r\n",
            "X-Auto-Response-Suppress: OOF\r\n",
        ] {
            assert!(
                decide_for(&original(extra), SENDER, &none, NOW).is_err(),
                "{extra}"
            );
        }
        for sender in [
            "",
            "MAILER-DAEMON@example.org",
            "postmaster@example.org",
            "owner-club@example.org",
            "club-request@example.org",
            "noreply@example.org",
            "Alice@club.example",
        ] {
            assert!(
                decide_for(&original(""), sender, &none, NOW).is_err(),
                "{sender}"
            );
        }
    }

    #[test]
    fn only_when_addressed_in_to_or_cc() {
        let none = Answered::default();
        let bcc = Original::read(b"To: club@club.example\r\nSubject: x\r\n");
        assert_eq!(
            decide_for(&bcc, SENDER, &none, NOW),
            Err("not addressed in To: or Cc:")
        );
        let nothing = Original::read(b"Subject: x\r\n");
        assert!(decide_for(&nothing, SENDER, &none, NOW).is_err());
    }

    #[test]
    fn not_for_spam() {
        let o = original("");
        let arrival = Arrival {
            sender: SENDER,
            member: MEMBER,
            original: &o,
            spam: true,
        };
        assert_eq!(
            decide(&away(), &arrival, &Answered::default(), NOW),
            Err("spam")
        );
    }

    #[test]
    fn off_and_after_the_end_date_nothing() {
        let o = original("");
        let arrival = Arrival {
            sender: SENDER,
            member: MEMBER,
            original: &o,
            spam: false,
        };
        let none = Answered::default();
        let off = Away {
            on: false,
            ..away()
        };
        assert_eq!(decide(&off, &arrival, &none, NOW), Err("away message off"));
        let ending = Away {
            until: Some(NOW + 1),
            ..away()
        };
        assert_eq!(decide(&ending, &arrival, &none, NOW), Ok(()));
        assert_eq!(
            decide(&ending, &arrival, &none, NOW + 1),
            Err("away message ended")
        );
    }

    #[test]
    fn once_per_sender_in_seven_days() {
        let o = original("");
        let mut answered = Answered::default();
        let set_at = away().set_at;
        answered.note(set_at, SENDER, NOW);
        let week = AWAY_REPLY_INTERVAL.as_secs();
        assert_eq!(
            decide_for(&o, "FRIEND@example.org", &answered, NOW + week - 1),
            Err("answered within 7 days")
        );
        assert_eq!(decide_for(&o, SENDER, &answered, NOW + week), Ok(()));
        assert_eq!(decide_for(&o, "other@example.org", &answered, NOW), Ok(()));
        // A new away message answers everyone anew.
        let renewed = Away {
            set_at: NOW + 5,
            ..away()
        };
        let arrival = Arrival {
            sender: SENDER,
            member: MEMBER,
            original: &o,
            spam: false,
        };
        assert_eq!(decide(&renewed, &arrival, &answered, NOW + 10), Ok(()));
    }

    #[test]
    fn the_answered_record_is_bounded_oldest_first() {
        use crate::limits::AWAY_ANSWERED_SENDERS;
        let mut answered = Answered::default();
        for i in 0..=AWAY_ANSWERED_SENDERS {
            answered.note(1, &format!("s{i}@example.org"), NOW + i as u64);
        }
        assert_eq!(answered.senders.len(), AWAY_ANSWERED_SENDERS);
        let later = NOW + AWAY_ANSWERED_SENDERS as u64;
        assert!(!answered.recently(1, "s0@example.org", later));
        assert!(answered.recently(1, "s1@example.org", later));
        // Answering again moves a sender to the end, not in twice.
        answered.note(1, "s1@example.org", later + 1);
        assert_eq!(answered.senders.len(), AWAY_ANSWERED_SENDERS);
    }
}
