//! The DATA stream decoder: removes dot-stuffing, finds the end of the
//! message, and stores every line with a CRLF end.
//!
//! Only `<CRLF>.<CRLF>` ends a message. A line starts only after CRLF: a
//! dot reached through a bare LF or bare CR (`<LF>.<LF>`, `<LF>.<CRLF>`,
//! `<CR>.<CR>`...) is ordinary content, neither an end nor a stuffed dot,
//! so a message cannot smuggle a second one past us (the 2023 "SMTP
//! smuggling" attacks). Bare LFs are stored as CRLF, so the stored bytes
//! are exactly what POP3 later sends (stuffed again on the way out).
//!
//! It also notes what the stored form hides: where a bare LF was (for
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
}
