//! Each `[[fetch]]` entry's record, `DATA/fetch/KEY` (KEY from the member
//! and the URL): when it last ran, how that went, how many messages it
//! fetched in all, and, for an entry that keeps the mail upstream, the
//! ids fetched (those still listed there). A checksummed record replaced
//! whole, written only after the messages it names are durable here.

use crate::config::FetchEntry;
use crate::store::disk;
use crate::store::record;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FETCH_DIR: &str = "fetch";
const KIND: [u8; 4] = *b"PBFE";
const VERSION: u16 = 1;

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct EntryState {
    /// When the last run ended (seconds since 1970), 0: never.
    pub last_run: u64,
    /// `ok` or why it failed.
    pub last_result: String,
    /// Messages fetched, in all.
    pub fetched: u64,
    /// Ids fetched and still upstream (kept mail only).
    pub seen: Vec<String>,
}

/// The record's path for an entry.
pub fn path(data_dir: &Path, entry: &FetchEntry) -> PathBuf {
    let identity = format!("{}\0{}", entry.user, entry.upstream);
    let digest = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
    let name: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    data_dir.join(FETCH_DIR).join(name)
}

/// The entry's record; a fresh one when there is none, or when it is
/// damaged (set aside, logged: the mailbox's names still tell what came).
/// Blocking.
pub fn load(data_dir: &Path, entry: &FetchEntry) -> EntryState {
    record::load_or_start_afresh(&**disk::system(), &path(data_dir, entry), KIND, VERSION)
        .unwrap_or_default()
}

/// Replaces the entry's record, durably. Blocking.
pub fn save(data_dir: &Path, entry: &FetchEntry, state: &EntryState) -> std::io::Result<()> {
    let disk = disk::system();
    crate::store::durable::create_dir_durable(&**disk, &data_dir.join(FETCH_DIR))?;
    record::save(&**disk, &path(data_dir, entry), KIND, VERSION, state)
}

/// [`save`] on the blocking pool.
pub async fn save_off_thread(
    data_dir: &Path,
    entry: &FetchEntry,
    state: &EntryState,
) -> std::io::Result<()> {
    let (data_dir, entry, state) = (data_dir.to_path_buf(), entry.clone(), state.clone());
    smol::unblock(move || save(&data_dir, &entry, &state)).await
}

/// `postbox fetch list`: each entry with its last run.
pub fn list(config: &crate::config::Config) -> Vec<String> {
    config
        .fetch
        .iter()
        .map(|entry| {
            // Read only: a damaged record is the server's to set aside.
            let state: EntryState = record::load(
                &**disk::system(),
                &path(&config.data_dir, entry),
                KIND,
                VERSION,
            )
            .ok()
            .flatten()
            .unwrap_or_default();
            let when = match state.last_run {
                0 => "never run".to_string(),
                secs => crate::ops::clock::rfc5322_date(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                ),
            };
            let result = match state.last_result.as_str() {
                "" => "-",
                r => r,
            };
            format!(
                "{} {} last run: {when}; result: {result}; fetched: {}",
                entry.user, entry.upstream, state.fetched
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_a_round_trip_and_damage_starts_afresh() {
        let data = tempfile::tempdir().unwrap();
        let entry = crate::config::Config::from_toml(
            "[[fetch]]\nuser = \"ann\"\nurl = \"pop3s://ann@pop.example\"\npassword = \"pw\"\n",
        )
        .unwrap()
        .fetch[0]
            .clone();
        assert_eq!(load(data.path(), &entry), EntryState::default());
        let state = EntryState {
            last_run: 5,
            last_result: "ok".into(),
            fetched: 2,
            seen: vec!["a".into(), "b".into()],
        };
        save(data.path(), &entry, &state).unwrap();
        assert_eq!(load(data.path(), &entry), state);
        std::fs::write(path(data.path(), &entry), b"PBFE torn").unwrap();
        assert_eq!(load(data.path(), &entry), EntryState::default());
    }
}
