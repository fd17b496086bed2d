//! Dot-stuffing both ways (RFC 5321 §4.5.2, RFC 1939 §3): [`Stuffer`]
//! doubles a dot that starts a line on the way out (POP3 to a client, SMTP
//! to the next server) and ends the message with `.`; [`DataDecoder`]
//! undoes it on the way in and finds the end of the message.
//!
//! On the way in, only `<CRLF>.<CRLF>` ends a message. A line starts only after CRLF: a
//! dot reached through a bare LF or bare CR (`<LF>.<LF>`, `<LF>.<CRLF>`,
//! `<CR>.<CR>`...) is ordinary content, neither an end nor a stuffed dot,
//! so a message cannot smuggle a second one past us (the 2023 "SMTP
//! smuggling" attacks). Bare LFs are stored as CRLF, so the stored bytes
//! are exactly what POP3 later sends (stuffed again on the way out).
//!
//! The decoder also notes what the stored form hides: where a bare LF was (for
//! the strict header check of members' mail) and whether a line went over
//! the 998 octets of RFC 5322 §2.1.1, counting without holding the line.

use crate::limits::MAX_MESSAGE_LINE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the start of the body).
    LineStart,
    /// Saw a dot at the start of a line.
    Dot,
    /// Saw `.` then CR at the start of a line.
    DotCr,
    /// Inside a line.
    Middle,
    /// Inside a line, just after a CR.
    Cr,
}

pub struct DataDecoder {
    state: State,
    /// Octets in the current line so far (without its end).
    line: usize,
    too_long: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes used.
    pub consumed: usize,
    /// Output bytes written.
    pub produced: usize,
    /// The terminating `<CRLF>.<CRLF>` was consumed.
    pub finished: bool,
    /// Where in this output the first bare LF (stored as CRLF) went.
    pub bare_lf_at: Option<usize>,
}

impl Default for DataDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DataDecoder {
    pub fn new() -> Self {
        // The CRLF of the DATA command counts as the line end before the body.
        DataDecoder {
            state: State::LineStart,
            line: 0,
            too_long: false,
        }
    }

    /// A line of the message was longer than 998 octets.
    pub fn line_too_long(&self) -> bool {
        self.too_long
    }

    fn count(&mut self, octets: usize) {
        self.line += octets;
        if self.line > MAX_MESSAGE_LINE {
            self.too_long = true;
        }
    }

    /// Decodes as much of `input` as fits in `out` (which needs room for at
    /// least two bytes to make progress).
    pub fn feed(&mut self, input: &[u8], out: &mut [u8]) -> Progress {
        let mut i = 0;
        let mut o = 0;
        let mut bare_lf_at = None;
        while i < input.len() && out.len() - o >= 2 {
            let byte = input[i];
            match self.state {
                State::Middle => {
                    // Copy the run up to the next CR or LF in one go.
                    let room = out.len() - o;
                    let run = input[i..]
                        .iter()
                        .take(room)
                        .position(|&b| b == b'\r' || b == b'\n')
                        .unwrap_or(room.min(input.len() - i));
                    if run > 0 {
                        out[o..o + run].copy_from_slice(&input[i..i + run]);
                        o += run;
                        i += run;
                        self.count(run);
                        continue;
                    }
                    i += 1;
                    if byte == b'\r' {
                        self.state = State::Cr;
                    } else {
                        // A bare LF ends the stored line but starts no SMTP line.
                        bare_lf_at.get_or_insert(o);
                        out[o..o + 2].copy_from_slice(b"\r\n");
                        o += 2;
                        self.line = 0;
                    }
                }
                State::Cr => {
                    match byte {
                        b'\n' => {
                            i += 1;
                            out[o..o + 2].copy_from_slice(b"\r\n");
                            o += 2;
                            self.line = 0;
                            self.state = State::LineStart;
                        }
                        // A bare CR is content; look at this byte again mid-line.
                        _ => {
                            out[o] = b'\r';
                            o += 1;
                            self.count(1);
                            self.state = State::Middle;
                        }
                    }
                }
                State::LineStart => {
                    if byte == b'.' {
                        i += 1;
                        self.state = State::Dot;
                    } else {
                        self.state = State::Middle;
                    }
                }
                State::Dot => match byte {
                    b'\r' => {
                        i += 1;
                        self.state = State::DotCr;
                    }
                    // The stuffed dot is dropped; the rest is content.
                    _ => self.state = State::Middle,
                },
                State::DotCr => {
                    if byte == b'\n' {
                        i += 1;
                        self.state = State::LineStart;
                        return Progress {
                            consumed: i,
                            produced: o,
                            finished: true,
                            bare_lf_at,
                        };
                    } else {
                        // `.<CR>x`: the CR was content after a stuffed dot.
                        out[o] = b'\r';
                        o += 1;
                        self.count(1);
                        self.state = State::Middle;
                    }
                }
            }
        }
        Progress {
            consumed: i,
            produced: o,
            finished: false,
            bare_lf_at,
        }
    }
}

/// A message on its way out, chunk by chunk: a dot starting a line is
/// doubled, and [`Stuffer::finish`] gives the end (a line end if the last
/// line has none, then `.`).
pub struct Stuffer {
    /// For another server: every line ends in CRLF (a bare CR or LF
    /// becomes one, so the next server cannot find a line end, or an end of
    /// data, where we saw none), NULs are dropped, and lines longer than
    /// 998 octets are broken (folded in the header section).
    strict: bool,
    /// Octets of the current line already written.
    line_len: usize,
    /// The current line has more than CRs.
    has_text: bool,
    /// Strict: a CR was seen; what follows decides nothing, it ends a line.
    pending_cr: bool,
    in_headers: bool,
    /// POP3 TOP: the body lines still to send.
    body_lines_left: Option<u32>,
    done: bool,
}

impl Stuffer {
    /// For POP3: the stored bytes as they are. `body_lines`: `None` sends
    /// the whole message (RETR), `Some(n)` the headers, the blank line and
    /// n body lines (TOP).
    pub fn as_stored(body_lines: Option<u32>) -> Self {
        Stuffer {
            strict: false,
            line_len: 0,
            has_text: false,
            pending_cr: false,
            in_headers: true,
            body_lines_left: body_lines,
            done: false,
        }
    }

    /// For another SMTP server: line ends, NULs and line lengths as RFC
    /// 5321 wants them.
    pub fn strict() -> Self {
        Stuffer {
            strict: true,
            ..Stuffer::as_stored(None)
        }
    }

    /// True when TOP has sent all it should; further input is ignored.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Appends `input`, stuffed, to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(2 * input.len());
        let mut rest = input;
        while let Some((&b, tail)) = rest.split_first() {
            if self.done {
                return;
            }
            if !self.strict && self.line_len > 0 && b != b'\n' {
                // Inside a line only its end matters: copy up to it.
                let run = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
                let text = &rest[..run];
                self.has_text |= text.iter().any(|&c| c != b'\r');
                self.line_len += run;
                out.extend_from_slice(text);
                rest = &rest[run..];
                continue;
            }
            if self.strict {
                self.strict_byte(b, out);
            } else if b == b'\n' {
                out.push(b'\n');
                self.end_line();
            } else {
                self.put(b, out);
            }
            rest = tail;
        }
    }

    /// What ends the message: a line end when the last line has none, so
    /// the dot stands alone, then `.` and CRLF.
    pub fn finish(&mut self) -> &'static str {
        if std::mem::take(&mut self.pending_cr) || self.line_len > 0 {
            "\r\n.\r\n"
        } else {
            ".\r\n"
        }
    }

    fn strict_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.extend_from_slice(b"\r\n");
            self.end_line();
            if b == b'\n' {
                return;
            }
        }
        match b {
            b'\r' => self.pending_cr = true,
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                self.end_line();
            }
            0 => {}
            _ => {
                if self.line_len >= MAX_MESSAGE_LINE {
                    out.extend_from_slice(b"\r\n");
                    self.line_len = 0;
                    if self.in_headers {
                        out.push(b' ');
                        self.line_len = 1;
                    }
                }
                self.put(b, out);
            }
        }
    }

    fn put(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.line_len == 0 && b == b'.' {
            out.push(b'.');
            self.line_len += 1;
        }
        out.push(b);
        self.line_len += 1;
        self.has_text |= b != b'\r';
    }

    /// A line ended (its end already written).
    fn end_line(&mut self) {
        let empty = !std::mem::take(&mut self.has_text);
        self.line_len = 0;
        if self.in_headers {
            if empty {
                self.in_headers = false;
                self.done = self.body_lines_left == Some(0);
            }
        } else if let Some(left) = self.body_lines_left.as_mut() {
            *left -= 1;
            self.done = *left == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` split into `chunk`-sized pieces with a small output
    /// buffer; returns the message and the bytes left after the end.
    fn decode(input: &[u8], chunk: usize, out_cap: usize) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut decoder = DataDecoder::new();
        let mut message = Vec::new();
        let mut out = vec![0u8; out_cap];
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + chunk).min(input.len());
            let mut piece = &input[pos..end];
            while !piece.is_empty() {
                let p = decoder.feed(piece, &mut out);
                message.extend_from_slice(&out[..p.produced]);
                piece = &piece[p.consumed..];
                pos += p.consumed;
                if p.finished {
                    return Some((message, input[pos..].to_vec()));
                }
            }
        }
        None
    }

    fn all_splits(input: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let reference = decode(input, input.len().max(1), 4096);
        for chunk in 1..=input.len().min(12) {
            for cap in [2, 3, 7, 4096] {
                assert_eq!(
                    decode(input, chunk, cap),
                    reference,
                    "chunk {chunk} cap {cap}"
                );
            }
        }
        reference
    }

    #[test]
    fn plain_message_and_trailing_commands() {
        let (msg, rest) = all_splits(b"Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n").unwrap();
        assert_eq!(msg, b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn empty_message() {
        let (msg, rest) = all_splits(b".\r\n").unwrap();
        assert!(msg.is_empty() && rest.is_empty());
    }

    #[test]
    fn dot_unstuffing() {
        let (msg, _) = all_splits(b"..\r\n..x\r\n.y\r\na.b\r\n.\r\n").unwrap();
        assert_eq!(msg, b".\r\n.x\r\ny\r\na.b\r\n");
    }

    #[test]
    fn bare_lf_is_stored_as_crlf() {
        let (msg, _) = all_splits(b"a\nb\r\n.\r\n").unwrap();
        assert_eq!(msg, b"a\r\nb\r\n");
    }

    #[test]
    fn dot_after_bare_lf_is_content_not_stuffing() {
        let (msg, _) = all_splits(b"a\n.b\n.\r\n.\r\n").unwrap();
        assert_eq!(msg, b"a\r\n.b\r\n.\r\n");
    }

    #[test]
    fn bare_cr_is_content() {
        let (msg, _) = all_splits(b"a\rb\r\r\n.\r\n").unwrap();
        assert_eq!(msg, b"a\rb\r\r\n");
    }

    #[test]
    fn smuggling_variants_do_not_end_the_message() {
        let variants: [&[u8]; 6] = [
            b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r",
        ];
        for v in variants {
            let mut input = b"Subject: one\r\n\r\nfirst".to_vec();
            input.extend_from_slice(v);
            input.extend_from_slice(
                b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsecond\r\n.\r\n",
            );
            let (msg, rest) = all_splits(&input).unwrap_or_else(|| panic!("{v:?}: no end"));
            assert!(rest.is_empty(), "{v:?} ended early, left {rest:?}");
            assert!(msg.windows(4).any(|w| w == b"MAIL"), "{v:?}");
        }
    }

    #[test]
    fn dot_cr_then_other_byte_keeps_cr() {
        let (msg, _) = all_splits(b".\rx\r\n.\r\n").unwrap();
        assert_eq!(msg, b"\rx\r\n");
    }

    /// Whether decoding `input` (in pieces of every size) finds a line
    /// over 998 octets.
    fn too_long(input: &[u8]) -> bool {
        let mut verdicts = (1..=7).chain([input.len()]).map(|chunk| {
            let mut decoder = DataDecoder::new();
            let mut out = vec![0u8; 64];
            for piece in input.chunks(chunk) {
                let mut piece = piece;
                while !piece.is_empty() {
                    let p = decoder.feed(piece, &mut out);
                    piece = &piece[p.consumed..];
                }
            }
            decoder.line_too_long()
        });
        let first = verdicts.next().unwrap();
        assert!(verdicts.all(|v| v == first), "depends on chunking");
        first
    }

    #[test]
    fn lines_over_998_octets_are_noticed() {
        let line = |n: usize, end: &str| format!("{}{end}", "x".repeat(n));
        assert!(!too_long(
            format!("{}{}.\r\n", line(998, "\r\n"), line(998, "\n")).as_bytes()
        ));
        assert!(too_long(line(999, "\r\n.\r\n").as_bytes()));
        assert!(too_long(format!("a\r\n{}", line(999, "\n")).as_bytes()));
        // A bare CR does not end a line; a stuffed dot is not content.
        assert!(too_long(
            format!("{}\r{}\r\n", line(500, ""), line(500, "")).as_bytes()
        ));
        assert!(!too_long(format!(".{}\r\n.\r\n", line(998, "")).as_bytes()));
    }

    #[test]
    fn bare_lf_position_is_reported() {
        let mut decoder = DataDecoder::new();
        let mut out = [0u8; 64];
        let p = decoder.feed(b"a: b\r\nc\nd\ne\r\n", &mut out);
        assert_eq!(p.bare_lf_at, Some(7));
        assert_eq!(&out[7..9], b"\r\n");
        assert_eq!(decoder.feed(b"x\r\n", &mut out).bare_lf_at, None);
    }

    #[test]
    fn unterminated_stream_never_finishes() {
        assert!(all_splits(b"no end here\r\n.").is_none());
        assert!(all_splits(b"no end here\r\n.\r").is_none());
    }
    /// The stuffed message, its end included, fed in pieces.
    fn stuffed(mut stuffer: Stuffer, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            stuffer.feed(p, &mut out);
        }
        out.extend_from_slice(stuffer.finish().as_bytes());
        out
    }

    fn pop3(input: &[u8], top: Option<u32>, chunk: usize) -> Vec<u8> {
        let parts: Vec<&[u8]> = input.chunks(chunk).collect();
        stuffed(Stuffer::as_stored(top), &parts)
    }

    fn strict(parts: &[&str]) -> String {
        let parts: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        String::from_utf8(stuffed(Stuffer::strict(), &parts)).unwrap()
    }

    #[test]
    fn stuffs_leading_dots_across_chunks() {
        let msg = b".a\r\nb.\r\n.\r\n..x\r\n";
        for chunk in 1..msg.len() {
            assert_eq!(pop3(msg, None, chunk), b"..a\r\nb.\r\n..\r\n...x\r\n.\r\n");
        }
        // As stored: a dot after a bare CR starts no line.
        assert_eq!(pop3(b"a\r.b\n.c", None, 2), b"a\r.b\n..c\r\n.\r\n");
    }

    #[test]
    fn adds_missing_final_crlf() {
        assert_eq!(pop3(b"a\r\nb", None, 4), b"a\r\nb\r\n.\r\n");
        assert_eq!(pop3(b"a\r\nb\r", None, 4), b"a\r\nb\r\r\n.\r\n");
        assert_eq!(pop3(b"", None, 4), b".\r\n");
    }

    #[test]
    fn top_sends_headers_blank_line_and_n_lines() {
        let msg = b"A: 1\r\nB: 2\r\n\r\none\r\n.two\r\nthree\r\n";
        assert_eq!(pop3(msg, Some(0), 3), b"A: 1\r\nB: 2\r\n\r\n.\r\n");
        assert_eq!(
            pop3(msg, Some(2), 5),
            b"A: 1\r\nB: 2\r\n\r\none\r\n..two\r\n.\r\n"
        );
        assert_eq!(pop3(msg, Some(10), 7), pop3(msg, None, 7));
    }

    #[test]
    fn strict_dot_stuffing_across_chunks() {
        assert_eq!(strict(&[".a\r\n", ".", "b\r\n"]), "..a\r\n..b\r\n.\r\n");
        assert_eq!(strict(&["x\r\n.\r", "\n"]), "x\r\n..\r\n.\r\n");
        assert_eq!(strict(&["no end"]), "no end\r\n.\r\n");
        assert_eq!(strict(&["cr only\r"]), "cr only\r\n.\r\n");
        assert_eq!(strict(&[]), ".\r\n");
    }

    #[test]
    fn strict_line_ends_are_crlf_and_nul_is_dropped() {
        // Each would let a server that reads line ends loosely see an end
        // of data in the middle of the message.
        assert_eq!(strict(&["a\r.\rb"]), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(strict(&["a\r.\r\nb"]), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(strict(&["a\r\n\0.\r\nb"]), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(strict(&["a\n.\nb\n"]), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(strict(&["a\r", "\nb\r", "x"]), "a\r\nb\r\nx\r\n.\r\n");
        assert_eq!(strict(&["a\r\r\n"]), "a\r\n\r\n.\r\n");
    }

    #[test]
    fn strict_long_lines_are_broken_and_headers_folded() {
        let long = "x".repeat(2 * MAX_MESSAGE_LINE + 10);
        let text = format!("Subject: {long}\r\n\r\n.{long}\r\n");
        let wire = strict(&[&text]);
        let lines: Vec<&str> = wire.split("\r\n").collect();
        assert!(
            lines.iter().all(|l| l.len() <= MAX_MESSAGE_LINE),
            "{lines:?}"
        );
        // The header goes on in continuation lines; the body's dot is doubled.
        assert!(lines[1].starts_with(' ') && lines[2].starts_with(' '));
        assert_eq!(lines[3], "");
        assert!(lines[4].starts_with("..x"));
        assert!(!lines[5].starts_with(' '));
        let rejoined: String = wire.chars().filter(|c| *c == 'x').collect();
        assert_eq!(rejoined.len(), 2 * long.len());
    }

    #[test]
    fn stuffing_then_decoding_gives_the_message_back() {
        let msg = b"A: 1\r\n\r\n.\r\n..x\r\n.\r\ny\r\n";
        for stuffer in [Stuffer::as_stored(None), Stuffer::strict()] {
            let wire = stuffed(stuffer, &[msg]);
            let (back, rest) = all_splits(&wire).unwrap();
            assert_eq!((back.as_slice(), rest.as_slice()), (&msg[..], &b""[..]));
        }
    }
}
