//! Line editing that works on a plain serial terminal (picocom, screen,
//! PuTTY): the board's line is in raw mode, so the console echoes and
//! edits itself. Backspace and DEL erase, Ctrl-U clears the line, Ctrl-C
//! abandons it, Ctrl-D on an empty line ends input, the up and down arrows
//! walk the history. Only `\r`, backspaces and `ESC [K` are sent, which
//! every terminal understands. Without echo (input from a pipe, or a
//! terminal that edits lines itself) the same code just splits lines.

use embedded_io::{Read, Write};

/// Longest line kept; more is refused with a bell (an 80-column screen
/// shows the whole line in two rows).
pub const MAX_LINE: usize = 160;
const HISTORY: usize = 32;

pub enum Input {
    Line(String),
    /// Ctrl-C: the caller forgets what it was asking.
    Interrupt,
    /// End of input, or Ctrl-D on an empty line.
    End,
}

pub struct Editor<R> {
    reader: R,
    buf: [u8; 64],
    start: usize,
    end: usize,
    /// Echo and edit (raw terminal); otherwise only split lines.
    pub echo: bool,
    history: Vec<String>,
    /// A `\r` ended the last line: a `\n` right after it belongs to it.
    after_cr: bool,
    ended: bool,
}

impl<R: Read> Editor<R> {
    pub fn new(reader: R, echo: bool) -> Self {
        Editor {
            reader,
            buf: [0; 64],
            start: 0,
            end: 0,
            echo,
            history: Vec::new(),
            after_cr: false,
            ended: false,
        }
    }

    /// True once the input has ended.
    pub fn at_end(&self) -> bool {
        self.ended
    }

    fn byte(&mut self) -> Result<Option<u8>, R::Error> {
        if self.start == self.end {
            let n = self.reader.read(&mut self.buf)?;
            if n == 0 {
                self.ended = true;
                return Ok(None);
            }
            self.start = 0;
            self.end = n;
        }
        self.start += 1;
        Ok(Some(self.buf[self.start - 1]))
    }

    /// Shows `prompt` and reads one line. A `secret` line is not echoed
    /// and stays out of the history.
    pub fn read_line<W: Write<Error = R::Error>>(
        &mut self,
        out: &mut W,
        prompt: &str,
        secret: bool,
    ) -> Result<Input, R::Error> {
        out.write_all(prompt.as_bytes())?;
        out.flush()?;
        let show = self.echo && !secret;
        let mut line: Vec<u8> = Vec::new();
        // Position in the history while walking it with the arrows.
        let mut walk = self.history.len();
        loop {
            let Some(b) = self.byte()? else {
                return Ok(Input::End);
            };
            let after_cr = std::mem::take(&mut self.after_cr);
            match b {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    if self.echo {
                        out.write_all(b"\r\n")?;
                    }
                    let text = String::from_utf8_lossy(&line).into_owned();
                    if !secret && !text.trim().is_empty() && self.history.last() != Some(&text) {
                        if self.history.len() == HISTORY {
                            self.history.remove(0);
                        }
                        self.history.push(text.clone());
                    }
                    return Ok(Input::Line(text));
                }
                0x7f | 0x08 => {
                    if line.is_empty() {
                        continue;
                    }
                    // A whole UTF-8 character.
                    while line.pop().is_some_and(|c| c & 0xC0 == 0x80) {}
                    if show {
                        out.write_all(b"\x08 \x08")?;
                    }
                }
                0x03 => {
                    if self.echo {
                        out.write_all(b"^C\r\n")?;
                    }
                    return Ok(Input::Interrupt);
                }
                0x04 if line.is_empty() => {
                    if self.echo {
                        out.write_all(b"\r\n")?;
                    }
                    return Ok(Input::End);
                }
                0x15 => {
                    line.clear();
                    if show {
                        redraw(out, prompt, &line)?;
                    }
                }
                0x1b => {
                    if let Some(arrow) = self.escape()? {
                        if secret {
                            continue;
                        }
                        match arrow {
                            b'A' if walk > 0 => walk -= 1,
                            b'B' if walk < self.history.len() => walk += 1,
                            _ => continue,
                        }
                        line = self
                            .history
                            .get(walk)
                            .map(|s| s.as_bytes().to_vec())
                            .unwrap_or_default();
                        if show {
                            redraw(out, prompt, &line)?;
                        }
                    }
                }
                b if b >= 0x20 => {
                    if line.len() >= MAX_LINE {
                        if self.echo {
                            out.write_all(b"\x07")?;
                        }
                        continue;
                    }
                    line.push(b);
                    if show {
                        out.write_all(&[b])?;
                    }
                }
                _ => {} // other control characters, tab
            }
            out.flush()?;
        }
    }

    /// Reads the rest of an escape sequence; the final letter of `ESC [ x`
    /// or `ESC O x`, or `None` for anything else.
    fn escape(&mut self) -> Result<Option<u8>, R::Error> {
        match self.byte()? {
            Some(b'[') | Some(b'O') => {}
            _ => return Ok(None),
        }
        // Parameters (digits, ';') until the final byte.
        loop {
            match self.byte()? {
                None => return Ok(None),
                Some(b) if (0x40..=0x7e).contains(&b) => return Ok(Some(b)),
                Some(_) => {}
            }
        }
    }
}

fn redraw<W: Write>(out: &mut W, prompt: &str, line: &[u8]) -> Result<(), W::Error> {
    out.write_all(b"\r")?;
    out.write_all(prompt.as_bytes())?;
    out.write_all(line)?;
    out.write_all(b"\x1b[K")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], echo: bool) -> (Vec<String>, String) {
        let mut editor = Editor::new(input, echo);
        let mut out = Vec::new();
        let mut got = Vec::new();
        loop {
            match editor.read_line(&mut out, "> ", false).unwrap() {
                Input::Line(l) => got.push(l),
                Input::Interrupt => got.push("<C-c>".into()),
                Input::End => break,
            }
        }
        (got, String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn serial_terminal_editing() {
        // Enter as CR (picocom), CRLF, and LF; backspace, DEL, Ctrl-U, Ctrl-C.
        let (got, screen) = lines(
            b"statx\x7fus\rhelp\r\nuser lisq\x08t\nabc\x15quit\rhalf\x03\x04",
            true,
        );
        assert_eq!(got, ["status", "help", "user list", "quit", "<C-c>"]);
        assert!(screen.contains("statx\x08 \x08us\r\n"), "{screen:?}");
        assert!(screen.contains("\r> \x1b[Kquit"), "{screen:?}");
        assert!(screen.contains("half^C\r\n"), "{screen:?}");
    }

    #[test]
    fn history_with_arrow_keys() {
        let (got, screen) = lines(
            b"one\rtwo\r\x1b[A\x1b[A\r\x1b[A\x1b[B\x1b[B\rx\x1bOA\r",
            true,
        );
        assert_eq!(got, ["one", "two", "one", "", "one"]);
        assert!(screen.contains("\r> two\x1b[K\r> one\x1b[K"), "{screen:?}");
    }

    #[test]
    fn secrets_are_not_echoed_or_remembered() {
        let mut editor = Editor::new(&b"hunter2\r\x1b[A\r"[..], true);
        let mut out = Vec::new();
        let Input::Line(pw) = editor.read_line(&mut out, "Password: ", true).unwrap() else {
            panic!()
        };
        assert_eq!(pw, "hunter2");
        let Input::Line(next) = editor.read_line(&mut out, "> ", false).unwrap() else {
            panic!()
        };
        assert_eq!(next, "");
        assert!(!String::from_utf8_lossy(&out).contains("hunter2"));
    }

    #[test]
    fn without_echo_only_lines_and_no_output_but_prompts() {
        let (got, screen) = lines(b"user add alice\nsecret\n", false);
        assert_eq!(got, ["user add alice", "secret"]);
        assert_eq!(screen, "> > > ");
    }

    #[test]
    fn overlong_lines_are_capped() {
        let long = vec![b'a'; MAX_LINE + 50];
        let mut input = long.clone();
        input.push(b'\n');
        let (got, _) = lines(&input, true);
        assert_eq!(got[0].len(), MAX_LINE);
    }
}
