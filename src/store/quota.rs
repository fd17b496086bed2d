//! Storage quotas: a default from the config, per-user overrides in one
//! small record file (`DATA/quotas`, edited by `user quota`), and sizes
//! written the way people write them (`500M`, `2G`).

use super::disk::Disk;
use super::record::{self, RecordError};
use super::users::lock_users;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FILE: &str = "quotas";
const KIND: [u8; 4] = *b"PBQU";
const VERSION: u16 = 1;

/// Per-user limits in bytes, by `local@domain`; 0 means unlimited.
pub type Overrides = BTreeMap<String, u64>;

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

pub fn load(data_dir: &Path) -> Result<Overrides, RecordError> {
    Ok(
        record::load(crate::store::disk::system(), &path(data_dir), KIND, VERSION)?
            .unwrap_or_default(),
    )
}

/// Sets (`Some`) or clears (`None`) one user's override.
pub fn set(data_dir: &Path, account: &str, limit: Option<u64>) -> Result<(), String> {
    // The users lock serialises every admin change to the data directory.
    let _lock = lock_users(data_dir)?;
    let mut all = load(data_dir).map_err(|e| format!("cannot read quotas: {e}"))?;
    match limit {
        Some(bytes) => all.insert(account.to_string(), bytes),
        None => all.remove(account),
    };
    record::save(
        crate::store::disk::system(),
        &path(data_dir),
        KIND,
        VERSION,
        &all,
    )
    .map_err(|e| format!("cannot write quotas: {e}"))
}

/// Whether a delivery of `size` bytes onto `before` takes a mailbox of
/// `limit` bytes (not unlimited) past `percent` of it, which earns its
/// owner a warning.
pub fn warning_crossed(before: u64, size: u64, limit: u64, percent: u8) -> bool {
    // Exactly: `used * 100 >= limit * percent`, in 128 bits so neither
    // side truncates or overflows.
    let past = |used: u64| u128::from(used) * 100 >= u128::from(limit) * u128::from(percent);
    limit > 0 && !past(before) && past(before.saturating_add(size))
}

/// The overrides as the server sees them.
pub struct QuotaCache(record::RecordCache<Overrides>);

impl QuotaCache {
    pub fn open(disk: &Arc<dyn Disk>, data_dir: &Path) -> Self {
        QuotaCache(record::RecordCache::open(
            disk,
            &path(data_dir),
            KIND,
            VERSION,
        ))
    }

    /// One look at the file, to run on the blocking pool; see
    /// [`record::RecordCache::check`].
    pub fn check(&self) -> impl FnOnce() -> record::Checked<Overrides> + Send + 'static {
        self.0.check()
    }

    pub fn apply(&mut self, checked: record::Checked<Overrides>) {
        self.0.apply(checked)
    }

    /// Reads the overrides again if they changed, on the blocking pool.
    pub async fn refresh(cache: &RefCell<Self>) {
        let check = cache.borrow().0.check();
        let checked = smol::unblock(check).await;
        cache.borrow_mut().0.apply(checked);
    }

    /// The limit for `account` in bytes (0: unlimited), as last refreshed.
    pub fn limit(&self, account: &str, default: u64) -> u64 {
        self.0.current().get(account).copied().unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_mark_is_exact() {
        // 90 % of 150 bytes is 135.
        assert!(!warning_crossed(0, 134, 150, 90));
        assert!(warning_crossed(0, 135, 150, 90));
        assert!(warning_crossed(134, 1, 150, 90));
        assert!(!warning_crossed(135, 1, 150, 90), "warned twice");
        // 90 % of 1001 bytes is 900.9: 901 is past it, 900 is not.
        assert!(!warning_crossed(0, 900, 1001, 90));
        assert!(warning_crossed(0, 901, 1001, 90));
        assert!(warning_crossed(0, 100, 100, 100));
        assert!(!warning_crossed(0, 99, 100, 100));
        assert!(!warning_crossed(0, 1 << 40, 0, 90), "unlimited");
        assert!(warning_crossed(0, u64::MAX, u64::MAX, 100));
    }

    #[test]
    fn overrides_round_trip_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let disk: Arc<dyn Disk> = Arc::new(crate::store::disk::Fs);
        let cache = RefCell::new(QuotaCache::open(&disk, dir.path()));
        let limit = |cache: &RefCell<QuotaCache>| {
            smol::block_on(QuotaCache::refresh(cache));
            cache.borrow().limit("alice@localhost", 7)
        };
        assert_eq!(limit(&cache), 7);
        set(dir.path(), "alice@localhost", Some(100)).unwrap();
        assert_eq!(limit(&cache), 100);
        set(dir.path(), "alice@localhost", None).unwrap();
        assert_eq!(limit(&cache), 7);
    }
}
