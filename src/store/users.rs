//! The users file: every account in one small `postcard` record, replaced
//! atomically on each change. Writers (CLI, console) hold an exclusive lock
//! on `users.lock` for their read-modify-write; the server only reads and
//! notices a new file by its inode and mtime, so changes apply at once.
//! Every write also replaces `users.last-good`, which the server serves
//! from (saying so loudly) when the users file is damaged: a bad write
//! never locks everybody out or stops mail.

use super::disk::Disk;
use super::record::{self, RecordError, Refreshes};
use crate::wire::address::{domain_is_valid, user_name_is_valid};
use serde::{Deserialize, Serialize};
use std::cell::{Ref, RefCell};
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const KIND: [u8; 4] = *b"PBUS";
pub const VERSION: u16 = 1;
pub const USERS_FILE: &str = "users";
pub const LAST_GOOD_FILE: &str = "users.last-good";
const LOCK_FILE: &str = "users.lock";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub local: String,
    pub domain: String,
    /// Argon2id PHC string; the clear password is never stored.
    pub password: String,
    /// Admins receive `postmaster@` mail unless the config names someone.
    pub admin: bool,
}

impl User {
    pub fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
pub struct UserList {
    pub users: Vec<User>,
}

impl UserList {
    /// Local parts match without regard to case, as users expect.
    pub fn find(&self, local: &str, domain: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.local.eq_ignore_ascii_case(local) && u.domain.eq_ignore_ascii_case(domain))
    }

    /// The first admin user of `domain`, else of any domain.
    pub fn first_admin(&self, domain: &str) -> Option<&User> {
        let admins = || self.users.iter().filter(|u| u.admin);
        admins()
            .find(|u| u.domain == domain)
            .or_else(|| admins().next())
    }
}

/// A user name as given on the command line: `local` or `local@domain`.
pub fn split_name<'a>(name: &'a str, default_domain: &'a str) -> Result<(String, String), String> {
    let (local, domain) = match name.rsplit_once('@') {
        Some((l, d)) => (l, d),
        None => (name, default_domain),
    };
    let local = local.to_ascii_lowercase();
    let domain = domain.to_ascii_lowercase();
    if !user_name_is_valid(&local) {
        return Err(format!(
            "invalid user name {local:?}: use lower-case letters, digits and . - _ + (at most 64)"
        ));
    }
    if !domain_is_valid(&domain) || domain.starts_with('[') {
        return Err(format!("invalid domain {domain:?}"));
    }
    Ok((local, domain))
}

pub fn users_path(data_dir: &Path) -> PathBuf {
    data_dir.join(USERS_FILE)
}

/// The users file's bytes as a list (what `load` does after reading).
pub fn decode(bytes: &[u8]) -> Result<UserList, RecordError> {
    record::decode(KIND, VERSION, bytes)
}

pub fn load(data_dir: &Path) -> Result<UserList, RecordError> {
    Ok(record::load(
        crate::store::disk::system(),
        &users_path(data_dir),
        KIND,
        VERSION,
    )?
    .unwrap_or_default())
}

/// The users, or what to tell the admin when the file cannot be read.
pub fn load_or_report(data_dir: &Path) -> Result<UserList, String> {
    load(data_dir).map_err(|e| damage_report(data_dir, &e))
}

/// The copy of the users file as it was after the last successful change.
pub fn load_last_good(data_dir: &Path) -> Result<UserList, RecordError> {
    last_good(&**crate::store::disk::system(), data_dir)
}

fn last_good(disk: &dyn Disk, data_dir: &Path) -> Result<UserList, RecordError> {
    Ok(record::load(disk, &data_dir.join(LAST_GOOD_FILE), KIND, VERSION)?.unwrap_or_default())
}

/// What to tell the admin when the users file cannot be read.
pub fn damage_report(data_dir: &Path, error: &RecordError) -> String {
    report_damage(&**crate::store::disk::system(), data_dir, error)
}

fn report_damage(disk: &dyn Disk, data_dir: &Path, error: &RecordError) -> String {
    match last_good(disk, data_dir) {
        Ok(list) => format!(
            "the users file is damaged ({error}); the server keeps the last good copy in service ({LAST_GOOD_FILE}, {} user{}): copy it over {USERS_FILE} to repair",
            list.users.len(),
            if list.users.len() == 1 { "" } else { "s" }
        ),
        Err(e) => format!(
            "the users file is damaged ({error}) and there is no last good copy ({e})"
        ),
    }
}

/// Read-modify-write of the users file under an exclusive lock, so two
/// admins (or the CLI and the console) never lose each other's change.
pub fn modify<R>(
    data_dir: &Path,
    change: impl FnOnce(&mut UserList) -> Result<R, String>,
) -> Result<R, String> {
    let _lock = lock_users(data_dir)?;
    let mut list = load(data_dir).map_err(|e| damage_report(data_dir, &e))?;
    let result = change(&mut list)?;
    record::save(
        crate::store::disk::system(),
        &users_path(data_dir),
        KIND,
        VERSION,
        &list,
    )
    .map_err(|e| format!("cannot write users file: {e}"))?;
    // Second, so it always holds a list that was once the users file.
    if let Err(e) = record::save(
        crate::store::disk::system(),
        &data_dir.join(LAST_GOOD_FILE),
        KIND,
        VERSION,
        &list,
    ) {
        log::warn!("cannot keep a last good copy of the users file: {e}");
    }
    Ok(result)
}

/// Takes the exclusive lock that serialises admin changes (held until
/// the file is dropped).
pub fn lock_users(data_dir: &Path) -> Result<std::fs::File, String> {
    super::durable::create_dir_durable(crate::store::disk::system(), data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        // Fixed, not the umask's: nobody else has business with it.
        .mode(0o600)
        .open(data_dir.join(LOCK_FILE))
        .map_err(|e| format!("cannot open users lock: {e}"))?;
    lock.lock()
        .map_err(|e| format!("cannot lock users file: {e}"))?;
    Ok(lock)
}

/// Identity of one version of the users file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileStamp {
    id: u64,
    modified: std::time::SystemTime,
    len: u64,
}

fn stamp(disk: &dyn Disk, path: &Path) -> Option<FileStamp> {
    let m = disk.metadata(path).ok()?;
    Some(FileStamp {
        id: m.id,
        modified: m.modified,
        len: m.len,
    })
}

/// The users file's version `stamp` and what it holds.
fn read_list(
    disk: &dyn Disk,
    path: &Path,
    stamp: Option<FileStamp>,
) -> Result<UserList, RecordError> {
    match stamp {
        Some(_) => decode(&disk.read(path)?),
        None => Ok(UserList::default()),
    }
}

/// A version of the users file other than the one held, as read on the
/// blocking pool.
pub struct Checked {
    stamp: Option<FileStamp>,
    list: Result<UserList, RecordError>,
}

struct Held {
    list: UserList,
    stamp: Option<FileStamp>,
    /// The file was damaged at start and had no last good copy: nobody's
    /// absence from `list` can be trusted until it is repaired.
    no_good_copy: bool,
    /// How many new lists were taken into service since start.
    reloads: u64,
    /// Looks at the file begun, and the number of the last one applied.
    looks: u64,
    applied: u64,
}

/// The server's view of the users file, shared by routing and logins:
/// re-read (on the blocking pool) only when it changed.
pub struct UserCache {
    disk: Arc<dyn Disk>,
    path: PathBuf,
    held: RefCell<Held>,
    refreshes: Refreshes,
}

impl UserCache {
    /// The users file, or when it is damaged its last good copy (logged
    /// as an error), so the server starts and mail keeps flowing. Read on
    /// the calling thread: this is start-up.
    pub fn open(disk: &Arc<dyn Disk>, data_dir: &Path) -> Self {
        let path = users_path(data_dir);
        let mut held = Held {
            list: UserList::default(),
            stamp: stamp(&**disk, &path),
            no_good_copy: false,
            reloads: 0,
            looks: 0,
            applied: 0,
        };
        match read_list(&**disk, &path, held.stamp) {
            Ok(list) => held.list = list,
            Err(e) => match last_good(&**disk, data_dir) {
                Ok(list) => {
                    log::error!("{}", report_damage(&**disk, data_dir, &e));
                    held.list = list;
                }
                Err(_) => {
                    log::error!(
                        "{}: mail for users is deferred until it is repaired",
                        report_damage(&**disk, data_dir, &e)
                    );
                    held.no_good_copy = true;
                }
            },
        }
        UserCache {
            disk: disk.clone(),
            path,
            held: RefCell::new(held),
            refreshes: Refreshes::default(),
        }
    }

    /// Whether the users file is damaged with no good copy in service, so
    /// an unknown name may be a user after all.
    pub fn without_good_copy(&self) -> bool {
        self.held.borrow().no_good_copy
    }

    /// Takes any change to the users file into service, looking on the
    /// blocking pool (concurrent callers share one look). A damaged new
    /// file is logged and the last good list kept, so a bad write never
    /// locks everybody out.
    pub async fn refresh(&self) {
        self.refreshes
            .run(|| async {
                let (look, check) = self.check();
                let checked = smol::unblock(check).await;
                self.apply(look, checked);
            })
            .await
    }

    /// One look at the file, to run on the blocking pool (reading it only
    /// when it is not the version held), with the number that orders it
    /// among other looks.
    pub fn check(&self) -> (u64, impl FnOnce() -> Option<Checked> + Send + 'static) {
        let (disk, path) = (self.disk.clone(), self.path.clone());
        let mut held = self.held.borrow_mut();
        held.looks += 1;
        let seen = held.stamp;
        let check = move || {
            let now = stamp(&*disk, &path);
            (now != seen).then(|| Checked {
                stamp: now,
                list: read_list(&*disk, &path, now),
            })
        };
        (held.looks, check)
    }

    /// Takes what look number `look` found into service, unless a later
    /// look's finding already is.
    pub fn apply(&self, look: u64, checked: Option<Checked>) {
        let mut held = self.held.borrow_mut();
        if look < held.applied {
            return;
        }
        held.applied = look;
        let Some(checked) = checked else {
            return;
        };
        held.stamp = checked.stamp;
        match checked.list {
            Ok(list) => {
                held.list = list;
                held.no_good_copy = false;
                held.reloads += 1;
                log::info!("users file reloaded: {} users", held.list.users.len());
            }
            Err(e) => log::error!(
                "the users file {} is damaged ({e}): keeping the last good copy in service",
                self.path.display()
            ),
        }
    }

    /// Which list is in service: a new number for each new list.
    pub fn reloads(&self) -> u64 {
        self.held.borrow().reloads
    }

    /// The users as last refreshed.
    pub fn current(&self) -> Ref<'_, UserList> {
        Ref::map(self.held.borrow(), |held| &held.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> Arc<dyn Disk> {
        Arc::new(crate::store::disk::Fs)
    }

    fn user(local: &str, domain: &str, admin: bool) -> User {
        User {
            local: local.into(),
            domain: domain.into(),
            password: "x".into(),
            admin,
        }
    }

    #[test]
    fn split_name_defaults_and_validates() {
        assert_eq!(
            split_name("Alice", "localhost").unwrap(),
            ("alice".into(), "localhost".into())
        );
        assert_eq!(
            split_name("bob@Example.org", "localhost").unwrap(),
            ("bob".into(), "example.org".into())
        );
        assert!(split_name("../etc", "localhost").is_err());
        assert!(split_name("a@b@", "localhost").is_err());
        assert!(split_name("a@[1.2.3.4]", "localhost").is_err());
    }

    #[test]
    fn modify_persists_and_cache_sees_change() {
        let dir = tempfile::tempdir().unwrap();
        let cache = UserCache::open(&fs(), dir.path());
        assert!(cache.current().users.is_empty());
        modify(dir.path(), |l| {
            l.users.push(user("alice", "localhost", true));
            Ok(())
        })
        .unwrap();
        smol::block_on(cache.refresh());
        assert!(cache.current().find("ALICE", "localhost").is_some());
        let err = modify(dir.path(), |_| Err::<(), _>("refused".to_string()));
        assert_eq!(err.unwrap_err(), "refused");
        assert_eq!(load(dir.path()).unwrap().users.len(), 1);
    }

    #[test]
    fn damaged_file_keeps_last_good_list() {
        let dir = tempfile::tempdir().unwrap();
        modify(dir.path(), |l| {
            l.users.push(user("alice", "localhost", true));
            Ok(())
        })
        .unwrap();
        let cache = UserCache::open(&fs(), dir.path());
        std::fs::write(users_path(dir.path()), b"PBUS garbage that is long enough").unwrap();
        smol::block_on(cache.refresh());
        assert!(cache.current().find("alice", "localhost").is_some());
        // At the next start too, from the copy kept beside the file.
        let restarted = UserCache::open(&fs(), dir.path());
        assert!(restarted.current().find("alice", "localhost").is_some());
        // Changes are refused until the file is repaired, saying how.
        let err = modify(dir.path(), |_| Ok(())).unwrap_err();
        assert!(err.contains("last good copy"), "{err}");
    }

    #[test]
    fn first_admin_prefers_same_domain() {
        let list = UserList {
            users: vec![
                user("a", "one.example", true),
                user("b", "two.example", false),
                user("c", "two.example", true),
            ],
        };
        assert_eq!(list.first_admin("two.example").unwrap().local, "c");
        assert_eq!(list.first_admin("three.example").unwrap().local, "a");
    }
}
