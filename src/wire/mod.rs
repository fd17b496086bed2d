//! The wire layer shared by both directions: line framing, mail addresses,
//! SMTP replies, the dot-stuffing of message bodies, and the PROXY header
//! a proxy in front of a listener sends first.

pub mod address;
pub mod dot;
pub mod line;
pub mod proxy;
pub mod reply;
