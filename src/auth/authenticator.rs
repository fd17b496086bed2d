//! Checks logins for every protocol: the failed-login throttle, the cache
//! of recently verified passwords, and one Argon2 computation at a time.

use super::cache::LoginCache;
use super::throttle::{LoginThrottle, Refusal};
use super::{AdminLogin, Login};
use crate::config::Config;
use crate::ops::stats::Counters;
use crate::store::users::{self, UserCache};
use crate::wire::address::Address;
use smol::Timer;
use std::net::IpAddr;
use std::rc::Rc;

/// The admin's account in the login throttle (no member's login names
/// it: theirs are `local@domain`).
pub const ADMIN_ACCOUNT: &str = "admin";

pub struct Authenticator {
    config: Rc<Config>,
    users: Rc<UserCache>,
    throttle: LoginThrottle,
    cache: LoginCache,
    /// One Argon2 computation at a time bounds login memory on small boards.
    password_gate: smol::lock::Semaphore,
    counters: Rc<Counters>,
}

impl Authenticator {
    /// Checks logins against `users` (shared with the router) and counts
    /// them in `counters`.
    pub fn new(
        config: Rc<Config>,
        users: Rc<UserCache>,
        counters: Rc<Counters>,
    ) -> Result<Authenticator, String> {
        Ok(Authenticator {
            config,
            users,
            throttle: LoginThrottle::default(),
            cache: LoginCache::new()?,
            password_gate: smol::lock::Semaphore::new(1),
            counters,
        })
    }

    /// Whether a client at `ip` may send a password without TLS.
    pub fn plaintext_login_allowed(&self, ip: IpAddr) -> bool {
        self.config.allow_plaintext_on_loopback && ip.to_canonical().is_loopback()
    }

    /// Whether a client at `ip` is trusted as a member without logging in
    /// (`relay_from`): it may relay, and is spared the checks on strangers.
    pub fn relay_client(&self, ip: IpAddr) -> bool {
        self.config.relay_from.iter().any(|net| net.contains(ip))
    }

    /// Checks a login from `ip`; failures wait longer each time, and a
    /// client or account with too many lately is refused without a check
    /// (the account's owner still gets in with a recently verified password).
    pub async fn login(&self, name: &str, password: &str, ip: IpAddr) -> Login {
        let account = users::split_name(name, self.config.default_domain())
            .map(|(local, domain)| format!("{local}@{domain}"))
            .unwrap_or_else(|_| name.to_string());
        let limit = self.config.limits.login_failures;
        // A user added a moment ago can log in at once.
        self.users.refresh().await;
        let attempt = match self.throttle.begin(ip, &account, limit) {
            Ok(attempt) => Some(attempt),
            Err(Refusal::Account) if self.recently_verified(&account, password) => None,
            Err(_) => {
                Timer::after(crate::limits::FAILED_LOGIN_DELAY).await;
                return Login::Refused;
            }
        };
        match self.authenticate(name, password).await {
            Some(account) => {
                self.counters.count(|s| s.logins += 1);
                Login::Ok(account)
            }
            None => {
                self.counters.count(|s| s.failed_logins += 1);
                if let Some(attempt) = attempt {
                    Timer::after(attempt.failed()).await;
                }
                Login::Failed
            }
        }
    }

    /// Checks the admin's password (`stored`, its hash; `None`: none set
    /// yet, so nothing matches) from `ip`, in the same throttle as
    /// members' logins (as the account [`ADMIN_ACCOUNT`]): guesses at it
    /// count against the client like guesses at a member.
    pub async fn login_admin(
        &self,
        password: &str,
        stored: Option<String>,
        ip: IpAddr,
    ) -> AdminLogin {
        let limit = self.config.limits.login_failures;
        let Ok(attempt) = self.throttle.begin(ip, ADMIN_ACCOUNT, limit) else {
            Timer::after(crate::limits::FAILED_LOGIN_DELAY).await;
            return AdminLogin::Refused;
        };
        let set = stored.is_some();
        let hash = stored.unwrap_or_else(|| super::password::dummy_hash().to_string());
        let secret = password.to_string();
        let ok = self
            .hashing(move || super::password::verify(&secret, &hash))
            .await;
        if ok && set {
            self.counters.count(|s| s.logins += 1);
            return AdminLogin::Ok;
        }
        self.counters.count(|s| s.failed_logins += 1);
        Timer::after(attempt.failed()).await;
        AdminLogin::Failed
    }

    /// Runs `work`, which computes a password hash, on the blocking pool,
    /// one at a time with logins' checks (each takes ~19 MiB).
    pub async fn hashing<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let _permit = self.password_gate.acquire().await;
        smol::unblock(work).await
    }

    /// A number that changes whenever `account`'s password does (a
    /// digest of its stored hash, in service since the last refresh);
    /// `None` when there is no such user. Sessions signed in with a
    /// password end when it changes.
    pub fn password_stamp(&self, account: &Address) -> Option<u64> {
        let phc = self.stored_hash(account.local(), account.domain())?;
        Some(hash_stamp(&phc))
    }

    /// The stored password hash of `local@domain`, if there is such a user.
    fn stored_hash(&self, local: &str, domain: &str) -> Option<String> {
        self.users
            .current()
            .find(local, domain)
            .map(|u| u.password.clone())
    }

    /// Whether `password` was verified for `account` lately (no hash needed).
    fn recently_verified(&self, account: &str, password: &str) -> bool {
        let Some((local, domain)) = account.split_once('@') else {
            return false;
        };
        let stored = self.stored_hash(local, domain);
        stored.is_some_and(|phc| self.cache.knows(account, &phc, password))
    }

    /// Checks a login (`local` or `local@domain`) off the executor thread.
    async fn authenticate(&self, name: &str, password: &str) -> Option<Address> {
        let (local, domain) = users::split_name(name, self.config.default_domain()).ok()?;
        let account = format!("{local}@{domain}");
        let stored = self.stored_hash(&local, &domain);
        if let Some(phc) = &stored {
            if self.cache.knows(&account, phc, password) {
                return Address::new(&local, &domain).ok();
            }
        }
        let _permit = self.password_gate.acquire().await;
        // Unknown users cost a hash too, so timing does not reveal them.
        let hash = stored
            .clone()
            .unwrap_or_else(|| super::password::dummy_hash().to_string());
        let secret = password.to_string();
        let ok = smol::unblock(move || super::password::verify(&secret, &hash)).await;
        let exists = self.stored_hash(&local, &domain).is_some();
        match (ok && exists, &stored) {
            (true, Some(phc)) => {
                self.cache.remember(&account, phc, password);
                Address::new(&local, &domain).ok()
            }
            _ => {
                self.cache.forget(&account);
                None
            }
        }
    }
}

/// A number that changes whenever the stored hash `phc` does (a new
/// password always has a new salt, so a new hash).
pub fn hash_stamp(phc: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    phc.hash(&mut hasher);
    hasher.finish()
}
