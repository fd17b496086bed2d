//! Who may log in: password hashing and checking, SASL decoding, and
//! throttling of failed attempts.
pub mod password;
pub mod sasl;
pub mod throttle;
