//! Everything on flash: Maildir mailboxes, the users file, and the
//! durable-write primitives both are built on, all over one small
//! [`disk::Disk`] interface.
pub mod commit;
pub mod disk;
pub mod durable;
pub mod faults;
pub mod index;
pub mod lease;
pub mod maildir;
pub mod mailstore;
pub mod memory;
pub mod owner;
pub mod quota;
pub mod record;
pub mod users;

pub use mailstore::Mailstore;
