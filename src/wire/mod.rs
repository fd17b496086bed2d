//! The wire layer shared by both directions: line framing, mail addresses,
//! SMTP replies, and the dot-stuffing of message bodies.

pub mod address;
pub mod dot;
pub mod line;
pub mod reply;
