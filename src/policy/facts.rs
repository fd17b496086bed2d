//! What the policy weighs about a message and what it answers: the facts
//! the SMTP core gathered while the message streamed in, and how the
//! message ended for the client.

/// Why a From: header cannot be accepted from an authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromProblem {
    TooLong,
    Unparsable,
}

/// For the log, which a person reads.
impl std::fmt::Display for FromProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FromProblem::TooLong => "is too long",
            FromProblem::Unparsable => "cannot be read",
        })
    }
}

/// Why a message was refused while it streamed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over the size limit.
    TooBig,
    /// A line over the 998 octets of RFC 5322 §2.1.1.
    LineTooLong,
}

/// What the header section and the stream showed, once the message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFacts {
    /// Refused on the way in; nothing of it is kept.
    pub refused: Option<Refused>,
    /// Why the header section could be read two ways, if it can.
    pub malformed: Option<&'static str>,
    /// The addresses of the From: field.
    pub from_header: Result<Vec<String>, FromProblem>,
    /// How many Received: fields there are.
    pub received: u32,
    /// The addresses of To: and Cc:, when they were looked at.
    pub listed: Vec<String>,
    /// Display names given to addresses in From:, To: and Cc:, for the
    /// address books (only those with a name).
    pub names: Vec<crate::policy::from_header::Mailbox>,
    /// Bytes stored (the rewritten message, without trace headers).
    pub size: u64,
}

/// How storing a message ended, reported back by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    Stored {
        id: String,
    },
    TooBig,
    /// The From: header names someone other than the logged-in user.
    ForeignFrom,
    /// A member's header section that readers could take two ways: 550 5.6.0.
    Malformed(&'static str),
    /// A line longer than RFC 5322 §2.1.1 allows: 554 5.6.0.
    LineTooLong,
    /// No recipient's mailbox has room for it.
    OverQuota {
        temporary: bool,
    },
    /// Out of space: 452 4.3.1.
    NoSpace,
    /// Any other storage failure: 451 4.3.0.
    Failed,
    /// Judged spam for every recipient, with rejection configured.
    Spam,
    /// Too many Received: fields: 554 5.4.6.
    Loop,
    /// The arrival checks (SPF, DKIM, DMARC) refused it, or could not
    /// decide now: the code, enhanced code and reason to answer.
    NotAuthenticated {
        code: u16,
        enhanced: &'static str,
        reason: String,
    },
}
