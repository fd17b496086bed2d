//! Admission: a new connection gets a session if its listener has a place
//! (see `sessions`) and its address is within its limits (see `clients`).

use super::clients::{AddressSlot, Clients};
use super::sessions::{Budget, Open};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::conn::{Gate, Seat, Service, Stream};
use crate::ops::stats::Counters;
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
        let budget = &self.budgets[Service::ALL.iter().position(|s| *s == service).unwrap_or(0)];
        let ((reply, refusal), why) = match self.clients.admit(ip) {
            Err(why) => (gate.address, why.to_string()),
            Ok(address) => match budget.take(who.to_string()) {
                Some(seat) => {
                    if self.auth.relay_client(ip) {
                        seat.member();
                    }
                    return Some(Admitted { seat, address });
                }
                None => (gate.busy, "too many sessions".to_string()),
            },
        };
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
