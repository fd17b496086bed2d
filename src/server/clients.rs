//! Per-address admission, over all listeners: how many sessions one client
//! address may hold, and how many connections it may open per minute (the
//! job of Postfix's anvil). Bounded memory: idle addresses are forgotten.

use crate::conn::per_client::{client_key, evict_least_recent};
use crate::limits::{CONNECTION_RATE_WINDOW, TRACKED_CLIENTS};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

struct Activity {
    sessions: usize,
    window_start: Instant,
    connections: u32,
    last: Instant,
}

/// Why an address was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManySessions,
    TooFast,
}

/// For the log, which a person reads.
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::TooManySessions => "too many sessions from this address",
            Refusal::TooFast => "too many connections per minute from this address",
        })
    }
}

pub struct Clients {
    max_sessions: usize,
    /// 0: no limit.
    per_minute: u32,
    by_address: RefCell<HashMap<IpAddr, Activity>>,
}

impl Clients {
    pub fn new(max_sessions: usize, per_minute: u32) -> Rc<Self> {
        Rc::new(Clients {
            max_sessions,
            per_minute,
            by_address: RefCell::new(HashMap::new()),
        })
    }

    /// Admits a new connection from `ip`, or says why not. The returned
    /// guard holds the session until dropped.
    pub fn admit(self: &Rc<Self>, ip: IpAddr) -> Result<AddressSlot, Refusal> {
        let ip = client_key(ip);
        let now = Instant::now();
        let mut map = self.by_address.borrow_mut();
        if map.len() >= TRACKED_CLIENTS && !map.contains_key(&ip) {
            map.retain(|_, a| {
                a.sessions > 0 || now.duration_since(a.window_start) < CONNECTION_RATE_WINDOW
            });
            if map.len() >= TRACKED_CLIENTS {
                // A flood from many addresses: those with sessions stay
                // (bounded by the session limits), then the most recent.
                evict_least_recent(&mut map, |a| (a.sessions == 0).then_some(a.last));
            }
        }
        let activity = map.entry(ip).or_insert(Activity {
            sessions: 0,
            window_start: now,
            connections: 0,
            last: now,
        });
        activity.last = now;
        if now.duration_since(activity.window_start) >= CONNECTION_RATE_WINDOW {
            activity.window_start = now;
            activity.connections = 0;
        }
        activity.connections = activity.connections.saturating_add(1);
        if self.per_minute > 0 && activity.connections > self.per_minute {
            return Err(Refusal::TooFast);
        }
        if activity.sessions >= self.max_sessions {
            return Err(Refusal::TooManySessions);
        }
        activity.sessions += 1;
        Ok(AddressSlot {
            clients: self.clone(),
            ip,
        })
    }
}

/// One session of an address, given back when dropped.
pub struct AddressSlot {
    clients: Rc<Clients>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some(a) = self.clients.by_address.borrow_mut().get_mut(&self.ip) {
            a.sessions -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_per_address() {
        let clients = Clients::new(2, 0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = clients.admit(a).unwrap();
        let _second = clients.admit(a).unwrap();
        assert_eq!(clients.admit(a).err(), Some(Refusal::TooManySessions));
        // The same address written as IPv4-mapped IPv6 is the same client.
        assert!(clients.admit("::ffff:192.0.2.1".parse().unwrap()).is_err());
        let _other = clients.admit(b).unwrap();
        drop(first);
        assert!(clients.admit(a).is_ok());
    }

    #[test]
    fn connection_rate() {
        let clients = Clients::new(100, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            drop(clients.admit(a).unwrap());
        }
        assert_eq!(clients.admit(a).err(), Some(Refusal::TooFast));
        assert!(clients.admit("192.0.2.9".parse().unwrap()).is_ok());
    }

    #[test]
    fn ipv6_clients_are_their_64() {
        let clients = Clients::new(1, 0);
        let _held = clients.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert_eq!(
            clients.admit("2001:db8:1:2:ffff::9".parse().unwrap()).err(),
            Some(Refusal::TooManySessions)
        );
        assert!(clients.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn a_flood_of_new_addresses_keeps_recent_rates() {
        let clients = Clients::new(100, 2);
        let busy: IpAddr = "198.51.100.7".parse().unwrap();
        for i in 0..TRACKED_CLIENTS as u32 {
            drop(clients.admit(IpAddr::from(i.to_be_bytes())).unwrap());
        }
        for _ in 0..2 {
            drop(clients.admit(busy).unwrap());
        }
        // New addresses push out the oldest entries, not the busy one's.
        for i in 0..(TRACKED_CLIENTS as u32 / 4) {
            drop(
                clients
                    .admit(IpAddr::from((1u32 << 31 | i).to_be_bytes()))
                    .unwrap(),
            );
        }
        assert_eq!(clients.admit(busy).err(), Some(Refusal::TooFast));
    }

    #[test]
    fn memory_is_bounded() {
        let clients = Clients::new(10, 0);
        for i in 0..(TRACKED_CLIENTS as u32 + 100) {
            drop(clients.admit(IpAddr::from(i.to_be_bytes())).unwrap());
        }
        assert!(clients.by_address.borrow().len() <= TRACKED_CLIENTS + 1);
    }
}
