//! Admission: a new connection gets a session if its listener has a place
//! (see `sessions`) and its address is within its limits (see `clients`).
//! Behind a proxy the place is taken first, at accept, and the address's
//! share once the PROXY header has named the client.

use super::clients::{AddressSlot, Clients};
use super::sessions::{Budget, Open};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::conn::{Gate, Seat, Service, Stream};
use crate::ops::stats::{Counters, Refusal};
use std::cell::Cell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

/// Every listener's places and every address's share.
pub struct Admission {
    /// Sessions and connection rate per client address.
    clients: Rc<Clients>,
    /// Each listener's sessions, in the order of `Service::ALL`.
    budgets: Vec<Rc<Budget>>,
    /// Sessions open over all listeners.
    pub open: Rc<Open>,
    next_session: Cell<u64>,
    /// Knows the trusted (`relay_from`) clients, who are members at once.
    auth: Rc<Authenticator>,
    counters: Rc<Counters>,
    /// How long a refused client gets to read why.
    reply_timeout: Duration,
}

/// A connection's right to a session: its place on the listener and its
/// address's slot, both given back when dropped.
pub struct Admitted {
    pub seat: Seat,
    pub address: AddressSlot,
}

impl Admission {
    pub fn new(config: &Config, auth: Rc<Authenticator>, counters: Rc<Counters>) -> Admission {
        let open = Rc::new(Open::default());
        Admission {
            clients: Clients::new(
                config.limits.sessions_per_address,
                config.limits.connections_per_minute,
            ),
            budgets: Service::ALL
                .iter()
                .map(|s| Budget::new(max_sessions(*s, config), open.clone()))
                .collect(),
            open,
            next_session: Cell::new(0),
            auth,
            counters,
            reply_timeout: config.smtp.command_timeout,
        }
    }

    /// The number that names the next session in the log.
    pub fn session_id(&self) -> u64 {
        let id = self.next_session.get() + 1;
        self.next_session.set(id);
        id
    }

    /// Admits a connection under its listener's and its address's limits,
    /// closing an idle stranger's session to make room if need be. A refused
    /// plaintext client is told why (`gate`); a TLS one is just closed (it
    /// could not read a plaintext reply). `who` names the session in the log.
    pub async fn admit(
        &self,
        stream: &mut Stream,
        ip: IpAddr,
        service: Service,
        gate: Gate,
        who: &str,
    ) -> Option<Admitted> {
        let address = self.address(stream, ip, service, gate, who).await?;
        let seat = self.seat(stream, service, gate, who).await?;
        self.trust(&seat, ip);
        Some(Admitted { seat, address })
    }

    /// A place on the listener, or `None` (the client told, as by `admit`)
    /// when every place is held by a member or a session at work.
    pub async fn seat(
        &self,
        stream: &mut Stream,
        service: Service,
        gate: Gate,
        who: &str,
    ) -> Option<Seat> {
        let budget = &self.budgets[Service::ALL.iter().position(|s| *s == service).unwrap_or(0)];
        match budget.take(who.to_string()) {
            Some(seat) => Some(seat),
            None => {
                let why = "too many sessions";
                self.refuse(stream, service, gate.busy, why, who).await
            }
        }
    }

    /// The share of client address `ip`, or `None` (the client told, as
    /// by `admit`) when it holds or opened too many.
    pub async fn address(
        &self,
        stream: &mut Stream,
        ip: IpAddr,
        service: Service,
        gate: Gate,
        who: &str,
    ) -> Option<AddressSlot> {
        match self.clients.admit(ip) {
            Ok(address) => Some(address),
            Err(why) => {
                let why = why.to_string();
                self.refuse(stream, service, gate.address, &why, who).await
            }
        }
    }

    /// Trusted (`relay_from`) clients' sessions are members' at once.
    pub fn trust(&self, seat: &Seat, ip: IpAddr) {
        if self.auth.relay_client(ip) {
            seat.member();
        }
    }

    async fn refuse<T>(
        &self,
        stream: &mut Stream,
        service: Service,
        (reply, refusal): (&'static [u8], Refusal<'static>),
        why: &str,
        who: &str,
    ) -> Option<T> {
        log::warn!("{who} refused: {why}");
        self.counters.count(|s| s.count_refusal(refusal));
        if !service.implicit_tls() {
            let _ = crate::conn::write(stream, reply, self.reply_timeout).await;
        }
        None
    }
}

/// How many sessions a listener may hold.
fn max_sessions(service: Service, config: &Config) -> usize {
    match service {
        Service::Smtp => config.smtp.max_sessions,
        Service::Submission => config.listener_sessions.submission,
        Service::Submissions => config.listener_sessions.submissions,
        Service::Pop3 => config.pop3.max_sessions,
        Service::Pop3s => config.listener_sessions.pop3s,
        Service::Web | Service::Http => config.web.max_sessions,
    }
}
