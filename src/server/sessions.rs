//! Each listener's session budget. Listeners do not share one, so strangers
//! filling port 25 cannot take members' places on 587, 465, 110 or 995.
//! When a listener is full, the session that has waited longest for its
//! client, among those idle and not a member's (not logged in, not a
//! trusted relay client), is closed to make room: idle strangers go first,
//! members are never pushed out.

use crate::conn::seat::{Place, Seat};
use event_listener::Event;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// One listener's sessions.
pub struct Budget {
    max: usize,
    places: RefCell<Vec<Rc<Place>>>,
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

impl Budget {
    pub fn new(max: usize, open: Rc<Open>) -> Rc<Self> {
        Rc::new(Budget {
            max,
            places: RefCell::new(Vec::new()),
            open,
        })
    }

    /// A place for a new session `who`, making room if need be; `None` when
    /// every place is held by a member or a session at work.
    pub fn take(self: &Rc<Self>, who: String) -> Option<Seat> {
        let mut places = self.places.borrow_mut();
        if places.len() >= self.max {
            let oldest = places
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.is_member())
                .filter_map(|(i, p)| Some((p.idle_since()?, i)))
                .min()?;
            let evicted = places.swap_remove(oldest.1);
            evicted.evict();
            log::info!("{} closed while idle, to make room for {who}", evicted.who);
        }
        let place = Place::new(who);
        places.push(place.clone());
        self.open.count.set(self.open.count.get() + 1);
        let budget = self.clone();
        Some(Seat::new(place, move |place| budget.give_back(place)))
    }

    fn give_back(&self, place: &Rc<Place>) {
        let mut places = self.places.borrow_mut();
        if let Some(i) = places.iter().position(|p| Rc::ptr_eq(p, place)) {
            places.swap_remove(i);
        }
        let open = &self.open;
        open.count.set(open.count.get() - 1);
        if open.count.get() == 0 {
            open.none_left.notify(usize::MAX);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.places.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::future;
    use std::time::Instant;

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
