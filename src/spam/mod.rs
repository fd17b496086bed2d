//! Cheap, local spam defences that need no outside service: the recipient
//! rule of small club servers (a message to many people, none of whom the
//! receiving member knows, is spam), with a per-member address book that
//! learns by itself, and what to do with what the rule catches.

pub mod book;
pub mod tag;

pub use book::AddressBooks;

/// What happens to a message judged spam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// 554 at the end of DATA: the sender learns at once, nothing is kept.
    Reject,
    /// Delivered with `X-Spam: yes` and the subject tagged.
    Tag,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// To:+Cc: addresses from which the rule applies; 0 turns it off.
    pub recipient_limit: usize,
    pub action: Action,
    /// Put in front of the subject of tagged messages.
    pub subject_tag: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            recipient_limit: 15,
            action: Action::Tag,
            subject_tag: "[SPAM]".into(),
        }
    }
}

/// Why a message is spam for one member, or `None` when it is not: the
/// recipient rule over the To:/Cc: addresses it names.
pub fn recipient_rule(
    settings: &Settings,
    listed: &[String],
    knows: impl Fn(&str) -> bool,
) -> Option<String> {
    if settings.recipient_limit == 0 || listed.len() < settings.recipient_limit {
        return None;
    }
    if listed.iter().any(|a| knows(a)) {
        return None;
    }
    Some(format!(
        "{} To/Cc recipients, none known to the recipient",
        listed.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn many(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("u{i}@example.test")).collect()
    }

    #[test]
    fn many_unknown_recipients_is_spam() {
        let s = Settings::default();
        assert!(recipient_rule(&s, &many(14), |_| false).is_none());
        let why = recipient_rule(&s, &many(15), |_| false).unwrap();
        assert!(why.starts_with("15 To/Cc recipients"), "{why}");
        assert!(recipient_rule(&s, &many(40), |a| a == "u39@example.test").is_none());
        let off = Settings {
            recipient_limit: 0,
            ..Settings::default()
        };
        assert!(recipient_rule(&off, &many(100), |_| false).is_none());
    }
}
