//! Who may log in: password hashing and checking.
pub mod password;
