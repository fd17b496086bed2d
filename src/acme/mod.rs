//! Certificates by ACME (RFC 8555) for the host name and `[acme] names`,
//! proven by HTTP-01 on the plain HTTP listener or, with that off,
//! TLS-ALPN-01 (RFC 8737) on the HTTPS listener; renewed at two thirds of
//! their lifetime and used by every listener the moment they arrive.
//!
//! ```text
//!  renewal (shell: when, files, the running Tls) ─▶ order::Driver (core:
//!      responses and time in, requests and answers out) ◀─▶ http (the
//!      request writer and response reader, pure; fetch over TLS)
//!  jws (account key, signed requests), messages (ACME objects, CSR,
//!      challenge certificates), schedule (when), status (what happened)
//! ```

pub mod http;
pub mod jws;
pub mod messages;
pub mod order;
pub mod renewal;
pub mod schedule;
pub mod status;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// The account key's file, in DATA/tls/.
pub const ACCOUNT_KEY_FILE: &str = "acme-account.key";

/// The HTTP-01 answers of an order in progress, by token: what the plain
/// HTTP listener serves at `/.well-known/acme-challenge/TOKEN`.
#[derive(Debug, Default)]
pub struct Answers(RefCell<HashMap<String, String>>);

impl Answers {
    pub fn key_authorization(&self, token: &str) -> Option<String> {
        self.0.borrow().get(token).cloned()
    }

    pub fn publish(&self, token: &str, key_authorization: &str) {
        self.0
            .borrow_mut()
            .insert(token.to_string(), key_authorization.to_string());
    }

    pub fn withdraw(&self, token: &str) {
        self.0.borrow_mut().remove(token);
    }
}

/// A request to renew now (`postbox tls renew`), waited for by the
/// renewal task between attempts.
#[derive(Default)]
pub struct RenewNow {
    requested: Cell<bool>,
    event: event_listener::Event,
}

impl RenewNow {
    pub fn request(&self) {
        self.requested.set(true);
        self.event.notify(usize::MAX);
    }

    /// Takes a pending request, if any.
    fn take(&self) -> bool {
        self.requested.take()
    }

    /// Until the next request.
    async fn requested(&self) {
        loop {
            if self.take() {
                return;
            }
            let listener = self.event.listen();
            if self.take() {
                return;
            }
            listener.await;
        }
    }
}
