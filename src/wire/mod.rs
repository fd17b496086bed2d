//! The wire layer shared by both directions: line framing and mail addresses.

pub mod address;
pub mod line;
