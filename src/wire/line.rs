//! Splitting a byte stream into command lines with a fixed cap, shared by
//! the SMTP and POP3 cores. An over-long line is swallowed up to its end and
//! reported once, so the session answers one error and stays in step.
//! SASL lines (an AUTH command, or a response to its challenge) may be as
//! long as RFC 4954 §4 allows; they alone spill to the heap, for one line.

use crate::limits::{MAX_COMMAND_LINE, MAX_SASL_LINE};

#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A whole line, without its CRLF (or bare LF).
    Line(&'a [u8]),
    /// A line longer than [`MAX_COMMAND_LINE`] (or [`MAX_SASL_LINE`] for
    /// SASL) ended; its bytes were dropped.
    TooLong,
}

#[derive(Default)]
pub struct LineBuffer {
    buf: heapless::Vec<u8, MAX_COMMAND_LINE>,
    /// A SASL line that outgrew `buf`; empty (unallocated) otherwise.
    long: Vec<u8>,
    /// The next line answers a SASL challenge.
    sasl: bool,
    overflow: bool,
    /// Set after a line was handed out, so the next push starts afresh.
    taken: bool,
}

impl LineBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the next line is a SASL response, allowed to be long.
    pub fn expect_sasl(&mut self, sasl: bool) {
        self.sasl = sasl;
    }

    /// Whether the line `buf` + `more` begins is an AUTH command or a SASL
    /// response, which may be long.
    fn may_be_long(&self, more: &[u8]) -> bool {
        let mut start = [0u8; 5];
        let head = self.buf.iter().chain(more).take(start.len());
        let n = start.iter_mut().zip(head).map(|(s, b)| *s = *b).count();
        self.sasl || start[..n].eq_ignore_ascii_case(b"AUTH ")
    }

    /// Adds part of a line; `false` if it grew too long.
    fn append(&mut self, content: &[u8]) -> bool {
        if !self.long.is_empty() {
            if self.long.len() + content.len() > MAX_SASL_LINE {
                return false;
            }
            self.long.extend_from_slice(content);
        } else if self.buf.extend_from_slice(content).is_err() {
            if !self.may_be_long(content) || self.buf.len() + content.len() > MAX_SASL_LINE {
                return false;
            }
            self.long.reserve_exact(MAX_SASL_LINE);
            self.long.extend_from_slice(&self.buf);
            self.long.extend_from_slice(content);
            self.buf.clear();
        }
        true
    }

    /// Consumes bytes up to and including the next line end. Returns how
    /// many bytes were used and the event, if a line ended.
    pub fn push<'s>(&'s mut self, input: &[u8]) -> (usize, Option<LineEvent<'s>>) {
        if self.taken {
            self.buf.clear();
            self.long = Vec::new();
            self.taken = false;
        }
        let (used, ended) = match input.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (input.len(), false),
        };
        let content = &input[..if ended { used - 1 } else { used }];
        if !self.overflow && !self.append(content) {
            self.overflow = true;
            self.buf.clear();
            self.long = Vec::new();
        }
        if !ended {
            return (used, None);
        }
        self.taken = true;
        if std::mem::take(&mut self.overflow) {
            return (used, Some(LineEvent::TooLong));
        }
        let line = if self.long.is_empty() {
            &self.buf[..]
        } else {
            &self.long[..]
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (used, Some(LineEvent::Line(line)))
    }

    /// True when a partial line is waiting for more bytes.
    pub fn is_partial(&self) -> bool {
        !self.taken && (!self.buf.is_empty() || !self.long.is_empty() || self.overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, ()>> {
        let mut lb = LineBuffer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut rest = *chunk;
            while !rest.is_empty() {
                let (used, event) = lb.push(rest);
                match event {
                    Some(LineEvent::Line(l)) => out.push(Ok(l.to_vec())),
                    Some(LineEvent::TooLong) => out.push(Err(())),
                    None => {}
                }
                rest = &rest[used..];
            }
        }
        out
    }

    #[test]
    fn splits_across_chunks_and_strips_crlf() {
        let got = lines(&[b"NO", b"OP\r", b"\nQUIT\r\nRSET\n"]);
        assert_eq!(
            got,
            vec![
                Ok(b"NOOP".to_vec()),
                Ok(b"QUIT".to_vec()),
                Ok(b"RSET".to_vec())
            ]
        );
    }

    #[test]
    fn too_long_reported_once_then_in_sync() {
        let long = vec![b'a'; MAX_COMMAND_LINE + 10];
        let got = lines(&[&long[..600], &long[600..], b"\r\nNOOP\r\n"]);
        assert_eq!(got, vec![Err(()), Ok(b"NOOP".to_vec())]);
    }

    #[test]
    fn exactly_at_limit_fits() {
        let mut line = vec![b'a'; MAX_COMMAND_LINE];
        line.extend_from_slice(b"\n");
        assert_eq!(lines(&[&line]).len(), 1);
        assert!(lines(&[&line])[0].is_ok());
    }

    #[test]
    fn sasl_lines_may_be_long() {
        let mut auth = b"AUTH PLAIN ".to_vec();
        auth.resize(MAX_SASL_LINE - 2, b'A');
        let mut input = auth.clone();
        input.extend_from_slice(b"\r\nNOOP\r\n");
        for split in [3, 700] {
            assert_eq!(
                lines(&[&input[..split], &input[split..]]),
                vec![Ok(auth.clone()), Ok(b"NOOP".to_vec())]
            );
        }
        assert_eq!(
            lines(&[&input]),
            vec![Ok(auth.clone()), Ok(b"NOOP".to_vec())]
        );
        // Other commands keep the short limit, and so does SASL its own.
        let mut mail = b"MAIL FROM:".to_vec();
        mail.resize(MAX_COMMAND_LINE + 1, b'a');
        mail.extend_from_slice(b"\r\n");
        assert_eq!(lines(&[&mail]), vec![Err(())]);
        auth.extend_from_slice(b"AA\r\n");
        assert_eq!(lines(&[&auth]), vec![Err(())]);
        // A response to a challenge, when the session says one is due.
        let mut lb = LineBuffer::new();
        lb.expect_sasl(true);
        let response = vec![b'Q'; MAX_SASL_LINE - 2];
        let (_, event) = lb.push(&response);
        assert!(event.is_none());
        let (_, event) = lb.push(b"\r\n");
        assert_eq!(event, Some(LineEvent::Line(&response[..])));
    }

    #[test]
    fn partial_tracking() {
        let mut lb = LineBuffer::new();
        assert!(!lb.is_partial());
        lb.push(b"NO");
        assert!(lb.is_partial());
        lb.push(b"OP\n");
        assert!(!lb.is_partial());
    }
}
