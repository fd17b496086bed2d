//! A mailbox's listing kept on flash (`postbox-index` in the mailbox), so
//! a login to an unchanged mailbox reads one small file instead of
//! listing (and sorting) every message.
//!
//! The index is a cache, never the truth: it holds the listing as
//! [`maildir::scan_mailbox`] made it, with the modification times of
//! `new/` and `cur/` taken *before* that listing. Any change to either
//! directory afterwards (a delivery, a deletion, another program's
//! rename) moves its time, so an index whose recorded times differ from
//! the directories' is stale and the mailbox is listed again. A damaged,
//! foreign or missing index is listed again too.
//!
//! Timestamp granularity: a change within the same clock tick as the
//! recorded time would leave the directory's time unchanged. So an index
//! is only written (and trusted) when the recorded times are at least
//! [`SETTLED`] older than the moment the listing began: any later change
//! then gets a later time, on filesystems with 1-second times as well.
//!
//! Layout, streamed in and out (never whole in memory):
//! `magic[4] | version u16 LE | new/ time | cur/ time | count varint |
//! entries | crc32 u32 LE`, a time being `id varint | secs varint |
//! nanos varint`; each entry is coded against the name before it, which
//! it mostly shares a start (`new/17646`) and an end (`.host,S=4118,W=4118`)
//! with: `start varint | end varint | middle length varint | middle |
//! size varint`, names in listing order. The CRC-32 covers everything
//! before it.

use super::disk::{Disk, Kind};
use super::durable::replace_file_with;
use super::maildir::{self, StoredMessage};
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The index's file name, in the mailbox folder (beside `new/`, `cur/`).
pub const INDEX_FILE: &str = "postbox-index";

const MAGIC: [u8; 4] = *b"PBIX";
const VERSION: u16 = 2;

/// How much older than the listing the directories' times must be for
/// the index to be trusted: longer than the coarsest timestamp (1 s) plus
/// the kernel's coarse clock tick.
pub const SETTLED: Duration = Duration::from_secs(2);

/// The longest name an entry may have (`cur/` + a 255-byte file name):
/// a damaged length never makes a large allocation.
const MAX_NAME: usize = 4 + 255;

/// Buffered output of an index write.
const WRITE_CHUNK: usize = 64 * 1024;

/// A directory's version as the index records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirStamp {
    id: u64,
    secs: u64,
    nanos: u32,
}

impl DirStamp {
    fn of(disk: &dyn Disk, dir: &Path) -> io::Result<Option<DirStamp>> {
        match disk.metadata(dir) {
            Ok(m) if m.kind == Kind::Dir => {
                let since = m.modified.duration_since(UNIX_EPOCH).unwrap_or_default();
                Ok(Some(DirStamp {
                    id: m.id,
                    secs: since.as_secs(),
                    nanos: since.subsec_nanos(),
                }))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::new(self.secs, self.nanos)
    }
}

/// Both directories' versions; a missing one is "absent", itself a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamps {
    new: Option<DirStamp>,
    cur: Option<DirStamp>,
}

impl Stamps {
    fn of(disk: &dyn Disk, mailbox: &Path) -> io::Result<Stamps> {
        Ok(Stamps {
            new: DirStamp::of(disk, &mailbox.join("new"))?,
            cur: DirStamp::of(disk, &mailbox.join("cur"))?,
        })
    }

    /// Whether any change after `began` surely moves a directory's time.
    fn settled(&self, began: SystemTime) -> bool {
        [self.new, self.cur]
            .into_iter()
            .flatten()
            .all(|s| s.time() + SETTLED <= began)
    }
}

/// How a listing was made, for tests and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Read from an index that matched the directories.
    Index,
    /// Listed from the directories; the index was written anew.
    Rebuilt,
    /// Listed from the directories; too fresh to index (see [`SETTLED`]),
    /// or the index could not be written.
    Listed,
}

/// Lists a mailbox as [`maildir::scan_mailbox`] does, from its index when
/// that is current, else from the directories (then indexing them when
/// they have settled). `now` is the time the listing begins. Blocking.
pub fn list_mailbox(
    disk: &dyn Disk,
    mailbox: &Path,
    now: SystemTime,
) -> io::Result<(Vec<StoredMessage>, Source)> {
    let (messages, source, unindexed) = read_or_list(disk, mailbox, now)?;
    let Some(unindexed) = unindexed else {
        return Ok((messages, source));
    };
    let entries = messages.iter().map(|m| (&*m.name, m.size));
    match unindexed.write(disk, mailbox, messages.len(), entries) {
        Ok(()) => Ok((messages, Source::Rebuilt)),
        Err(e) => {
            log::warn!("cannot write the index of {}: {e}", mailbox.display());
            Ok((messages, Source::Listed))
        }
    }
}

/// A listing made from settled directories, to be indexed: by
/// [`Unindexed::write`] with the same messages, whenever suits (a POP3
/// session writes it as it ends, so no client waits for it). Any change
/// to the directories since makes what it writes stale, never wrong.
#[derive(Debug, Clone, Copy)]
pub struct Unindexed {
    stamps: Stamps,
}

impl Unindexed {
    /// Writes the index of the listing it came with: `count` messages,
    /// names and sizes, in listing order. Blocking.
    pub fn write<'a>(
        &self,
        disk: &dyn Disk,
        mailbox: &Path,
        count: usize,
        messages: impl Iterator<Item = (&'a str, u64)>,
    ) -> io::Result<()> {
        write_index(
            disk,
            &mailbox.join(INDEX_FILE),
            self.stamps,
            count,
            messages,
        )
    }
}

/// The listing, from the index when it is current; else from the
/// directories, with what it takes to index it when they have settled
/// (then the source is [`Source::Rebuilt`], once written).
pub fn read_or_list(
    disk: &dyn Disk,
    mailbox: &Path,
    now: SystemTime,
) -> io::Result<(Vec<StoredMessage>, Source, Option<Unindexed>)> {
    let stamps = Stamps::of(disk, mailbox)?;
    let path = mailbox.join(INDEX_FILE);
    if stamps.settled(now) {
        match read_index(disk, &path, stamps) {
            Ok(Some(messages)) => return Ok((messages, Source::Index, None)),
            Ok(None) => {}
            Err(e) => log::warn!("{}: {e}; listing the mailbox again", path.display()),
        }
    }
    let messages = maildir::scan_mailbox(disk, mailbox)?;
    let indexable = stamps.settled(now) && (stamps.new.is_some() || stamps.cur.is_some());
    if !indexable {
        return Ok((messages, Source::Listed, None));
    }
    Ok((messages, Source::Rebuilt, Some(Unindexed { stamps })))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_stamp(out: &mut Vec<u8>, stamp: Option<DirStamp>) {
    match stamp {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_varint(out, s.id);
            put_varint(out, s.secs);
            put_varint(out, s.nanos.into());
        }
    }
}

/// Writes the index of `messages`, listed after `stamps` were taken,
/// atomically and durably, a chunk at a time.
fn write_index<'a>(
    disk: &dyn Disk,
    path: &Path,
    stamps: Stamps,
    count: usize,
    messages: impl Iterator<Item = (&'a str, u64)>,
) -> io::Result<()> {
    replace_file_with(disk, path, |write| {
        let mut crc = crc32fast::Hasher::new();
        let mut out = Vec::with_capacity(WRITE_CHUNK + 2 * MAX_NAME);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        put_stamp(&mut out, stamps.new);
        put_stamp(&mut out, stamps.cur);
        put_varint(&mut out, count as u64);
        let mut previous: &[u8] = b"";
        let mut written = 0;
        for (name, size) in messages {
            written += 1;
            let name = name.as_bytes();
            let start = name
                .iter()
                .zip(previous)
                .take_while(|(a, b)| a == b)
                .count();
            let end = name[start..]
                .iter()
                .rev()
                .zip(previous[start..].iter().rev())
                .take_while(|(a, b)| a == b)
                .count();
            let middle = &name[start..name.len() - end];
            put_varint(&mut out, start as u64);
            put_varint(&mut out, end as u64);
            put_varint(&mut out, middle.len() as u64);
            out.extend_from_slice(middle);
            put_varint(&mut out, size);
            previous = name;
            if out.len() >= WRITE_CHUNK {
                crc.update(&out);
                write(&out)?;
                out.clear();
            }
        }
        if written != count {
            return Err(io::Error::other(
                "index: message count changed while written",
            ));
        }
        crc.update(&out);
        out.extend_from_slice(&crc.clone().finalize().to_le_bytes());
        write(&out)
    })
}

/// An index being read: bytes in, checksummed as they go.
struct Input<R> {
    reader: R,
    crc: crc32fast::Hasher,
}

fn damaged(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("damaged index: {what}"))
}

impl<R: Read> Input<R> {
    fn bytes(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.reader.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => damaged("truncated"),
            _ => e,
        })?;
        self.crc.update(buf);
        Ok(())
    }

    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8];
        self.bytes(&mut b)?;
        Ok(b[0])
    }

    fn varint(&mut self) -> io::Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(damaged("number too long"))
    }

    fn stamp(&mut self) -> io::Result<Option<DirStamp>> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(DirStamp {
                id: self.varint()?,
                secs: self.varint()?,
                nanos: u32::try_from(self.varint()?).map_err(|_| damaged("time"))?,
            })),
            _ => Err(damaged("directory time")),
        }
    }
}

/// The listing an index holds, if it was made of the directories as they
/// are (`stamps`); `None` when it is missing or stale, `Err` when damaged.
fn read_index(
    disk: &dyn Disk,
    path: &Path,
    stamps: Stamps,
) -> io::Result<Option<Vec<StoredMessage>>> {
    let reader = match disk.open_read(path) {
        Ok(reader) => reader,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut input = Input {
        reader: BufReader::with_capacity(WRITE_CHUNK, reader),
        crc: crc32fast::Hasher::new(),
    };
    let mut head = [0u8; 6];
    input.bytes(&mut head)?;
    if head[..4] != MAGIC || u16::from_le_bytes([head[4], head[5]]) != VERSION {
        return Err(damaged("not an index of this version"));
    }
    let recorded = Stamps {
        new: input.stamp()?,
        cur: input.stamp()?,
    };
    if recorded != stamps {
        return Ok(None);
    }
    let count = input.varint()?;
    // The count is only believed once the checksum is: no allocation on it.
    let mut messages = Vec::with_capacity(count.min(1 << 16) as usize);
    let mut name: Vec<u8> = Vec::with_capacity(MAX_NAME);
    let mut previous: Vec<u8> = Vec::with_capacity(MAX_NAME);
    for _ in 0..count {
        std::mem::swap(&mut name, &mut previous);
        let start = input.varint()? as usize;
        let end = input.varint()? as usize;
        let middle = input.varint()? as usize;
        if start.saturating_add(end) > previous.len()
            || start.saturating_add(end).saturating_add(middle) > MAX_NAME
        {
            return Err(damaged("name length"));
        }
        name.clear();
        name.extend_from_slice(&previous[..start]);
        name.resize(start + middle, 0);
        input.bytes(&mut name[start..])?;
        name.extend_from_slice(&previous[previous.len() - end..]);
        let size = input.varint()?;
        let text = std::str::from_utf8(&name).map_err(|_| damaged("name"))?;
        messages.push(StoredMessage {
            name: text.into(),
            size,
        });
    }
    let computed = input.crc.clone().finalize();
    let mut trailer = [0u8; 4];
    input
        .reader
        .read_exact(&mut trailer)
        .map_err(|_| damaged("truncated"))?;
    if u32::from_le_bytes(trailer) != computed {
        return Err(damaged("checksum"));
    }
    if input.reader.read(&mut [0u8])? != 0 {
        return Err(damaged("trailing bytes"));
    }
    Ok(Some(messages))
}

#[cfg(test)]
mod tests;
