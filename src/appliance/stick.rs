//! A USB stick on the board, for backups: found among the block devices
//! (`/sys/block/sd*`: its partitions, or the whole disk when it has none,
//! as `mkfs.vfat` on a bare stick leaves it), never a disk the system has
//! mounted, and mounted (vfat or ext4, no devices, no programs) on a
//! mount point of our own until the [`Mounted`] is dropped.

use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};

/// Where a stick is mounted while a backup or restore uses it.
pub const MOUNT_POINT: &str = "/run/postbox-stick";
/// Which disks may be sticks: USB mass storage shows as SCSI disks.
const DISKS: &[&str] = &["sd"];
/// The filesystems a stick may have, tried in turn.
const FILESYSTEMS: &[(&str, &str)] = &[("vfat", "umask=077,shortname=mixed"), ("ext4", "")];

/// The device names (`sda1`, or `sdb` unpartitioned) that may be a stick,
/// from the block devices listed in `sys_block`; a disk any of whose
/// devices appears in `mounts` (`/proc/mounts`) is left alone.
pub fn candidates(sys_block: &Path, mounts: &str) -> Vec<String> {
    let mounted: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.strip_prefix("/dev/"))
        .collect();
    let Ok(entries) = fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut disks: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| DISKS.iter().any(|p| n.starts_with(p)))
        .collect();
    disks.sort();
    let mut found = Vec::new();
    for disk in disks {
        let mut parts: Vec<String> = fs::read_dir(sys_block.join(&disk))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("partition").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        parts.sort();
        let devices = match parts.is_empty() {
            true => vec![disk.clone()],
            false => parts,
        };
        if mounted
            .iter()
            .any(|m| *m == disk || devices.iter().any(|d| d == m))
        {
            continue;
        }
        found.extend(devices);
    }
    found
}

/// A stick mounted at [`MOUNT_POINT`], unmounted when dropped.
pub struct Mounted {
    pub device: String,
    pub path: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Ok(path) = CString::new(self.path.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid C string; no flags.
            if unsafe { libc::umount2(path.as_ptr(), 0) } != 0 {
                log::error!(
                    "cannot unmount {}: {}",
                    self.path.display(),
                    std::io::Error::last_os_error()
                );
                return;
            }
        }
        let _ = fs::remove_dir(&self.path);
    }
}

/// Notes (in RAM, for init's loop) whether a backup found no stick;
/// true when that is news, so it is said once, not every few minutes.
pub fn note_absent(absent: bool) -> bool {
    const NOTED: &str = "/run/postbox/stick-absent";
    match absent {
        true => {
            let new = !Path::new(NOTED).exists();
            let _ = fs::write(NOTED, "");
            new
        }
        false => {
            let _ = fs::remove_file(NOTED);
            false
        }
    }
}

/// Finds a stick and mounts it (needs root). `Ok(None)`: no stick.
pub fn mount() -> Result<Option<Mounted>, String> {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let devices = candidates(Path::new("/sys/block"), &mounts);
    let Some(first) = devices.first() else {
        return Ok(None);
    };
    let point = PathBuf::from(MOUNT_POINT);
    // Private: a stick may hold the whole box.
    match fs::create_dir(&point) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot make {MOUNT_POINT}: {e}")),
    }
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(&point, fs::Permissions::from_mode(0o700));
    let mut tried = Vec::new();
    for device in &devices {
        match mount_one(device, &point) {
            Ok(()) => {
                return Ok(Some(Mounted {
                    device: format!("/dev/{device}"),
                    path: point,
                }))
            }
            Err(e) => tried.push(e),
        }
    }
    let _ = fs::remove_dir(&point);
    Err(format!(
        "cannot mount the USB stick ({first}...; vfat or ext4): {}",
        tried.join("; ")
    ))
}

fn mount_one(device: &str, point: &Path) -> Result<(), String> {
    let source = CString::new(format!("/dev/{device}")).map_err(|e| e.to_string())?;
    let target = CString::new(point.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    for (kind, options) in FILESYSTEMS {
        let kind_c = CString::new(*kind).expect("no NUL");
        let options_c = CString::new(*options).expect("no NUL");
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_NOATIME;
        // SAFETY: valid C strings that outlive the call.
        let done = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                kind_c.as_ptr(),
                flags,
                options_c.as_ptr().cast(),
            )
        };
        if done == 0 {
            return Ok(());
        }
        errors.push(format!("{kind}: {}", std::io::Error::last_os_error()));
    }
    Err(format!("/dev/{device}: {}", errors.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/sys/block` with `disks`, each with its partitions.
    fn sys_block(disks: &[(&str, &[&str])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (disk, parts) in disks {
            fs::create_dir(dir.path().join(disk)).unwrap();
            fs::create_dir(dir.path().join(disk).join("queue")).unwrap();
            for part in *parts {
                let p = dir.path().join(disk).join(part);
                fs::create_dir(&p).unwrap();
                fs::write(p.join("partition"), "1\n").unwrap();
            }
        }
        dir
    }

    #[test]
    fn finds_usb_disks_not_in_use() {
        let sys = sys_block(&[
            ("mmcblk0", &["mmcblk0p1", "mmcblk0p2"]),
            ("sda", &["sda1", "sda2"]),
            ("sdb", &[]),
            ("sdc", &["sdc1"]),
            ("loop0", &[]),
        ]);
        let mounts = "/dev/mmcblk0p2 /data ext4 rw 0 0\n/dev/sdc1 /media ext4 rw 0 0\n";
        assert_eq!(candidates(sys.path(), mounts), ["sda1", "sda2", "sdb"]);
        assert!(candidates(&sys.path().join("none"), "").is_empty());
    }
}
