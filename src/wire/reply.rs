//! Writing SMTP replies into a fixed-size output buffer.

use crate::limits::REPLY_BUFFER;
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
}
