//! Inbound mail policy, one seam with named phases: what decides whether
//! a connection ([`connect`]), a HELO name, a sender, a recipient or a
//! message ([`data_end`]) is accepted, refused or tagged, and with what:
//! relay rules, greylisting, blocklists, quotas, the spam rules and the
//! delivery plan. The SMTP core asks; the shell answers what needs I/O.
pub mod delivery;
pub mod facts;
pub mod from_header;
pub mod greylist;
pub mod relay;

use crate::limits::MAX_RECEIVED_HEADERS;
use crate::route::{Destination, RcptVerdict};
use crate::wire::address::Address;
use facts::{DataFacts, DataOutcome, Refused};

/// A refusal and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub outcome: DataOutcome,
    pub why: String,
}

fn refuse(outcome: DataOutcome, why: String) -> Refusal {
    Refusal { outcome, why }
}

/// What the connection gets before the first command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect {
    /// Look the client up in the blocklists.
    pub check_blocklists: bool,
    /// Hold the greeting back, refusing clients that talk first.
    pub greet_delay: bool,
    /// Refuse HELO names no honest mail server uses.
    pub check_helo: bool,
}

/// connect: strangers on port 25 are checked; members' ports and
/// `relay_from` clients are not.
pub fn connect(port_25: bool, relay_client: bool) -> Connect {
    let stranger = port_25 && !relay_client;
    Connect {
        check_blocklists: stranger,
        greet_delay: stranger,
        check_helo: stranger,
    }
}

/// A command refused by policy: the reply, and whether it counts toward
/// the client's error limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub code: u16,
    pub enhanced: &'static str,
    pub text: &'static str,
    pub counts_as_error: bool,
}

const fn reject(code: u16, enhanced: &'static str, text: &'static str) -> Reject {
    Reject {
        code,
        enhanced,
        text,
        counts_as_error: true,
    }
}

/// helo: names no honest mail server uses, a bare IP address or our own
/// host name, when `check` (strangers on port 25).
pub fn helo(name: &str, hostname: &str, check: bool) -> Result<(), Reject> {
    if !check {
        return Ok(());
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        let text = "Invalid HELO name: an address must be written as [address]";
        return Err(reject(501, "5.5.2", text));
    }
    if name.trim_end_matches('.').eq_ignore_ascii_case(hostname) {
        return Err(reject(550, "5.7.1", "HELO name is ours, not yours"));
    }
    Ok(())
}

/// Who is sending, as mail sees it.
pub struct Sender<'a> {
    /// A submission port: login first (RFC 6409 §4.3).
    pub submission: bool,
    /// The logged-in member, if any.
    pub user: Option<&'a Address>,
    /// A member or a `relay_from` client.
    pub trusted: bool,
    pub max_size: u64,
}

/// mail: login required, a member's sender must be theirs, a stranger's
/// may not be a member's (`members_address`: the sender is one), the
/// declared size within the limit.
pub fn mail(
    from: Option<&Address>,
    size: Option<u64>,
    sender: &Sender<'_>,
    owns: impl FnOnce(&Address, &str) -> bool,
    members_address: bool,
) -> Result<(), Reject> {
    if sender.submission && sender.user.is_none() {
        return Err(reject(530, "5.7.0", "Authentication required"));
    }
    if let Some(user) = sender.user {
        if !from.is_some_and(|from| owns(user, from.as_str())) {
            return Err(reject(553, "5.7.1", "Sender address is not yours"));
        }
    }
    // Port 25 is for strangers' mail: a member's address there is forged.
    if !sender.trusted && members_address {
        let text = "Sender address belongs to a member here: log in to send as it";
        return Err(reject(550, "5.7.1", text));
    }
    if size.is_some_and(|size| size > sender.max_size) {
        return Err(Reject {
            counts_as_error: false,
            ..reject(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            )
        });
    }
    Ok(())
}

/// rcpt: a recipient whose every copy would go into a mailbox without
/// room for the size announced with MAIL is refused now (RFC 1870 §6.2).
/// `over_quota`: `Some(temporary)` when the size does not fit a mailbox.
pub fn declared_size(
    verdict: RcptVerdict,
    size: u64,
    mut over_quota: impl FnMut(&Address, u64) -> Option<bool>,
) -> RcptVerdict {
    let mailboxes: Vec<&Address> = match &verdict {
        RcptVerdict::Local(mailbox) => vec![mailbox],
        RcptVerdict::Routed(destinations) => destinations
            .iter()
            .map(|d| match d {
                Destination::Mailbox(a) => Some(a),
                Destination::Remote { .. } => None,
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if mailboxes.is_empty() {
        return verdict;
    }
    let mut temporary = true;
    for mailbox in mailboxes {
        match over_quota(mailbox, size) {
            Some(t) => temporary &= t,
            None => return verdict,
        }
    }
    RcptVerdict::OverQuota { temporary }
}

/// rcpt: only delivery reports (the null sender) may take a rewritten
/// return path back out, or anyone could relay through a valid SRS address.
pub fn return_path(null_sender: bool) -> Result<(), Reject> {
    if null_sender {
        return Ok(());
    }
    Err(reject(
        550,
        "5.7.1",
        "This address takes only delivery reports",
    ))
}

/// rcpt: relaying to other domains is for members and `relay_from` clients.
pub fn may_relay(trusted: bool) -> bool {
    trusted
}

/// rcpt: strangers' first attempts wait (greylisting); `wait` asks the
/// greylist. Seconds to wait, if any.
pub fn greylist(trusted: bool, wait: impl FnOnce() -> Option<u64>) -> Option<u64> {
    if trusted {
        return None;
    }
    wait()
}

/// What data-end weighs besides the message itself.
pub struct DataEnd<'a> {
    /// The message is a member's, held to a strict header section.
    pub strict_headers: bool,
    /// Who the From: header must name (a logged-in member), if anyone.
    pub from_owner: Option<&'a Address>,
    /// The size limit, for the log.
    pub max_size: u64,
}

/// data-end: whether a message that arrived whole may be kept at all:
/// size and line length, a member's header section and From:, a loop.
/// `owns`: whether the member may write as an address.
pub fn data_end(
    facts: &DataFacts,
    end: &DataEnd<'_>,
    owns: impl Fn(&Address, &str) -> bool,
) -> Result<(), Refusal> {
    match facts.refused {
        Some(Refused::TooBig) => {
            let why = format!("over {} bytes", end.max_size);
            return Err(refuse(DataOutcome::TooBig, why));
        }
        Some(Refused::LineTooLong) => {
            let why = "a line over 998 octets".to_string();
            return Err(refuse(DataOutcome::LineTooLong, why));
        }
        None => {}
    }
    if let Some(why) = facts.malformed.filter(|_| end.strict_headers) {
        let text = format!("header section has a {why}");
        return Err(refuse(DataOutcome::Malformed(why), text));
    }
    if let Some(user) = end.from_owner {
        match &facts.from_header {
            Ok(addresses) => {
                if let Some(address) = addresses.iter().find(|a| !owns(user, a)) {
                    let why = format!("From: <{address}> is not {user}'s");
                    return Err(refuse(DataOutcome::ForeignFrom, why));
                }
            }
            Err(problem) => {
                let outcome = DataOutcome::Malformed("From: field that cannot be read");
                return Err(refuse(outcome, format!("From: header {problem}")));
            }
        }
    }
    if facts.received as usize >= MAX_RECEIVED_HEADERS {
        let why = format!("{} Received: headers, a mail loop", facts.received);
        return Err(refuse(DataOutcome::Loop, why));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::facts::FromProblem;
    use super::*;

    fn facts() -> DataFacts {
        DataFacts {
            refused: None,
            malformed: None,
            from_header: Ok(vec!["alice@localhost".into()]),
            received: 1,
            listed: Vec::new(),
            names: Vec::new(),
            size: 10,
        }
    }

    fn outcome(facts: &DataFacts, end: &DataEnd<'_>) -> Option<DataOutcome> {
        let owns = |user: &Address, a: &str| user.as_str().eq_ignore_ascii_case(a);
        data_end(facts, end, owns).err().map(|r| r.outcome)
    }

    #[test]
    fn strangers_on_port_25_are_checked_at_connect() {
        assert!(connect(true, false).check_blocklists && connect(true, false).greet_delay);
        assert_eq!(connect(true, true), connect(false, false));
        assert!(!connect(false, false).check_helo);
    }

    #[test]
    fn data_end_refusals() {
        let alice = Address::parse_path("alice@localhost").unwrap();
        let stranger = DataEnd {
            strict_headers: false,
            from_owner: None,
            max_size: 100,
        };
        let member = DataEnd {
            strict_headers: true,
            from_owner: Some(&alice),
            max_size: 100,
        };
        assert_eq!(outcome(&facts(), &member), None);
        let mut f = facts();
        f.refused = Some(Refused::TooBig);
        assert_eq!(outcome(&f, &stranger), Some(DataOutcome::TooBig));
        let mut f = facts();
        f.malformed = Some("bare LF");
        assert_eq!(outcome(&f, &stranger), None);
        assert_eq!(
            outcome(&f, &member),
            Some(DataOutcome::Malformed("bare LF"))
        );
        let mut f = facts();
        f.from_header = Ok(vec!["bob@localhost".into()]);
        assert_eq!(outcome(&f, &stranger), None);
        assert_eq!(outcome(&f, &member), Some(DataOutcome::ForeignFrom));
        f.from_header = Err(FromProblem::TooLong);
        assert!(matches!(
            outcome(&f, &member),
            Some(DataOutcome::Malformed(_))
        ));
        let mut f = facts();
        f.received = MAX_RECEIVED_HEADERS as u32;
        assert_eq!(outcome(&f, &stranger), Some(DataOutcome::Loop));
    }

    #[test]
    fn helo_names_of_strangers() {
        assert!(helo("192.0.2.7", "mx.test", true).is_err());
        assert_eq!(helo("MX.test.", "mx.test", true).unwrap_err().code, 550);
        assert!(helo("[192.0.2.7]", "mx.test", true).is_ok());
        assert!(helo("192.0.2.7", "mx.test", false).is_ok());
    }

    #[test]
    fn mail_senders() {
        let alice = Address::parse_path("alice@localhost").unwrap();
        let bob = Address::parse_path("bob@localhost").unwrap();
        let owns = |u: &Address, a: &str| u.as_str() == a;
        let member = |a: Option<&Address>| a.is_some_and(|a| a.domain() == "localhost");
        let stranger = Sender {
            submission: false,
            user: None,
            trusted: false,
            max_size: 100,
        };
        let code = |from, size, s: &Sender| {
            mail(from, size, s, owns, member(from))
                .err()
                .map(|r| r.code)
        };
        assert_eq!(code(None, None, &stranger), None);
        assert_eq!(code(Some(&bob), None, &stranger), Some(550));
        let big = code(None, Some(101), &stranger);
        assert_eq!(big, Some(552));
        assert!(
            !mail(None, Some(101), &stranger, owns, false)
                .unwrap_err()
                .counts_as_error
        );
        let anonymous = Sender {
            submission: true,
            ..stranger
        };
        assert_eq!(code(None, None, &anonymous), Some(530));
        let logged_in = Sender {
            submission: true,
            user: Some(&alice),
            trusted: true,
            max_size: 100,
        };
        assert_eq!(code(Some(&alice), None, &logged_in), None);
        assert_eq!(code(Some(&bob), None, &logged_in), Some(553));
        assert_eq!(code(None, None, &logged_in), Some(553));
    }

    #[test]
    fn rcpt_declared_size_against_quotas() {
        let a = |s: &str| Address::parse_path(s).unwrap();
        // bob has 500 bytes left, alice no limit.
        let quota = |m: &Address, size: u64| (m.local() == "bob" && size > 500).then_some(false);
        let bob = || RcptVerdict::Local(a("bob@localhost"));
        assert_eq!(
            declared_size(bob(), 900, quota),
            RcptVerdict::OverQuota { temporary: false }
        );
        assert_eq!(declared_size(bob(), 400, quota), bob());
        // A list with a copy elsewhere is not refused for one full mailbox.
        let list = RcptVerdict::Routed(vec![
            Destination::Mailbox(a("bob@localhost")),
            Destination::Mailbox(a("alice@localhost")),
        ]);
        assert_eq!(declared_size(list.clone(), 900, quota), list);
    }

    #[test]
    fn rcpt_relay_return_path_and_greylist() {
        assert!(may_relay(true) && !may_relay(false));
        assert!(return_path(true).is_ok());
        assert_eq!(return_path(false).unwrap_err().code, 550);
        assert_eq!(greylist(false, || Some(300)), Some(300));
        assert_eq!(
            greylist(true, || panic!("members are not greylisted")),
            None
        );
    }
}
