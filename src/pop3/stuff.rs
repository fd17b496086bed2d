//! Byte-stuffing for POP3 multi-line responses (RFC 1939 §3): a line that
//! starts with `.` gets another `.`. Also cuts a message short for TOP:
//! the headers, the blank line, then N body lines.

pub struct Stuffer {
    at_line_start: bool,
    in_headers: bool,
    line_is_empty: bool,
    body_lines_left: Option<u32>,
    done: bool,
    ends_with_crlf: bool,
}

impl Stuffer {
    /// `body_lines`: `None` sends the whole message (RETR), `Some(n)` for TOP.
    pub fn new(body_lines: Option<u32>) -> Self {
        Stuffer {
            at_line_start: true,
            in_headers: true,
            line_is_empty: true,
            body_lines_left: body_lines,
            done: false,
            ends_with_crlf: true,
        }
    }

    /// True when TOP has sent all it should; further input is ignored.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// What to send after the content and before the final `.CRLF`: a CRLF
    /// when the message did not end with one, so the terminator stands alone.
    pub fn trailer(&self) -> &'static [u8] {
        if self.ends_with_crlf {
            b""
        } else {
            b"\r\n"
        }
    }

    /// Stuffs `input` into `out`, which must hold `2 * input.len()` bytes.
    /// Returns the bytes written.
    pub fn feed(&mut self, input: &[u8], out: &mut [u8]) -> usize {
        assert!(out.len() >= 2 * input.len(), "stuffing output too small");
        let mut o = 0;
        for &byte in input {
            if self.done {
                break;
            }
            if self.at_line_start && byte == b'.' {
                out[o] = b'.';
                o += 1;
            }
            out[o] = byte;
            o += 1;
            self.at_line_start = byte == b'\n';
            self.ends_with_crlf = byte == b'\n';
            if byte == b'\n' {
                self.end_of_line();
                self.line_is_empty = true;
            } else if byte != b'\r' {
                self.line_is_empty = false;
            }
        }
        o
    }

    fn end_of_line(&mut self) {
        let Some(left) = self.body_lines_left.as_mut() else {
            return;
        };
        if self.in_headers {
            if self.line_is_empty {
                self.in_headers = false;
                self.done = *left == 0;
            }
        } else {
            *left -= 1;
            self.done = *left == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], top: Option<u32>, chunk: usize) -> Vec<u8> {
        let mut s = Stuffer::new(top);
        let mut out = Vec::new();
        let mut buf = vec![0; 2 * chunk];
        for piece in input.chunks(chunk) {
            let n = s.feed(piece, &mut buf);
            out.extend_from_slice(&buf[..n]);
        }
        out.extend_from_slice(s.trailer());
        out
    }

    #[test]
    fn stuffs_leading_dots_across_chunks() {
        let msg = b".a\r\nb.\r\n.\r\n..x\r\n";
        for chunk in 1..msg.len() {
            assert_eq!(run(msg, None, chunk), b"..a\r\nb.\r\n..\r\n...x\r\n");
        }
    }

    #[test]
    fn adds_missing_final_crlf() {
        assert_eq!(run(b"a\r\nb", None, 4), b"a\r\nb\r\n");
        assert_eq!(run(b"", None, 4), b"");
    }

    #[test]
    fn top_sends_headers_blank_line_and_n_lines() {
        let msg = b"A: 1\r\nB: 2\r\n\r\none\r\n.two\r\nthree\r\n";
        assert_eq!(run(msg, Some(0), 3), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(
            run(msg, Some(2), 5),
            b"A: 1\r\nB: 2\r\n\r\none\r\n..two\r\n"
        );
        assert_eq!(run(msg, Some(10), 7), run(msg, None, 7));
    }
}
