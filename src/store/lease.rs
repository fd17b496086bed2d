//! A POP3 session's hold on a mailbox that every cluster node honours: a
//! file in the mailbox naming the holder, made with link(2) (which fails
//! when the file exists, on NFS too), kept fresh by touching it. A node
//! that dies stops touching; once the file is older than the lease,
//! another node may break it (a rename only one breaker wins) and take it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const LEASE_FILE: &str = "pop3.lease";

fn lease_path(mailbox: &Path) -> PathBuf {
    mailbox.join(LEASE_FILE)
}

/// Who holds the lease, if anybody does.
fn holder_of(mailbox: &Path) -> io::Result<String> {
    fs::read_to_string(lease_path(mailbox))
}

/// Takes the lease for `holder` (unique per session across nodes);
/// `false` while another holds a lease younger than `lease`.
pub fn take(mailbox: &Path, holder: &str, lease: Duration) -> io::Result<bool> {
    let spare = mailbox.join("tmp").join(format!("{LEASE_FILE}.{holder}"));
    fs::write(&spare, holder)?;
    let result = link_or_break(&spare, mailbox, lease);
    let _ = fs::remove_file(&spare);
    result
}

fn link_or_break(spare: &Path, mailbox: &Path, lease: Duration) -> io::Result<bool> {
    let path = lease_path(mailbox);
    for _ in 0..2 {
        match fs::hard_link(spare, &path) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let touched = match fs::metadata(&path).and_then(|m| m.modified()) {
            Ok(touched) => touched,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let age = SystemTime::now()
            .duration_since(touched)
            .unwrap_or_default();
        if age <= lease {
            return Ok(false);
        }
        // Expired: move it aside; of several breakers only one succeeds,
        // and it alone links again at once.
        let aside = spare.with_extension("expired");
        match fs::rename(&path, &aside) {
            Ok(()) => {
                let holder = fs::read_to_string(&aside).unwrap_or_default();
                log::warn!("POP3 lock of {holder} on {} expired", mailbox.display());
                let _ = fs::remove_file(&aside);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Keeps `holder`'s lease fresh; `false` when it is no longer theirs.
pub fn renew(mailbox: &Path, holder: &str) -> io::Result<bool> {
    if holder_of(mailbox)? != holder {
        return Ok(false);
    }
    let file = fs::File::options().append(true).open(lease_path(mailbox))?;
    file.set_modified(SystemTime::now())?;
    Ok(true)
}

/// Gives the lease up, if it is still `holder`'s.
pub fn release(mailbox: &Path, holder: &str) -> io::Result<()> {
    match holder_of(mailbox) {
        Ok(current) if current == holder => fs::remove_file(lease_path(mailbox)),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("tmp")).unwrap();
        dir
    }

    #[test]
    fn one_holder_at_a_time_until_release() {
        let dir = mailbox();
        let lease = Duration::from_secs(30);
        assert!(take(dir.path(), "n1-1", lease).unwrap());
        assert!(!take(dir.path(), "n2-1", lease).unwrap());
        assert!(renew(dir.path(), "n1-1").unwrap());
        assert!(!renew(dir.path(), "n2-1").unwrap());
        release(dir.path(), "n2-1").unwrap();
        assert!(
            !take(dir.path(), "n2-1", lease).unwrap(),
            "not n2's to release"
        );
        release(dir.path(), "n1-1").unwrap();
        assert!(take(dir.path(), "n2-1", lease).unwrap());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn an_unrenewed_lease_expires() {
        let dir = mailbox();
        assert!(take(dir.path(), "n1-1", Duration::from_secs(30)).unwrap());
        let old = SystemTime::now() - Duration::from_secs(60);
        let file = fs::File::options()
            .append(true)
            .open(lease_path(dir.path()));
        file.unwrap().set_modified(old).unwrap();
        assert!(!take(dir.path(), "n2-1", Duration::from_secs(90)).unwrap());
        assert!(take(dir.path(), "n2-1", Duration::from_secs(30)).unwrap());
        assert!(!renew(dir.path(), "n1-1").unwrap(), "n1 lost it");
        assert_eq!(holder_of(dir.path()).unwrap(), "n2-1");
    }
}
