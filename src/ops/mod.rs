//! Operations: traffic counters and the log ring.

pub mod logring;
pub mod stats;
