//! Who may log in: password hashing and checking, a cache of recent
//! logins, SASL decoding, and throttling of failed attempts.
pub mod cache;
pub mod password;
pub mod sasl;
pub mod throttle;
