//! DKIM (RFC 6376, with RFC 8463's Ed25519 and RFC 8301's rules on
//! algorithms and key sizes): signing, verifying, and this server's keys.
//!
//! The signing and verifying cores are sans-IO: they take the message in
//! chunks as it streams to or from the spool, never read the clock (the
//! caller passes the time) and never query DNS (the caller looks up the
//! names they give and hands back what it found). Memory per message is
//! bounded: the header section up to
//! [`crate::limits::MAX_DKIM_HEADER_SECTION`], and one body hasher per
//! signature (at most [`crate::limits::MAX_DKIM_SIGNATURES`]).
//!
//! The message is fed as stored: header section, empty line, body, with
//! CRLF line ends, after SMTP dot-unstuffing.
//!
//! Signing (outbound mail of a served domain):
//!
//! ```text
//! let keys = dkim::keys::signing_keys(disk, data_dir, domain)?;   // blocking pool
//! let mut signer = dkim::Signer::new();
//! for chunk in message { signer.update(chunk) }
//! match signer.finish(domain, &keys, now_secs) {
//!     Ok(fields) => /* write `fields` (CRLF-terminated) before the message */,
//!     Err(skip) => /* send unsigned; log `skip` ("header section too large") */,
//! }
//! ```
//!
//! Verifying (inbound mail):
//!
//! ```text
//! let mut verifier = dkim::Verifier::new();
//! for chunk in message { verifier.update(chunk) }
//! let hashed = verifier.finish();
//! for name in hashed.key_queries() { /* TXT lookup of name */ }
//! let results = hashed.results(|name| answers[name].clone(), now_secs);
//! // each: status (pass/fail/neutral/temperror/permerror), reason,
//! // domain (header.d), selector (header.s), header_b (header.b)
//! ```
//!
//! Keys: [`keys::ensure`] at server start makes an RSA 2048 and an
//! Ed25519 key for each served domain that lacks one, under
//! `DATA/dkim/DOMAIN/`; [`keys::rotate`] makes a new pair under new
//! selectors; [`keys::records`] gives the TXT records to publish.

pub mod canon;
pub mod keys;
pub mod message;
pub mod sign;
pub mod tags;
pub mod verify;

pub use canon::{BodyHash, BodyHasher, Canon};
pub use sign::{SignSkip, Signer, SigningKey};
pub use verify::{key_name, DkimResult, KeyLookup, Status, Verification, Verifier};

/// The signing algorithms this server makes and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RsaSha256,
    Ed25519Sha256,
}

impl Algorithm {
    /// The `a=` value.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    /// The key record's `k=` value.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa",
            Algorithm::Ed25519Sha256 => "ed25519",
        }
    }
}

#[cfg(test)]
mod tests;
