//! The admin pages: users, aliases and lists, the queue, status, the
//! log, statistics with a chart, the certificate and the DNS records.
//! What they show is read from the same files and handles the console
//! reads; every change runs an admin verb ([`act`]).

pub mod act;
pub mod pages;
pub mod view;

pub use view::CHART_PATH;
