//! The web pages: HTTPS for members and the admin, with the mail
//! listeners' certificate, and plain HTTP that sends browsers to HTTPS
//! (but answers certificate challenges and mail programs' set-up there).
//!
//! ```text
//!  client ─TCP─▶ server (admission) ─▶ web::server (shell: TLS, reads with
//!      deadlines, writes) ◀─▶ web::http (core: bytes in, requests out;
//!      responses to bytes) ─▶ web::router (method + path) ─▶ web::pages,
//!      or web::visit (session, CSRF, who may) ─▶ web::login, web::account
//! ```

pub mod account;
pub mod acme;
pub mod admin;
pub mod autoconfig;
pub mod book;
pub mod chart;
pub mod form;
pub mod http;
pub mod login;
pub mod pages;
pub mod router;
pub mod server;
pub mod session;
pub mod visit;
