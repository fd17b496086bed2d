//! SMTP receiving (RFC 5321): a sans-IO core (`conversation` over bytes
//! and time, with `command`, `session`, the `data` stream and its header
//! rewriting; the header scanners are the policy's, `policy::from_header`) and the thin async layer that connects it to sockets, the
//! store and the policy (`server`).
pub mod arrival;
pub mod command;
pub mod conversation;
pub mod data;
pub mod headers;
pub mod received;
pub mod server;
pub mod session;
