//! The queue on flash: for each message, `ID.msg` (the bytes, linked
//! from the spool) and `ID.env` (a checksummed `postcard` envelope with
//! every recipient's state), both in `DATA/queue`. The message is linked
//! and its directory synced before the envelope is written, so an
//! envelope always has its message; a message without an envelope is a
//! crash before the 250 and is removed at start, as is the temporary
//! file of an envelope write cut short. A damaged envelope is
//! moved with its message into `DATA/queue/damaged`, where nothing
//! removes them: acknowledged bytes are never deleted for a bad record.

use crate::store::disk::{self, Disk, Reader};
use crate::store::durable::{self, create_dir_durable};
use crate::store::maildir::{self, made_order, Incoming};
use crate::store::record;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

pub const QUEUE_DIR: &str = "queue";
pub const DAMAGED_DIR: &str = "damaged";
pub const KIND: [u8; 4] = *b"PBQE";
/// Version 2 added [`Envelope::headers`]; version 1 envelopes still read.
pub const VERSION: u16 = 2;

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
    /// Header fields sent ahead of the stored message (its DKIM
    /// signatures, made before the 250), CRLF-terminated; usually empty.
    pub headers: String,
}

/// An envelope as version 1 wrote it: no `headers`.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct EnvelopeV1 {
    id: String,
    sender: String,
    arrived: u64,
    recipients: Vec<Recipient>,
    attempts: u32,
    next_try: u64,
    warned: bool,
}

impl From<EnvelopeV1> for Envelope {
    fn from(old: EnvelopeV1) -> Envelope {
        Envelope {
            id: old.id,
            sender: old.sender,
            arrived: old.arrived,
            recipients: old.recipients,
            attempts: old.attempts,
            next_try: old.next_try,
            warned: old.warned,
            headers: String::new(),
        }
    }
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
            headers: String::new(),
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

/// Where damaged envelopes and their messages are set aside.
pub fn damaged_dir(data_dir: &Path) -> PathBuf {
    queue_dir(data_dir).join(DAMAGED_DIR)
}

pub fn message_path(data_dir: &Path, id: &str) -> PathBuf {
    queue_dir(data_dir).join(format!("{id}.msg"))
}

fn envelope_path(data_dir: &Path, id: &str) -> PathBuf {
    queue_dir(data_dir).join(format!("{id}.env"))
}

/// Makes the spooled message durable in the queue, on the disk it is
/// spooled on. Blocking (fsync).
pub fn enqueue(data_dir: &Path, message: &Incoming, envelope: &Envelope) -> io::Result<()> {
    let disk = &**message.disk();
    let dir = queue_dir(data_dir);
    disk.sync(message.file())?;
    let msg = message_path(data_dir, &envelope.id);
    message.link_to(&msg)?;
    let written = disk
        .sync_dir(&dir)
        .and_then(|()| save(disk, data_dir, envelope));
    if written.is_err() {
        // The envelope may be in place though not durable (its directory
        // sync failed): take it back too, or the queue would hold an
        // envelope for a message it refused. The message goes only once
        // the envelope has: the next sync of the queue directory (by any
        // change) would make an envelope without its message durable.
        let envelope = envelope_path(data_dir, &envelope.id);
        match disk::unlink_surely(disk, &envelope) {
            Ok(()) => maildir::unlink_all(disk, &[msg]),
            Err(e) => log::error!(
                "queue: could not take back {} after a failed enqueue ({e}): it may be sent though refused",
                envelope.display()
            ),
        }
    }
    written
}

/// Rewrites the envelope after an attempt. Blocking (fsync).
pub fn save(disk: &dyn Disk, data_dir: &Path, envelope: &Envelope) -> io::Result<()> {
    record::save(
        disk,
        &envelope_path(data_dir, &envelope.id),
        KIND,
        VERSION,
        envelope,
    )
}

/// An envelope from its record bytes.
pub fn decode(bytes: &[u8]) -> Result<Envelope, record::RecordError> {
    match record::decode(KIND, VERSION, bytes) {
        Err(record::RecordError::UnsupportedVersion(1)) => {
            record::decode::<EnvelopeV1>(KIND, 1, bytes).map(Envelope::from)
        }
        decoded => decoded,
    }
}

/// Reads one envelope; `Ok(None)` when the message left the queue.
pub fn load(
    disk: &dyn Disk,
    data_dir: &Path,
    id: &str,
) -> Result<Option<Envelope>, record::RecordError> {
    match disk.read(&envelope_path(data_dir, id)) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn open_message(disk: &dyn Disk, data_dir: &Path, id: &str) -> io::Result<Reader> {
    disk.open_read(&message_path(data_dir, id))
}

/// Takes a message out of the queue: envelope first, so a crash halfway
/// leaves only an orphan message file for the start-up sweep.
pub fn remove(disk: &dyn Disk, data_dir: &Path, id: &str) -> io::Result<bool> {
    let envelope = envelope_path(data_dir, id);
    match disk.unlink(&envelope) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        // An envelope left behind would send its message again.
        Err(_) => disk::unlink_surely(disk, &envelope)?,
    }
    let _ = disk.unlink(&message_path(data_dir, id));
    disk.sync_dir(&queue_dir(data_dir))?;
    Ok(true)
}

/// Moves the queue of a dead cluster node (`from`, its node directory)
/// into this node's (`to`). The claim is one rename of the whole queue
/// directory, so of two nodes adopting at once only one gets it; each
/// message moves before its envelope (link, then unlink), so a crash
/// midway leaves every message in one queue or the other, and adopting
/// again finishes the move. Returns how many messages moved.
pub fn adopt(from: &Path, to: &Path, adopter: &str) -> io::Result<usize> {
    let claimed = from.join(format!("{QUEUE_DIR}.adopted-by-{adopter}"));
    let resumed = match std::fs::rename(queue_dir(from), &claimed) {
        Ok(()) => false,
        // Claimed by this node before, and perhaps not finished.
        Err(e) if e.kind() == io::ErrorKind::NotFound && claimed.is_dir() => true,
        Err(e) => return Err(e),
    };
    let disk = &**disk::system();
    let (target, mut moved) = (queue_dir(to), 0);
    create_dir_durable(disk, &target)?;
    let mut names: Vec<String> = std::fs::read_dir(&claimed)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".msg") || name.ends_with(".env"))
        .collect();
    // Left behind with only what is not mail (the dead node's envelope
    // rewrite cut short): adopted already.
    if resumed && names.is_empty() {
        return Err(io::ErrorKind::NotFound.into());
    }
    // Messages first: an envelope never arrives without its message.
    names.sort_by_key(|name| (name.ends_with(".env"), name.clone()));
    for name in &names {
        std::fs::hard_link(claimed.join(name), target.join(name))?;
        disk.sync_dir(&target)?;
        std::fs::remove_file(claimed.join(name))?;
        moved += usize::from(name.ends_with(".env"));
    }
    // Gone when empty, so adopting again says so; kept when it holds
    // more (damaged/), for a look by hand.
    let _ = std::fs::remove_dir(&claimed);
    disk.sync_dir(from)?;
    Ok(moved)
}

/// Every envelope in the queue, oldest first. With `sweep`, message files
/// without an envelope and temporary files of envelope writes cut short
/// are removed, and unreadable envelopes set aside with their messages in
/// `queue/damaged/` (only the server does this, under its lock).
pub fn scan(disk: &dyn Disk, data_dir: &Path, sweep: bool) -> io::Result<Vec<Envelope>> {
    let dir = queue_dir(data_dir);
    if sweep {
        create_dir_durable(disk, &dir)?;
    }
    let mut found = Vec::new();
    let mut messages = Vec::new();
    let mut damaged = Vec::new();
    let mut leftovers = Vec::new();
    let entries = match disk.list(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry.name.to_string_lossy();
        if durable::is_leftover(&name) {
            leftovers.push(dir.join(&entry.name));
        } else if let Some(id) = name.strip_suffix(".msg") {
            messages.push(id.to_string());
        } else if let Some(id) = name.strip_suffix(".env") {
            match load(disk, data_dir, id) {
                Ok(Some(envelope)) => found.push(envelope),
                Ok(None) => {}
                Err(e) => {
                    damaged.push(id.to_string());
                    if !sweep {
                        log::error!("queue: envelope {id} unreadable ({e})");
                    } else {
                        match set_aside(disk, data_dir, id) {
                            Ok(()) => log::error!(
                                "queue: envelope {id} damaged ({e}); it and its message set aside in {QUEUE_DIR}/{DAMAGED_DIR}/"
                            ),
                            Err(moving) => log::error!(
                                "queue: envelope {id} damaged ({e}); cannot set it aside: {moving}"
                            ),
                        }
                    }
                }
            }
        }
    }
    if sweep {
        // An envelope write cut short: the envelope itself is whole or absent.
        let mut changed = !leftovers.is_empty();
        for leftover in leftovers {
            let _ = disk.unlink(&leftover);
        }
        for id in messages {
            // A damaged envelope's message is kept, even where it could
            // not be set aside.
            if !found.iter().any(|e| e.id == id) && !damaged.contains(&id) {
                let _ = disk.unlink(&message_path(data_dir, &id));
                changed = true;
            }
        }
        if changed {
            disk.sync_dir(&dir)?;
        }
    }
    found.sort_by(|a, b| (a.arrived, made_order(&a.id)).cmp(&(b.arrived, made_order(&b.id))));
    Ok(found)
}

/// Moves a damaged envelope and its message into `queue/damaged/`:
/// message first, so a crash halfway never leaves a message without an
/// envelope in the queue (which the sweep would remove).
fn set_aside(disk: &dyn Disk, data_dir: &Path, id: &str) -> io::Result<()> {
    let aside = damaged_dir(data_dir);
    create_dir_durable(disk, &aside)?;
    for from in [message_path(data_dir, id), envelope_path(data_dir, id)] {
        let to = aside.join(from.file_name().unwrap_or_default());
        match disk.rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        disk.sync_dir(&aside)?;
        disk.sync_dir(&queue_dir(data_dir))?;
    }
    Ok(())
}

/// How many messages are set aside in `queue/damaged/`.
pub fn damaged(disk: &dyn Disk, data_dir: &Path) -> usize {
    let Ok(entries) = disk.list(&damaged_dir(data_dir)) else {
        return 0;
    };
    let mut ids: Vec<String> = entries
        .into_iter()
        .filter_map(|e| {
            let name = e.name.to_string_lossy().into_owned();
            let id = name
                .strip_suffix(".msg")
                .or_else(|| name.strip_suffix(".env"))?;
            Some(id.to_string())
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids.len()
}

/// The line `queue list` and the console's `status` show when messages
/// are set aside; `None` when none are.
pub fn damaged_report(disk: &dyn Disk, data_dir: &Path) -> Option<String> {
    match damaged(disk, data_dir) {
        0 => None,
        1 => Some(format!(
            "damaged: 1 message set aside in {QUEUE_DIR}/{DAMAGED_DIR}/"
        )),
        n => Some(format!(
            "damaged: {n} messages set aside in {QUEUE_DIR}/{DAMAGED_DIR}/"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::disk::Fs;
    use std::fs;
    use std::io::Read;
    use std::sync::Arc;

    /// A dead node's stray temporary file keeps its claimed queue on
    /// disk: adopting again still says there is nothing left.
    #[test]
    fn adopting_twice_moves_nothing_twice_despite_a_stray_file() {
        let (dead, alive) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let queue = queue_dir(dead.path());
        fs::create_dir_all(&queue).unwrap();
        for name in ["q1.msg", "q1.env", "q1.env.tmp.77.0"] {
            fs::write(queue.join(name), name).unwrap();
        }
        assert_eq!(adopt(dead.path(), alive.path(), "n1").unwrap(), 1);
        let again = adopt(dead.path(), alive.path(), "n1").unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::NotFound);
        assert!(queue_dir(alive.path()).join("q1.env").is_file());
    }

    /// Envelopes queued before signatures were kept still load, with none.
    #[test]
    fn a_version_1_envelope_still_reads() {
        let old = EnvelopeV1 {
            id: "q1".into(),
            sender: "a@b.test".into(),
            arrived: 5,
            recipients: Envelope::new("q1".into(), String::new(), vec!["c@d.test".into()], 5)
                .recipients,
            attempts: 2,
            next_try: 9,
            warned: true,
        };
        let bytes = record::encode(KIND, 1, &old);
        let envelope = decode(&bytes).unwrap();
        assert_eq!(envelope.sender, "a@b.test");
        assert_eq!((envelope.attempts, envelope.next_try), (2, 9));
        assert!(envelope.warned);
        assert_eq!(envelope.headers, "");
        let mut new = envelope.clone();
        new.headers = "DKIM-Signature: x\r\n".into();
        assert_eq!(decode(&record::encode(KIND, VERSION, &new)).unwrap(), new);
    }

    /// `queue list` shows, and the queue tries, the oldest first.
    #[test]
    fn entries_are_in_the_order_they_arrived() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        crate::store::maildir::clear_spool(&Fs, data).unwrap();
        create_dir_durable(&Fs, &queue_dir(data)).unwrap();
        // Made within one second: 99999 µs, then 100000 µs.
        let ids = ["1000.M99999P7Q0.box", "1000.M100000P7Q1.box"];
        for id in ids {
            let disk = Arc::new(Fs) as Arc<dyn Disk>;
            let mut m = Incoming::create(&disk, data, id.into()).unwrap();
            m.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
            let env = Envelope::new(id.into(), "a@b.test".into(), vec!["c@d.test".into()], 1000);
            enqueue(data, &m, &env).unwrap();
            m.discard();
        }
        let order: Vec<String> = scan(&Fs, data, true)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(order, ids);
    }

    #[test]
    fn enqueue_scan_update_remove() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        crate::store::maildir::clear_spool(&Fs, data).unwrap();
        create_dir_durable(&Fs, &queue_dir(data)).unwrap();
        let mut m = Incoming::create(&(Arc::new(Fs) as Arc<dyn Disk>), data, "q1".into()).unwrap();
        m.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let mut env = Envelope::new("q1".into(), "a@b.test".into(), vec!["c@d.test".into()], 100);
        enqueue(data, &m, &env).unwrap();
        m.discard();
        // An orphan message (crash before the envelope) and a damaged envelope.
        fs::write(message_path(data, "orphan"), b"x").unwrap();
        fs::write(envelope_path(data, "torn"), b"PBQE\x01").unwrap();
        let all = scan(&Fs, data, true).unwrap();
        assert_eq!(all, vec![env.clone()]);
        assert!(!message_path(data, "orphan").exists());
        assert!(damaged_dir(data).join("torn.env").exists());
        assert_eq!(damaged(&Fs, data), 1);
        let mut body = String::new();
        open_message(&Fs, data, "q1")
            .unwrap()
            .read_to_string(&mut body)
            .unwrap();
        assert!(body.ends_with("body\r\n"));

        env.recipients[0].state = RcptState::Delivered;
        save(&Fs, data, &env).unwrap();
        assert_eq!(load(&Fs, data, "q1").unwrap().unwrap().pending().count(), 0);
        assert!(remove(&Fs, data, "q1").unwrap());
        assert!(!remove(&Fs, data, "q1").unwrap());
        assert!(scan(&Fs, data, true).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_envelope_is_set_aside_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        create_dir_durable(&Fs, &queue_dir(data)).unwrap();
        fs::write(message_path(data, "torn"), b"acknowledged bytes").unwrap();
        fs::write(envelope_path(data, "torn"), b"PBQE\x01").unwrap();
        assert!(scan(&Fs, data, true).unwrap().is_empty());
        let damaged = queue_dir(data).join("damaged");
        assert_eq!(
            fs::read(damaged.join("torn.msg")).unwrap(),
            b"acknowledged bytes"
        );
        assert_eq!(fs::read(damaged.join("torn.env")).unwrap(), b"PBQE\x01");
        assert!(!message_path(data, "torn").exists());
        // A later scan leaves them alone.
        assert!(scan(&Fs, data, true).unwrap().is_empty());
        assert!(damaged.join("torn.msg").exists());
        assert_eq!(
            damaged_report(&Fs, data).unwrap(),
            "damaged: 1 message set aside in queue/damaged/"
        );
    }

    fn memory() -> (Arc<crate::store::memory::Memory>, Arc<dyn Disk>) {
        let memory = Arc::new(crate::store::memory::Memory::new());
        (memory.clone(), memory)
    }

    /// Enqueueing with the power cut after each number of changes in turn:
    /// after the restart's sweep, an acknowledged entry is there with its
    /// whole message; any other is there whole or not at all, and no
    /// message is left without its envelope.
    #[test]
    fn a_power_cut_anywhere_in_enqueueing_loses_nothing_acknowledged() {
        let data = Path::new("/data");
        let text = b"Subject: queued\r\n\r\nbody\r\n";
        for cut in 0.. {
            let (memory, disk) = memory();
            crate::store::maildir::clear_spool(&*disk, data).unwrap();
            create_dir_durable(&*disk, &queue_dir(data)).unwrap();
            let envelope =
                Envelope::new("q1".into(), "a@b.test".into(), vec!["c@d.test".into()], 7);
            memory.cut_power_after(cut);
            let outcome = (|| {
                let mut message = Incoming::create(&disk, data, "q1".into())?;
                message.write(text)?;
                let queued = enqueue(data, &message, &envelope);
                message.discard();
                queued
            })();
            let finished = !memory.power_was_cut();
            memory.crash();
            let found = scan(&*disk, data, true).unwrap();
            if outcome.is_ok() {
                assert_eq!(
                    found,
                    std::slice::from_ref(&envelope),
                    "power cut after {cut} changes"
                );
            }
            for entry in &found {
                let mut stored = Vec::new();
                open_message(&*disk, data, &entry.id)
                    .unwrap()
                    .read_to_end(&mut stored)
                    .unwrap();
                assert_eq!(
                    stored, text,
                    "power cut after {cut} changes: partial message"
                );
            }
            let files = disk.list(&queue_dir(data)).unwrap().len();
            assert_eq!(
                files,
                2 * found.len(),
                "power cut after {cut} changes: leftovers"
            );
            if finished {
                assert!(outcome.is_ok());
                break;
            }
        }
    }

    #[test]
    fn the_sweep_sets_damaged_entries_aside_and_removes_orphans_durably() {
        let data = Path::new("/data");
        let (memory, disk) = memory();
        create_dir_durable(&*disk, &queue_dir(data)).unwrap();
        let put = |path: PathBuf, bytes: &[u8]| {
            let mut file = disk.create_new(&path, 0o600).unwrap();
            disk.write(&mut file, bytes).unwrap();
            disk.sync(&file).unwrap();
        };
        put(message_path(data, "torn"), b"acknowledged bytes");
        put(envelope_path(data, "torn"), b"PBQE\x01");
        put(message_path(data, "orphan"), b"never acknowledged");
        disk.sync_dir(&queue_dir(data)).unwrap();
        assert!(scan(&*disk, data, true).unwrap().is_empty());
        // What the sweep did survives a power cut right after it.
        memory.crash();
        let aside = damaged_dir(data);
        assert_eq!(
            disk.read(&aside.join("torn.msg")).unwrap(),
            b"acknowledged bytes"
        );
        assert_eq!(disk.read(&aside.join("torn.env")).unwrap(), b"PBQE\x01");
        let left: Vec<_> = disk
            .list(&queue_dir(data))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            left,
            [DAMAGED_DIR],
            "orphan or damaged entry left in the queue"
        );
        assert_eq!(damaged(&*disk, data), 1);
    }

    /// Taking an entry out with the power cut after each number of changes
    /// in turn: once `remove` said so, the entry never comes back (it
    /// would be sent again); before, it is whole or gone, never an
    /// envelope without its message.
    #[test]
    fn a_power_cut_anywhere_in_removing_never_brings_an_entry_back_half() {
        let data = Path::new("/data");
        let text = b"Subject: sent\r\n\r\nbody\r\n";
        for cut in 0.. {
            let (memory, disk) = memory();
            crate::store::maildir::clear_spool(&*disk, data).unwrap();
            create_dir_durable(&*disk, &queue_dir(data)).unwrap();
            let envelope =
                Envelope::new("q1".into(), "a@b.test".into(), vec!["c@d.test".into()], 7);
            let mut message = Incoming::create(&disk, data, "q1".into()).unwrap();
            message.write(text).unwrap();
            enqueue(data, &message, &envelope).unwrap();
            message.discard();
            memory.cut_power_after(cut);
            let removed = remove(&*disk, data, "q1");
            let finished = !memory.power_was_cut();
            memory.crash();
            let found = scan(&*disk, data, true).unwrap();
            if removed.is_ok() {
                assert!(
                    found.is_empty(),
                    "power cut after {cut} changes: removed entry back"
                );
            }
            for entry in &found {
                let mut stored = Vec::new();
                open_message(&*disk, data, &entry.id)
                    .unwrap()
                    .read_to_end(&mut stored)
                    .unwrap();
                assert_eq!(stored, text, "power cut after {cut} changes");
            }
            let files = disk.list(&queue_dir(data)).unwrap().len();
            assert_eq!(
                files,
                2 * found.len(),
                "power cut after {cut} changes: leftovers"
            );
            if finished {
                assert!(removed.unwrap());
                break;
            }
        }
    }

    /// Setting a damaged entry aside with the power cut after each number
    /// of changes in turn, then sweeping again: its message always ends up
    /// in `queue/damaged/`, never deleted.
    #[test]
    fn a_power_cut_anywhere_in_setting_aside_never_loses_the_message() {
        let data = Path::new("/data");
        for cut in 0.. {
            let (memory, disk) = memory();
            create_dir_durable(&*disk, &queue_dir(data)).unwrap();
            for (path, bytes) in [
                (message_path(data, "torn"), &b"acknowledged bytes"[..]),
                (envelope_path(data, "torn"), b"PBQE\x01"),
            ] {
                let mut file = disk.create_new(&path, 0o600).unwrap();
                disk.write(&mut file, bytes).unwrap();
                disk.sync(&file).unwrap();
            }
            disk.sync_dir(&queue_dir(data)).unwrap();
            memory.cut_power_after(cut);
            let _ = scan(&*disk, data, true);
            let finished = !memory.power_was_cut();
            memory.crash();
            assert!(scan(&*disk, data, true).unwrap().is_empty());
            let kept = disk.read(&damaged_dir(data).join("torn.msg"));
            assert_eq!(
                kept.ok().as_deref(),
                Some(&b"acknowledged bytes"[..]),
                "power cut after {cut} changes"
            );
            assert_eq!(damaged(&*disk, data), 1);
            if finished {
                break;
            }
        }
    }

    /// Entries queued, updated and removed on an in-memory disk that fails
    /// one change in ten, each step followed by a power cut and the
    /// start-up sweep, through thousands of faults (one fresh disk per
    /// seed): what the queue said it holds is there with its whole
    /// message, what it said it removed stays removed, and no message is
    /// ever left without its envelope.
    #[test]
    fn the_queue_under_seeded_faults_keeps_its_word_through_power_cuts() {
        const SEEDS: u64 = 24;
        let injected: u64 = (5..5 + SEEDS).map(queue_through_power_cuts).sum();
        assert!(
            injected >= 1000,
            "{injected} faults injected, not at least 1000"
        );
    }

    /// 300 steps under the plan seeded with `seed`, checked as above; how
    /// many faults were injected.
    fn queue_through_power_cuts(seed: u64) -> u64 {
        use crate::store::faults::{Faulty, Plan};
        let data = Path::new("/data");
        let (memory, _) = memory();
        let faulty = Arc::new(Faulty::new(
            memory.clone(),
            Plan::parse(&format!("seed={seed},rate=0.1")).unwrap(),
        ));
        let disk: Arc<dyn Disk> = faulty.clone();
        crate::store::maildir::clear_spool(&*memory, data).unwrap();
        create_dir_durable(&*memory, &queue_dir(data)).unwrap();
        let text = |i: usize| format!("Subject: {i}\r\n\r\n{}\r\n", "q".repeat(i % 30));
        let mut held: Vec<Envelope> = Vec::new();
        for i in 0..300 {
            let id = format!("q{i}");
            let mut envelope = Envelope::new(id.clone(), String::new(), vec!["c@d.test".into()], 7);
            let queued = (|| {
                let mut message = Incoming::create(&disk, data, id.clone())?;
                message.write(text(i).as_bytes())?;
                let queued = enqueue(data, &message, &envelope);
                message.discard();
                queued
            })();
            if queued.is_ok() {
                held.push(envelope.clone());
            }
            // Every third entry is tried and saved; every other one leaves.
            if i % 3 == 0 && queued.is_ok() {
                envelope.attempts = 1;
                if save(&*disk, data, &envelope).is_ok() {
                    *held.last_mut().unwrap() = envelope.clone();
                }
            }
            let mut removed = None;
            if i % 2 == 1 {
                if let Some(first) = held.first().map(|e| e.id.clone()) {
                    if remove(&*disk, data, &first).is_ok() {
                        held.remove(0);
                        removed = Some(first);
                    }
                }
            }
            memory.crash();
            let found = scan(&*memory, data, true).unwrap();
            for envelope in &held {
                let there = found.iter().find(|e| e.id == envelope.id);
                assert!(
                    there.is_some(),
                    "seed {seed} step {i}: {} lost",
                    envelope.id
                );
            }
            if let Some(gone) = removed {
                assert!(
                    found.iter().all(|e| e.id != gone),
                    "seed {seed} step {i}: {gone} came back"
                );
            }
            for entry in &found {
                let mut stored = Vec::new();
                open_message(&*memory, data, &entry.id)
                    .unwrap_or_else(|e| {
                        panic!(
                            "seed {seed} step {i}: {} without its message: {e}",
                            entry.id
                        )
                    })
                    .read_to_end(&mut stored)
                    .unwrap();
                let n: usize = entry.id[1..].parse().unwrap();
                assert_eq!(
                    stored,
                    text(n).as_bytes(),
                    "seed {seed} step {i}: {} partial",
                    entry.id
                );
            }
            let files = memory.list(&queue_dir(data)).unwrap().len();
            let names = memory.list(&queue_dir(data)).unwrap();
            assert_eq!(
                files,
                2 * found.len() + usize::from(damaged(&*memory, data) > 0),
                "seed {seed} step {i}: {names:?}"
            );
            // What failed half-way is gone or whole; the queue now holds
            // what the sweep found.
            held = found;
        }
        faulty.injected()
    }
}
