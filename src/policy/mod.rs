//! Inbound mail policy: what decides whether a connection, a sender, a
//! recipient or a message is accepted, refused or tagged, and with what.
pub mod greylist;
pub mod relay;
