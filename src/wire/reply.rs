//! SMTP replies both ways: writing ours into a fixed-size output buffer,
//! and reading the other side's (multi-line, bounded in length) when we
//! are the client.

use crate::limits::{MAX_REPLY_LINES, REPLY_BUFFER};
use crate::wire::line::{LineBuffer, LineEvent};
use core::fmt::Write;
use core::ops::{Deref, DerefMut};

/// Replies waiting to be sent; pipelined commands' replies are batched
/// here and flushed together (RFC 2920). The refusals among them are kept
/// as values too, for the statistics.
#[derive(Default)]
pub struct Replies {
    text: heapless::String<REPLY_BUFFER>,
    refusals: Vec<(u16, Option<heapless::String<16>>)>,
}

impl Replies {
    pub fn new() -> Self {
        Self::default()
    }

    /// The refusals (4xx/5xx: code and enhanced code) written since the
    /// last call.
    pub fn take_refusals(&mut self) -> Vec<(u16, Option<heapless::String<16>>)> {
        std::mem::take(&mut self.refusals)
    }

    fn note(&mut self, code: u16, enhanced: Option<&str>) {
        if (400..600).contains(&code) {
            let enhanced = enhanced.and_then(|e| heapless::String::try_from(e).ok());
            self.refusals.push((code, enhanced));
        }
    }
}

impl core::fmt::Display for Replies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Deref for Replies {
    type Target = heapless::String<REPLY_BUFFER>;

    fn deref(&self) -> &Self::Target {
        &self.text
    }
}

impl DerefMut for Replies {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.text
    }
}

/// Room that must be left before handling another command: the longest
/// single reply (EHLO, HELP) fits in it.
pub const REPLY_HEADROOM: usize = 512;

/// `code enhanced text` on one line. Enhanced codes are left out only where
/// RFC 2034 says so (greeting, HELO/EHLO), by passing `None`.
pub fn push(out: &mut Replies, code: u16, enhanced: Option<&str>, text: &str) {
    push_fmt(out, code, enhanced, format_args!("{text}"));
}

/// [`push`] with text made on the way, without a buffer of its own.
pub fn push_fmt(out: &mut Replies, code: u16, enhanced: Option<&str>, text: core::fmt::Arguments) {
    out.note(code, enhanced);
    let _ = match enhanced {
        Some(e) => write!(out.text, "{code} {e} {text}\r\n"),
        None => write!(out.text, "{code} {text}\r\n"),
    };
}

/// A multi-line reply: every line but the last uses `code-`.
pub fn push_lines(out: &mut Replies, code: u16, lines: &[&str]) {
    out.note(code, None);
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        let _ = write!(out.text, "{code}{sep}{line}\r\n");
    }
}

/// A whole reply of the other side: its code and every line as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// Every line, for the log and for bounces.
    pub fn text(&self) -> String {
        self.lines.join(" / ")
    }

    /// The enhanced status code (RFC 3463) after the code, if there is one.
    pub fn enhanced(&self) -> Option<&str> {
        let first = self.lines.first()?.get(4..)?;
        let token = first.split_whitespace().next()?;
        let mut parts = token.split('.');
        let class = parts.next()?;
        let rest: Vec<&str> = parts.collect();
        let digits = |p: &str, max: usize| {
            !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
        };
        let valid = matches!(class, "2" | "4" | "5")
            && rest.len() == 2
            && rest.iter().all(|p| digits(p, 3));
        valid.then_some(token)
    }

    /// Whether an EHLO reply names `keyword` as an extension.
    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|l| {
            l.get(4..)
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
        })
    }

    /// The SASL mechanisms an EHLO reply offers, in capitals.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        self.lines
            .iter()
            .skip(1)
            .filter_map(|l| {
                let mut words = l.get(4..)?.split_whitespace();
                let first = words.next()?;
                first
                    .eq_ignore_ascii_case("AUTH")
                    .then(|| words.map(|w| w.to_ascii_uppercase()).collect::<Vec<_>>())
            })
            .flatten()
            .collect()
    }
}

/// Why what the other side sent is not a reply we take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    LineTooLong,
    NotAReply(String),
    TooManyLines,
}

impl core::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReplyError::LineTooLong => f.write_str("reply line too long"),
            ReplyError::NotAReply(line) => write!(f, "not an SMTP reply: {line:?}"),
            ReplyError::TooManyLines => f.write_str("reply too long"),
        }
    }
}

/// Reads replies from a byte stream in pieces of any size; a reply holds
/// at most [`MAX_REPLY_LINES`] lines of at most a command line each.
#[derive(Default)]
pub struct ReplyParser {
    lines: LineBuffer,
    partial: Vec<String>,
}

impl ReplyParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes bytes up to the end of the next whole reply. Returns how
    /// many bytes were used and the reply, if one ended.
    pub fn push(&mut self, input: &[u8]) -> (usize, Option<Result<Reply, ReplyError>>) {
        let mut used = 0;
        while used < input.len() {
            let (n, event) = self.lines.push(&input[used..]);
            used += n;
            let line = match event {
                None => continue,
                Some(LineEvent::TooLong) => {
                    return (used, Some(self.fail(ReplyError::LineTooLong)))
                }
                Some(LineEvent::Line(l)) => String::from_utf8_lossy(l).into_owned(),
            };
            if let Some(done) = self.line(line) {
                return (used, Some(done));
            }
        }
        (used, None)
    }

    /// Takes one line; a result once the reply ends or cannot be one.
    fn line(&mut self, line: String) -> Option<Result<Reply, ReplyError>> {
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (200..600).contains(c));
        let Some(code) = code else {
            return Some(self.fail(ReplyError::NotAReply(line)));
        };
        let last = line.as_bytes().get(3) != Some(&b'-');
        self.partial.push(line);
        if last {
            let lines = std::mem::take(&mut self.partial);
            return Some(Ok(Reply { code, lines }));
        }
        if self.partial.len() >= MAX_REPLY_LINES {
            return Some(self.fail(ReplyError::TooManyLines));
        }
        None
    }

    fn fail(&mut self, error: ReplyError) -> Result<Reply, ReplyError> {
        self.partial.clear();
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_kept_as_values() {
        let mut out = Replies::new();
        push(&mut out, 250, Some("2.1.0"), "Sender OK");
        push(&mut out, 550, Some("5.1.1"), "No such user here");
        push_lines(&mut out, 250, &["mx", "SIZE 1"]);
        push(&mut out, 421, None, "Too busy");
        let refusals = out.take_refusals();
        assert_eq!(refusals.len(), 2);
        assert_eq!(refusals[0].0, 550);
        assert_eq!(refusals[0].1.as_deref(), Some("5.1.1"));
        assert_eq!(refusals[1], (421, None));
        assert!(out.take_refusals().is_empty());
        assert!(out.starts_with("250 2.1.0 Sender OK\r\n550 5.1.1"));
    }
    /// Every reply in `input`, the input cut at every possible place.
    fn parse_split(input: &[u8]) -> Vec<Result<Reply, ReplyError>> {
        let whole = parse_in(input, &[]);
        for cut in 1..input.len() {
            assert_eq!(parse_in(input, &[cut]), whole, "cut at {cut}");
        }
        whole
    }

    fn parse_in(input: &[u8], cuts: &[usize]) -> Vec<Result<Reply, ReplyError>> {
        let mut parser = ReplyParser::new();
        let mut found = Vec::new();
        let mut start = 0;
        for end in cuts.iter().copied().chain([input.len()]) {
            let mut piece = &input[start..end];
            while !piece.is_empty() {
                let (used, reply) = parser.push(piece);
                piece = &piece[used..];
                found.extend(reply);
            }
            start = end;
        }
        found
    }

    #[test]
    fn multi_line_reply_in_any_pieces() {
        let found = parse_split(b"250-mx.test\r\n250-SIZE 1000\r\n250 STARTTLS\r\n354 go\n");
        assert_eq!(found.len(), 2);
        let ehlo = found[0].as_ref().unwrap();
        assert_eq!(ehlo.code, 250);
        assert_eq!(ehlo.text(), "250-mx.test / 250-SIZE 1000 / 250 STARTTLS");
        assert_eq!(found[1].as_ref().unwrap().code, 354);
    }

    #[test]
    fn one_reply_at_a_time() {
        let mut parser = ReplyParser::new();
        let input = b"220 hi\r\n250 ok\r\n";
        let (used, reply) = parser.push(input);
        assert_eq!(used, 8);
        assert_eq!(reply.unwrap().unwrap().code, 220);
    }

    #[test]
    fn what_is_not_a_reply_is_refused() {
        assert_eq!(
            parse_split(b"hello\r\n"),
            [Err(ReplyError::NotAReply("hello".into()))]
        );
        // 1xx is no SMTP reply.
        assert!(parse_split(b"199 x\r\n")[0].is_err());
        let long = format!("250 {}\r\n", "x".repeat(crate::limits::MAX_COMMAND_LINE));
        assert_eq!(parse_split(long.as_bytes()), [Err(ReplyError::LineTooLong)]);
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES);
        assert_eq!(
            parse_split(many.as_bytes()),
            [Err(ReplyError::TooManyLines)]
        );
        let most = format!("{}250 x\r\n", "250-x\r\n".repeat(MAX_REPLY_LINES - 1));
        assert!(parse_split(most.as_bytes())[0].is_ok());
    }

    #[test]
    fn enhanced_codes() {
        let reply = |line: &str| Reply {
            code: 550,
            lines: vec![line.into()],
        };
        assert_eq!(reply("550 5.1.1 no such user").enhanced(), Some("5.1.1"));
        assert_eq!(reply("451 4.7.100 later").enhanced(), Some("4.7.100"));
        assert_eq!(reply("550 no such user").enhanced(), None);
        assert_eq!(reply("550 3.1.1 x").enhanced(), None);
        assert_eq!(reply("550 5.1 x").enhanced(), None);
        assert_eq!(reply("550").enhanced(), None);
    }

    #[test]
    fn ehlo_keywords() {
        let r = Reply {
            code: 250,
            lines: vec![
                "250-mx.test".into(),
                "250-SIZE 1000".into(),
                "250-AUTH LOGIN plain".into(),
                "250 STARTTLS".into(),
            ],
        };
        assert!(r.has_keyword("starttls") && r.has_keyword("SIZE"));
        assert!(!r.has_keyword("mx.test"));
        assert_eq!(r.auth_mechanisms(), ["LOGIN", "PLAIN"]);
    }
}
