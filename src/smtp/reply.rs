//! Writing SMTP replies into a fixed-size output buffer.

use crate::limits::REPLY_BUFFER;
use core::fmt::Write;

/// Replies waiting to be sent; pipelined commands' replies are batched
/// here and flushed together (RFC 2920).
pub type Replies = heapless::String<REPLY_BUFFER>;

/// Room that must be left before handling another command: the longest
/// single reply (EHLO, HELP) fits in it.
pub const REPLY_HEADROOM: usize = 512;

/// `code enhanced text` on one line. Enhanced codes are left out only where
/// RFC 2034 says so (greeting, HELO/EHLO), by passing `None`.
pub fn push(out: &mut Replies, code: u16, enhanced: Option<&str>, text: &str) {
    let _ = match enhanced {
        Some(e) => write!(out, "{code} {e} {text}\r\n"),
        None => write!(out, "{code} {text}\r\n"),
    };
}

/// A multi-line reply: every line but the last uses `code-`.
pub fn push_lines(out: &mut Replies, code: u16, lines: &[&str]) {
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        let _ = write!(out, "{code}{sep}{line}\r\n");
    }
}
