//! `postbox export USER [PATH|-]`: a member's mailbox as an mboxrd, in
//! arrival order, streamed a piece of a line at a time.

use super::mbox::{self, Writer};
use super::Pieces;
use crate::config::Config;
use crate::store::disk;
use crate::store::maildir;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Writes `user`'s mailbox to `out`; the number of messages and bytes.
pub fn export(config: &Config, user: &str, out: &mut dyn Write) -> Result<(u64, u64), String> {
    let (_, mailbox) = super::import::member_mailbox(config, user)?;
    let messages = match maildir::scan_mailbox(&disk::Fs, &mailbox) {
        Ok(messages) => messages,
        Err(e) => return Err(format!("cannot read {}: {e}", mailbox.display())),
    };
    let failed_write = |e: io::Error| format!("cannot write the mbox: {e}");
    let (mut count, mut bytes) = (0, 0);
    for message in messages {
        let path = mailbox.join(&*message.name);
        let written = match write_message(&path, out) {
            Ok(written) => written,
            // Taken by a POP3 session meanwhile: it is no longer there.
            Err(Failure::Read(e)) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(Failure::Read(e)) => return Err(format!("cannot read {}: {e}", path.display())),
            Err(Failure::Write(e)) => return Err(failed_write(e)),
        };
        count += 1;
        bytes += written;
    }
    out.flush().map_err(failed_write)?;
    Ok((count, bytes))
}

enum Failure {
    Read(io::Error),
    Write(io::Error),
}

/// One message: its `From ` line (envelope sender from `Return-Path:`,
/// the file's time as the arrival), its lines quoted, an empty line.
fn write_message(path: &Path, out: &mut dyn Write) -> Result<u64, Failure> {
    let mut file = File::open(path).map_err(Failure::Read)?;
    let arrived = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(Failure::Read)?
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The header section's start, where Return-Path: is (ours is first).
    let mut head = vec![0; crate::limits::MAILIO_PIECE];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Failure::Read(e)),
        }
    }
    head.truncate(filled);
    let sender = mbox::return_path(&head);
    let from_line = Writer::from_line(sender.as_deref(), arrived);
    out.write_all(from_line.as_bytes())
        .map_err(Failure::Write)?;
    let mut pieces = Pieces::new(BufReader::with_capacity(
        crate::limits::MAILIO_PIECE,
        io::Cursor::new(head).chain(file),
    ));
    let mut writer = Writer::default();
    let mut written = 0u64;
    let mut failed = None;
    let mut emit = |bytes: &[u8]| {
        if failed.is_none() {
            written += bytes.len() as u64;
            failed = out.write_all(bytes).err();
        }
    };
    while let Some((piece, starts_line)) = pieces.next_piece().map_err(Failure::Read)? {
        writer.piece(piece, starts_line, &mut emit);
    }
    writer.finish(&mut emit);
    match failed {
        Some(e) => Err(Failure::Write(e)),
        None => Ok(written),
    }
}
