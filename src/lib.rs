//! Postbox: the mail box of a home or a club, on a small board.
//!
//! How a message flows:
//!
//! ```text
//!  SMTP client ──TCP──▶ smtp::server ──lines──▶ smtp::session (sans-IO)
//!                            │  body bytes ─▶ smtp::data (dot-unstuffing, end of data)
//!                            ▼
//!                      store::maildir  spool file ─fsync─▶ link into each new/ ─fsync─▶ 250
//!                            ▲
//!  POP3 client ──TCP──▶ pop3::server ──lines──▶ pop3::session (sans-IO)
//! ```
//!
//! * `smtp`, `pop3`: each protocol is a state machine over byte slices
//!   (`command`, `session`) plus a thin async layer (`server`) that owns the
//!   socket. The cores never touch sockets or files, so tests drive them
//!   byte by byte.
//! * `store`: Maildir mailboxes, the users file, and the durable-write
//!   primitives (write, fsync, rename, fsync the directory) under both.
//! * `server`: one single-threaded executor running every session; fsync
//!   goes to the blocking pool so a slow card never stalls other sessions.
//! * `admin` and `console`: user management, shared by the command line
//!   and the admin shell (which speaks `embedded-io`, so it runs on stdin
//!   or a serial line alike).
//! * `limits`: every buffer size and default limit, in one place.

// Commands and verdicts carry fixed-capacity inline buffers on purpose:
// bounded memory with no heap allocation per command.
#![allow(clippy::large_enum_variant)]

pub mod admin;
pub mod appliance;
pub mod auth;
pub mod config;
pub mod conn;
pub mod console;
pub mod dns;
pub mod limits;
pub mod ops;
pub mod outbound;
pub mod policy;
pub mod pop3;
pub mod queue;
pub mod route;
pub mod server;
pub mod smtp;
pub mod spam;
pub mod store;
pub mod tls;
pub mod wire;
