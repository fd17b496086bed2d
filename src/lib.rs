//! Postbox: the mail box of a home or a club, on a small board.
//!
//! The modules, from the ground up:
//!
//! ```text
//!  limits, wire, dns, ops, appliance   caps, bytes on the wire, DNS messages
//!                                      and the resolver, counters and logs,
//!                                      the board
//!  dkim, spf, dmarc                    mail authentication, sans-IO: signing
//!                                      and verifying over a streamed message,
//!                                      SPF and DMARC over answers the caller
//!                                      looks up
//!  store, config                       everything on flash; settings
//!  conn                                a connection with its deadlines, seat
//!                                      and shutdown event, and the PROXY
//!                                      header a proxy sends before it
//!  route, auth, spam, tls, policy      the handles a session asks (where mail
//!                                      goes, who may log in, what is spam, the
//!                                      certificate) and the one policy seam
//!                                      with its phases: connect, helo, mail,
//!                                      rcpt, data-end
//!  smtp, pop3, outbound, queue         each protocol a sans-IO core (bytes and
//!                                      time in, steps out) and a thin shell
//!  away                                members' away messages (RFC 3834):
//!                                      the rule, the reply, sent as reports are
//!  web                                 the HTTPS and HTTP listeners: a sans-IO
//!                                      request reader, a router, the pages and
//!                                      mail programs' set-up answers
//!  acme                                certificates by ACME: the order as a
//!                                      sans-IO driver, signed requests, HTTPS
//!                                      to the service, renewal on a schedule
//!  server                              the runtime: one executor, admission,
//!                                      shutdown; the only place that wires
//!                                      the handles together
//!  admin, console                      the admin verbs, for the command line
//!                                      and the serial shell
//!  mailio                              mail in and out: import (mbox,
//!                                      Maildir), export (mboxrd), sendmail,
//!                                      backup and restore of the whole box
//!  fetch                               members' mail fetched from upstream
//!                                      mailboxes (POP3, IMAP: sans-IO cores
//!                                      and a shell), on a schedule
//! ```
//!
//! Inbound, a message goes:
//!
//! ```text
//!  client ─TCP─▶ server (admission) ─▶ smtp::server (shell) ◀─▶ smtp::conversation (core)
//!                                          │ asks policy at each phase; at data-end a
//!                                          │ stranger's mail gets SPF, DKIM, DMARC
//!                                          │ (smtp::arrival), a member's is DKIM-signed
//!                                          ▼
//!          spool file in store ─fsync─▶ policy::delivery plan ─▶ link into each
//!          member's maildir new/ ─fsync dir─▶ 250    (other domains: queue)
//! ```
//!
//! Outbound, queued mail goes:
//!
//! ```text
//!  queue::store (message + checksummed envelope on flash) ─▶ queue (scheduler)
//!      ─▶ outbound::mx (smarthost or MX hosts) ─▶ outbound::client (shell)
//!      ◀─▶ outbound::session (core) ─▶ next server; failures ─▶ queue::dsn report
//! ```
//!
//! Reading mail: `pop3::server` (shell) ◀─▶ `pop3::conversation` (core),
//! serving the member's maildir through `store::mailstore`.
//!
//! Administration: `postbox VERB ...` on the command line and the serial
//! console (`console`, over `embedded-io`) both run the verbs declared once
//! in `admin::verbs`; `postbox check-config` reads `config` as `serve` does.
//!
//! * The cores never touch sockets, files or clocks, so tests and fuzzers
//!   drive them byte by byte and move time themselves.
//! * `store` works over one small [`store::disk::Disk`] interface: the
//!   filesystem, an in-memory disk that models power loss, and a
//!   fault-injecting wrapper.
//! * `limits`: every buffer size and default limit, in one place.

// Commands and verdicts carry fixed-capacity inline buffers on purpose:
// bounded memory with no heap allocation per command.
#![allow(clippy::large_enum_variant)]

pub mod acme;
pub mod admin;
pub mod appliance;
pub mod auth;
pub mod away;
pub mod config;
pub mod conn;
pub mod console;
pub mod dkim;
pub mod dmarc;
pub mod dns;
pub mod fetch;
pub mod limits;
pub mod mailio;
pub mod ops;
pub mod outbound;
pub mod policy;
pub mod pop3;
pub mod queue;
pub mod route;
pub mod server;
pub mod smtp;
pub mod spam;
pub mod spf;
pub mod store;
pub mod tls;
pub mod web;
pub mod wire;
