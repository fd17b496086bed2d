//! Inbound mail policy, one seam with named phases: what decides whether
//! a connection ([`connect`]), a HELO name, a sender, a recipient or a
//! message ([`data_end`]) is accepted, refused or tagged, and with what:
//! relay rules, greylisting, blocklists, quotas, the spam rules and the
//! delivery plan. The SMTP core asks; the shell answers what needs I/O.
pub mod delivery;
pub mod facts;
pub mod greylist;
pub mod relay;

use crate::limits::MAX_RECEIVED_HEADERS;
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
}
