//! Signed-in browsers: a random token in a cookie names a session held in
//! RAM only (a restart signs everyone out), bounded in number, ended when
//! unused for [`WEB_SESSION_IDLE`] or older than [`WEB_SESSION_LIFETIME`].
//! Each session has its own CSRF token, which every form it is shown
//! carries back. The caller passes the time, so tests drive the clock.
//!
//! Cookies are `__Host-` cookies: browsers take them only when Secure,
//! with `Path=/` and no `Domain`, so no other host under the same domain
//! (nor plain HTTP) can set or replace them.

use crate::limits::{MAX_WEB_SESSIONS, WEB_SESSION_IDLE, WEB_SESSION_LIFETIME};
use crate::wire::address::Address;
use base64::Engine;
use std::collections::HashMap;
use std::time::Instant;

/// The cookie naming a signed-in session.
pub const SESSION_COOKIE: &str = "__Host-postbox_session";
/// The cookie a sign-in form's token is checked against (before there
/// is a session): a page elsewhere can neither read it nor set it, so it
/// cannot submit the form with a matching token.
pub const LOGIN_COOKIE: &str = "__Host-postbox_login";

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A member, by the address they signed in as.
    Member(Address),
    /// The admin (with the console's password).
    Admin,
}

impl Who {
    /// How the log names them.
    pub fn name(&self) -> &str {
        match self {
            Who::Member(address) => address.as_str(),
            Who::Admin => "admin",
        }
    }
}

/// A signed-in session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub who: Who,
    /// The cookie's value.
    pub token: String,
    /// What every form of this session carries in its `csrf` field.
    pub csrf: String,
    /// The password signed in with ([`crate::auth::hash_stamp`] of the
    /// member's or the admin's stored hash): when it changes, the session
    /// ends.
    pub stamp: u64,
    started: Instant,
    seen: Instant,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.seen) >= WEB_SESSION_IDLE
            || now.saturating_duration_since(self.started) >= WEB_SESSION_LIFETIME
    }
}

/// Every session, by token.
#[derive(Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
}

impl Sessions {
    /// Starts a session for `who` (signed in with password `stamp`); at the cap, the expired ones end, and
    /// if none had, the least recently used.
    pub fn start(&mut self, who: Who, stamp: u64, now: Instant) -> Session {
        if self.by_token.len() >= MAX_WEB_SESSIONS {
            self.by_token.retain(|_, s| !s.expired(now));
        }
        if self.by_token.len() >= MAX_WEB_SESSIONS {
            let idlest = self
                .by_token
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(t, _)| t.clone());
            if let Some(token) = idlest {
                self.by_token.remove(&token);
            }
        }
        let session = Session {
            who,
            token: new_token(),
            csrf: new_token(),
            stamp,
            started: now,
            seen: now,
        };
        self.by_token.insert(session.token.clone(), session.clone());
        session
    }

    /// The session of cookie value `token`, marked as used now; `None`
    /// (and ended) when it expired.
    pub fn find(&mut self, token: &str, now: Instant) -> Option<Session> {
        let session = self.by_token.get_mut(token)?;
        if session.expired(now) {
            self.by_token.remove(token);
            return None;
        }
        session.seen = now;
        Some(session.clone())
    }

    /// Records that the session of `token` changed its own password.
    pub fn restamp(&mut self, token: &str, stamp: u64) {
        if let Some(session) = self.by_token.get_mut(token) {
            session.stamp = stamp;
        }
    }

    /// Ends the session of `token` (signing out).
    pub fn end(&mut self, token: &str) {
        self.by_token.remove(token);
    }

    /// Ends every session of `who` but the one of `keep` (after a password
    /// change, other browsers signed in with the old one are signed out).
    pub fn end_all_of(&mut self, who: &Who, keep: Option<&str>) {
        self.by_token
            .retain(|token, s| s.who != *who || Some(token.as_str()) == keep);
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

/// 32 random bytes, URL-safe base64 (43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random numbers");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether a token came back as given: compared in time that depends on
/// the lengths only, never on where they first differ.
pub fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A well-formed token (as [`new_token`] makes them), so a cookie value
/// can be taken back into a page.
pub fn is_token(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `Set-Cookie` value for cookie `name` (a browser-session cookie: gone
/// when the browser closes).
pub fn set_cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Secure; HttpOnly; SameSite=Strict; Path=/")
}

/// `Set-Cookie` value that deletes cookie `name`.
pub fn delete_cookie(name: &str) -> String {
    format!("{name}=; Max-Age=0; Secure; HttpOnly; SameSite=Strict; Path=/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn alice() -> Who {
        Who::Member(Address::new("alice", "example.org").unwrap())
    }

    #[test]
    fn a_session_lasts_while_used_and_ends_when_idle() {
        let t0 = Instant::now();
        let mut sessions = Sessions::default();
        let s = sessions.start(alice(), 0, t0);
        assert!(is_token(&s.token) && is_token(&s.csrf));
        assert_ne!(s.token, s.csrf);
        let minute = Duration::from_secs(60);
        // Used every 20 minutes: alive well past the idle limit.
        let mut now = t0;
        for _ in 0..5 {
            now += 20 * minute;
            assert_eq!(sessions.find(&s.token, now).unwrap().who, alice());
        }
        now += WEB_SESSION_IDLE;
        assert_eq!(sessions.find(&s.token, now), None);
        assert!(sessions.is_empty(), "an expired session is dropped");
        assert_eq!(sessions.find("no such token", now), None);
    }

    #[test]
    fn a_session_ends_at_its_lifetime_even_if_used() {
        let t0 = Instant::now();
        let mut sessions = Sessions::default();
        let s = sessions.start(Who::Admin, 0, t0);
        let mut now = t0;
        while now + Duration::from_secs(600) < t0 + WEB_SESSION_LIFETIME {
            now += Duration::from_secs(600);
            assert!(sessions.find(&s.token, now).is_some());
        }
        assert_eq!(sessions.find(&s.token, t0 + WEB_SESSION_LIFETIME), None);
    }

    #[test]
    fn the_count_is_bounded_and_the_least_recently_used_goes() {
        let t0 = Instant::now();
        let mut sessions = Sessions::default();
        let first = sessions.start(alice(), 0, t0);
        let second = sessions.start(alice(), 0, t0 + Duration::from_secs(1));
        let mut now = t0 + Duration::from_secs(2);
        for _ in 2..MAX_WEB_SESSIONS {
            sessions.start(Who::Admin, 0, now);
            now += Duration::from_millis(10);
        }
        // The first is used again: the second is now the idlest.
        assert!(sessions.find(&first.token, now).is_some());
        let newest = sessions.start(alice(), 0, now);
        assert_eq!(sessions.len(), MAX_WEB_SESSIONS);
        assert!(sessions.find(&second.token, now).is_none());
        assert!(sessions.find(&first.token, now).is_some());
        assert!(sessions.find(&newest.token, now).is_some());
        // Expired ones go before any live one.
        let later = now + WEB_SESSION_IDLE - Duration::from_secs(1);
        assert!(sessions.find(&first.token, later).is_some());
        let after_idle = now + WEB_SESSION_IDLE + Duration::from_secs(1);
        sessions.start(Who::Admin, 0, after_idle);
        assert!(sessions.find(&first.token, after_idle).is_some());
        assert_eq!(sessions.len(), 2);
    }

    #[test]
    fn signing_out_and_password_changes_end_sessions() {
        let now = Instant::now();
        let mut sessions = Sessions::default();
        let here = sessions.start(alice(), 0, now);
        let elsewhere = sessions.start(alice(), 0, now);
        let admin = sessions.start(Who::Admin, 0, now);
        sessions.end_all_of(&alice(), Some(&here.token));
        assert!(sessions.find(&here.token, now).is_some());
        assert!(sessions.find(&elsewhere.token, now).is_none());
        sessions.end(&here.token);
        assert!(sessions.find(&here.token, now).is_none());
        assert!(sessions.find(&admin.token, now).is_some());
    }

    #[test]
    fn tokens_compare_whole() {
        let t = new_token();
        assert!(same_token(&t, &t.clone()));
        assert!(!same_token(&t[..42], &t));
        assert!(!same_token("", &t));
        let mut other = t.clone().into_bytes();
        other[42] ^= 1;
        assert!(!same_token(std::str::from_utf8(&other).unwrap(), &t));
        assert!(!is_token("short") && !is_token(&"a;".repeat(22)[..43]));
    }

    #[test]
    fn cookies_are_secure_http_only_and_strict() {
        let set = set_cookie(SESSION_COOKIE, "abc");
        assert_eq!(
            set,
            "__Host-postbox_session=abc; Secure; HttpOnly; SameSite=Strict; Path=/"
        );
        assert!(delete_cookie(LOGIN_COOKIE).contains("Max-Age=0; Secure; HttpOnly"));
    }
}
