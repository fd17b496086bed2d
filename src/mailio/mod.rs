//! Moving mail in and out: `postbox import` (an mbox or a Maildir folder
//! into a member's mailbox), `postbox export` (a mailbox as an mboxrd)
//! `postbox backup` and `postbox restore` (the whole box as one tar)
//! and `postbox sendmail` (a local program's message, through the
//! maildrop the server picks up).

pub mod archives;
pub mod backup;
pub mod export;
pub mod import;
pub mod maildrop;
pub mod mbox;
pub mod requote;
pub mod sendmail;
pub mod tar;

use std::io::{self, BufRead};

/// A file read one line at a time, a line longer than the buffer in
/// pieces of at most [`crate::limits::MAILIO_PIECE`] bytes.
pub struct Pieces<R> {
    reader: R,
    piece: Vec<u8>,
    starts_line: bool,
    next_starts_line: bool,
}

impl<R: BufRead> Pieces<R> {
    pub fn new(reader: R) -> Self {
        Pieces {
            reader,
            piece: Vec::with_capacity(crate::limits::MAILIO_PIECE),
            starts_line: true,
            next_starts_line: true,
        }
    }

    /// The next piece and whether it starts a line; `None` at the end.
    pub fn next_piece(&mut self) -> io::Result<Option<(&[u8], bool)>> {
        self.piece.clear();
        self.starts_line = self.next_starts_line;
        while self.piece.len() < crate::limits::MAILIO_PIECE {
            let available = match self.reader.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            let room = crate::limits::MAILIO_PIECE - self.piece.len();
            let window = &available[..available.len().min(room)];
            match window.iter().position(|b| *b == b'\n') {
                Some(at) => {
                    self.piece.extend_from_slice(&window[..=at]);
                    self.reader.consume(at + 1);
                    self.next_starts_line = true;
                    return Ok(Some((&self.piece, self.starts_line)));
                }
                None => {
                    let taken = window.len();
                    self.piece.extend_from_slice(window);
                    self.reader.consume(taken);
                }
            }
        }
        self.next_starts_line = false;
        match self.piece.is_empty() {
            true => Ok(None),
            false => Ok(Some((&self.piece, self.starts_line))),
        }
    }
}

/// Bytes as people read them: `1.4 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}
