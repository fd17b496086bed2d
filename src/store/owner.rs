//! The data directory belongs to the user the server runs as. A part
//! owned by anyone else is refused at start: a root-owned file cannot be
//! written by the service user, and a part the service user does not own
//! (a link it planted to root's files, a hard link to one) is how it would
//! reach what is not its own.

use super::maildir::MAIL_DIR;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Levels below the data directory that are checked: its entries and
/// what lies in its top-level directories (records, the queue, the
/// certificate) ...
const DEPTH: usize = 2;
/// ... and under `mail/`, down to each mailbox's own entries (`tmp/`,
/// `new/`, `cur/`, its address book), not the messages.
const MAIL_DEPTH: usize = 4;

/// Checks that `data_dir` and its parts (links followed: what they lead
/// to is what the server would use) are owned by `uid`. The error names
/// the first other-owned part, its owner, and the fix.
pub fn check(data_dir: &Path, uid: u32) -> Result<(), String> {
    let mut others = Vec::new();
    walk(data_dir, 0, DEPTH, uid, &mut others)?;
    let Some((path, owner)) = others.first() else {
        return Ok(());
    };
    let user = crate::appliance::system::user_name(uid);
    let more = match others.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more parts)"),
    };
    Err(format!(
        "{} is owned by {}, not {user}{more}: the data directory and what lies in it must be \
         {user}'s (chown -R {user}: {}, and run admin commands as {user})",
        path.display(),
        crate::appliance::system::user_name(*owner),
        data_dir.display()
    ))
}

fn walk(
    path: &Path,
    depth: usize,
    limit: usize,
    uid: u32,
    others: &mut Vec<(PathBuf, u32)>,
) -> Result<(), String> {
    let cannot = |e: io::Error| format!("cannot check {}: {e}", path.display());
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        // A dangling link leads nowhere the server could be led.
        Err(e) if e.kind() == io::ErrorKind::NotFound && depth > 0 => return Ok(()),
        Err(e) => return Err(cannot(e)),
    };
    if meta.uid() != uid {
        others.push((path.to_path_buf(), meta.uid()));
        return Ok(());
    }
    if !meta.is_dir() || depth == limit {
        return Ok(());
    }
    let mut entries = fs::read_dir(path)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.path()))
                .collect::<io::Result<Vec<_>>>()
        })
        .map_err(cannot)?;
    entries.sort();
    for entry in entries {
        let limit = match entry.file_name() {
            Some(name) if depth == 0 && name == MAIL_DIR => MAIL_DEPTH,
            _ => limit,
        };
        walk(&entry, depth + 1, limit, uid, others)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid() -> u32 {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn own_data_dir_passes_and_another_owner_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = dir.path().join("mail/localhost/alice");
        crate::store::maildir::create_mailbox(&crate::store::disk::Fs, &mailbox).unwrap();
        fs::write(mailbox.join("new/1.M1P1Q1.h,S=1,W=1"), b"x").unwrap();
        fs::write(dir.path().join("users"), b"").unwrap();
        check(dir.path(), uid()).unwrap();

        let someone_else = uid() + 1;
        let error = check(dir.path(), someone_else).unwrap_err();
        assert!(
            error.starts_with(&format!("{} is owned by ", dir.path().display())),
            "{error}"
        );
    }
}
