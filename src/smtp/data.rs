//! A message on its way in: the DATA decoder's output with its header
//! section rewritten and scanned, and its size and line lengths held to
//! the limits.

use super::headers::{HeaderFilter, Missing};
pub use crate::policy::facts::{DataFacts, Refused};
use crate::policy::from_header::{FromHeaderScanner, ReceivedCounter, RecipientHeaderScanner};
use crate::wire::dot::DataDecoder;

/// What the next input did to a message streaming in.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// All input used; more is needed.
    NeedInput,
    /// These rewritten bytes are ready to be stored.
    Store,
    /// The message was just refused: what was stored of it goes.
    Refused,
    /// The message ended.
    Ended,
}

/// One message on its way in: decoded, its header section rewritten and
/// scanned, its size and line lengths held to the limits, in chunks the
/// size of the caller's buffer.
pub struct DataStream {
    decoder: DataDecoder,
    filter: HeaderFilter,
    from: FromHeaderScanner,
    received: ReceivedCounter,
    recipients: Option<RecipientHeaderScanner>,
    /// Decoded bytes waiting in the chunk buffer.
    filled: usize,
    bare_lf_at: Option<usize>,
    size: u64,
    max_size: u64,
    refused: Option<Refused>,
    finished: bool,
}

impl DataStream {
    /// `missing`: fields to add (members' mail); `authserv_id`: ours, for
    /// dropping Authentication-Results: that claim it; `scan_recipients`:
    /// read To:/Cc: for the spam rule; `max_size`: the limit on stored bytes.
    pub fn new(
        missing: Option<Missing>,
        authserv_id: &str,
        scan_recipients: bool,
        max_size: u64,
    ) -> Self {
        DataStream {
            decoder: DataDecoder::new(),
            filter: HeaderFilter::new(missing, authserv_id),
            from: FromHeaderScanner::new(),
            received: ReceivedCounter::for_fields(&["received"]),
            recipients: scan_recipients.then(RecipientHeaderScanner::recipients),
            filled: 0,
            bare_lf_at: None,
            size: 0,
            max_size,
            refused: None,
            finished: false,
        }
    }

    /// Decodes `input` through `chunk` (at least two bytes); when `chunk`
    /// is full or the message ends, the rewritten bytes are put in
    /// `store`. Returns the input bytes used and what happened.
    pub fn feed(&mut self, input: &[u8], chunk: &mut [u8], store: &mut Vec<u8>) -> (usize, Output) {
        if self.finished {
            return (0, Output::Ended);
        }
        let mut used = 0;
        while used < input.len() {
            let p = self.decoder.feed(&input[used..], &mut chunk[self.filled..]);
            used += p.consumed;
            if self.bare_lf_at.is_none() {
                self.bare_lf_at = p.bare_lf_at.map(|at| self.filled + at);
            }
            self.filled += p.produced;
            if p.finished || chunk.len() - self.filled < 2 {
                self.finished = p.finished;
                store.clear();
                self.filter
                    .feed(&chunk[..self.filled], self.bare_lf_at.take(), store);
                if p.finished {
                    self.filter.finish(store);
                }
                self.filled = 0;
                return (used, self.judge(store));
            }
        }
        (used, Output::NeedInput)
    }

    /// Scans the rewritten bytes and holds them to the limits.
    fn judge(&mut self, bytes: &[u8]) -> Output {
        self.from.feed(bytes);
        self.received.feed(bytes);
        if let Some(scan) = self.recipients.as_mut() {
            scan.feed(bytes);
        }
        let ended = if self.finished {
            Output::Ended
        } else {
            Output::NeedInput
        };
        if self.refused.is_some() {
            return ended;
        }
        if self.size + bytes.len() as u64 > self.max_size {
            self.refused = Some(Refused::TooBig);
        } else if self.decoder.line_too_long() {
            self.refused = Some(Refused::LineTooLong);
        } else if bytes.is_empty() {
            return ended;
        } else {
            self.size += bytes.len() as u64;
            return Output::Store;
        }
        Output::Refused
    }

    /// The terminating `<CRLF>.<CRLF>` was read.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// What the message showed.
    pub fn facts(&self) -> DataFacts {
        let listed = self
            .recipients
            .as_ref()
            .map(|s| s.named_seen())
            .unwrap_or_default();
        let from = self.from.named().unwrap_or_default();
        let names = from
            .into_iter()
            .chain(listed.iter().cloned())
            .filter(|m| !m.name.is_empty())
            .collect();
        DataFacts {
            refused: self.refused,
            malformed: self.filter.malformed(),
            from_header: self.from.addresses(),
            received: self.received.fields_seen(),
            listed: listed.into_iter().map(|m| m.address).collect(),
            names,
            size: self.size,
        }
    }
}
