//! Handing queued mail on to the next server.
//!
//! * `session`: the SMTP client conversation, sans-IO (bytes and time in,
//!   steps out), so tests and the fuzzer drive it byte by byte.
//! * `client`: the thin async shell that connects, moves bytes, starts
//!   TLS and streams the message from flash.
//! * `mx`: which hosts to try, in order (the smarthost, or the MX hosts).
//! * `tls`: the client TLS settings (verified, or opportunistic).

pub mod client;
pub mod mx;
pub mod session;
pub mod tls;

/// An answer of the other side, or a failure to get one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub permanent: bool,
    pub text: String,
}

impl Failure {
    pub fn temporary(text: impl Into<String>) -> Failure {
        Failure {
            permanent: false,
            text: text.into(),
        }
    }

    /// A refusal by the other side: permanent when it says 5xx.
    pub fn from_reply(what: &str, reply: &crate::wire::reply::Reply) -> Failure {
        Failure {
            permanent: reply.code >= 500,
            text: format!("{what}: {}", reply.text()),
        }
    }
}

/// The fate of each recipient after a session that reached DATA (or
/// refused every RCPT), in the order given.
pub type RecipientResults = Vec<Result<(), Failure>>;
