//! Operations: traffic counters, the log ring, and the calendar they use.

pub mod clock;
pub mod logring;
pub mod stats;
