//! Per-member forwarding: one small record file (`DATA/forwards`) mapping
//! an account (`local@domain`) to the addresses its mail goes on to, and
//! whether the member also keeps a copy.

use crate::store::disk;
use crate::store::record::{self, RecordError};
use crate::store::users::{lock_users, split_name};
use crate::wire::address::Address;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FILE: &str = "forwards";
const KIND: [u8; 4] = *b"PBFW";
const VERSION: u16 = 1;

/// Enough for "my phone and my work address"; a list belongs in aliases.
pub const MAX_FORWARD_TARGETS: usize = 16;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// Full addresses (`local@domain`), local or elsewhere.
    pub to: Vec<String>,
    /// Also deliver to the member's own mailbox.
    pub keep: bool,
}

/// Every member's forwarding, by account.
pub type Forwards = BTreeMap<String, Forward>;

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

pub fn load(data_dir: &Path) -> Result<Forwards, RecordError> {
    Ok(record::load(disk::system(), &path(data_dir), KIND, VERSION)?.unwrap_or_default())
}

/// Sets (`Some`) or clears (`None`) the forwarding of `account`
/// (`local@domain`). Targets are checked and normalised first (domain in
/// lower case, duplicates dropped), so a bad address never reaches the file.
/// Returns the forwarding it replaced.
pub fn set(
    data_dir: &Path,
    account: &str,
    forward: Option<Forward>,
) -> Result<Option<Forward>, String> {
    let account = normalise_account(account)?;
    let forward = forward.map(|f| validate(&account, f)).transpose()?;
    // The users lock serialises every admin change to the data directory.
    let _lock = lock_users(data_dir)?;
    let mut all = load(data_dir).map_err(|e| format!("cannot read forwards: {e}"))?;
    let previous = match forward {
        Some(f) => all.insert(account, f),
        None => match all.remove(&account) {
            Some(old) => Some(old),
            // Nothing to stop: the file stays as it is.
            None => return Ok(None),
        },
    };
    record::save(disk::system(), &path(data_dir), KIND, VERSION, &all)
        .map_err(|e| format!("cannot write forwards: {e}"))?;
    Ok(previous)
}

fn normalise_account(account: &str) -> Result<String, String> {
    if !account.contains('@') {
        return Err(format!("account {account:?} must be local@domain"));
    }
    let (local, domain) = split_name(account, "")?;
    Ok(format!("{local}@{domain}"))
}

/// Checks a forward for `account` and returns it normalised.
pub fn validate(account: &str, forward: Forward) -> Result<Forward, String> {
    let mut to: Vec<String> = Vec::with_capacity(forward.to.len());
    for target in &forward.to {
        let target = target.trim();
        let inner = target
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(target);
        if !inner.contains('@') {
            return Err(format!(
                "forward address {target:?} needs a domain (local@domain)"
            ));
        }
        let address =
            Address::parse_path(inner).map_err(|e| format!("forward address {target:?}: {e}"))?;
        if address.as_str().eq_ignore_ascii_case(account) {
            return Err(format!(
                "{account} cannot forward to itself; keep a copy instead"
            ));
        }
        if !to.iter().any(|t| t.eq_ignore_ascii_case(address.as_str())) {
            to.push(address.to_string());
        }
    }
    if to.is_empty() {
        return Err("a forward needs at least one address".into());
    }
    if to.len() > MAX_FORWARD_TARGETS {
        return Err(format!(
            "at most {MAX_FORWARD_TARGETS} forward addresses (use an alias for a list)"
        ));
    }
    Ok(Forward {
        to,
        keep: forward.keep,
    })
}

/// The forwards as the server sees them.
pub struct ForwardCache(record::RecordCache<Forwards>);

impl ForwardCache {
    pub fn open(disk: &std::sync::Arc<dyn disk::Disk>, data_dir: &Path) -> Self {
        ForwardCache(record::RecordCache::open(
            disk,
            &path(data_dir),
            KIND,
            VERSION,
        ))
    }

    /// One look at the file, to run on the blocking pool; see
    /// [`record::RecordCache::check`].
    pub fn check(&self) -> impl FnOnce() -> record::Checked<Forwards> + Send + 'static {
        self.0.check()
    }

    pub fn apply(&mut self, checked: record::Checked<Forwards>) {
        self.0.apply(checked)
    }

    /// Reads the forwards again if they changed, on the blocking pool.
    pub async fn refresh(cache: &std::cell::RefCell<Self>) {
        let check = cache.borrow().0.check();
        let checked = smol::unblock(check).await;
        cache.borrow_mut().0.apply(checked);
    }

    /// The forwards as last refreshed.
    pub fn current(&self) -> &Forwards {
        self.0.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(to: &[&str], keep: bool) -> Forward {
        Forward {
            to: to.iter().map(|s| s.to_string()).collect(),
            keep,
        }
    }

    #[test]
    fn set_load_and_clear() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        set(
            dir.path(),
            "Alice@LocalHost",
            Some(forward(&["<alice@Phone.Example>", "bob@localhost"], true)),
        )
        .unwrap();
        let all = load(dir.path()).unwrap();
        assert_eq!(
            all.get("alice@localhost"),
            Some(&forward(&["alice@phone.example", "bob@localhost"], true))
        );
        set(dir.path(), "alice@localhost", None).unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_targets_and_accounts() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            forward(&[], false),
            forward(&["bob"], false),
            forward(&["a b@example.org"], false),
            forward(&["bob@-bad-"], false),
            forward(&["ALICE@localhost"], true),
        ] {
            assert!(
                set(dir.path(), "alice@localhost", Some(bad.clone())).is_err(),
                "{bad:?}"
            );
        }
        let many: Vec<String> = (0..=MAX_FORWARD_TARGETS)
            .map(|i| format!("u{i}@example.org"))
            .collect();
        let too_many = Forward {
            to: many,
            keep: false,
        };
        assert!(set(dir.path(), "alice@localhost", Some(too_many)).is_err());
        let ok = forward(&["x@example.org"], false);
        assert!(set(dir.path(), "alice", Some(ok.clone())).is_err());
        assert!(set(dir.path(), "../x@localhost", Some(ok)).is_err());
        assert!(load(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn duplicates_are_dropped() {
        let f = validate(
            "alice@localhost",
            forward(&["x@Example.org", "x@example.ORG", "y@example.org"], false),
        )
        .unwrap();
        assert_eq!(f.to, ["x@example.org", "y@example.org"]);
    }

    #[test]
    fn cache_sees_changes() {
        let dir = tempfile::tempdir().unwrap();
        let disk: std::sync::Arc<dyn disk::Disk> = std::sync::Arc::new(disk::Fs);
        let cache = std::cell::RefCell::new(ForwardCache::open(&disk, dir.path()));
        smol::block_on(ForwardCache::refresh(&cache));
        assert!(cache.borrow().current().is_empty());
        set(
            dir.path(),
            "alice@localhost",
            Some(forward(&["x@example.org"], false)),
        )
        .unwrap();
        smol::block_on(ForwardCache::refresh(&cache));
        assert!(cache.borrow().current().contains_key("alice@localhost"));
    }
}
