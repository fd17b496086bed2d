//! One certificate order, start to finish (RFC 8555 §7), as a state
//! machine: the shell feeds it responses and the time, it says what to do
//! next (send a request, publish a challenge answer, wait) until it has a
//! certificate or an error. No sockets, files or clocks here.
//!
//! ```text
//!  directory ─▶ newNonce (when none is held) ─▶ newAccount (by key)
//!    ─▶ newOrder ─▶ each authorization: answer a challenge, poll until valid
//!    ─▶ poll the order until ready ─▶ finalize (CSR) ─▶ poll until valid
//!    ─▶ download the chain
//! ```

use super::http::{Method, Request, Response};
use super::jws::{AccountKey, Signer};
use super::messages::{self, Authorization, Directory, Order, Status};
use crate::limits::{ACME_NONCE_RETRIES, ACME_ORDER_TIMEOUT, ACME_POLL_FIRST, ACME_POLL_MAX};
use std::time::{Duration, Instant};

/// What the order is for and which challenges can be answered here.
#[derive(Debug, Clone)]
pub struct Settings {
    pub directory: String,
    pub contact: Option<String>,
    /// The names, the host name first.
    pub names: Vec<String>,
    /// Plain HTTP listens (http-01 can be answered).
    pub http01: bool,
    /// HTTPS listens (tls-alpn-01 can be answered).
    pub tls_alpn01: bool,
}

/// A challenge answer the shell publishes before the service is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Served at `/.well-known/acme-challenge/TOKEN`.
    Http01 {
        token: String,
        key_authorization: String,
    },
    /// A certificate for `name` with ALPN `acme-tls/1`.
    TlsAlpn01 {
        name: String,
        key_authorization: String,
    },
}

/// What to do next.
#[derive(Debug)]
pub enum Step {
    Send(Request),
    /// Publish, then [`Driver::resume`].
    Publish(Answer),
    /// Wait this long, then [`Driver::resume`].
    Wait(Duration),
    /// The certificate chain (PEM, leaf first) and its key (PEM).
    Done {
        chain: String,
        key: String,
    },
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Directory,
    Account,
    NewOrder,
    /// Reading authorization `i`.
    Authorization(usize),
    /// Telling the service challenge `url` of authorization `i` is ready.
    Respond(usize, String),
    /// Polling authorization `i` after its challenge was answered.
    Poll(usize),
    /// Polling the order until it is ready to finalize.
    Ready,
    Finalize,
    /// Polling the order until the certificate is issued.
    Issued,
    Certificate,
    Over,
}

pub struct Driver {
    settings: Settings,
    key: AccountKey,
    deadline: Instant,
    phase: Phase,
    directory: Option<Directory>,
    nonce: Option<String>,
    /// The request in flight is for a fresh nonce.
    fetching_nonce: bool,
    bad_nonces: u32,
    account: Option<String>,
    order_url: Option<String>,
    order: Option<Order>,
    polls: u32,
    /// The new certificate's key, made at finalize.
    cert_key: Option<String>,
}

impl Driver {
    pub fn new(settings: Settings, key: AccountKey, now: Instant) -> Driver {
        Driver {
            settings,
            key,
            deadline: now + ACME_ORDER_TIMEOUT,
            phase: Phase::Directory,
            directory: None,
            nonce: None,
            fetching_nonce: false,
            bad_nonces: 0,
            account: None,
            order_url: None,
            order: None,
            polls: 0,
            cert_key: None,
        }
    }

    /// The first step.
    pub fn start(&mut self) -> Step {
        self.request()
    }

    /// What the order is doing, for the log.
    pub fn phase(&self) -> String {
        match &self.phase {
            Phase::Directory => "reading the directory".into(),
            Phase::Account => "registering the account".into(),
            Phase::NewOrder => format!("ordering for {}", self.settings.names.join(", ")),
            Phase::Authorization(i) | Phase::Respond(i, _) | Phase::Poll(i) => {
                format!("authorization {} of {}", i + 1, self.authorizations().len())
            }
            Phase::Ready => "waiting for the order to be ready".into(),
            Phase::Finalize => "finalizing".into(),
            Phase::Issued => "waiting for the certificate".into(),
            Phase::Certificate => "downloading the certificate".into(),
            Phase::Over => "over".into(),
        }
    }

    /// After a [`Step::Publish`] or [`Step::Wait`].
    pub fn resume(&mut self, now: Instant) -> Step {
        if let Some(late) = self.late(now) {
            return late;
        }
        self.request()
    }

    /// The request failed before any answer.
    pub fn unreachable(&mut self, error: String) -> Step {
        self.fail(format!("{}: {error}", self.phase()))
    }

    /// The answer to the last [`Step::Send`].
    pub fn receive(&mut self, response: Response, now: Instant) -> Step {
        if let Some(nonce) = &response.replay_nonce {
            self.nonce = Some(nonce.clone());
        }
        if let Some(late) = self.late(now) {
            return late;
        }
        if std::mem::take(&mut self.fetching_nonce) {
            return match self.nonce.is_some() {
                true => self.request(),
                false => self.fail("the service gave no nonce".into()),
            };
        }
        if !(200..300).contains(&response.status) {
            let problem = messages::problem(&response.body).unwrap_or_default();
            if problem.name() == "badNonce" && self.bad_nonces < ACME_NONCE_RETRIES {
                self.bad_nonces += 1;
                return self.request();
            }
            return self.fail(format!(
                "{}: the service answered {}: {problem}",
                self.phase(),
                response.status
            ));
        }
        self.bad_nonces = 0;
        match self.take(response) {
            Ok(step) => step,
            Err(e) => self.fail(format!("{}: {e}", self.phase())),
        }
    }

    fn late(&mut self, now: Instant) -> Option<Step> {
        (now >= self.deadline).then(|| {
            let phase = self.phase();
            self.fail(format!("{phase}: no result within {ACME_ORDER_TIMEOUT:?}"))
        })
    }

    fn fail(&mut self, why: String) -> Step {
        self.phase = Phase::Over;
        Step::Failed(why)
    }

    fn authorizations(&self) -> &[String] {
        self.order
            .as_ref()
            .map_or(&[], |order| order.authorizations.as_slice())
    }

    fn directory(&self) -> &Directory {
        self.directory.as_ref().expect("read first")
    }

    fn order_url(&self) -> String {
        self.order_url.clone().unwrap_or_default()
    }

    /// The request of the current phase.
    fn request(&mut self) -> Step {
        let (url, payload) = match &self.phase {
            Phase::Directory => {
                return Step::Send(Request {
                    method: Method::Get,
                    url: self.settings.directory.clone(),
                    body: None,
                    pem: false,
                })
            }
            Phase::Account => (
                self.directory().new_account.clone(),
                Some(messages::new_account(self.settings.contact.as_deref())),
            ),
            Phase::NewOrder => (
                self.directory().new_order.clone(),
                Some(messages::new_order(&self.settings.names)),
            ),
            Phase::Authorization(i) | Phase::Poll(i) => (self.authorizations()[*i].clone(), None),
            Phase::Respond(_, url) => (url.clone(), Some("{}".to_string())),
            Phase::Ready | Phase::Issued => (self.order_url(), None),
            Phase::Finalize => {
                let (csr, key) = match messages::certificate_request(&self.settings.names) {
                    Ok(made) => made,
                    Err(e) => return self.fail(e),
                };
                self.cert_key = Some(key);
                let finalize = self.order.as_ref().map(|o| o.finalize.clone());
                (finalize.unwrap_or_default(), Some(messages::finalize(&csr)))
            }
            Phase::Certificate => {
                let url = self.order.as_ref().and_then(|o| o.certificate.clone());
                (url.unwrap_or_default(), None)
            }
            Phase::Over => return Step::Failed("the order is over".into()),
        };
        let Some(nonce) = self.nonce.take() else {
            self.fetching_nonce = true;
            return Step::Send(Request {
                method: Method::Head,
                url: self.directory().new_nonce.clone(),
                body: None,
                pem: false,
            });
        };
        let signer = match &self.account {
            Some(kid) if self.phase != Phase::Account => Signer::Kid(kid),
            _ => Signer::Jwk,
        };
        match self.key.sign(&url, &nonce, signer, payload.as_deref()) {
            Ok(body) => Step::Send(Request {
                method: Method::Post,
                pem: self.phase == Phase::Certificate,
                url,
                body: Some(body),
            }),
            Err(e) => self.fail(e),
        }
    }

    /// Moves on by a successful answer.
    fn take(&mut self, response: Response) -> Result<Step, String> {
        let body = &response.body;
        match self.phase.clone() {
            Phase::Directory => {
                self.directory = Some(messages::parse(body, "directory")?);
                self.phase = Phase::Account;
            }
            Phase::Account => {
                let kid = response.location.ok_or("the account has no URL")?;
                self.account = Some(kid);
                self.phase = Phase::NewOrder;
            }
            Phase::NewOrder => {
                self.order_url = Some(response.location.ok_or("the order has no URL")?);
                let order: Order = messages::parse(body, "order")?;
                self.order = Some(order);
                return Ok(self.next_authorization(0));
            }
            Phase::Authorization(i) => {
                let authz: Authorization = messages::parse(body, "authorization")?;
                return self.authorize(i, authz);
            }
            Phase::Respond(i, _) => {
                self.phase = Phase::Poll(i);
                return Ok(self.wait(None));
            }
            Phase::Poll(i) => {
                let authz: Authorization = messages::parse(body, "authorization")?;
                return match authz.status {
                    Status::Valid => Ok(self.next_authorization(i + 1)),
                    Status::Pending | Status::Processing => Ok(self.wait(response.retry_after)),
                    _ => Err(refused(&authz)),
                };
            }
            Phase::Ready | Phase::Finalize | Phase::Issued => {
                let order: Order = messages::parse(body, "order")?;
                let status = order.status;
                let error = order.error.clone();
                self.order = Some(Order {
                    // The finalize and authorization URLs stay as first given.
                    authorizations: self.authorizations().to_vec(),
                    ..order
                });
                match status {
                    Status::Ready if self.phase == Phase::Ready => self.phase = Phase::Finalize,
                    Status::Valid
                        if self.order.as_ref().is_some_and(|o| o.certificate.is_some()) =>
                    {
                        self.phase = Phase::Certificate
                    }
                    Status::Pending | Status::Processing | Status::Ready | Status::Valid => {
                        if self.phase == Phase::Finalize {
                            self.phase = Phase::Issued;
                        }
                        return Ok(self.wait(response.retry_after));
                    }
                    other => {
                        let why = error.map(|p| p.to_string()).unwrap_or_default();
                        return Err(format!("the order is {}: {why}", other.name()));
                    }
                }
            }
            Phase::Certificate => {
                messages::chain(body)?;
                let chain = String::from_utf8(body.clone()).map_err(|_| "the chain is not text")?;
                let key = self.cert_key.take().ok_or("no key for the certificate")?;
                self.phase = Phase::Over;
                return Ok(Step::Done { chain, key });
            }
            Phase::Over => return Err("the order is over".into()),
        }
        self.polls = 0;
        Ok(self.request())
    }

    /// Reads authorization `i`, or polls the order when all are done.
    fn next_authorization(&mut self, i: usize) -> Step {
        self.polls = 0;
        self.phase = match i < self.authorizations().len() {
            true => Phase::Authorization(i),
            false => Phase::Ready,
        };
        self.request()
    }

    /// Picks a challenge of a pending authorization and has its answer
    /// published; a valid one needs nothing.
    fn authorize(&mut self, i: usize, authz: Authorization) -> Result<Step, String> {
        match authz.status {
            Status::Valid => return Ok(self.next_authorization(i + 1)),
            Status::Pending => {}
            _ => return Err(refused(&authz)),
        }
        let name = authz.identifier.value.clone();
        let usable = |kind: &str| match kind {
            "http-01" => self.settings.http01,
            "tls-alpn-01" => self.settings.tls_alpn01,
            _ => false,
        };
        // http-01 first: it needs nothing of the HTTPS listener.
        let chosen = ["http-01", "tls-alpn-01"]
            .iter()
            .find_map(|kind| {
                authz
                    .challenges
                    .iter()
                    .find(|c| c.kind == *kind && usable(kind))
            })
            .cloned();
        let Some(challenge) = chosen else {
            let offered: Vec<&str> = authz.challenges.iter().map(|c| c.kind.as_str()).collect();
            return Err(format!(
                "{name}: no challenge we can answer (offered: {}; http-01 needs [web] http_listen, tls-alpn-01 [web] listen)",
                offered.join(", ")
            ));
        };
        let key_authorization =
            messages::key_authorization(&challenge.token, &self.key.thumbprint());
        let answer = match challenge.kind.as_str() {
            "http-01" => Answer::Http01 {
                token: challenge.token.clone(),
                key_authorization,
            },
            _ => Answer::TlsAlpn01 {
                name,
                key_authorization,
            },
        };
        self.phase = Phase::Respond(i, challenge.url);
        Ok(Step::Publish(answer))
    }

    /// The next poll's wait: the service's `Retry-After`, else doubling.
    fn wait(&mut self, retry_after: Option<u64>) -> Step {
        let doubling = ACME_POLL_FIRST.saturating_mul(1 << self.polls.min(16));
        self.polls += 1;
        let wait = retry_after.map_or(doubling, Duration::from_secs);
        Step::Wait(wait.min(ACME_POLL_MAX))
    }
}

/// Why an authorization failed, from its challenges' errors.
fn refused(authz: &Authorization) -> String {
    let errors: Vec<String> = authz
        .challenges
        .iter()
        .filter_map(|c| c.error.as_ref().map(|e| format!("{} {e}", c.kind)))
        .collect();
    let why = match errors.is_empty() {
        true => String::new(),
        false => format!(": {}", errors.join("; ")),
    };
    format!("{} is {}{why}", authz.identifier.value, authz.status.name())
}

#[cfg(test)]
mod tests;
