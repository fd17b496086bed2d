//! A session's place on its listener, as the session holds it: it marks
//! itself a member's or idle, and learns when it was closed to make room.
//! The admission that hands it out (`server::sessions`) gets it back when
//! it is dropped.

use event_listener::Event;
use smol::future;
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

/// What admission knows of a session holding a place.
pub struct Place {
    /// Names the session in the log.
    pub who: String,
    /// Since when the session waits for its client, while it does.
    idle_since: Cell<Option<Instant>>,
    member: Cell<bool>,
    evicted: Cell<bool>,
    wake: Event,
}

impl Place {
    pub fn new(who: String) -> Rc<Place> {
        Rc::new(Place {
            who,
            idle_since: Cell::new(None),
            member: Cell::new(false),
            evicted: Cell::new(false),
            wake: Event::new(),
        })
    }

    pub fn is_member(&self) -> bool {
        self.member.get()
    }

    /// Since when the session waits for its client, if it does.
    pub fn idle_since(&self) -> Option<Instant> {
        self.idle_since.get()
    }

    /// Closes the session to make room: its wait for the client ends.
    pub fn evict(&self) {
        self.evicted.set(true);
        self.wake.notify(usize::MAX);
    }
}

/// Gives a place back to whoever handed it out.
type Release = Box<dyn FnOnce(&Rc<Place>)>;

/// A session's place, given back (by `release`) when dropped.
pub struct Seat {
    place: Rc<Place>,
    release: Option<Release>,
}

impl Seat {
    pub fn new(place: Rc<Place>, release: impl FnOnce(&Rc<Place>) + 'static) -> Seat {
        Seat {
            place,
            release: Some(Box::new(release)),
        }
    }

    /// A member's session (logged in, or a trusted client): never closed to
    /// make room.
    pub fn member(&self) {
        self.place.member.set(true);
    }

    /// Runs `wait` (for the client to say something) with the session
    /// counted as idle `since` then; `None` if it was closed to make room
    /// meanwhile.
    pub async fn idle<T>(&self, since: Instant, wait: impl Future<Output = T>) -> Option<T> {
        let place = &self.place;
        if place.evicted.get() {
            return None;
        }
        place.idle_since.set(Some(since));
        let evicted = async {
            loop {
                if place.evicted.get() {
                    return None;
                }
                let listener = place.wake.listen();
                if place.evicted.get() {
                    return None;
                }
                listener.await;
            }
        };
        let outcome = future::or(async { Some(wait.await) }, evicted).await;
        place.idle_since.set(None);
        outcome
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release(&self.place);
        }
    }
}
