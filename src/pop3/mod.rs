//! POP3 (RFC 1939): a sans-IO core (`conversation` over bytes and time,
//! with `command`, `session`, and `wire::dot` for byte-stuffing) and the
//! async layer that serves mailboxes from the store (`server`).
pub mod command;
pub mod conversation;
pub mod server;
pub mod session;
