//! SMTP receiving (RFC 5321): a sans-IO core (`command`, `data`,
//! `session`) and the thin async layer that connects it to sockets and the
//! store (`server`).
pub mod command;
pub mod conversation;
pub mod data;
pub mod from_header;
pub mod headers;
pub mod received;
pub mod server;
pub mod session;
