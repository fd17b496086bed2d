//! The mbox format, sans-IO: reading an mbox into messages with CRLF line
//! ends (as the store keeps them) and writing stored messages as mboxrd.
//!
//! Both sides take a file one line at a time, a line possibly in pieces
//! (one longer than the caller's buffer): only a line's first piece is
//! looked at for `From ` and its quoting (it must hold the line's first
//! bytes, up to the buffer's size), so memory stays what the caller's
//! buffer is, whatever the lines.

/// What the mbox reader finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A message begins; its `From ` line (its first piece), without the line end.
    Start(&'a [u8]),
    /// Bytes of the message, line ends already CRLF.
    Bytes(&'a [u8]),
    /// The message ended.
    End,
}

/// The input does not start with a `From ` line.
#[derive(Debug, PartialEq, Eq)]
pub struct NotMbox;

/// Splits an mbox into messages. A `From ` line at the start of the file
/// or after an empty line separates messages (the empty line belongs to
/// the separator, as every mbox writer puts it there); any other line
/// starting `From ` is text. Lines `>From `, `>>From `... lose one `>`
/// (mboxrd). In an mboxo file only `From ` was quoted, so there a line
/// written as `>From ` in the first place loses its `>` too: mboxo cannot
/// tell the two apart, and the quoted `From ` is the far commoner.
#[derive(Default)]
pub struct Reader {
    /// Inside a message (a `From ` line seen).
    in_message: bool,
    /// An empty line read and not yet given: it may be the separator's.
    held_blank: bool,
    /// The piece before ended in CR, held back in case LF follows.
    held_cr: bool,
    /// The current line is the `From ` line, still coming in pieces.
    in_from_line: bool,
    /// The current line has text given out (so its end needs CRLF).
    mid_line: bool,
}

impl Reader {
    pub fn new() -> Self {
        Reader::default()
    }

    /// Takes the next piece of input; `starts_line` when it begins a line.
    /// A line's end (LF) is always the last byte of a piece.
    pub fn piece(
        &mut self,
        piece: &[u8],
        starts_line: bool,
        emit: &mut impl FnMut(Event<'_>),
    ) -> Result<(), NotMbox> {
        if piece.is_empty() {
            return Ok(());
        }
        let ends_line = piece.ends_with(b"\n");
        if starts_line {
            self.held_cr = false;
            if piece.starts_with(b"From ") && (!self.in_message || self.held_blank) {
                if self.in_message {
                    emit(Event::End);
                }
                self.in_message = true;
                self.held_blank = false;
                self.in_from_line = !ends_line;
                emit(Event::Start(trim_line_end(piece)));
                return Ok(());
            }
            if !self.in_message {
                // Blank lines before the first message are tolerated.
                if piece == b"\n" || piece == b"\r\n" {
                    return Ok(());
                }
                return Err(NotMbox);
            }
            let blank = ends_line && trim_line_end(piece).is_empty();
            if self.held_blank {
                emit(Event::Bytes(b"\r\n"));
                self.held_blank = false;
            }
            if blank {
                self.held_blank = true;
                return Ok(());
            }
            let unquoted = match is_quoted_from(piece) {
                true => &piece[1..],
                false => piece,
            };
            self.text(unquoted, ends_line, emit);
            return Ok(());
        }
        if self.in_from_line {
            self.in_from_line = !ends_line;
            return Ok(());
        }
        self.text(piece, ends_line, emit);
        Ok(())
    }

    /// Text of a message's line, its line end made CRLF.
    fn text(&mut self, piece: &[u8], ends_line: bool, emit: &mut impl FnMut(Event<'_>)) {
        let mut body = piece;
        if self.held_cr {
            self.held_cr = false;
            if body == b"\n" {
                emit(Event::Bytes(b"\r\n"));
                self.mid_line = false;
                return;
            }
            emit(Event::Bytes(b"\r"));
        }
        if ends_line {
            body = trim_line_end(body);
        } else if let Some(rest) = body.strip_suffix(b"\r") {
            self.held_cr = true;
            body = rest;
        }
        if !body.is_empty() {
            emit(Event::Bytes(body));
        }
        if ends_line {
            emit(Event::Bytes(b"\r\n"));
        }
        self.mid_line = !ends_line;
    }

    /// The input ended: ends the last message, its last line given a line
    /// end if it had none. The empty line of a final separator is dropped,
    /// as between messages.
    pub fn finish(&mut self, emit: &mut impl FnMut(Event<'_>)) {
        if !self.in_message {
            return;
        }
        if self.held_cr {
            emit(Event::Bytes(b"\r"));
        }
        if self.mid_line || self.held_cr {
            emit(Event::Bytes(b"\r\n"));
        }
        *self = Reader::default();
        emit(Event::End);
    }
}

/// `>From `, `>>From `...: a line quoted by an mbox writer.
fn is_quoted_from(line: &[u8]) -> bool {
    let quotes = line.iter().take_while(|b| **b == b'>').count();
    quotes > 0 && line[quotes..].starts_with(b"From ")
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Line ends rewritten to one kind, piece by piece: a CR that ends a
/// piece is held until the next shows whether an LF follows it.
#[derive(Default)]
struct LineEnds {
    held_cr: bool,
    mid_line: bool,
}

impl LineEnds {
    /// `piece` with its line end as `end`; with `quote_from`, a `>` goes
    /// before a `>*From ` line (the piece starts a line).
    fn piece(&mut self, piece: &[u8], end: &[u8], quote_from: bool, emit: &mut impl FnMut(&[u8])) {
        if piece.is_empty() {
            return;
        }
        let mut body = piece;
        if self.held_cr {
            self.held_cr = false;
            if body == b"\n" {
                emit(end);
                self.mid_line = false;
                return;
            }
            emit(b"\r");
        }
        if quote_from && (body.starts_with(b"From ") || is_quoted_from(body)) {
            emit(b">");
        }
        let ends_line = body.ends_with(b"\n");
        if ends_line {
            body = trim_line_end(body);
        } else if let Some(rest) = body.strip_suffix(b"\r") {
            self.held_cr = true;
            body = rest;
        }
        if !body.is_empty() {
            emit(body);
        }
        if ends_line {
            emit(end);
        }
        self.mid_line = !ends_line;
    }

    /// The message ended: its last line gets `end` if it had none.
    fn finish(&mut self, end: &[u8], emit: &mut impl FnMut(&[u8])) {
        if self.held_cr {
            emit(b"\r");
        }
        if self.mid_line || self.held_cr {
            emit(end);
        }
        *self = LineEnds::default();
    }
}

/// Makes line ends CRLF in a message that is not in mbox form (a Maildir
/// file, LF or CRLF), piece by piece as [`Reader::piece`] takes them.
#[derive(Default)]
pub struct Crlf(LineEnds);

impl Crlf {
    pub fn piece(&mut self, piece: &[u8], emit: &mut impl FnMut(&[u8])) {
        self.0.piece(piece, b"\r\n", false, emit);
    }

    /// The message ended: its last line gets a line end if it had none.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        self.0.finish(b"\r\n", emit);
    }
}

/// Writes stored messages (CRLF) as mboxrd: a `From ` line, the lines
/// with LF ends and `>` added to every `>*From ` line, and an empty line
/// after each message.
#[derive(Default)]
pub struct Writer(LineEnds);

impl Writer {
    /// The `From ` line that opens a message: the envelope sender (or
    /// `MAILER-DAEMON` for none) and the time it arrived, as asctime(3).
    pub fn from_line(sender: Option<&str>, unix_secs: u64) -> String {
        const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let days = unix_secs / 86_400;
        let (year, month, day) = crate::ops::clock::civil_from_days(days as i64);
        let rem = unix_secs % 86_400;
        // No space may hide in the sender: the date must stay the rest.
        let sender = sender
            .filter(|s| !s.is_empty() && !s.contains(|c: char| c.is_whitespace()))
            .unwrap_or("MAILER-DAEMON");
        format!(
            "From {sender} {} {} {:>2} {:02}:{:02}:{:02} {year}\n",
            DAYS[(days % 7) as usize],
            MONTHS[(month - 1) as usize],
            day,
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }

    /// Takes the next piece of a stored message; `starts_line` when it
    /// begins a line. A line's end is always the last byte of a piece.
    pub fn piece(&mut self, piece: &[u8], starts_line: bool, emit: &mut impl FnMut(&[u8])) {
        self.0.piece(piece, b"\n", starts_line, emit);
    }

    /// The message ended: its last line ends, then the empty line that
    /// separates it from the next.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8])) {
        self.0.finish(b"\n", emit);
        emit(b"\n");
    }
}

/// The envelope sender a message's `Return-Path:` gives, from its header
/// section (or as much of it as was read): `Some("")` for `<>`.
pub fn return_path(header: &[u8]) -> Option<String> {
    for line in header.split(|b| *b == b'\n') {
        let line = trim_line_end(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(b"Return-Path") {
            continue;
        }
        let value = std::str::from_utf8(&line[colon + 1..]).ok()?.trim();
        let inner = value
            .strip_prefix('<')
            .and_then(|v| v.split('>').next())
            .unwrap_or(value);
        return Some(inner.trim().to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message's `From ` line and its bytes.
    type Message = (Vec<u8>, Vec<u8>);

    /// Reads `input` fed in pieces of at most `size` bytes.
    fn read(input: &[u8], size: usize) -> Result<Vec<Message>, NotMbox> {
        let mut reader = Reader::new();
        let mut messages = Vec::new();
        let mut current: Option<(Vec<u8>, Vec<u8>)> = None;
        let mut emit = |event: Event<'_>| match event {
            Event::Start(line) => current = Some((line.to_vec(), Vec::new())),
            Event::Bytes(b) => current.as_mut().unwrap().1.extend_from_slice(b),
            Event::End => messages.push(current.take().unwrap()),
        };
        for line in input.split_inclusive(|b| *b == b'\n') {
            for (i, piece) in line.chunks(size).enumerate() {
                reader.piece(piece, i == 0, &mut emit)?;
            }
        }
        reader.finish(&mut emit);
        Ok(messages)
    }

    #[test]
    fn splits_messages_and_unquotes_mboxrd() {
        let mbox = b"From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From here\n>>From there\nFrom not a separator\n\nFrom b@y Tue Jan  2 00:00:00 2024\r\nSubject: two\r\n\r\nbody\r\n\n";
        for size in [8, 9, 13, 1000] {
            let messages = read(mbox, size).unwrap();
            assert_eq!(messages.len(), 2, "pieces of {size}");
            // The From line as far as its first piece goes.
            let from_line = b"From a@x Mon Jan  1 00:00:00 2024";
            assert_eq!(messages[0].0, from_line[..size.min(from_line.len())]);
            assert_eq!(
                messages[0].1,
                b"Subject: one\r\n\r\nFrom here\r\n>From there\r\nFrom not a separator\r\n"
            );
            assert_eq!(messages[1].1, b"Subject: two\r\n\r\nbody\r\n");
        }
    }

    #[test]
    fn keeps_blank_lines_that_are_not_the_separators() {
        let mbox = b"From a\n\nx\n\n\n\nFrom b\ny";
        let messages = read(mbox, 1000).unwrap();
        assert_eq!(messages[0].1, b"\r\nx\r\n\r\n\r\n");
        assert_eq!(messages[1].1, b"y\r\n");
    }

    #[test]
    fn refuses_what_is_not_an_mbox() {
        assert_eq!(read(b"Subject: x\n\nbody\n", 100), Err(NotMbox));
        assert_eq!(read(b"", 100).unwrap().len(), 0);
    }

    #[test]
    fn crlf_in_pieces() {
        for size in [1, 2, 5] {
            let mut out = Vec::new();
            let mut crlf = Crlf::default();
            for line in b"a\nb\r\nc\rd".split_inclusive(|b| *b == b'\n') {
                for piece in line.chunks(size) {
                    crlf.piece(piece, &mut |b| out.extend_from_slice(b));
                }
            }
            crlf.finish(&mut |b| out.extend_from_slice(b));
            assert_eq!(out, b"a\r\nb\r\nc\rd\r\n", "pieces of {size}");
        }
    }

    #[test]
    fn writes_mboxrd_and_reads_it_back() {
        let stored = b"Return-Path: <a@x>\r\nSubject: s\r\n\r\nFrom me\r\n>From you\r\nlast";
        let mut out = Writer::from_line(return_path(stored).as_deref(), 86_400 * 365).into_bytes();
        let mut writer = Writer::default();
        for line in stored.split_inclusive(|b| *b == b'\n') {
            for (i, piece) in line.chunks(9).enumerate() {
                writer.piece(piece, i == 0, &mut |b| out.extend_from_slice(b));
            }
        }
        writer.finish(&mut |b| out.extend_from_slice(b));
        assert_eq!(
            out,
            b"From a@x Fri Jan  1 00:00:00 1971\nReturn-Path: <a@x>\nSubject: s\n\n>From me\n>>From you\nlast\n\n"
        );
        let back = read(&out, 1000).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].1, [&stored[..], b"\r\n"].concat());
    }

    #[test]
    fn return_path_of_the_header_only() {
        assert_eq!(
            return_path(b"X: 1\r\nreturn-path: <>\r\n\r\n"),
            Some(String::new())
        );
        assert_eq!(return_path(b"X: 1\r\n\r\nReturn-Path: <a@x>\r\n"), None);
        assert_eq!(
            return_path(b"Return-Path: <a@x>\n"),
            Some("a@x".to_string())
        );
    }
}
