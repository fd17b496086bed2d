//! Canonicalization (RFC 6376 §3.4): header fields one at a time, the body
//! as a stream hashed as it arrives, in chunks split anywhere.

use ring::digest;

/// How a header field or the body is prepared before hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canon {
    /// Unchanged, except that trailing empty body lines are dropped.
    Simple,
    /// Whitespace runs folded to one space, trailing whitespace dropped;
    /// header names lowercased and folded lines unfolded.
    Relaxed,
}

impl Canon {
    pub fn name(self) -> &'static str {
        match self {
            Canon::Simple => "simple",
            Canon::Relaxed => "relaxed",
        }
    }

    fn parse(text: &str) -> Option<Canon> {
        match text {
            "simple" => Some(Canon::Simple),
            "relaxed" => Some(Canon::Relaxed),
            _ => None,
        }
    }

    /// A `c=` value: `header/body`, or `header` alone (the body then simple).
    pub fn parse_pair(text: &str) -> Option<(Canon, Canon)> {
        match text.split_once('/') {
            Some((header, body)) => Some((Canon::parse(header)?, Canon::parse(body)?)),
            None => Some((Canon::parse(text)?, Canon::Simple)),
        }
    }
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Appends one header field (`raw`: name, colon, value, with any folding,
/// its final CRLF included or not) canonicalized, always ending in CRLF.
pub fn header_field(canon: Canon, raw: &[u8], out: &mut Vec<u8>) {
    let raw = raw.strip_suffix(b"\r\n").unwrap_or(raw);
    match canon {
        Canon::Simple => out.extend_from_slice(raw),
        Canon::Relaxed => {
            let (name, value) = match raw.iter().position(|&b| b == b':') {
                Some(colon) => (&raw[..colon], &raw[colon + 1..]),
                None => (raw, &raw[raw.len()..]),
            };
            let name = name.trim_ascii_end();
            out.extend(name.iter().map(u8::to_ascii_lowercase));
            out.push(b':');
            // Unfold (drop CR and LF), fold each WSP run to one space,
            // and drop the whitespace at both ends of the value.
            let mut space = false;
            let mut started = false;
            for &b in value {
                match b {
                    b'\r' | b'\n' => {}
                    b if is_wsp(b) => space = true,
                    b => {
                        if space && started {
                            out.push(b' ');
                        }
                        space = false;
                        started = true;
                        out.push(b);
                    }
                }
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Canonical bytes collected before they go to the digest, so hashing a
/// message byte by byte costs no more digest calls than hashing it whole.
const HASH_BATCH: usize = 256;

/// The body hash (`bh=`) of one canonicalization, computed as the body
/// streams past in chunks of any size. Only CRLF ends a line: a lone CR or
/// LF is an ordinary byte (the message is stored with CRLF line ends).
///
/// Trailing empty lines are held back as a count, not bytes, until a
/// later line shows they were not trailing, so memory stays fixed.
pub struct BodyHasher {
    canon: Canon,
    /// `l=`: canonical bytes hashed at most.
    limit: Option<u64>,
    context: digest::Context,
    batch: [u8; HASH_BATCH],
    batched: usize,
    /// Canonical bytes produced (hashed or past the limit).
    produced: u64,
    /// Empty lines seen since the last line with content.
    held_empty_lines: u64,
    /// The previous byte was a CR that may start a CRLF.
    cr: bool,
    /// Relaxed: whitespace seen since the last content byte of this line.
    wsp: bool,
    /// The current line has produced content.
    line_content: bool,
}

impl BodyHasher {
    /// A hasher with no length limit (for signing).
    pub fn new(canon: Canon) -> BodyHasher {
        BodyHasher::with_limit(canon, None)
    }

    /// A hasher that hashes at most `limit` canonical bytes (`l=`).
    pub fn with_limit(canon: Canon, limit: Option<u64>) -> BodyHasher {
        BodyHasher {
            canon,
            limit,
            context: digest::Context::new(&digest::SHA256),
            batch: [0; HASH_BATCH],
            batched: 0,
            produced: 0,
            held_empty_lines: 0,
            cr: false,
            wsp: false,
            line_content: false,
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        for &b in chunk {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        if self.cr {
            self.cr = false;
            if b == b'\n' {
                self.end_line();
                return;
            }
            self.content(b'\r');
        }
        match b {
            b'\r' => self.cr = true,
            b if self.canon == Canon::Relaxed && is_wsp(b) => self.wsp = true,
            b => self.content(b),
        }
    }

    fn content(&mut self, b: u8) {
        if !self.line_content {
            // The empty lines before this one were not trailing after all.
            while self.held_empty_lines > 0 {
                self.emit(b"\r\n");
                self.held_empty_lines -= 1;
            }
            self.line_content = true;
        }
        // Relaxed: a run inside a line, or at its start, is one space; a
        // run at its end never gets here.
        if self.wsp {
            self.emit(b" ");
            self.wsp = false;
        }
        self.emit(&[b]);
    }

    fn end_line(&mut self) {
        self.wsp = false;
        if self.line_content {
            self.emit(b"\r\n");
            self.line_content = false;
        } else {
            self.held_empty_lines += 1;
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        let mut bytes = bytes;
        if let Some(limit) = self.limit {
            let room = limit.saturating_sub(self.produced);
            let take = (bytes.len() as u64).min(room) as usize;
            self.produced += bytes.len() as u64;
            bytes = &bytes[..take];
        } else {
            self.produced += bytes.len() as u64;
        }
        for &b in bytes {
            if self.batched == HASH_BATCH {
                self.context.update(&self.batch);
                self.batched = 0;
            }
            self.batch[self.batched] = b;
            self.batched += 1;
        }
    }

    /// The digest of the canonical body (its first `l=` bytes, if limited).
    pub fn finish(mut self) -> BodyHash {
        if self.cr {
            self.cr = false;
            self.content(b'\r');
        }
        if self.line_content {
            // A last line without its CRLF gets one.
            self.emit(b"\r\n");
        } else if self.produced == 0 && self.canon == Canon::Simple {
            // An empty simple body is one CRLF (RFC 6376 §3.4.3).
            self.emit(b"\r\n");
        }
        self.context.update(&self.batch[..self.batched]);
        let digest = self.context.finish();
        let mut sha256 = [0; 32];
        sha256.copy_from_slice(digest.as_ref());
        BodyHash {
            sha256,
            canonical_len: self.produced,
        }
    }
}

/// What a finished [`BodyHasher`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyHash {
    pub sha256: [u8; 32],
    /// The whole canonical body's length (past any `l=` limit too), so a
    /// verifier can tell a body shorter than its `l=`.
    pub canonical_len: u64,
}
