//! Operations: traffic counters, the log ring, the calendar they use, and
//! what a running server leaves for the command line and the console.

pub mod clock;
pub mod logring;
pub mod stats;
pub mod status;
