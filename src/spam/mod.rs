//! Cheap, local spam defences that need no outside service: the recipient
//! rule of small club servers (a message to many people, none of whom the
//! receiving member knows, is spam), with a per-member address book that
//! learns by itself, and what to do with what the rule catches.

pub mod book;
pub mod tag;
pub mod vcard;

pub use book::AddressBooks;

/// The settings live with the rest of the configuration.
pub use crate::config::{SpamAction as Action, SpamSettings as Settings};

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
