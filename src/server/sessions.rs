//! Each listener's session budget. Listeners do not share one, so strangers
//! filling port 25 cannot take members' places on 587, 465, 110 or 995.
//! When a listener is full, the session that has waited longest for its
//! client, among those idle and not a member's (not logged in, not a
//! trusted relay client), is closed to make room: idle strangers go first,
//! members are never pushed out.

use event_listener::Event;
use smol::future;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

/// One listener's sessions.
pub struct Budget {
    max: usize,
    seats: RefCell<Vec<Rc<SeatState>>>,
    open: Rc<Open>,
}

/// Sessions open over all listeners, so shutdown can wait for none.
#[derive(Default)]
pub struct Open {
    count: Cell<usize>,
    none_left: Event,
}

impl Open {
    pub fn count(&self) -> usize {
        self.count.get()
    }

    /// Resolves once no session is open.
    pub async fn all_closed(&self) {
        loop {
            if self.count.get() == 0 {
                return;
            }
            let listener = self.none_left.listen();
            if self.count.get() == 0 {
                return;
            }
            listener.await;
        }
    }
}

struct SeatState {
    /// Names the session in the log.
    who: String,
    /// Since when the session waits for its client, while it does.
    idle_since: Cell<Option<Instant>>,
    member: Cell<bool>,
    evicted: Cell<bool>,
    wake: Event,
}

/// A session's place on its listener, given back when dropped.
pub struct Seat {
    budget: Rc<Budget>,
    state: Rc<SeatState>,
}

impl Budget {
    pub fn new(max: usize, open: Rc<Open>) -> Rc<Self> {
        Rc::new(Budget {
            max,
            seats: RefCell::new(Vec::new()),
            open,
        })
    }

    /// A place for a new session `who`, making room if need be; `None` when
    /// every place is held by a member or a session at work.
    pub fn take(self: &Rc<Self>, who: String) -> Option<Seat> {
        let mut seats = self.seats.borrow_mut();
        if seats.len() >= self.max {
            let oldest = seats
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.member.get())
                .filter_map(|(i, s)| Some((s.idle_since.get()?, i)))
                .min()?;
            let evicted = seats.swap_remove(oldest.1);
            evicted.evicted.set(true);
            evicted.wake.notify(usize::MAX);
            log::info!("{} closed while idle, to make room for {who}", evicted.who);
        }
        let state = Rc::new(SeatState {
            who,
            idle_since: Cell::new(None),
            member: Cell::new(false),
            evicted: Cell::new(false),
            wake: Event::new(),
        });
        seats.push(state.clone());
        self.open.count.set(self.open.count.get() + 1);
        Some(Seat {
            budget: self.clone(),
            state,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seats.borrow().len()
    }
}

impl Seat {
    /// A member's session (logged in, or a trusted client): never closed to
    /// make room.
    pub fn member(&self) {
        self.state.member.set(true);
    }

    /// Runs `wait` (for the client to say something) with the session
    /// counted as idle `since` then; `None` if it was closed to make room
    /// meanwhile.
    pub async fn idle<T>(&self, since: Instant, wait: impl Future<Output = T>) -> Option<T> {
        if self.state.evicted.get() {
            return None;
        }
        self.state.idle_since.set(Some(since));
        let evicted = async {
            loop {
                if self.state.evicted.get() {
                    return None;
                }
                let listener = self.state.wake.listen();
                if self.state.evicted.get() {
                    return None;
                }
                listener.await;
            }
        };
        let outcome = future::or(async { Some(wait.await) }, evicted).await;
        self.state.idle_since.set(None);
        outcome
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut seats = self.budget.seats.borrow_mut();
        if let Some(i) = seats.iter().position(|s| Rc::ptr_eq(s, &self.state)) {
            seats.swap_remove(i);
        }
        let open = &self.budget.open;
        open.count.set(open.count.get() - 1);
        if open.count.get() == 0 {
            open.none_left.notify(usize::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max: usize) -> Rc<Budget> {
        Budget::new(max, Rc::new(Open::default()))
    }

    #[test]
    fn the_longest_idle_stranger_makes_room() {
        smol::block_on(async {
            let b = budget(3);
            let member = b.take("member".into()).unwrap();
            member.member();
            let _busy = b.take("busy".into()).unwrap();
            let stranger = b.take("stranger".into()).unwrap();
            assert!(b.take("new".into()).is_none(), "nobody idle: full");
            // The member and the stranger wait for their clients.
            let now = Instant::now();
            let mut member_wait = Box::pin(member.idle(now, future::pending::<()>()));
            let mut stranger_wait = Box::pin(stranger.idle(now, future::pending::<()>()));
            assert!(future::poll_once(&mut member_wait).await.is_none());
            assert!(future::poll_once(&mut stranger_wait).await.is_none());
            let _new = b.take("new".into()).expect("the idle stranger made room");
            assert_eq!(b.len(), 3);
            assert_eq!(future::poll_once(&mut stranger_wait).await, Some(None));
            assert!(future::poll_once(&mut member_wait).await.is_none());
            assert!(b.take("later".into()).is_none(), "members stay");
        });
    }

    #[test]
    fn shutdown_sees_the_last_session_leave() {
        smol::block_on(async {
            let open = Rc::new(Open::default());
            let b = Budget::new(2, open.clone());
            let seat = b.take("s".into()).unwrap();
            assert_eq!(open.count(), 1);
            let waiting = open.all_closed();
            drop(seat);
            waiting.await;
            assert_eq!(open.count(), 0);
        });
    }
}
