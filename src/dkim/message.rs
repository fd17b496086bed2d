//! Splits a message streaming past into its header section, kept up to
//! [`MAX_DKIM_HEADER_SECTION`], and its body, handed on chunk by chunk.

use crate::limits::MAX_DKIM_HEADER_SECTION;

/// Where the splitter is in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// At the start of a header line.
    LineStart,
    /// At a CR at the start of a line: the empty line, if a LF follows.
    LineStartCr,
    /// Inside a header line.
    InLine,
    Body,
}

/// The name matched at line starts while a too-large header section is
/// skipped, to tell "unsigned" from "signed but unreadable".
const SIGNATURE_NAME: &[u8] = b"dkim-signature:";

/// Takes the message (header section, empty line, body; CRLF line ends,
/// as stored after SMTP dot-unstuffing) in chunks split anywhere.
pub struct Splitter {
    part: Part,
    header: Vec<u8>,
    too_large: bool,
    /// Bytes of [`SIGNATURE_NAME`] matched at the current line's start.
    name_matched: usize,
    signature_seen: bool,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter::new()
    }
}

impl Splitter {
    pub fn new() -> Splitter {
        Splitter {
            part: Part::LineStart,
            header: Vec::new(),
            too_large: false,
            name_matched: 0,
            signature_seen: false,
        }
    }

    /// Takes the next chunk; returns its body part (empty while the header
    /// section lasts). The empty line between them belongs to neither.
    pub fn push<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        if self.part == Part::Body {
            return chunk;
        }
        for (i, &b) in chunk.iter().enumerate() {
            match (self.part, b) {
                (Part::LineStart, b'\r') => {
                    self.name_matched = 0;
                    self.part = Part::LineStartCr;
                    continue;
                }
                (Part::LineStartCr, b'\n') => {
                    self.part = Part::Body;
                    return &chunk[i + 1..];
                }
                (Part::LineStartCr, _) => {
                    // A CR that did not end the header section.
                    self.keep(b'\r');
                    self.part = Part::InLine;
                }
                (Part::LineStart, _) => {
                    self.name_matched = 0;
                    self.part = Part::InLine;
                }
                _ => {}
            }
            self.keep(b);
            if b == b'\n' && self.part == Part::InLine && self.header.ends_with(b"\r\n") {
                self.part = Part::LineStart;
            }
        }
        &[]
    }

    fn keep(&mut self, b: u8) {
        if self.name_matched < SIGNATURE_NAME.len()
            && SIGNATURE_NAME[self.name_matched] == b.to_ascii_lowercase()
        {
            self.name_matched += 1;
            if self.name_matched == SIGNATURE_NAME.len() {
                self.signature_seen = true;
            }
        } else {
            self.name_matched = usize::MAX;
        }
        if self.header.len() >= MAX_DKIM_HEADER_SECTION {
            self.too_large = true;
        }
        if self.too_large {
            // Only the last two bytes matter now: is this line over?
            let last = self.header.last().copied().unwrap_or(0);
            self.header.clear();
            self.header.extend_from_slice(&[last, b]);
            return;
        }
        self.header.push(b);
    }

    /// Whether the body has started (the header section is complete).
    pub fn in_body(&self) -> bool {
        self.part == Part::Body
    }

    /// The header section, up to and including its last CRLF; `None` when
    /// it was larger than [`MAX_DKIM_HEADER_SECTION`].
    pub fn header(&self) -> Option<&[u8]> {
        (!self.too_large).then_some(&self.header[..])
    }

    /// Whether a `DKIM-Signature:` field started a line of the header
    /// section (also known when the section was too large to keep).
    pub fn signature_seen(&self) -> bool {
        self.signature_seen
    }
}

/// One header field: its name and its whole text, folding and final CRLF
/// included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a str,
    pub raw: &'a [u8],
}

impl Field<'_> {
    /// The value: everything after the colon, CRLF and all.
    pub fn value(&self) -> &[u8] {
        let colon = self.raw.iter().position(|&b| b == b':').unwrap_or(0);
        &self.raw[colon + 1..]
    }
}

/// The header fields of a header section, in order. A field continues on
/// lines that start with whitespace; a line without a colon is a field
/// with an empty name, which nothing selects.
pub fn fields(header: &[u8]) -> Vec<Field<'_>> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    while pos < header.len() {
        let line_end = header[pos..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(header.len(), |p| pos + p + 2);
        let continues = header
            .get(line_end)
            .is_some_and(|&b| b == b' ' || b == b'\t');
        pos = line_end;
        if !continues {
            let raw = &header[start..line_end];
            let name = raw
                .iter()
                .position(|&b| b == b':')
                .and_then(|colon| std::str::from_utf8(&raw[..colon]).ok())
                .map_or("", |n| n.trim_end_matches([' ', '\t']));
            fields.push(Field { name, raw });
            start = line_end;
        }
    }
    fields
}

/// The fields `names` select for hashing (RFC 6376 §5.4.2): for each name
/// the last instance not yet taken, from the bottom up; a name with no
/// instance left selects nothing.
pub fn select<'a>(fields: &[Field<'a>], names: &[&str]) -> Vec<Field<'a>> {
    let mut taken = vec![false; fields.len()];
    let mut selected = Vec::new();
    for name in names {
        let found = (0..fields.len())
            .rev()
            .find(|&i| !taken[i] && fields[i].name.eq_ignore_ascii_case(name));
        if let Some(i) = found {
            taken[i] = true;
            selected.push(fields[i]);
        }
    }
    selected
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: a@example.org\r\nSubject: two\r\n\tlines\r\nTo: b@example.org\r\n\r\nbody\r\n\r\nmore\r\n";

    fn split(message: &[u8], chunk: usize) -> (Splitter, Vec<u8>) {
        let mut splitter = Splitter::new();
        let mut body = Vec::new();
        for piece in message.chunks(chunk.max(1)) {
            body.extend_from_slice(splitter.push(piece));
        }
        (splitter, body)
    }

    #[test]
    fn header_and_body_come_apart_at_any_split() {
        for chunk in 1..MESSAGE.len() {
            let (splitter, body) = split(MESSAGE, chunk);
            assert!(splitter.in_body());
            assert_eq!(
                splitter.header().unwrap(),
                b"From: a@example.org\r\nSubject: two\r\n\tlines\r\nTo: b@example.org\r\n"
            );
            assert_eq!(body, b"body\r\n\r\nmore\r\n");
        }
    }

    #[test]
    fn no_header_no_body_and_stray_cr() {
        let (s, body) = split(b"\r\nonly body\r\n", 1);
        assert_eq!(s.header().unwrap(), b"");
        assert_eq!(body, b"only body\r\n");
        let (s, body) = split(b"Subject: x\r\n", 3);
        assert!(!s.in_body());
        assert_eq!(s.header().unwrap(), b"Subject: x\r\n");
        assert!(body.is_empty());
        let (s, body) = split(b"A: 1\r\n\rB: 2\r\n\r\nx", 1);
        assert_eq!(s.header().unwrap(), b"A: 1\r\n\rB: 2\r\n");
        assert_eq!(body, b"x");
    }

    #[test]
    fn a_header_section_over_the_bound_is_dropped_but_its_end_found() {
        let mut message = b"DKIM-Signature: v=1\r\n".to_vec();
        while message.len() <= MAX_DKIM_HEADER_SECTION {
            message.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        message.extend_from_slice(b"\r\nbody\r\n");
        for chunk in [1, 1000, message.len()] {
            let (s, body) = split(&message, chunk);
            assert!(s.in_body());
            assert!(s.header().is_none());
            assert!(s.signature_seen());
            assert_eq!(body, b"body\r\n");
        }
        let (s, _) = split(b"X-DKIM-Signature: no\r\n\r\n", 1);
        assert!(!s.signature_seen());
    }

    #[test]
    fn fields_and_selection_from_the_bottom() {
        let header =
            b"Received: 1\r\nFrom: a\r\nReceived: 2\r\n\tcont\r\nno colon\r\nSubject : s\r\n";
        let all = fields(header);
        let names: Vec<&str> = all.iter().map(|f| f.name).collect();
        assert_eq!(names, ["Received", "From", "Received", "", "Subject"]);
        assert_eq!(all[2].raw, b"Received: 2\r\n\tcont\r\n");
        let picked = select(&all, &["received", "from", "received", "received", "from"]);
        let raws: Vec<&[u8]> = picked.iter().map(|f| f.raw).collect();
        assert_eq!(
            raws,
            [
                &b"Received: 2\r\n\tcont\r\n"[..],
                b"From: a\r\n",
                b"Received: 1\r\n"
            ]
        );
    }
}
