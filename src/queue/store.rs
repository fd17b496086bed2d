//! The queue on flash: for each message, `ID.msg` (the bytes, linked
//! from the spool) and `ID.env` (a checksummed `postcard` envelope with
//! every recipient's state), both in `DATA/queue`. The message is linked
//! and its directory synced before the envelope is written, so an
//! envelope always has its message; a message without an envelope is a
//! crash before the 250 and is removed at start.

use crate::store::durable::{create_dir_durable, sync_dir};
use crate::store::maildir::Incoming;
use crate::store::record;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

pub const QUEUE_DIR: &str = "queue";
pub const KIND: [u8; 4] = *b"PBQE";
pub const VERSION: u16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RcptState {
    Pending,
    Delivered,
    /// Refused for good, or expired; reported to the sender.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub state: RcptState,
    /// The last answer or error for this recipient.
    pub last_error: Option<String>,
    /// The server that gave it.
    pub remote_mta: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    /// The reverse path; "" is the null sender of bounces.
    pub sender: String,
    /// Unix seconds when the message was accepted.
    pub arrived: u64,
    pub recipients: Vec<Recipient>,
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_try: u64,
    /// A delay notice has been sent.
    pub warned: bool,
}

impl Envelope {
    pub fn new(id: String, sender: String, recipients: Vec<String>, now: u64) -> Envelope {
        Envelope {
            id,
            sender,
            arrived: now,
            recipients: recipients
                .into_iter()
                .map(|address| Recipient {
                    address,
                    state: RcptState::Pending,
                    last_error: None,
                    remote_mta: None,
                })
                .collect(),
            attempts: 0,
            next_try: now,
            warned: false,
        }
    }

    pub fn pending(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients
            .iter()
            .filter(|r| r.state == RcptState::Pending)
    }

    /// The most recent error of a recipient still waiting.
    pub fn last_error(&self) -> Option<&str> {
        self.pending().find_map(|r| r.last_error.as_deref())
    }
}

pub fn queue_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(QUEUE_DIR)
}

fn message_path(data_dir: &Path, id: &str) -> PathBuf {
    queue_dir(data_dir).join(format!("{id}.msg"))
}

fn envelope_path(data_dir: &Path, id: &str) -> PathBuf {
    queue_dir(data_dir).join(format!("{id}.env"))
}

/// Makes the spooled message durable in the queue. Blocking (fsync).
pub fn enqueue(data_dir: &Path, message: &Incoming, envelope: &Envelope) -> io::Result<()> {
    let dir = queue_dir(data_dir);
    message.file().sync_all()?;
    let msg = message_path(data_dir, &envelope.id);
    message.link_to(&msg)?;
    let written = sync_dir(&dir).and_then(|()| save(data_dir, envelope));
    if written.is_err() {
        let _ = fs::remove_file(&msg);
    }
    written
}

/// Rewrites the envelope after an attempt. Blocking (fsync).
pub fn save(data_dir: &Path, envelope: &Envelope) -> io::Result<()> {
    record::save(
        &envelope_path(data_dir, &envelope.id),
        KIND,
        VERSION,
        envelope,
    )
}

/// An envelope from its record bytes.
pub fn decode(bytes: &[u8]) -> Result<Envelope, record::RecordError> {
    record::decode(KIND, VERSION, bytes)
}

/// Reads one envelope; `Ok(None)` when the message left the queue.
pub fn load(data_dir: &Path, id: &str) -> Result<Option<Envelope>, record::RecordError> {
    record::load(&envelope_path(data_dir, id), KIND, VERSION)
}

pub fn open_message(data_dir: &Path, id: &str) -> io::Result<File> {
    File::open(message_path(data_dir, id))
}

/// Takes a message out of the queue: envelope first, so a crash halfway
/// leaves only an orphan message file for the start-up sweep.
pub fn remove(data_dir: &Path, id: &str) -> io::Result<bool> {
    match fs::remove_file(envelope_path(data_dir, id)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let _ = fs::remove_file(message_path(data_dir, id));
    sync_dir(&queue_dir(data_dir))?;
    Ok(true)
}

/// Every envelope in the queue, oldest first. With `sweep`, message files
/// without an envelope are removed and unreadable envelopes set aside as
/// `ID.env.damaged` (only the server does this, under its lock).
pub fn scan(data_dir: &Path, sweep: bool) -> io::Result<Vec<Envelope>> {
    let dir = queue_dir(data_dir);
    if sweep {
        create_dir_durable(&dir)?;
    }
    let mut found = Vec::new();
    let mut messages = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".msg") {
            messages.push(id.to_string());
        } else if let Some(id) = name.strip_suffix(".env") {
            match load(data_dir, id) {
                Ok(Some(envelope)) => found.push(envelope),
                Ok(None) => {}
                Err(e) => {
                    log::error!("queue: envelope {id} unreadable ({e}); set aside");
                    if sweep {
                        let path = envelope_path(data_dir, id);
                        let _ = fs::rename(&path, path.with_extension("env.damaged"));
                    }
                }
            }
        }
    }
    if sweep {
        let mut changed = false;
        for id in messages {
            if !found.iter().any(|e| e.id == id) {
                let _ = fs::remove_file(message_path(data_dir, &id));
                changed = true;
            }
        }
        if changed {
            sync_dir(&dir)?;
        }
    }
    found.sort_by(|a, b| (a.arrived, &a.id).cmp(&(b.arrived, &b.id)));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn enqueue_scan_update_remove() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        crate::store::maildir::clear_spool(data).unwrap();
        create_dir_durable(&queue_dir(data)).unwrap();
        let mut m = Incoming::create(data, "q1".into()).unwrap();
        m.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let mut env = Envelope::new("q1".into(), "a@b.test".into(), vec!["c@d.test".into()], 100);
        enqueue(data, &m, &env).unwrap();
        m.discard();
        // An orphan message (crash before the envelope) and a damaged envelope.
        fs::write(message_path(data, "orphan"), b"x").unwrap();
        fs::write(envelope_path(data, "torn"), b"PBQE\x01").unwrap();
        let all = scan(data, true).unwrap();
        assert_eq!(all, vec![env.clone()]);
        assert!(!message_path(data, "orphan").exists());
        assert!(queue_dir(data).join("torn.env.damaged").exists());
        let mut body = String::new();
        open_message(data, "q1")
            .unwrap()
            .read_to_string(&mut body)
            .unwrap();
        assert!(body.ends_with("body\r\n"));

        env.recipients[0].state = RcptState::Delivered;
        save(data, &env).unwrap();
        assert_eq!(load(data, "q1").unwrap().unwrap().pending().count(), 0);
        assert!(remove(data, "q1").unwrap());
        assert!(!remove(data, "q1").unwrap());
        assert!(scan(data, true).unwrap().is_empty());
    }
}
