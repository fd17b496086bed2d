//! Splitting a byte stream into command lines with a fixed cap, shared by
//! the SMTP and POP3 cores. An over-long line is swallowed up to its end and
//! reported once, so the session answers one error and stays in step.

use crate::limits::MAX_COMMAND_LINE;

#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A whole line, without its CRLF (or bare LF).
    Line(&'a [u8]),
    /// A line longer than [`MAX_COMMAND_LINE`] ended; its bytes were dropped.
    TooLong,
}

#[derive(Default)]
pub struct LineBuffer {
    buf: heapless::Vec<u8, MAX_COMMAND_LINE>,
    overflow: bool,
    /// Set after a line was handed out, so the next push starts afresh.
    taken: bool,
}

impl LineBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes bytes up to and including the next line end. Returns how
    /// many bytes were used and the event, if a line ended.
    pub fn push<'s>(&'s mut self, input: &[u8]) -> (usize, Option<LineEvent<'s>>) {
        if self.taken {
            self.buf.clear();
            self.taken = false;
        }
        let (used, ended) = match input.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (input.len(), false),
        };
        let content = &input[..if ended { used - 1 } else { used }];
        if !self.overflow && self.buf.extend_from_slice(content).is_err() {
            self.overflow = true;
            self.buf.clear();
        }
        if !ended {
            return (used, None);
        }
        self.taken = true;
        if std::mem::take(&mut self.overflow) {
            return (used, Some(LineEvent::TooLong));
        }
        let line = self.buf.strip_suffix(b"\r").unwrap_or(&self.buf);
        (used, Some(LineEvent::Line(line)))
    }

    /// True when a partial line is waiting for more bytes.
    pub fn is_partial(&self) -> bool {
        !self.taken && (!self.buf.is_empty() || self.overflow)
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
    fn partial_tracking() {
        let mut lb = LineBuffer::new();
        assert!(!lb.is_partial());
        lb.push(b"NO");
        assert!(lb.is_partial());
        lb.push(b"OP\n");
        assert!(!lb.is_partial());
    }
}
