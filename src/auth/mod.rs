//! Who may log in: password hashing and checking, a cache of recent
//! logins, SASL decoding, and throttling of failed attempts.
pub mod authenticator;
pub mod cache;
pub mod password;
pub mod sasl;
pub mod throttle;

pub use authenticator::{hash_stamp, Authenticator};

use crate::wire::address::Address;

/// How a login attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Ok(Address),
    /// Wrong name or password (never says which).
    Failed,
    /// Too many failures from this address lately; not checked.
    Refused,
}

/// How an admin login attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminLogin {
    Ok,
    /// Wrong password, or none set yet.
    Failed,
    /// Too many failures from this address (or at the admin) lately.
    Refused,
}
