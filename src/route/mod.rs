//! Where mail for a local address goes, and how mail leaving for elsewhere
//! keeps its bounces coming home:
//!
//! * `aliases`: an `/etc/aliases`-style file of lists and alternative names,
//!   and [`aliases::expand`], which turns one recipient into the mailboxes
//!   and outside addresses that receive the message.
//! * `forward`: each member's own forwarding, kept in a record file.
//! * `router`: the [`Router`], which answers a session's questions about
//!   addresses (where mail goes, who may send as whom, quotas).
//! * `srs`: the Sender Rewriting Scheme for forwarded mail, so that a
//!   forwarded message passes the sender's SPF checks and its bounces can
//!   be sent back to where they belong.

pub mod aliases;
pub mod forward;
pub mod router;
pub mod srs;

pub use aliases::{expand, Aliases, Directory, ExpandError, Target};
pub use forward::Forward;
pub use router::{Destination, RcptVerdict, Router};
pub use srs::Srs;
