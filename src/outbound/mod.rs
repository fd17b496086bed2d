//! Handing queued mail on to the next server: the SMTP client.

pub mod client;
