//! A message with a line over the 998 octets RFC 5322 §2.1.1 allows
//! would be refused on arrival; `sendmail` sends such a body as
//! quoted-printable instead (RFC 2045 §6.7), which decodes to the same
//! bytes in every mail program: lines of at most 76 octets, soft breaks
//! `=` CRLF, `=`, controls, 8-bit bytes, white space at a line's end and
//! a dot at a line's start encoded. The header gets `MIME-Version:`,
//! `Content-Transfer-Encoding: quoted-printable` and, for a body with
//! 8-bit bytes and no `Content-Type:`, UTF-8 text. A message that already
//! complies is never changed; one whose long line is inside a multipart
//! body, or already encoded, is refused (its parts are not ours to
//! re-encode).

/// The longest line RFC 5322 allows, line end not counted.
pub const MAX_LINE: usize = 998;
/// Where a quoted-printable line is broken (the `=` makes 76).
const QP_LINE: usize = 75;

/// The header section (CRLF lines and the empty line) of a body to be
/// sent as quoted-printable, or why it cannot be.
pub fn header(header: &[u8], eight_bit: bool) -> Result<Vec<u8>, String> {
    let text = header.strip_suffix(b"\r\n").unwrap_or(header);
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for line in text.split_inclusive(|b| *b == b'\n') {
        match (line.first(), fields.last_mut()) {
            (Some(b' ' | b'\t'), Some(field)) => field.extend_from_slice(line),
            _ => fields.push(line.to_vec()),
        }
    }
    let name_of = |field: &[u8]| {
        let name = field.split(|b| *b == b':').next().unwrap_or(b"");
        String::from_utf8_lossy(name.trim_ascii()).to_ascii_lowercase()
    };
    let value_of = |field: &[u8]| {
        let value = field.splitn(2, |b| *b == b':').nth(1).unwrap_or(b"");
        String::from_utf8_lossy(value)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
    };
    let mut out = Vec::with_capacity(header.len() + 128);
    let (mut has_version, mut has_type) = (false, false);
    for field in &fields {
        match name_of(field).as_str() {
            "content-type" => {
                let value = value_of(field);
                if value.starts_with("multipart/") || value.starts_with("message/") {
                    return Err(format!(
                        "a line is longer than {MAX_LINE} octets inside a {} body: encode that part",
                        value.split(';').next().unwrap_or_default()
                    ));
                }
                has_type = true;
            }
            "content-transfer-encoding" => {
                let value = value_of(field);
                if !matches!(value.as_str(), "7bit" | "8bit" | "binary") {
                    return Err(format!(
                        "a line is longer than {MAX_LINE} octets in a body declared {value}"
                    ));
                }
                continue; // replaced below
            }
            "mime-version" => has_version = true,
            _ => {}
        }
        out.extend_from_slice(field);
    }
    if !has_version {
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    if !has_type && eight_bit {
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    Ok(out)
}

/// Turns a body as SMTP's DATA carries it (CRLF lines, dot-stuffed,
/// ending in `.` CRLF) into the same, quoted-printable, a piece at a time.
#[derive(Default)]
pub struct Encoder {
    column: usize,
    /// A space or tab not written yet: encoded if the line ends after it.
    white: Option<u8>,
    cr: bool,
    line_start: bool,
    /// A dot began the line: stuffing, or the end.
    start_dot: bool,
    ended: bool,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder {
            line_start: true,
            ..Encoder::default()
        }
    }

    /// Encodes `input`; what follows the final dot is ignored.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if self.ended {
                return;
            }
            if std::mem::take(&mut self.line_start) && b == b'.' {
                self.start_dot = true;
                continue;
            }
            if std::mem::take(&mut self.start_dot) && b == b'\r' {
                self.ended = true;
                self.end_line(out);
                out.extend_from_slice(b".\r\n");
                return;
            }
            if std::mem::take(&mut self.cr) {
                if b == b'\n' {
                    self.end_line(out);
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                    continue;
                }
                self.put(b'\r', true, out);
            }
            match b {
                b'\r' => self.cr = true,
                b' ' | b'\t' => {
                    self.flush_white(out);
                    self.white = Some(b);
                }
                _ => {
                    self.flush_white(out);
                    let encode = !(33..=126).contains(&b) || b == b'=';
                    self.put(b, encode, out);
                }
            }
        }
    }

    /// Whether the final dot was read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    fn flush_white(&mut self, out: &mut Vec<u8>) {
        if let Some(w) = self.white.take() {
            self.put(w, false, out);
        }
    }

    /// A line of the body ends: white space before it is encoded.
    fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.cr {
            self.cr = false;
            self.put(b'\r', true, out);
        }
        if let Some(w) = self.white.take() {
            self.put(w, true, out);
        }
        self.column = 0;
    }

    fn put(&mut self, b: u8, encode: bool, out: &mut Vec<u8>) {
        let width = if encode { 3 } else { 1 };
        if self.column + width > QP_LINE {
            out.extend_from_slice(b"=\r\n");
            self.column = 0;
        }
        // A dot at a line's start would need stuffing; a relay might
        // also take a lone one for the end.
        if encode || (self.column == 0 && b == b'.') {
            out.extend_from_slice(format!("={b:02X}").as_bytes());
            self.column += 3;
        } else {
            out.push(b);
            self.column += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = Encoder::new();
        // A byte at a time: pieces end anywhere.
        for b in body {
            e.feed(std::slice::from_ref(b), &mut out);
        }
        assert!(e.ended());
        out
    }

    /// Python's quopri reading, done here: soft breaks out, =XX decoded.
    fn decode(qp: &[u8]) -> Vec<u8> {
        let text = qp.strip_suffix(b".\r\n").unwrap();
        let mut out = Vec::new();
        let mut i = 0;
        while i < text.len() {
            match text[i] {
                b'=' if text[i + 1] == b'\r' => i += 3,
                b'=' => {
                    let hex = std::str::from_utf8(&text[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 3;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        out
    }

    #[test]
    fn long_lines_come_back_whole() {
        let long = "word = two  ".repeat(500) + "é end \t";
        let body = format!("{long}\r\n..dotted\r\n\r\nbare\rcr\r\n.\r\nafter");
        let qp = encode(body.as_bytes());
        for line in qp.split(|b| *b == b'\n') {
            assert!(line.len() <= 77, "{}", String::from_utf8_lossy(line));
            assert!(!line.starts_with(b".") || line == b".\r" || line.is_empty());
        }
        assert!(qp.ends_with(b"\r\n.\r\n"));
        let expected = format!("{long}\r\n.dotted\r\n\r\nbare\rcr\r\n");
        assert_eq!(String::from_utf8(decode(&qp)).unwrap(), expected);
    }

    #[test]
    fn the_header_says_quoted_printable() {
        let h = header(
            b"Subject: x\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
            true,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        );
        let h = header(
            b"MIME-Version: 1.0\r\nContent-Type: text/html;\r\n charset=latin1\r\n\r\n",
            true,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "MIME-Version: 1.0\r\nContent-Type: text/html;\r\n charset=latin1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        );
        let why = header(b"Content-Type: multipart/mixed; boundary=x\r\n\r\n", false).unwrap_err();
        assert!(why.contains("multipart/mixed"), "{why}");
        let why = header(b"Content-Transfer-Encoding: base64\r\n\r\n", false).unwrap_err();
        assert!(why.contains("declared base64"), "{why}");
    }
}
