//! Marks a message as spam on its way into the mailbox: an `X-Spam: yes`
//! field on top and a tag in front of the subject, rewritten as a stream
//! so the message is never held whole in RAM.

use std::io::{self, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    LineStart,
    /// Reading a field name that may still turn out to be `Subject:`.
    Name,
    RestOfLine,
    Body,
}

const SUBJECT: &[u8] = b"subject:";

/// The rewriting state between chunks.
pub struct Tagger<'a> {
    tag: &'a str,
    position: Position,
    name: heapless::Vec<u8, 8>,
    subject_seen: bool,
    started: bool,
}

impl<'a> Tagger<'a> {
    pub fn new(tag: &'a str) -> Self {
        Tagger {
            tag,
            position: Position::LineStart,
            name: heapless::Vec::new(),
            subject_seen: false,
            started: false,
        }
    }

    /// Appends the rewritten form of `bytes` (the next part of the stored
    /// message, CRLF lines) to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if !self.started {
            out.extend_from_slice(b"X-Spam: yes\r\n");
            self.started = true;
        }
        for (i, &b) in bytes.iter().enumerate() {
            match self.position {
                Position::Body => {
                    out.extend_from_slice(&bytes[i..]);
                    return;
                }
                Position::LineStart => match b {
                    b'\r' | b'\n' => {
                        if !self.subject_seen {
                            out.extend_from_slice(format!("Subject: {}\r\n", self.tag).as_bytes());
                        }
                        out.push(b);
                        self.position = Position::Body;
                    }
                    b' ' | b'\t' => {
                        out.push(b);
                        self.position = Position::RestOfLine;
                    }
                    _ => {
                        self.name.clear();
                        self.position = Position::Name;
                        self.name_byte(b, out);
                    }
                },
                Position::Name => self.name_byte(b, out),
                Position::RestOfLine => {
                    out.push(b);
                    if b == b'\n' {
                        self.position = Position::LineStart;
                    }
                }
            }
        }
    }

    /// Ends the message: a field name still being matched is written out.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.position == Position::Name {
            out.extend_from_slice(&self.name);
            self.position = Position::RestOfLine;
        }
    }

    fn name_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        let _ = self.name.push(b);
        let n = self.name.len();
        if !self.name.eq_ignore_ascii_case(&SUBJECT[..n]) {
            out.extend_from_slice(&self.name);
            self.position = if b == b'\n' {
                Position::LineStart
            } else {
                Position::RestOfLine
            };
        } else if n == SUBJECT.len() {
            out.extend_from_slice(&self.name);
            if !self.subject_seen {
                out.push(b' ');
                out.extend_from_slice(self.tag.as_bytes());
                self.subject_seen = true;
            }
            self.position = Position::RestOfLine;
        }
    }
}

/// A copy of the spooled message marked with `tag`, in the spool itself;
/// on the blocking pool.
pub async fn tagged_copy(
    store: &crate::store::Mailstore,
    original: &crate::store::maildir::Incoming,
    tag: String,
) -> io::Result<crate::store::maildir::Incoming> {
    original
        .copy_with(
            store.spool_root(),
            store.names.next(),
            move |source, copy| copy_tagged(source, &tag, |b| copy.write(b)),
        )
        .await
}

/// Copies `source` through a [`Tagger`] into `write`, a chunk at a time.
pub fn copy_tagged(
    source: &mut impl Read,
    tag: &str,
    mut write: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut tagger = Tagger::new(tag);
    let mut chunk = vec![0u8; crate::limits::WRITE_CHUNK];
    let mut out = Vec::with_capacity(chunk.len() + 256);
    loop {
        let n = source.read(&mut chunk)?;
        out.clear();
        if n == 0 {
            tagger.finish(&mut out);
            return write(&out);
        }
        tagger.feed(&chunk[..n], &mut out);
        write(&out)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(message: &str, split: usize) -> String {
        let mut t = Tagger::new("[SPAM]");
        let mut out = Vec::new();
        for part in message.as_bytes().chunks(split) {
            t.feed(part, &mut out);
        }
        t.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tags_the_subject_wherever_chunks_end() {
        for split in [1, 3, 7, 1000] {
            assert_eq!(
                tag(
                    "Received: x\r\n y\r\nSUBJECT: Hi\r\n\r\nSubject: body\r\n",
                    split
                ),
                "X-Spam: yes\r\nReceived: x\r\n y\r\nSUBJECT: [SPAM] Hi\r\n\r\nSubject: body\r\n"
            );
            assert_eq!(
                tag("Subj: a\r\nTo: b\r\n\r\nbody", split),
                "X-Spam: yes\r\nSubj: a\r\nTo: b\r\nSubject: [SPAM]\r\n\r\nbody"
            );
            assert_eq!(
                tag("Subject:x\r\nSubject: y\r\n\r\n", split),
                "X-Spam: yes\r\nSubject: [SPAM]x\r\nSubject: y\r\n\r\n"
            );
            // Cut off inside a field name (found by fuzzing).
            assert_eq!(
                tag("s\x10\x10\nsub", split),
                "X-Spam: yes\r\ns\x10\x10\nsub"
            );
        }
    }
}
