//! Backups kept in a folder (on the appliance, a USB stick's): each named
//! after when it was made (`postbox-YYYYMMDD-HHMMSS.tar`, UTC, so names
//! sort by age and FAT takes them), written beside its name and renamed
//! once whole and fsynced, the oldest removed beyond the number to keep;
//! a restore takes a named one or the newest.

use super::backup::{self, Summary};
use crate::store::disk;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const PREFIX: &str = "postbox-";
const SUFFIX: &str = ".tar";
/// What an archive is written as until it is whole (not an archive name).
const PARTIAL: &str = ".partial";

/// `postbox-20261203-064501.tar` for `unix` seconds.
pub fn name_at(unix: u64) -> String {
    let (y, m, d) = crate::ops::clock::civil_from_days((unix / 86400) as i64);
    let s = unix % 86400;
    format!(
        "{PREFIX}{y:04}{m:02}{d:02}-{:02}{:02}{:02}{SUFFIX}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Whether `name` is an archive's name as [`name_at`] makes them.
fn is_archive(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix(PREFIX)
        .and_then(|n| n.strip_suffix(SUFFIX))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 15
        && b[8] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit())
}

/// The archives in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_archive(n))
        .collect();
    names.sort();
    Ok(names)
}

/// Backs the box up into `dir` as a new archive named for `now`, then
/// removes the oldest archives beyond `keep`. Returns the name and what
/// the archive holds.
pub fn back_up_into(
    dir: &Path,
    keep: usize,
    now: u64,
    source: (&Path, Option<&Path>, &str),
) -> Result<(String, Summary), String> {
    let (data_dir, config_file, hostname) = source;
    let name = name_at(now);
    let path = dir.join(&name);
    let partial = dir.join(format!("{name}{PARTIAL}"));
    let cannot = |e: io::Error| format!("cannot write {}: {e}", partial.display());
    let written = (|| {
        let mut file = fs::File::create(&partial).map_err(cannot)?;
        let mut out = io::BufWriter::with_capacity(crate::limits::MAILIO_PIECE, &mut file);
        let summary = backup::backup(data_dir, config_file, hostname, &mut out)?;
        out.flush().map_err(cannot)?;
        drop(out);
        file.sync_all().map_err(cannot)?;
        fs::rename(&partial, &path).map_err(cannot)?;
        disk::system().sync_dir(dir).map_err(cannot)?;
        Ok(summary)
    })();
    let summary = match written {
        Ok(summary) => summary,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(e);
        }
    };
    let names = list(dir)?;
    let extra = names.len().saturating_sub(keep.max(1));
    for old in &names[..extra] {
        fs::remove_file(dir.join(old)).map_err(|e| format!("cannot remove {old}: {e}"))?;
    }
    if extra > 0 {
        disk::system()
            .sync_dir(dir)
            .map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
    }
    Ok((name, summary))
}

/// The archive of `dir` to restore: `wanted` (a name [`list`] gives), or
/// else the newest.
pub fn choose(dir: &Path, wanted: Option<&str>) -> Result<PathBuf, String> {
    let names = list(dir)?;
    let chosen = match wanted {
        Some(name) => names
            .iter()
            .find(|n| *n == name)
            .ok_or_else(|| format!("no archive {name} in {}", dir.display()))?,
        None => names
            .last()
            .ok_or_else(|| format!("no backup (postbox-*.tar) in {}", dir.display()))?,
    };
    Ok(dir.join(chosen))
}

/// Whether the newest archive in `dir` is older than `every` at `now`
/// (or there is none): an unattended backup is due.
pub fn due(dir: &Path, every: u64, now: u64) -> Result<bool, String> {
    let names = list(dir)?;
    let Some(newest) = names.last() else {
        return Ok(true);
    };
    Ok(made_at(newest).is_none_or(|made| now.saturating_sub(made) >= every))
}

/// When an archive named by [`name_at`] was made.
fn made_at(name: &str) -> Option<u64> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let n = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<u64>().ok();
    let days =
        crate::ops::clock::days_from_civil(n(0..4)? as i64, n(4..6)? as u32, n(6..8)? as u32);
    Some(u64::try_from(days).ok()? * 86400 + n(9..11)? * 3600 + n(11..13)? * 60 + n(13..15)?)
}

/// Restores `archive` into `data_dir`, which must be absent or empty; the
/// restored files get `owner` (uid, gid: on the board the server's user,
/// while the console restores as root) when it is not us.
pub fn restore_into(
    archive: &Path,
    data_dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<Summary, String> {
    let mut file = io::BufReader::with_capacity(
        crate::limits::MAILIO_PIECE,
        fs::File::open(archive).map_err(|e| format!("cannot read {}: {e}", archive.display()))?,
    );
    let summary = backup::restore(&mut file, data_dir)?;
    if let Some((uid, gid)) = owner {
        // SAFETY: getuid cannot fail.
        if uid != unsafe { libc::geteuid() } {
            give_to(data_dir, uid, gid)
                .map_err(|e| format!("restored, but cannot hand it to uid {uid}: {e}"))?;
        }
    }
    Ok(summary)
}

/// `chown -R` without following links.
fn give_to(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            give_to(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
