//! What a running server leaves in its data directory for the console and
//! the command line: the lock that proves it runs, and its status (PID,
//! listeners, domains) for `status` and for signals (`queue flush`, `stats`, `tls renew`).

use crate::store::disk;
use crate::store::record;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const LOCK_FILE: &str = "serve.lock";
pub const STATUS_FILE: &str = "serve.status";
const STATUS_KIND: [u8; 4] = *b"PBST";
const STATUS_VERSION: u16 = 3;

/// What a running server tells the console (`status`).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ServerStatus {
    pub pid: u32,
    pub started_unix: u64,
    /// `service address` for every listener.
    pub listeners: Vec<(String, String)>,
    /// The domains it serves (the config's and `--domain`'s), so user
    /// commands accept them too.
    pub domains: Vec<String>,
}

/// The running server's status, if one is running on `data_dir`. The
/// serve lock decides, not the PID in the status file: after a crash that
/// number may belong to any other process.
pub fn running_status(data_dir: &Path) -> Option<ServerStatus> {
    if !serve_lock_held(data_dir) {
        return None;
    }
    record::load(
        disk::system(),
        &data_dir.join(STATUS_FILE),
        STATUS_KIND,
        STATUS_VERSION,
    )
    .ok()?
}

/// Records what `status` shows about this server.
pub fn save_status(data_dir: &Path, status: &ServerStatus) -> std::io::Result<()> {
    record::save(
        disk::system(),
        &data_dir.join(STATUS_FILE),
        STATUS_KIND,
        STATUS_VERSION,
        status,
    )
}

/// Whether a server holds the data directory's lock (taking it, briefly,
/// proves none does).
pub fn serve_lock_held(data_dir: &Path) -> bool {
    // Also asked as root before the ports are bound: never through a link,
    // never waiting on a FIFO put there instead.
    let lock = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(data_dir.join(LOCK_FILE));
    match lock {
        Ok(lock) => lock.try_lock().is_err(),
        Err(_) => false,
    }
}

/// Asks the server running on `data_dir`, if any, to look at its queue
/// again and try everything now (SIGUSR1). `Ok(false)`: none is running.
pub fn nudge_queue(data_dir: &Path) -> Result<bool, String> {
    signal_server(data_dir, libc::SIGUSR1)
}

/// Asks the server running on `data_dir`, if any, to write its traffic
/// counters now (SIGUSR2), for a reader who wants live figures.
/// `Ok(false)`: none is running.
pub fn request_stats(data_dir: &Path) -> Result<bool, String> {
    signal_server(data_dir, libc::SIGUSR2)
}

/// Asks the server running on `data_dir`, if any, to renew its ACME
/// certificate now (SIGHUP). `Ok(false)`: none is running.
pub fn request_renewal(data_dir: &Path) -> Result<bool, String> {
    signal_server(data_dir, libc::SIGHUP)
}

fn signal_server(data_dir: &Path, signal: libc::c_int) -> Result<bool, String> {
    if !serve_lock_held(data_dir) {
        return Ok(false);
    }
    let status = running_status(data_dir).ok_or("the running server left no status file")?;
    // SAFETY: kill only sends a signal to the process the lock proved alive.
    if unsafe { libc::kill(status.pid as libc::pid_t, signal) } != 0 {
        return Err(format!(
            "cannot signal the server (pid {}): {}",
            status.pid,
            std::io::Error::last_os_error()
        ));
    }
    Ok(true)
}

/// Holds the data directory for this process; released on exit.
pub fn lock_data_dir(data_dir: &Path) -> Result<File, String> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(data_dir.join(LOCK_FILE))
        .map_err(|e| format!("cannot open {}: {e}", LOCK_FILE))?;
    file.try_lock().map_err(|_| already_serving(data_dir))?;
    Ok(file)
}

pub fn already_serving(data_dir: &Path) -> String {
    format!(
        "another postbox serve is already using {}",
        data_dir.display()
    )
}
