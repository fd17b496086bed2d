//! The header section on its way into the store, rewritten as a stream:
//! a client's `Return-Path:` is dropped (RFC 5321 §4.4: only the final
//! delivery adds it, and ours is on top), a member's message gets the
//! `Date:`, `Message-ID:` and `From:` it lacks (RFC 6409 §8), and what
//! readers could take two ways is noted for the strict check of members'
//! mail: bare CR or LF, lines without a colon, odd field names. An
//! `Authentication-Results:` that claims our authserv-id is dropped too
//! (RFC 8601 §5): only we may say what we found.

use crate::limits::AUTHSERV_ID_LOOKAHEAD;

/// The fields to add when missing, complete with their CRLF.
pub struct Missing {
    pub date: String,
    pub message_id: String,
    pub from: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// At the start of a line of the header section.
    LineStart,
    /// A CR at the start of a line: the blank line, if LF follows.
    BlankCr,
    /// Reading a field name.
    Name,
    /// Inside a field's value (or its continuation lines).
    Value,
    /// A CR inside a value: a line end if LF follows.
    ValueCr,
    /// Past the header section.
    Body,
}

/// Longest field name held to be matched; longer ones are passed on.
const NAME: usize = 32;

pub struct HeaderFilter {
    position: Position,
    name: heapless::Vec<u8, NAME>,
    /// The name did not fit and was passed on as it came.
    name_passed: bool,
    /// The current field (a `Return-Path:`, or an
    /// `Authentication-Results:` in our name) is being left out.
    dropping: bool,
    /// Our authserv-id.
    authserv_id: Box<str>,
    /// The start of an `Authentication-Results:` field, held back until
    /// its authserv-id has been read.
    held: Option<Vec<u8>>,
    first_line: bool,
    missing: Option<Missing>,
    seen_date: bool,
    seen_message_id: bool,
    seen_from: bool,
    malformed: Option<&'static str>,
}

impl HeaderFilter {
    /// `missing`: for members' mail, the fields to add where absent;
    /// `authserv_id`: ours (the host name).
    pub fn new(missing: Option<Missing>, authserv_id: &str) -> Self {
        HeaderFilter {
            position: Position::LineStart,
            name: heapless::Vec::new(),
            name_passed: false,
            dropping: false,
            authserv_id: authserv_id.into(),
            held: None,
            first_line: true,
            missing,
            seen_date: false,
            seen_message_id: false,
            seen_from: false,
            malformed: None,
        }
    }

    /// Why the header section is ambiguous, if it is.
    pub fn malformed(&self) -> Option<&'static str> {
        self.malformed
    }

    fn flag(&mut self, why: &'static str) {
        self.malformed.get_or_insert(why);
    }

    /// Appends the rewritten form of `bytes` (decoded message, CRLF lines)
    /// to `out`. `bare_lf_at`: where in `bytes` the decoder stored a bare
    /// LF as CRLF (the first one only).
    pub fn feed(&mut self, bytes: &[u8], bare_lf_at: Option<usize>, out: &mut Vec<u8>) {
        for (i, &b) in bytes.iter().enumerate() {
            if bare_lf_at == Some(i) && self.position != Position::Body {
                self.flag("bare LF");
            }
            match self.position {
                Position::Body => {
                    out.extend_from_slice(&bytes[i..]);
                    return;
                }
                Position::LineStart => match b {
                    b'\r' => self.position = Position::BlankCr,
                    b' ' | b'\t' => {
                        if self.first_line {
                            self.flag("continuation line first");
                        }
                        self.position = Position::Value;
                        self.value_byte(b, out);
                    }
                    _ => {
                        self.decide_held(out);
                        self.dropping = false;
                        self.name.clear();
                        self.name_passed = false;
                        self.position = Position::Name;
                        self.name_byte(b, out);
                    }
                },
                Position::BlankCr => {
                    self.decide_held(out);
                    if b == b'\n' {
                        self.add_missing(out);
                        out.extend_from_slice(b"\r\n");
                    } else {
                        self.flag("bare CR");
                        out.push(b'\r');
                        out.push(b);
                    }
                    self.position = Position::Body;
                }
                Position::Name => self.name_byte(b, out),
                Position::Value => self.value_byte(b, out),
                Position::ValueCr => {
                    if b == b'\n' {
                        self.emit(b"\r\n", out);
                        self.first_line = false;
                        self.position = Position::LineStart;
                    } else {
                        self.flag("bare CR");
                        self.emit(b"\r", out);
                        self.position = Position::Value;
                        self.value_byte(b, out);
                    }
                }
            }
        }
    }

    fn value_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        if b == b'\r' {
            self.position = Position::ValueCr;
        } else {
            self.emit(&[b], out);
        }
    }

    /// Passes on bytes of the current field, holds them, or leaves them out.
    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.dropping {
            return;
        }
        match &mut self.held {
            Some(held) => {
                held.extend_from_slice(bytes);
                // The authserv-id comes first; past this much, what we
                // hold decides.
                if held.len() >= AUTHSERV_ID_LOOKAHEAD {
                    self.decide_held(out);
                }
            }
            None => out.extend_from_slice(bytes),
        }
    }

    /// A held `Authentication-Results:` field is dropped if it claims our
    /// authserv-id, and passed on if not.
    fn decide_held(&mut self, out: &mut Vec<u8>) {
        if let Some(held) = self.held.take() {
            if crate::dmarc::header::claims_authserv_id(&held, &self.authserv_id) {
                self.dropping = true;
            } else {
                out.extend_from_slice(&held);
            }
        }
    }

    fn name_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            b':' => {
                if self.name_passed {
                    out.push(b);
                } else {
                    let name = &self.name[..];
                    let is = |field: &str| name.eq_ignore_ascii_case(field.as_bytes());
                    self.seen_date |= is("date");
                    self.seen_message_id |= is("message-id");
                    self.seen_from |= is("from");
                    self.dropping = is("return-path");
                    if is("authentication-results") {
                        let mut held = Vec::with_capacity(AUTHSERV_ID_LOOKAHEAD);
                        held.extend_from_slice(name);
                        held.push(b);
                        self.held = Some(held);
                    } else if !self.dropping {
                        out.extend_from_slice(name);
                        out.push(b);
                    }
                }
                self.position = Position::Value;
            }
            // RFC 5322 §3.6.8: printable ASCII but the colon.
            33..=126 => {
                if self.name_passed {
                    out.push(b);
                } else if self.name.push(b).is_err() {
                    out.extend_from_slice(&self.name);
                    out.push(b);
                    self.name_passed = true;
                }
            }
            _ => {
                // Not a field: the header section ends here for most
                // readers, but not for all.
                self.flag(if b == b'\r' {
                    "line without a colon"
                } else {
                    "bad field name"
                });
                if !self.name_passed {
                    out.extend_from_slice(&self.name);
                }
                out.push(b);
                self.position = Position::Body;
            }
        }
    }

    /// The fields a member's message lacks, at the end of its header section.
    fn add_missing(&mut self, out: &mut Vec<u8>) {
        let Some(missing) = self.missing.take() else {
            return;
        };
        for (seen, field) in [
            (self.seen_date, &missing.date),
            (self.seen_message_id, &missing.message_id),
            (self.seen_from, &missing.from),
        ] {
            if !seen {
                out.extend_from_slice(field.as_bytes());
            }
        }
    }

    /// Ends the message: a header section without a blank line after it
    /// still gets its missing fields.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self.position {
            Position::Body => return,
            Position::Name => {
                self.flag("line without a colon");
                if !self.name_passed {
                    out.extend_from_slice(&self.name);
                }
                out.extend_from_slice(b"\r\n");
            }
            Position::Value | Position::ValueCr => {
                if self.position == Position::ValueCr {
                    self.flag("bare CR");
                }
                self.emit(b"\r\n", out);
                self.decide_held(out);
            }
            Position::BlankCr => {
                self.flag("bare CR");
                out.push(b'\r');
            }
            Position::LineStart => {}
        }
        self.add_missing(out);
        self.position = Position::Body;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> Missing {
        Missing {
            date: "Date: D\r\n".into(),
            message_id: "Message-ID: <m@h>\r\n".into(),
            from: "From: <alice@h>\r\n".into(),
        }
    }

    /// The rewritten message and the verdict, the same for every split.
    fn filter(message: &[u8], add: bool) -> (String, Option<&'static str>) {
        let mut results = (1..=5).chain([message.len().max(1)]).map(|split| {
            let mut f = HeaderFilter::new(add.then(missing), "mx.ours.example");
            let mut out = Vec::new();
            for part in message.chunks(split) {
                f.feed(part, None, &mut out);
            }
            f.finish(&mut out);
            (String::from_utf8(out).unwrap(), f.malformed())
        });
        let first = results.next().unwrap();
        for other in results {
            assert_eq!(other, first);
        }
        first
    }

    #[test]
    fn drops_return_path_with_its_continuations() {
        let (out, bad) = filter(
            b"Return-Path: <a@x>\r\n  (more)\r\nSubject: s\r\nreturn-path:<b@y>\r\n\r\nReturn-Path: body\r\n",
            false,
        );
        assert_eq!(out, "Subject: s\r\n\r\nReturn-Path: body\r\n");
        assert_eq!(bad, None);
    }

    #[test]
    fn drops_authentication_results_in_our_name_only() {
        let (out, bad) = filter(
            b"Authentication-Results: mx.ours.example; spf=pass\r\n\tdkim=pass\r\n\
              Authentication-Results: mx.other.example; spf=fail\r\n\
              authentication-results: (forged) MX.Ours.Example ; dmarc=pass\r\n\
              Subject: s\r\n\r\nAuthentication-Results: mx.ours.example; body\r\n",
            false,
        );
        assert_eq!(
            out,
            "Authentication-Results: mx.other.example; spf=fail\r\nSubject: s\r\n\r\n\
             Authentication-Results: mx.ours.example; body\r\n"
        );
        assert_eq!(bad, None);
        // Longer than what is held to find the id: kept whole when not ours,
        // dropped whole when ours; also at the end of a message.
        let long = format!(
            "Authentication-Results: other.example; dkim=pass{}\r\nSubject: s\r\n\r\n",
            " header.d=x".repeat(100)
        );
        assert_eq!(filter(long.as_bytes(), false).0, long);
        let ours = long.replace("other.example", "mx.ours.example");
        assert_eq!(filter(ours.as_bytes(), false).0, "Subject: s\r\n\r\n");
        let (out, _) = filter(
            b"Subject: s\r\nAuthentication-Results: mx.ours.example; x",
            false,
        );
        assert_eq!(out, "Subject: s\r\n");
    }

    #[test]
    fn adds_what_a_members_message_lacks() {
        let (out, _) = filter(b"from: Alice <alice@h>\r\nSubject: s\r\n\r\nbody\r\n", true);
        assert_eq!(
            out,
            "from: Alice <alice@h>\r\nSubject: s\r\nDate: D\r\nMessage-ID: <m@h>\r\n\r\nbody\r\n"
        );
        let (out, _) = filter(b"Date: x\r\nMessage-Id: <y>\r\nFrom: a@h\r\n\r\n", true);
        assert_eq!(out, "Date: x\r\nMessage-Id: <y>\r\nFrom: a@h\r\n\r\n");
        let (out, _) = filter(b"Subject: no body", true);
        assert_eq!(
            out,
            "Subject: no body\r\nDate: D\r\nMessage-ID: <m@h>\r\nFrom: <alice@h>\r\n"
        );
        let (out, _) = filter(b"", true);
        assert_eq!(out, "Date: D\r\nMessage-ID: <m@h>\r\nFrom: <alice@h>\r\n");
        let (out, _) = filter(b"Subject: s\r\n\r\n", false);
        assert_eq!(out, "Subject: s\r\n\r\n");
    }

    #[test]
    fn notes_what_readers_could_take_two_ways() {
        for (message, why) in [
            (&b"X-A: a\rFrom: bob@x\r\n\r\n"[..], "bare CR"),
            (
                b"Subject: s\r\nnotafield\r\nFrom: bob@x\r\n\r\n",
                "line without a colon",
            ),
            (b"From : bob@x\r\n\r\n", "bad field name"),
            (b" From: bob@x\r\n\r\n", "continuation line first"),
            (b"Subject: s\r\r\n\r\n", "bare CR"),
            (b"Subject: s\r\n\rX\r\n", "bare CR"),
        ] {
            assert_eq!(filter(message, true).1, Some(why), "{message:?}");
        }
        let long_name = format!(
            "X-{}: v\r\nFrom: a@x\r\n\r\nbody\rwith\nodd ends",
            "n".repeat(40)
        );
        let (out, bad) = filter(long_name.as_bytes(), false);
        assert_eq!(out, long_name);
        assert_eq!(bad, None);
    }

    #[test]
    fn a_bare_lf_counts_only_in_the_header_section() {
        let mut f = HeaderFilter::new(None, "mx.ours.example");
        let mut out = Vec::new();
        f.feed(b"A: b\r\n\r\nx\r\n", Some(10), &mut out);
        assert_eq!(f.malformed(), None);
        f.feed(b"", None, &mut out);
        let mut f = HeaderFilter::new(None, "mx.ours.example");
        f.feed(b"A: b\r\nC: d\r\n\r\n", Some(4), &mut out);
        assert_eq!(f.malformed(), Some("bare LF"));
    }
}
